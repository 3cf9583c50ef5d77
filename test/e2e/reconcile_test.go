package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestStrayVIPIsRemoved: a harules-labelled VIP configured on the standby
// (left by a failed start whose rollback could not run, or added by hand)
// is removed by the standby's reconcile pass, while the holder keeps its
// own. Before the agent reconciled with what really runs, the stray address
// stayed until the agent restarted, and both nodes answered ARP for it.
func TestStrayVIPIsRemoved(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	c.WaitOwner("node2", clustertest.Group, "node1", 20*time.Second)
	c.Lab.MustExec("node2", "ip", "addr", "add", clustertest.VIPPrefix, "dev", "eth0", "label", "eth0:hr")
	if h := c.VIPHolders(); !slices.Contains(h, "node2") {
		t.Fatalf("the stray VIP was not added on node2: holders %v", h)
	}
	c.WaitFor(10*time.Second, "node2 removes the VIP it does not hold", func() bool {
		return !slices.Contains(c.VIPHolders(), "node2")
	})
	if h := c.VIPHolders(); !slices.Equal(h, []string{"node1"}) {
		t.Errorf("VIP holders after the reconcile: %v, want node1 only", h)
	}
	if log := c.Log("node2"); !strings.Contains(log, "no group held here uses it") {
		t.Errorf("node2's log does not say why it removed the VIP")
	}
	c.WaitOwner("node1", clustertest.Group, "node1", 5*time.Second)
}
