package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/clustertest"
)

// quorumExtra adds the stdlib quorum rule. settle must cover one heartbeat
// interval (100 ms) plus the group's stop time (VIP + a sleep process: a few
// ms), with room for a busy CI machine.
const quorumExtra = `
load("@stdlib//rules.star", "quorum")
rule("quorum", when = quorum(settle = "1s"))
`

// cutOff isolates node from every other HA node on both heartbeat paths
// while it stays up and reachable by the client: backnet by taking its
// eth1 down, lan with blackhole routes both ways.
func cutOff(c *clustertest.Cluster, node string, on bool) {
	c.SetLink(node, "eth1", !on)
	for _, other := range c.Nodes() {
		if other == node {
			continue
		}
		c.Blackhole(node, clustertest.LanAddr(nodeIndex(other)), on)
		c.Blackhole(other, clustertest.LanAddr(nodeIndex(node)), on)
	}
}

func nodeIndex(name string) int {
	for i := 1; i <= 40; i++ {
		if clustertest.NodeName(i) == name {
			return i
		}
	}
	panic("not a clustertest node name: " + name)
}

// TestQuorumThreeNodes: three real agents with the quorum rule. The holder
// is cut off from both peers but keeps running: it loses quorum and stops
// the group, the two-node majority takes over after the settle time, and
// the VIP is never on two nodes. After the network heals the group stays
// where it is. Then two of the three nodes crash: the survivor has no
// majority and stops serving rather than risk a split brain
// (no-quorum-policy=stop).
func TestQuorumThreeNodes(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Policy: clustertest.PolicyOptions{Extra: quorumExtra}})
	c.StartApps()
	c.StartAll()
	for _, n := range c.Nodes() {
		c.WaitOwner(n, clustertest.Group, "node1", 30*time.Second)
	}
	o := observe(t, c, "node1")

	cut := time.Now()
	cutOff(c, "node1", true)
	c.WaitFor(30*time.Second, "node1 raises no-quorum and gives the group up", func() bool {
		st, err := c.Status("node1")
		return err == nil && hasAlert(st, "no-quorum", "node1 hears 1 of 3 nodes") && !hasHolder(st, "node1")
	})
	c.WaitFor(30*time.Second, "node2 holds the VIP", func() bool {
		h := c.VIPHolders()
		return len(h) == 1 && h[0] == "node2"
	})
	t.Logf("cut -> VIP on node2 alone: %v", time.Since(cut).Round(time.Millisecond))
	waitAnswers(t, c, o, "node2", 5, 20*time.Second)
	for _, n := range []string{"node2", "node3"} {
		if st := c.MustStatus(n); hasAlert(st, "no-quorum", "") {
			t.Errorf("%s (majority side) raised no-quorum: %v", n, st.Alerts)
		}
	}

	cutOff(c, "node1", false)
	c.WaitFor(30*time.Second, "node1 hears both peers again", func() bool {
		st, err := c.Status("node1")
		return err == nil && peer(st, "node2").State == "alive" && peer(st, "node3").State == "alive" && !hasAlert(st, "no-quorum", "")
	})
	holdsFor(t, c, 2*time.Second, "node2", "node1", "node2", "node3")
	ob := o.stop()
	assertNeverDual(t, ob)
	gap(t, "holder cut off -> majority takes over", ob.samples, "node1", "node2")

	// Two of three crash: node2 alone has 1 vote of 3.
	c.Crash("node1")
	c.Crash("node3")
	c.WaitFor(30*time.Second, "node2 alone stops serving", func() bool {
		st, err := c.Status("node2")
		return err == nil && hasAlert(st, "no-quorum", "node2 hears 1 of 3 nodes") && len(c.VIPHolders()) == 0
	})
}

// hasHolder reports whether node holds any group in st's view.
func hasHolder(st *agent.Status, node string) bool {
	for _, g := range st.Groups {
		if slices.Contains(g.Holders, node) {
			return true
		}
	}
	return false
}
