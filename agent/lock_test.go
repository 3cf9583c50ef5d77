package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStateLockIsExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock belongs to the open file: a second open in the same process
	// conflicts just as another process's would.
	_, err = LockStateDir(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Path != filepath.Join(dir, LockFileName) {
		t.Fatalf("second lock: %v (%#v), want a LockedError naming pid %d", err, le, os.Getpid())
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "nothing was touched") {
		t.Errorf("message %q does not name the holder's pid and say nothing was touched", err)
	}

	// Only the held file itself can be inherited; another open of it is a
	// second contender.
	other, err := os.Open(first.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InheritStateLock(other, dir); !errors.As(err, &le) {
		t.Errorf("inheriting another open of the lock file: %v, want a LockedError", err)
	}
	other.Close()
	unrelated, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer unrelated.Close()
	if _, err := InheritStateLock(unrelated, dir); err == nil || !strings.Contains(err.Error(), "is not") {
		t.Errorf("inheriting an unrelated file: %v", err)
	}
	if _, err := InheritStateLock(first.File(), dir); err != nil {
		t.Errorf("inheriting the held lock: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := LockStateDir(dir)
	if err != nil {
		t.Fatalf("lock after the holder closed it: %v", err)
	}
	again.Close()
}

// Run refuses to start while another run holds the state directory, before
// it touches anything: no release, no incarnation bump, no control socket.
func TestRunRefusesALockedStateDir(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(`load("@stdlib//placement.star", "active_standby")
cluster(name = "lock")
node("a", address = "127.0.0.1")
group("web", resources = [service("app", command = ["sleep", "1000"])], placement = active_standby(["a"]))
`), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	held, err := LockStateDir(state)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	exec := &fakeResources{}
	sock := filepath.Join(dir, "ctl.sock")
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: state, ControlSocket: sock, Logger: quietLogger(), Executor: exec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var le *LockedError
	if err := a.Run(ctx); !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("Run on a locked state dir: %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if done := exec.done(); len(done) != 0 {
		t.Errorf("Run on a locked state dir executed %v", done)
	}
	for _, f := range []string{filepath.Join(state, "incarnation"), sock} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Run on a locked state dir created %s (%v)", f, err)
		}
	}
}
