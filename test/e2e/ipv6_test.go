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
}
