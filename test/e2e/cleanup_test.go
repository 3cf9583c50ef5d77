package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// serviceChild returns the pid of the agent's child running the group's
// service (the clustertest service is `sleep 1000000`).
func serviceChild(t *testing.T, agentPID int) int {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(agentPID) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(field)
			cmd, _ := os.ReadFile("/proc/" + field + "/cmdline")
			if strings.HasPrefix(string(cmd), "sleep\x00") {
				return pid
			}
		}
	}
	t.Fatalf("no service process under agent %d", agentPID)
	return 0
}

// TestCleanupLetsAGroupBack: the service dies on node1, the group fails
// over to node2, and failure_timeout (1m) keeps it away from node1, an
// operator move back included. `harules cleanup web`, sent to node2, makes
// node1 forget the failure (the request travels with the heartbeats) and
// the pinned group moves back at once.
func TestCleanupLetsAGroupBack(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	if err := syscall.Kill(serviceChild(t, c.AgentPID("node1")), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	if _, err := harulesCLI(t, c, "move", clustertest.Group, "node1", "--control", c.ControlSocket("node2")); err != nil {
		t.Fatal(err)
	}
	holdsFor(t, c, 2*time.Second, "node2", "node1", "node2")
	st := c.MustStatus("node2")
	if !strings.Contains(st.Groups[0].Reason, "failed") {
		t.Errorf("node2 does not say why the group stays: %q", st.Groups[0].Reason)
	}
	start := time.Now()
	if _, err := harulesCLI(t, c, "cleanup", clustertest.Group, "--control", c.ControlSocket("node2")); err != nil {
		t.Fatal(err)
	}
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	t.Logf("cleanup on node2 -> node1 holds the group again: %v", time.Since(start).Round(time.Millisecond))
	found := false
	for _, r := range c.MustStatus("node1").Recent {
		found = found || strings.Contains(r.Text, "operator cleanup: the failure of "+clustertest.Group+" on node1")
	}
	if !found {
		t.Error("node1's timeline does not record forgetting its failure")
	}
}
