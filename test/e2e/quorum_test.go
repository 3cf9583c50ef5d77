package e2e

import (
	"slices"
	"strings"
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

// cutPair cuts both heartbeat paths between two nodes only (blackhole
// routes both ways on lan and backnet); every other link stays up.
func cutPair(c *clustertest.Cluster, a, b string, on bool) {
	ia, ib := nodeIndex(a), nodeIndex(b)
	c.Blackhole(a, clustertest.LanAddr(ib), on)
	c.Blackhole(b, clustertest.LanAddr(ia), on)
	c.Blackhole(a, clustertest.BacknetAddr(ib), on)
	c.Blackhole(b, clustertest.BacknetAddr(ia), on)
}

// TestQuorumPartialPartition: only the links between node1 (holder) and
// node2 break; node3 hears both. node2 declares node1 dead and has a
// majority (itself and node3), but node3 still hears node1, so node1 is not
// dead to a majority: node2 must not take over, and says why. Counting
// votes alone would put the VIP on both.
func TestQuorumPartialPartition(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Policy: clustertest.PolicyOptions{Extra: quorumExtra}})
	c.StartApps()
	c.StartAll()
	for _, n := range c.Nodes() {
		c.WaitOwner(n, clustertest.Group, "node1", 30*time.Second)
	}
	o := observe(t, c, "node1")

	cutPair(c, "node1", "node2", true)
	c.WaitFor(30*time.Second, "node1 and node2 declare each other dead", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		return err1 == nil && err2 == nil && peer(s1, "node2").State == "dead" && peer(s2, "node1").State == "dead"
	})
	// Well past the settle time (1 s): node2 would have taken over by now.
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		if h := c.VIPHolders(); len(h) != 1 || h[0] != "node1" {
			t.Fatalf("the VIP moved during a partial partition: held by %v", h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := c.MustStatus("node2")
	var why string
	for _, a := range st.Plan {
		why += " " + a.Wait
	}
	for _, g := range st.Groups {
		why += " " + g.Wait
	}
	if !strings.Contains(why, "not dead to a majority") || !strings.Contains(why, "node3") {
		t.Errorf("node2 does not say node3 still hears node1; its waits: %s", why)
	}
	for _, n := range c.Nodes() {
		if hasAlert(c.MustStatus(n), "no-quorum", "") {
			t.Errorf("%s raised no-quorum although every node hears a majority", n)
		}
	}

	cutPair(c, "node1", "node2", false)
	c.WaitFor(30*time.Second, "node2 hears node1 again", func() bool {
		st, err := c.Status("node2")
		return err == nil && peer(st, "node1").State == "alive"
	})
	holdsFor(t, c, time.Second, "node1", "node1", "node2", "node3")
	ob := o.stop()
	assertNeverDual(t, ob)
	if ob.own.EverHeld("node2") || ob.own.EverHeld("node3") {
		t.Errorf("another node added the VIP: %s", ob.own)
	}
}

// TestWitness: two servers and a witness that only votes (node3 is in no
// group's placement; it runs a plain agent). When the servers lose each
// other but both reach the witness, nothing moves; when the active server
// is cut off from both, it stops and node2 takes over; the VIP is never on
// two nodes and the witness never holds anything.
func TestWitness(t *testing.T) {
	o := clustertest.PolicyOptions{Extra: quorumExtra}
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Policy: o})
	text := c.Policy(o)
	servers := `placement = active_standby(["node1", "node2", "node3"]`
	if !strings.Contains(text, servers) {
		t.Fatalf("the generated policy has no three-node placement to narrow:\n%s", text)
	}
	c.WritePolicy(strings.Replace(text, servers, `placement = active_standby(["node1", "node2"]`, 1))
	c.StartApps()
	c.StartAll()
	for _, n := range c.Nodes() {
		c.WaitOwner(n, clustertest.Group, "node1", 30*time.Second)
	}
	ob := observe(t, c, "node1")

	cutPair(c, "node1", "node2", true)
	c.WaitFor(30*time.Second, "node2 declares node1 dead", func() bool {
		st, err := c.Status("node2")
		return err == nil && peer(st, "node1").State == "dead"
	})
	holdsFor(t, c, 3*time.Second, "node1", "node1", "node3")
	cutPair(c, "node1", "node2", false)
	c.WaitFor(30*time.Second, "node2 hears node1 again", func() bool {
		st, err := c.Status("node2")
		return err == nil && peer(st, "node1").State == "alive"
	})

	cutOff(c, "node1", true)
	c.WaitFor(30*time.Second, "node2 holds the VIP", func() bool {
		h := c.VIPHolders()
		return len(h) == 1 && h[0] == "node2"
	})
	waitAnswers(t, c, ob, "node2", 5, 20*time.Second)
	got := ob.stop()
	assertNeverDual(t, got)
	if got.own.EverHeld("node3") {
		t.Errorf("the witness held the VIP: %s", got.own)
	}
	if st := c.MustStatus("node3"); len(st.Groups) != 1 || slices.Contains(st.Groups[0].Holders, "node3") || hasAlert(st, "rule-error", "") {
		t.Errorf("the witness's status: groups %+v alerts %+v", st.Groups, st.Alerts)
	}
}
