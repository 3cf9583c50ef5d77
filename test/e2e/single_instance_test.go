package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestSecondRunLeavesTheFirstAlone: while node1's `harules run` serves the
// group (VIP and a real detached service), a second `harules run` on node1
// with the same state directory, supervised or not, exits with status 4
// naming the first run's pid, and releases nothing: the VIP stays on node1,
// the service keeps its pid, and the first agent keeps holding the group.
// Before the lock, the second agent's start released everything the first
// held (and its supervisor released again after it failed).
func TestSecondRunLeavesTheFirstAlone(t *testing.T) {
	c := maintenanceCluster(t)
	pid := servicePID(c, "node1")
	if pid == 0 {
		t.Fatalf("node1 serves the group but its service daemon does not run")
	}
	holder := "pid " + strconv.Itoa(c.SupervisorPID("node1"))
	logBefore := len(c.Log("node1"))
	for _, extra := range [][]string{nil, {"--no-supervisor"}} {
		args := append([]string{"run", "--policy", c.PolicyPath, "--node", "node1",
			"--state-dir", c.StateDir("node1"), "--control", c.ControlSocket("node1")}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := c.Lab.CommandContext(ctx, "node1", append([]string{c.Bin}, args...)...)
		var stderr bytes.Buffer
		cmd.Env = append(cmd.Environ(), "HARULES_NODE=node1")
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(stderr.String(), holder) {
			t.Errorf("second run %v: %v, stderr %q; want exit status 4 naming %s", extra, err, stderr.String(), holder)
		}
		if got := servicePID(c, "node1"); got != pid {
			t.Fatalf("after a second run %v the service pid on node1 is %d, want %d (untouched)", extra, got, pid)
		}
		if v := c.VIPHolders(); !slices.Equal(v, []string{"node1"}) {
			t.Fatalf("after a second run %v the VIP is on %v, want node1 only", extra, v)
		}
		if h := c.Owners("node1", clustertest.Group); !slices.Equal(h, []string{"node1"}) || !c.Running("node1") {
			t.Fatalf("after a second run %v node1's agent reports %v holding the group (running: %v)", extra, h, c.Running("node1"))
		}
	}
	log := c.Log("node1")[logBefore:]
	for _, bad := range []string{"releas", "failed", "vip removed", "stop "} {
		if strings.Contains(log, bad) {
			t.Errorf("node1's first run logged %q meanwhile:\n%s", bad, log)
		}
	}
}
