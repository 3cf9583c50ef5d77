package clustertest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuild()
	os.Exit(code)
}

// TestHarnessPlannedMove runs a real two-node cluster, checks that every
// observer sees node1 serving, moves the group and checks that the prober
// measures the switch, that no observer saw the VIP on both nodes, and that
// the agents' logs were captured.
func TestHarnessPlannedMove(t *testing.T) {
	c := New(t, Options{})
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", Group, "node1", 20*time.Second)

	sampler := c.StartSampler(20 * time.Millisecond)
	watcher := c.StartARPWatcher(25 * time.Millisecond)
	prober := c.StartProber(5 * time.Millisecond)
	c.WaitFor(10*time.Second, "the client gets answers from node1", func() bool {
		return Answerers(prober.Samples(), time.Time{})["node1"] > 5
	})

	if err := c.Move("node2", Group, "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.WaitOwner("node1", Group, "node2", 20*time.Second)
	c.WaitFor(10*time.Second, "the client gets answers from node2", func() bool {
		return Answerers(prober.Samples(), time.Time{})["node2"] > 5
	})
	samples := prober.Stop()
	arp := watcher.Stop()
	own := sampler.Stop()

	sw, err := GapBetween(samples, "node1", "node2")
	if err != nil {
		t.Fatalf("gap: %v", err)
	}
	t.Logf("planned move: %s", sw)
	if sw.FromAgain {
		t.Errorf("node1 answered again after node2 took over: %s", Summary(samples))
	}
	if d := own.DualPresent(); len(d) > 0 {
		t.Errorf("VIP on both nodes: %s", own)
	}
	if arp.Dual() {
		t.Errorf("two hosts answered ARP for the VIP: %s", arp)
	}
	if arp.Answered() < arp.Rounds/2 {
		t.Errorf("only %d of %d ARP who-has rounds were answered", arp.Answered(), arp.Rounds)
	}
	claims := arp.Claimers()
	if claims["node1"] == 0 || claims["node2"] == 0 {
		t.Errorf("ARP watcher should have seen both nodes claim the VIP in turn: %s", arp)
	}
	if !own.EverHeld("node1") || !own.EverHeld("node2") {
		t.Errorf("sampler should have seen the VIP on node1 then node2: %s", own)
	}
	if got := c.Log("node1"); len(got) == 0 {
		t.Errorf("node1's agent log is empty")
	}

	// Killing the agent child leaves the supervisor to release node2's VIP.
	c.KillAgent("node2")
	if err := c.WaitExit("node2", 20*time.Second); err == nil {
		t.Errorf("supervisor of node2 exited cleanly after its agent was killed; want a failure status")
	}
	c.WaitFor(10*time.Second, "node1 takes the VIP back", func() bool {
		h := c.VIPHolders()
		return len(h) == 1 && h[0] == "node1"
	})
}

// TestObserversSeeDualOwnership puts the VIP on both nodes by hand (no
// harules): the ARP watcher and the sampler must both report it.
func TestObserversSeeDualOwnership(t *testing.T) {
	c := New(t, Options{NoHarules: true})
	c.StartApps()
	for _, n := range c.Nodes() {
		c.Lab.MustExec(n, "ip", "addr", "add", VIPPrefix, "dev", "eth0", "label", "eth0:hr")
	}
	sampler := c.StartSampler(20 * time.Millisecond)
	watcher := c.StartARPWatcher(25 * time.Millisecond)
	prober := c.StartProber(5 * time.Millisecond)
	c.WaitFor(10*time.Second, "observers run", func() bool {
		return watcher.Report().Answered() > 5 && len(sampler.Report().Samples) > 5 && len(prober.Samples()) > 5
	})
	arp, own := watcher.Stop(), sampler.Stop()
	if !arp.Dual() || len(arp.DualRounds) < arp.Answered()/2 {
		t.Errorf("ARP watcher: want most rounds answered by both nodes: %s", arp)
	}
	if d := own.DualPresent(); len(d) != len(own.Samples) || len(own.DualServing()) != len(own.Samples) {
		t.Errorf("sampler: want every sample dual: %s", own)
	}
	if got := c.VIPHolders(); len(got) != 2 {
		t.Errorf("VIPHolders = %v, want both nodes", got)
	}
	if a := Answerers(prober.Stop(), time.Time{}); a["node1"]+a["node2"] == 0 {
		t.Errorf("prober got no answer from either node: %v", a)
	}
	// A crashed node serves nothing: the sampler leaves it out, and its
	// processes are gone.
	sleeper := c.StartDaemon("node2", "sleeper", nil, "sleep", "1000")
	c.Crash("node2")
	c.WaitFor(5*time.Second, "the daemon on the crashed node is gone", func() bool {
		return syscall.Kill(sleeper.Process.Pid, 0) == syscall.ESRCH
	})
	if got := c.VIPHolders(); len(got) != 1 || got[0] != "node1" {
		t.Errorf("VIPHolders after crashing node2 = %v, want [node1]", got)
	}
}

func TestGapBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []Sample{{At: at(0), Node: "node1"}, {At: at(10), Node: "node1"}, {At: at(20), Err: "x"},
		{At: at(30), Err: "x"}, {At: at(40), Node: "node2"}, {At: at(50), Node: "node1"}}
	sw, err := GapBetween(samples, "node1", "node2")
	if err != nil {
		t.Fatal(err)
	}
	if sw.Gap != 30*time.Millisecond || sw.Errors != 2 || !sw.FromAgain {
		t.Fatalf("got %+v, want gap 30ms, 2 errors, from-again", sw)
	}
	if _, err := GapBetween(samples[:3], "node1", "node2"); err == nil {
		t.Fatalf("no switch: want an error")
	}
	if got := Summary(samples); got != "node1 x2, error x2, node2 x1, node1 x1" {
		t.Fatalf("summary %q", got)
	}
}

// TestThreeNodes runs a three-node cluster: node1 serves; when it crashes
// node2 (next in the placement order) takes over and node3 stays standby.
func TestThreeNodes(t *testing.T) {
	c := New(t, Options{Nodes: 3})
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node3", Group, "node1", 30*time.Second)
	prober := c.StartProber(5 * time.Millisecond)
	c.WaitFor(10*time.Second, "the client gets answers from node1", func() bool {
		return Answerers(prober.Samples(), time.Time{})["node1"] > 3
	})
	c.Crash("node1")
	c.WaitOwner("node3", Group, "node2", 30*time.Second)
	c.WaitOwner("node2", Group, "node2", 10*time.Second)
	c.WaitFor(10*time.Second, "the client gets answers from node2", func() bool {
		return Answerers(prober.Samples(), time.Time{})["node2"] > 3
	})
	samples := prober.Stop()
	if a := Answerers(samples, time.Time{}); a["node3"] > 0 {
		t.Errorf("node3 answered: %v", a)
	}
	sw, err := GapBetween(samples, "node1", "node2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("three nodes, crash of node1: %s", sw)
}
