package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReleaseLeavesANodeInMaintenanceAlone: `harules release` (the
// supervisor's and ExecStopPost's release) does nothing while the saved
// state says maintenance; --force and a node out of maintenance do release.
// The policy path does not exist, so a release that goes ahead fails when
// it loads it: no address of this machine is touched.
func TestReleaseLeavesANodeInMaintenanceAlone(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-policy.star")
	writeState := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	release := func(extra ...string) (int, string) {
		t.Helper()
		args := append([]string{"release", "--policy", missing, "--node", "node1", "--state-dir", dir}, extra...)
		code, _, stderr := harules(t, args...)
		return code, stderr
	}

	writeState(`{"incarnation": 3, "holds": {"web": "2026-11-26T08:00:00Z"}, "maintenance": true}`)
	if code, stderr := release(); code != exitOK || !strings.Contains(stderr, "the node is in maintenance") || !strings.Contains(stderr, "nothing is released") {
		t.Errorf("release in maintenance: exit %d, stderr %q; want 0 and a line saying nothing is released", code, stderr)
	}
	if code, stderr := release("--force"); code == exitOK || !strings.Contains(stderr, "--force: releasing anyway") || !strings.Contains(stderr, "no-such-policy.star") {
		t.Errorf("release --force in maintenance: exit %d, stderr %q; want it to go ahead (and fail on the missing policy)", code, stderr)
	}
	writeState(`{"incarnation": 3, "holds": {"web": "2026-11-26T08:00:00Z"}}`)
	if code, stderr := release(); code == exitOK || !strings.Contains(stderr, "no-such-policy.star") {
		t.Errorf("release out of maintenance: exit %d, stderr %q; want it to go ahead", code, stderr)
	}
	writeState(`{corrupt`)
	if code, stderr := release(); code == exitOK || !strings.Contains(stderr, "cannot tell whether the node is in maintenance; releasing") {
		t.Errorf("release with an unreadable state: exit %d, stderr %q; want it to release (and say why)", code, stderr)
	}
}

func TestMaintenanceCommandArguments(t *testing.T) {
	for _, args := range [][]string{{"maintenance"}, {"maintenance", "maybe"}, {"maintenance", "on", "off"}} {
		if code, _, stderr := harules(t, args...); code != exitUsage || !strings.Contains(stderr, "want on or off") {
			t.Errorf("harules %v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code, _, stderr := harules(t, "maintenance", "--control", sock, "on"); code != exitFailed || !strings.Contains(stderr, "cannot reach the agent") {
		t.Errorf("harules maintenance on without an agent: exit %d, stderr %q", code, stderr)
	}
}
