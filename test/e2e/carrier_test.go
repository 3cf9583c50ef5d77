package e2e

import (
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// carrierObservers watch at 20 ms: ownership in the node namespaces and ARP
// who-has rounds from the lan (two MACs answering one round = both nodes
// answer for the VIP).
func carrierObservers(t *testing.T, c *clustertest.Cluster) *observers {
	t.Helper()
	o := &observers{
		sampler: c.StartSampler(20 * time.Millisecond),
		arp:     c.StartARPWatcher(20 * time.Millisecond),
		prober:  c.StartProber(5 * time.Millisecond),
	}
	c.WaitFor(10*time.Second, "the client gets answers from node1", func() bool {
		return clustertest.Answerers(o.prober.Samples(), time.Time{})["node1"] > 3
	})
	time.Sleep(observeMargin)
	return o
}

// dualAfter counts, from `since` on, the ownership samples with the VIP on
// both nodes and the ARP rounds answered by both MACs.
func dualAfter(ob observed, since time.Time) (samples, rounds int) {
	for _, s := range ob.own.DualPresent() {
		if !s.At.Before(since) {
			samples++
		}
	}
	first := map[int]time.Time{}
	for _, r := range ob.arp.Replies {
		if r.Round > 0 {
			if at, ok := first[r.Round]; !ok || r.At.Before(at) {
				first[r.Round] = r.At
			}
		}
	}
	for _, round := range ob.arp.DualRounds {
		if !first[round].Before(since) {
			rounds++
		}
	}
	return samples, rounds
}

// TestCarrierLossMovesVIP: the cable of node1's VIP interface (eth0, the
// lan) is cut at the switch while both agents run and still hear each
// other on the backnet. node1's eth0 stays administratively up but has no
// carrier: node1 must drop the VIP at once and node2 must take the group.
// When the cable is back, node1 must not re-add the VIP: no 20 ms sample
// and no ARP round may show both nodes holding it.
func TestCarrierLossMovesVIP(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := carrierObservers(t, c)

	cutAt := time.Now()
	c.CutCable("node1", "eth0", true)
	c.WaitFor(15*time.Second, "node1 drops the VIP and node2 holds it", func() bool {
		h := c.VIPHolders()
		return len(h) == 1 && h[0] == "node2"
	})
	movedAt := time.Now()
	waitAnswers(t, c, o, "node2", 5, 15*time.Second)
	t.Logf("carrier lost on node1 eth0: the VIP was on node2 alone %s after the cut", movedAt.Sub(cutAt).Round(time.Millisecond))

	healAt := time.Now()
	c.CutCable("node1", "eth0", false)
	holdsFor(t, c, 4*time.Second, "node2", "node1", "node2")
	ob := o.stop()

	samples, rounds := dualAfter(ob, healAt)
	t.Logf("after the cable came back: %d ownership samples and %d ARP rounds (of %d) with the VIP on both nodes; %s",
		samples, rounds, ob.arp.Rounds, ob.arp)
	if samples > 0 || rounds > 0 {
		t.Errorf("after the carrier came back both nodes held the VIP in %d samples / answered ARP in %d rounds, want 0", samples, rounds)
	}
	sw := gap(t, "node1 -> node2 after the carrier loss", ob.samples, "node1", "node2")
	if sw.FromAgain {
		t.Errorf("node1 answered the client again after node2 took over")
	}
	assertNeverDual(t, ob)
}

// TestIsolatedByCarrierLossHealsWithoutDualHolder: both cables of node1
// are cut at the switch (it can reach neither its peer nor the clients;
// both interfaces lose their carrier) while both agents run. node1 drops
// the VIP; node2 declares node1 dead and takes over. When the cables are
// back, only node2 may hold the VIP: zero 20 ms samples and zero ARP
// rounds with both nodes.
func TestIsolatedByCarrierLossHealsWithoutDualHolder(t *testing.T) {
	t.Run("100ms heartbeats", func(t *testing.T) { isolatedByCarrierLoss(t, clustertest.PolicyOptions{}) })
	t.Run("1s heartbeats", func(t *testing.T) { isolatedByCarrierLoss(t, clustertest.PolicyOptions{Interval: "1s", Misses: 3}) })
}

func isolatedByCarrierLoss(t *testing.T, po clustertest.PolicyOptions) {
	c := startCluster(t, clustertest.Options{Policy: po})
	o := carrierObservers(t, c)

	cutAt := time.Now()
	c.CutCable("node1", "eth0", true)
	c.CutCable("node1", "eth1", true)
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitFor(10*time.Second, "node2 holds the group", func() bool {
		h := c.Owners("node2", clustertest.Group)
		return len(h) == 1 && h[0] == "node2"
	})

	healAt := time.Now()
	c.CutCable("node1", "eth0", false)
	c.CutCable("node1", "eth1", false)
	owner := waitSingleHolder(t, c)
	time.Sleep(3 * time.Second)
	ob := o.stop()

	samples, rounds := dualAfter(ob, healAt)
	t.Logf("after the cables came back %s kept the VIP; %d ownership samples and %d ARP rounds (of %d) with the VIP on both nodes; %s",
		owner, samples, rounds, ob.arp.Rounds, ob.arp)
	if samples > 0 || rounds > 0 {
		t.Errorf("after the heal both nodes held the VIP in %d samples / answered ARP in %d rounds, want 0", samples, rounds)
	}
	kept := 0
	for _, smp := range ob.own.Samples {
		if smp.At.After(cutAt.Add(time.Second)) && smp.At.Before(healAt) && smp.State["node1"] != clustertest.VIPAbsent {
			kept++
		}
	}
	if kept > 0 {
		t.Errorf("node1 kept the VIP on its carrier-less interface in %d samples taken from 1 s after the cut to the heal", kept)
	}
	if owner != "node2" {
		t.Errorf("after the heal %s holds the VIP, want node2 (node1 failed the group when its carrier went)", owner)
	}
	_, after := splitAt(ob.samples, healAt.Add(time.Second))
	if a := clustertest.Answerers(after, time.Time{}); a["node1"] > 0 {
		t.Errorf("node1 answered the client after the heal: %v", a)
	}
}

// TestSwitchRestartOneHolderAgain: the lan switch goes away for both nodes
// (both eth0 lose their carrier; the backnet keeps them talking). The
// group runs nowhere meanwhile (a VIP is never added on an interface
// without carrier). When the carrier is back the carrier failures are
// forgotten and one node, node1, serves again within a few seconds
// (not after failure_timeout); the VIP is never on both nodes.
func TestSwitchRestartOneHolderAgain(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := carrierObservers(t, c)

	c.CutCable("node1", "eth0", true)
	c.CutCable("node2", "eth0", true)
	c.WaitFor(15*time.Second, "the VIP is on no node", func() bool { return len(c.VIPHolders()) == 0 })
	time.Sleep(2 * time.Second)
	if h := c.VIPHolders(); len(h) > 0 {
		t.Fatalf("the VIP was added on %v while every lan interface had no carrier", h)
	}

	backAt := time.Now()
	c.CutCable("node1", "eth0", false)
	c.CutCable("node2", "eth0", false)
	c.WaitFor(20*time.Second, "one node holds the VIP again", func() bool { return len(c.VIPHolders()) == 1 })
	t.Logf("the VIP was back on %v %s after the carrier", c.VIPHolders(), time.Since(backAt).Round(time.Millisecond))
	c.WaitOwner("node1", clustertest.Group, "node1", 10*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)
	holdsFor(t, c, 3*time.Second, "node1", "node1", "node2")
	ob := o.stop()
	assertNeverDual(t, ob)
	_, after := splitAt(ob.samples, backAt)
	if a := clustertest.Answerers(after, time.Time{}); a["node1"] == 0 || a["node2"] > 0 {
		t.Errorf("answers after the carrier came back: %v, want node1 only", a)
	}
}
