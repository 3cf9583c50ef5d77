// Package dbtest holds what the end-to-end database tests (test/e2epg,
// test/e2emysql) share: the log of a client's acknowledged writes, the
// role sampler that catches two writable primaries at once, and the
// numbers they report. The database-specific parts (connecting, the insert,
// asking a server its role) stay with each test.
package dbtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ack is one insert the client saw committed.
type Ack struct {
	N  int64
	At time.Time
	// Server is the node whose server committed it.
	Server string
}

// Writes logs a writer client's acknowledged inserts and failures; it is
// safe for concurrent use.
type Writes struct {
	mu      sync.Mutex
	acks    []Ack
	failed  int
	lastErr string
}

// Add records an acknowledged insert.
func (w *Writes) Add(a Ack) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acks = append(w.acks, a)
}

// Fail records a failed insert or connection attempt.
func (w *Writes) Fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failed++
	w.lastErr = err.Error()
}

// Failures counts failed inserts and connection attempts and returns the
// last error.
func (w *Writes) Failures() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed, w.lastErr
}

// Acks returns a copy of the acknowledged inserts so far.
func (w *Writes) Acks() []Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

// AcksFrom counts acknowledgements from server at or after since.
func (w *Writes) AcksFrom(server string, since time.Time) int {
	n := 0
	for _, a := range w.Acks() {
		if a.Server == server && !a.At.Before(since) {
			n++
		}
	}
	return n
}

// FirstFrom is when server first acknowledged an insert at or after since
// (zero when it has not).
func (w *Writes) FirstFrom(server string, since time.Time) time.Time {
	for _, a := range w.Acks() {
		if a.Server == server && !a.At.Before(since) {
			return a.At
		}
	}
	return time.Time{}
}

// Lost lists acknowledged rows missing from present.
func Lost(acks []Ack, present map[int64]bool) []int64 {
	var out []int64
	for _, a := range acks {
		if !present[a.N] {
			out = append(out, a.N)
		}
	}
	return out
}

// Median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	s := Sorted(ds)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Sorted returns a sorted copy of ds.
func Sorted(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

// RoleSample is one server's answer (or failure) to "are you writable?".
type RoleSample struct {
	Round     int
	Node      string
	Sent, Got time.Time
	Reachable bool
	// Writable: the server accepts the application's writes (a primary,
	// or read_only off).
	Writable bool
}

// AskWritable asks node's server whether it is writable, within ctx.
type AskWritable func(ctx context.Context, node string) (writable bool, err error)

// RoleSampler asks every server, concurrently, every interval whether it
// is writable.
type RoleSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	s    []RoleSample
}

// StartRoleSampler starts sampling nodes with ask (each answer within
// 300 ms) until Stop, which t's cleanup also calls.
func StartRoleSampler(t testing.TB, nodes []string, interval time.Duration, ask AskWritable) *RoleSampler {
	r := &RoleSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for round := 1; ; round++ {
			var wg sync.WaitGroup
			for _, n := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := RoleSample{Round: round, Node: n, Sent: time.Now()}
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					defer cancel()
					writable, err := ask(ctx, n)
					s.Reachable, s.Writable = err == nil, err == nil && writable
					s.Got = time.Now()
					r.mu.Lock()
					r.s = append(r.s, s)
					r.mu.Unlock()
				}()
			}
			wg.Wait()
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { r.Stop() })
	return r
}

// Stop ends the sampler (idempotent) and returns its samples.
func (r *RoleSampler) Stop() []RoleSample {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.s)
}

// DualWritableRounds lists the rounds in which two or more servers were
// writable.
func DualWritableRounds(samples []RoleSample) []int {
	writable := map[int]int{}
	for _, s := range samples {
		if s.Writable {
			writable[s.Round]++
		}
	}
	var out []int
	for round, n := range writable {
		if n > 1 {
			out = append(out, round)
		}
	}
	slices.Sort(out)
	return out
}

// RoleTimeline summarises the samples as runs of equal state per node,
// naming the states as the database does ("standby"/"PRIMARY",
// "read-only"/"WRITABLE").
func RoleTimeline(samples []RoleSample, readOnly, writable string) string {
	var b strings.Builder
	last := map[string]string{}
	for _, s := range samples {
		state := "unreachable"
		if s.Reachable {
			state = readOnly
			if s.Writable {
				state = writable
			}
		}
		if last[s.Node] != state {
			fmt.Fprintf(&b, "\n  %s %s: %s", s.Sent.Format("15:04:05.000"), s.Node, state)
			last[s.Node] = state
		}
	}
	return b.String()
}

// FirstWritable is when node first answered writable at or after since.
func FirstWritable(samples []RoleSample, node string, since time.Time) (time.Time, bool) {
	for _, s := range samples {
		if s.Node == node && s.Writable && !s.Sent.Before(since) {
			return s.Sent, true
		}
	}
	return time.Time{}, false
}
