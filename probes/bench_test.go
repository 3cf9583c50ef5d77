package probes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkRunner20Probes measures the CPU cost of a runner with 20 probes
// at a 1 s interval, from getrusage over a fixed stretch of wall time:
//
//	go test -run '^$' -bench Runner20Probes -benchtime 1x ./probes
//
// Each sub-benchmark runs for HARULES_BENCH_SECONDS (default 10) and
// reports cpu-ms/s: CPU milliseconds used per wall-clock second by this
// process (runner plus in-process checks, and for exec the reaped
// children), i.e. 10 cpu-ms/s is 1% of one core.
func BenchmarkRunner20Probes(b *testing.B) {
	seconds := 10
	if s, err := strconv.Atoi(os.Getenv("HARULES_BENCH_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	kinds := map[string]func() Check{
		"noop": func() Check { return CheckFunc(func(context.Context) Result { return Result{OK: true} }) },
		"tcp": func() Check {
			c, err := NewTCP(ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		},
		"exec": func() Check {
			c, err := NewExec(ExecConfig{Argv: []string{"true"}})
			if err != nil {
				b.Fatal(err)
			}
			return c
		},
	}
	for _, kind := range []string{"noop", "tcp", "exec"} {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				r := NewRunner(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				for i := range 20 {
					if err := r.Add(Spec{Name: fmt.Sprintf("p%d", i), Check: kinds[kind](), Every: time.Second, Timeout: 500 * time.Millisecond}); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
				before := cpuTime(b)
				start := time.Now()
				if err := r.Run(ctx); err != nil {
					b.Fatal(err)
				}
				wall := time.Since(start)
				cancel()
				used := cpuTime(b) - before
				for name, f := range r.Snapshot() {
					if f.State != StateOK || f.ConsecutiveOK < seconds-1 {
						b.Fatalf("probe %s: %+v, want ok after ~%d runs", name, f, seconds)
					}
				}
				b.ReportMetric(float64(used.Milliseconds())/wall.Seconds(), "cpu-ms/s")
			}
		})
	}
}

// cpuTime is user+system time of this process and its reaped children.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if err := unix.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}
