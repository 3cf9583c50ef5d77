package service

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

func quietOptions() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// BenchmarkProcessStartStop measures one start and stop of a supervised
// `sleep` (spawn, SIGTERM to the group, wait for it to vanish, reap).
func BenchmarkProcessStartStop(b *testing.B) {
	r, err := New(Spec{Name: "bench", Kind: KindProcess, Argv: []string{"sleep", "1000"}}, quietOptions())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	for b.Loop() {
		if err := r.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if err := r.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOCFDummyMonitor measures one monitor of ocf:heartbeat:Dummy (a
// shell agent sourcing ocf-shellfuncs), the cost of a recurring OCF check.
func BenchmarkOCFDummyMonitor(b *testing.B) {
	r, err := New(Spec{Name: "bench", Kind: KindOCF, Agent: "Dummy",
		Params: map[string]string{"state": filepath.Join(b.TempDir(), "state")}}, quietOptions())
	if err != nil {
		b.Fatalf("%v (apt-get install resource-agents)", err)
	}
	ctx := b.Context()
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer r.Stop(ctx)
	for b.Loop() {
		if st, err := r.Monitor(ctx); err != nil || st.State != StateRunning {
			b.Fatalf("%v %v", st, err)
		}
	}
}
