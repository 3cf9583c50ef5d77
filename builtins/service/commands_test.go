package service

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lsbScript writes an init-script-like service that runs `sleep` as its
// daemon, tracks it with a pid file, and counts how often start and stop
// really ran (it is deliberately not idempotent: start always starts).
func lsbScript(t *testing.T, dir string) string {
	return writeScript(t, filepath.Join(dir, "svc"), `
pidfile="$D/pid"
case "$1" in
start)
	echo x >> "$D/starts"
	sleep 1000 &          # the daemon keeps our stdout open: Start must not wait for it
	echo $! > "$pidfile"
	echo "started $!" ;;
stop)
	echo x >> "$D/stops"
	[ -f "$pidfile" ] && kill "$(cat "$pidfile")"
	rm -f "$pidfile" ;;
status)
	if [ -f "$D/status-override" ]; then exit "$(cat "$D/status-override")"; fi
	[ -f "$pidfile" ] || exit 3
	kill -0 "$(cat "$pidfile")" 2>/dev/null && exit 0
	echo "dead but pid file exists" >&2
	exit 1 ;;
esac
`)
}

func lines(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func newCommandsRunner(t *testing.T, dir string, spec Spec) *CommandsRunner {
	t.Helper()
	script := lsbScript(t, dir)
	spec.Name, spec.Kind = "lsb", KindCommands
	spec.Start = []string{script, "start"}
	spec.Stop = []string{script, "stop"}
	if spec.Monitor == nil {
		spec.Monitor = []string{script, "status"}
	}
	spec.Env = map[string]string{"D": dir}
	r, err := New(spec, testOptions(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	killOnCleanup(t, func() []int {
		if _, err := os.Stat(filepath.Join(dir, "pid")); err != nil {
			return nil
		}
		return readPIDs(t, filepath.Join(dir, "pid"))
	})
	return r.(*CommandsRunner)
}

func TestCommandsCycleIsIdempotent(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	r := newCommandsRunner(t, dir, Spec{StartTimeout: 30 * time.Second})

	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop of a stopped service: %v", err)
	}
	if n := lines(t, filepath.Join(dir, "stops")); n != 0 {
		t.Fatalf("stop script ran %d times for a stopped service, want 0", n)
	}
	began := time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The daemon holds the script's stdout for 1000 s; had Start waited
	// for it, it would have hit the 30 s start timeout.
	if took := time.Since(began); took > 25*time.Second {
		t.Fatalf("Start took %s: it waited for the daemon", took)
	}
	daemon := readPIDs(t, filepath.Join(dir, "pid"))[0]
	if !alive(daemon) {
		t.Fatalf("daemon %d is not running after Start", daemon)
	}
	mustStatus(t, r, StateRunning)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if n := lines(t, filepath.Join(dir, "starts")); n != 1 {
		t.Fatalf("start script ran %d times, want 1 (Start of a running service must not run it)", n)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor(t, "the daemon to exit", func() bool { return !alive(daemon) })
	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if n := lines(t, filepath.Join(dir, "stops")); n != 1 {
		t.Fatalf("stop script ran %d times, want 1", n)
	}
}

func TestCommandsMonitorExitCodes(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	r := newCommandsRunner(t, dir, Spec{})
	for _, tc := range []struct {
		code int
		want State
	}{{0, StateRunning}, {3, StateStopped}, {7, StateStopped}, {1, StateFailed}, {2, StateFailed}, {4, StateFailed}, {150, StateFailed}} {
		if err := os.WriteFile(filepath.Join(dir, "status-override"), []byte(strconv.Itoa(tc.code)), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := r.Monitor(ctx)
		if err != nil {
			t.Fatalf("Monitor (exit %d): %v", tc.code, err)
		}
		if st.State != tc.want || st.ExitCode != tc.code {
			t.Errorf("monitor exit %d: got %v, want %v", tc.code, st, tc.want)
		}
	}
	// A dead daemon with its pid file left behind: LSB status 1, with the
	// script's stderr in the message.
	os.Remove(filepath.Join(dir, "status-override"))
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte("999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, r, StateFailed)
	if !strings.Contains(st.Message, "dead but pid file exists") {
		t.Fatalf("Message = %q, want the script's stderr", st.Message)
	}
	os.Remove(filepath.Join(dir, "pid"))
}

func TestCommandsHangingStartIsKilledAtTimeout(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	hang := writeScript(t, filepath.Join(dir, "hang"), `sleep 1000 & echo $! > "$D/child"; echo "waiting for the network" >&2; wait`)
	r, err := New(Spec{Name: "hangs", Kind: KindCommands, Env: map[string]string{"D": dir},
		Start: []string{hang}, Stop: []string{"true"}, Monitor: []string{"sh", "-c", "exit 3"},
		StartTimeout: 2 * time.Second}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start(ctx)
	var ae *ActionError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &ae) || !ae.TimedOut {
		t.Fatalf("Start of a hanging script = %v, want a timed-out ActionError", err)
	}
	if !strings.Contains(err.Error(), "waiting for the network") {
		t.Fatalf("error %q lacks the script's output", err)
	}
	child := readPIDs(t, filepath.Join(dir, "child"))[0]
	killOnCleanup(t, func() []int { return []int{child} })
	waitFor(t, "the hanging script's child to be killed with its group", func() bool { return !alive(child) })
}

func TestCommandsHangingMonitorTimesOut(t *testing.T) {
	ctx := testCtx(t)
	r, err := New(Spec{Name: "hangs", Kind: KindCommands, Start: []string{"true"}, Stop: []string{"true"},
		Monitor: []string{"sleep", "1000"}, MonitorTimeout: 200 * time.Millisecond}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Monitor(ctx)
	if !errors.Is(err, ErrTimeout) || st.State != StateFailed {
		t.Fatalf("Monitor = %v, %v; want failed and ErrTimeout", st, err)
	}
}
