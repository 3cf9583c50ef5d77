package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestReloadRefusesBrokenPolicy: SIGHUP with a policy that does not load
// is refused and logged; the running policy stays in force (same hash in
// status, a move still works). A valid change is then picked up by both
// nodes on the next SIGHUP.
func TestReloadRefusesBrokenPolicy(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	good := c.MustStatus("node1").PolicyHash
	if good == "" || c.MustStatus("node2").PolicyHash != good {
		t.Fatalf("nodes disagree on the policy hash at start: %q / %q", good, c.MustStatus("node2").PolicyHash)
	}

	broken := c.Policy(clustertest.PolicyOptions{}) + "\nrule(\"broken\", when = this_is_not_defined)\n"
	c.WritePolicy(broken)
	for _, n := range c.Nodes() {
		c.Reload(n)
	}
	for _, n := range c.Nodes() {
		c.WaitFor(20*time.Second, n+" logs that the reload was refused", func() bool {
			return strings.Contains(c.Log(n), "policy reload refused")
		})
		if got := c.MustStatus(n).PolicyHash; got != good {
			t.Errorf("%s runs policy %s after a refused reload, want the old %s", n, got, good)
		}
		if !c.Running(n) {
			t.Fatalf("the agent on %s exited after a broken policy was sent with SIGHUP", n)
		}
	}
	// The old policy still works: a planned move goes through.
	if err := c.Move("node1", clustertest.Group, "node2"); err != nil {
		t.Fatalf("move after a refused reload: %v", err)
	}
	c.WaitOwner("node1", clustertest.Group, "node2", 20*time.Second)

	// A valid change (another failback delay) is picked up on both nodes.
	c.WritePolicy(c.Policy(clustertest.PolicyOptions{FailbackDelay: "7s"}))
	for _, n := range c.Nodes() {
		c.Reload(n)
	}
	var fresh string
	c.WaitFor(20*time.Second, "both nodes run the new policy", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		if err1 != nil || err2 != nil {
			return false
		}
		fresh = s1.PolicyHash
		return fresh != good && s2.PolicyHash == fresh
	})
	for _, n := range c.Nodes() {
		if log := c.Log(n); !strings.Contains(log, "policy reloaded, hash "+fresh) {
			t.Errorf("%s's log does not record the reload to %s", n, fresh)
		}
	}
	c.WaitFor(10*time.Second, "node1 sees node2's new policy hash", func() bool {
		return peer(c.MustStatus("node1"), "node2").PolicyHash == fresh
	})
	// And the group still moves under the new policy.
	if err := c.Move("node2", clustertest.Group, "node1"); err != nil {
		t.Fatalf("move after the reload: %v", err)
	}
	c.WaitOwner("node2", clustertest.Group, "node1", 20*time.Second)
}
