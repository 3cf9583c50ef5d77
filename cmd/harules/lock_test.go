package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/harules/harules/agent"
)

// While a run holds the state directory, a second `harules run` (with or
// without the supervisor) and `harules release` exit with status 4, name
// the holder's pid and touch nothing. (The missing policy of release shows
// it never got as far as loading it.)
func TestSecondRunAndReleaseRefuseALockedStateDir(t *testing.T) {
	dir := t.TempDir()
	held, err := agent.LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	pid := "pid " + strconv.Itoa(os.Getpid())
	missing := filepath.Join(dir, "no-such-policy.star")
	for _, args := range [][]string{
		{"run", "--policy", example, "--node", "node1", "--state-dir", dir, "--control", filepath.Join(dir, "ctl.sock")},
		{"run", "--no-supervisor", "--policy", example, "--node", "node1", "--state-dir", dir, "--control", filepath.Join(dir, "ctl.sock")},
		{"release", "--policy", missing, "--node", "node1", "--state-dir", dir},
	} {
		code, _, stderr := harules(t, args...)
		if code != exitLocked || !strings.Contains(stderr, pid) || !strings.Contains(stderr, "holds "+filepath.Join(dir, "run.lock")) ||
			strings.Contains(stderr, "no-such-policy") {
			t.Errorf("harules %s with the state dir locked: exit %d, stderr %q; want %d naming %s", strings.Join(args[:2], " "), code, stderr, exitLocked, pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "incarnation")); err == nil {
		t.Error("the refused run bumped the incarnation")
	}
}
