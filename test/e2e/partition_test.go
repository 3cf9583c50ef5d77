package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// partition cuts both heartbeat paths between node1 and node2 while both
// stay up: backnet by taking node2's eth1 down, lan with blackhole routes
// to each other's lan address (the lan link itself, ARP and the client
// path keep working).
func partition(c *clustertest.Cluster, on bool) {
	c.SetLink("node2", "eth1", !on)
	c.Blackhole("node1", clustertest.LanAddr(2), on)
	c.Blackhole("node2", clustertest.LanAddr(1), on)
}

// waitDeadEachOther waits until each node declares the other dead.
func waitDeadEachOther(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	c.WaitFor(30*time.Second, "node1 and node2 declare each other dead", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		return err1 == nil && err2 == nil && peer(s1, "node2").State == "dead" && peer(s2, "node1").State == "dead"
	})
}

// TestPartitionGatewayGuard: both heartbeat paths are cut while both nodes
// live, and node2 has also lost its gateway. gateway_guard must keep node2
// from taking over: node1 alone serves throughout, the VIP is never on
// both nodes, and node2 says why it waits.
func TestPartitionGatewayGuard(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: clustertest.PolicyOptions{GatewayGuard: true}})
	o := observe(t, c, "node1")

	// Gateway first, so node2's probe is failing before it declares node1
	// dead (2 x 200 ms against 1.5 s).
	c.Blackhole("node2", clustertest.GatewayAddr, true)
	partition(c, true)
	waitDeadEachOther(t, c)
	holdsFor(t, c, 3*time.Second, "node1", "node1")
	st := c.MustStatus("node2")
	var why string
	for _, g := range st.Groups {
		if g.Name == clustertest.Group {
			why = g.Wait + " " + g.Reason
		}
	}
	for _, a := range st.Plan {
		why += " " + a.Wait
	}
	for _, r := range st.Recent {
		why += " " + r.Text + " " + r.Reason
	}
	if !strings.Contains(why, "gateway") {
		t.Errorf("node2 does not say the gateway guard holds it back; its group status, plan and records: %s", why)
	}

	// Heal: both see each other again and node1 keeps the group. The
	// gateway comes back last, so the guard (not the ARP probe) is what
	// held node2 back all along.
	partition(c, false)
	c.WaitFor(30*time.Second, "the partition heals", func() bool {
		s2, err := c.Status("node2")
		return err == nil && peer(s2, "node1").State == "alive"
	})
	c.Blackhole("node2", clustertest.GatewayAddr, false)
	if log := c.Log("node2"); strings.Contains(log, "another host answers for the address") {
		t.Errorf("node2 got as far as the ARP probe: the gateway guard should have stopped the takeover before")
	}
	holdsFor(t, c, time.Second, "node1", "node1", "node2")
	ob := o.stop()

	if ob.own.EverHeld("node2") {
		t.Errorf("node2 added the VIP although its gateway guard forbade a takeover: %s", ob.own)
	}
	if a := clustertest.Answerers(ob.samples, time.Time{}); a["node2"] > 0 || a["node1"] == 0 {
		t.Errorf("answers on the VIP: %v, want node1 only", a)
	}
	assertNeverDual(t, ob)
}

// TestPartitionARPProbeKeepsVIPSingle: a plain partition (both heartbeat
// paths cut, both nodes reach the gateway, no guard rule). node2 declares
// node1 dead and tries to take over; the RFC 5227 ARP probe before adding
// the VIP sees node1 still answering for it, so node2 must not add it.
func TestPartitionARPProbeKeepsVIPSingle(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")

	partition(c, true)
	waitDeadEachOther(t, c)
	c.WaitFor(20*time.Second, "node2 logs that the ARP probe found the VIP held", func() bool {
		return strings.Contains(c.Log("node2"), "another host answers for the address")
	})
	holdsFor(t, c, 2*time.Second, "node1", "node1")

	partition(c, false)
	c.WaitFor(30*time.Second, "the partition heals", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		return err1 == nil && err2 == nil && peer(s1, "node2").State == "alive" && peer(s2, "node1").State == "alive"
	})
	holdsFor(t, c, time.Second, "node1", "node1", "node2")
	ob := o.stop()

	if ob.own.EverHeld("node2") {
		t.Errorf("node2 added the VIP while node1 still answered ARP for it: %s", ob.own)
	}
	if a := clustertest.Answerers(ob.samples, time.Time{}); a["node2"] > 0 {
		t.Errorf("node2 answered on the VIP during the partition: %v", a)
	}
	assertNeverDual(t, ob)
}

// TestIsolatedOwnerHealsToOneHolder: the owner's links are set down while
// it runs (it cannot reach clients, gateway or peer); node2 takes over.
// node1 drops the VIP as soon as its interface goes down (agent/link.go);
// were it kept, both nodes would answer for it when the links come back,
// until the heartbeats resume and the conflict is resolved to a single
// holder. The test bounds that window loosely (the measured length is
// logged; carrier_test.go requires zero) and checks that while node1 was
// cut off only node2 served.
func TestIsolatedOwnerHealsToOneHolder(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: clustertest.PolicyOptions{GatewayGuard: true}})
	o := observe(t, c, "node1")

	c.SetLink("node1", "eth0", false)
	c.SetLink("node1", "eth1", false)
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitFor(10*time.Second, "node2 holds the group", func() bool {
		h := c.Owners("node2", clustertest.Group)
		return len(h) == 1 && h[0] == "node2"
	})
	healAt := time.Now()
	c.SetLink("node1", "eth0", true)
	c.SetLink("node1", "eth1", true)
	owner := waitSingleHolder(t, c)
	resolvedAt := time.Now()
	holdsFor(t, c, 3*time.Second, owner, "node1", "node2")
	ob := o.stop()

	var dualBefore, dualAfter []clustertest.OwnershipSample
	for _, s := range ob.own.DualServing() {
		if s.At.Before(healAt) {
			dualBefore = append(dualBefore, s)
		} else {
			dualAfter = append(dualAfter, s)
		}
	}
	if len(dualBefore) > 0 {
		t.Errorf("two nodes served the VIP while node1 was cut off: %v", dualBefore)
	}
	window := time.Duration(0)
	if len(dualAfter) > 0 {
		window = dualAfter[len(dualAfter)-1].At.Sub(healAt)
	}
	t.Logf("after the heal %s kept the group; the VIP was served by both nodes in %d samples (for ~%s after the links came back); single holder agreed after %s; ARP dual rounds %v",
		owner, len(dualAfter), window.Round(time.Millisecond), resolvedAt.Sub(healAt).Round(time.Millisecond), ob.arp.DualRounds)
	if window > 3*time.Second {
		t.Errorf("both nodes served the VIP for %s after the heal (> 3s): the conflict is not resolved promptly", window)
	}
	// Clients that learned node2's MAC move back once the winner announces
	// the VIP again past the neighbour locktime (agent/reannounce.go).
	_, after := splitAt(ob.samples, resolvedAt.Add(2*time.Second))
	if a := clustertest.Answerers(after, time.Time{}); len(a) != 1 || a[owner] == 0 {
		var errs []string
		for _, s := range after {
			if s.Node == "" {
				errs = append(errs, s.At.Format("15:04:05.000")+" "+s.Err)
			}
		}
		t.Errorf("after the conflict was resolved (%s) clients got answers %v, want %s only; failures: %v",
			resolvedAt.Format("15:04:05.000"), a, owner, errs)
	}
}
