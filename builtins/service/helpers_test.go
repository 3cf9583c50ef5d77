package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play a tiny agent process (see
// TestProcessKillWithAgent): started with HARULES_SERVICE_TEST_AGENT set, it
// starts one process service, prints the service's PID and waits to be
// killed.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HARULES_SERVICE_TEST_AGENT"); mode != "" {
		os.Exit(runTestAgent(mode))
	}
	os.Exit(m.Run())
}

func runTestAgent(mode string) int {
	killWithAgent := mode != "keep"
	spec := Spec{Name: "orphan-check", Kind: KindProcess, Argv: []string{"sleep", "1000"}, KillWithAgent: &killWithAgent}
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if owner, ok := strings.CutPrefix(mode, "owner:"); ok {
		// A service with a worker: Pdeathsig reaches only the main process.
		spec.Argv = []string{"sh", "-c", "sleep 1000 & wait"}
		opts.Owner = owner
	}
	r, err := New(spec, opts)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := r.Start(context.Background()); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(r.(*ProcessRunner).cur.pgid)
	select {} // wait to be killed
}

// testOptions logs into the test's output.
func testOptions(t *testing.T) Options {
	return Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie counts as dead).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// readPIDs reads whitespace-separated PIDs from a file a test script wrote.
func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file %s: %q is not a pid", path, f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// killOnCleanup SIGKILLs the given processes at the end of the test, so a
// failing test leaves nothing behind.
func killOnCleanup(t *testing.T, pids func() []int) {
	t.Cleanup(func() {
		for _, pid := range pids() {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireRoot fails (or, with HARULES_SKIP_ROOT_TESTS=1, skips) a test that
// needs root.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
		t.Skipf("SKIPPING (HARULES_SKIP_ROOT_TESTS=1): %s needs root", why)
	}
	t.Fatalf("%s needs root: run the tests as root (or set HARULES_SKIP_ROOT_TESTS=1 to skip)", why)
}
