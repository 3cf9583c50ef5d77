package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestIPv6CrashFailover: a two-node cluster whose heartbeat paths and VIP
// are IPv6 only. node1 crashes; node2 takes the IPv6 VIP over and the
// client reaches it there (its neighbour entry repointed by node2's
// unsolicited neighbour advertisement); the VIP is never on both nodes.
func TestIPv6CrashFailover(t *testing.T) {
	c := startCluster(t, clustertest.Options{IPv6: true})
	for _, path := range []string{"lan", "backnet"} {
		if n := accepted(c.MustStatus("node2"), path); n == 0 {
			t.Fatalf("node2 accepted no heartbeat on IPv6 path %s", path)
		}
	}
	sampler := c.StartSampler(20 * time.Millisecond)
	prober := c.StartProber(5 * time.Millisecond)
	c.WaitFor(10*time.Second, "the client gets answers from node1 on the IPv6 VIP", func() bool {
		return clustertest.Answerers(prober.Samples(), time.Time{})["node1"] > 3
	})
	if out := c.Lab.MustExec("client", "ip", "-6", "neigh", "show", clustertest.VIP6); !strings.Contains(out, c.Lab.MAC("node1", "eth0").String()) {
		t.Fatalf("client's neighbour entry for the VIP is %q, want node1's MAC", out)
	}
	time.Sleep(observeMargin)

	crashAt := c.Crash("node1")
	c.WaitFor(30*time.Second, "the client gets answers from node2 on the IPv6 VIP", func() bool {
		return clustertest.Answerers(prober.Samples(), time.Time{})["node2"] >= 5
	})
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	time.Sleep(observeMargin)
	samples, own := prober.Stop(), sampler.Stop()

	sw := gap(t, "crash of node1 (IPv6)", samples, "node1", "node2")
	t.Logf("crash to first answer of node2 over IPv6: %s", sw.FirstTo.Sub(crashAt).Round(time.Millisecond))
	if d := own.DualPresent(); len(d) > 0 {
		t.Errorf("the IPv6 VIP was configured on two nodes at once: %s", own)
	}
	if len(own.Samples) < 10 {
		t.Errorf("the ownership sampler barely ran (%d samples)", len(own.Samples))
	}
	if out := c.Lab.MustExec("client", "ip", "-6", "neigh", "show", clustertest.VIP6); !strings.Contains(out, c.Lab.MAC("node2", "eth0").String()) {
		t.Errorf("client's neighbour entry for the VIP is %q after the failover, want node2's MAC", out)
	}
	if log := c.Log("node2"); !strings.Contains(log, "neighbour advertisement") {
		t.Errorf("node2's log does not show the neighbour advertisement of the VIP")
	}

	// node1 reboots: its agent comes back over IPv6 heartbeats and, with
	// manual failback, node2 keeps the VIP.
	c.Recover("node1")
	c.Start("node1")
	c.WaitFor(30*time.Second, "node1 and node2 see each other alive again over IPv6", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		return err1 == nil && err2 == nil && peer(s1, "node2").State == "alive" && peer(s2, "node1").State == "alive"
	})
	holdsFor(t, c, 2*time.Second, "node2", "node1", "node2")
}

// TestIPv6AgentKillReleasesVIP: kill -9 of the agent on the holder of an
// IPv6 VIP. The supervisor removes the VIP before it exits (the policy's
// VIPs, then whatever carries harules' address protocol); node2 takes
// over; never two holders.
func TestIPv6AgentKillReleasesVIP(t *testing.T) {
	c := startCluster(t, clustertest.Options{IPv6: true})
	sampler := c.StartSampler(20 * time.Millisecond)
	c.KillAgent("node1")
	if err := c.WaitExit("node1", 30*time.Second); err == nil {
		t.Errorf("the supervisor exited with status 0 after its agent was killed")
	}
	for _, h := range c.VIPHolders() {
		if h == "node1" {
			t.Fatalf("node1 still has the IPv6 VIP after its supervisor exited:\n%s", c.Lab.MustExec("node1", "ip", "-6", "addr", "show", "dev", "eth0"))
		}
	}
	if log := c.Log("node1"); !strings.Contains(log, "vip removed") || !strings.Contains(log, clustertest.VIP6Prefix) {
		t.Errorf("node1's supervisor did not log removing %s", clustertest.VIP6Prefix)
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	time.Sleep(observeMargin)
	if own := sampler.Stop(); len(own.DualPresent()) > 0 || len(own.Samples) < 10 {
		t.Errorf("ownership while the IPv6 VIP moved (want never two holders, at least 10 samples): %s", own)
	}
}
