package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// ocfAddr is the address the OCF IPaddr2 agent manages in the test group.
const ocfAddr = "198.51.100.101"

// TestOCFResourceAgentFollowsTheGroup runs Debian's ocf:heartbeat:IPaddr2
// resource agent, unchanged, as a resource of the group under real agents:
// it is started on node1, and after node1 crashes the group (with the
// agent's address) moves to node2, where IPaddr2's own monitor keeps
// passing. The OCF programming interface thus carries existing agents.
func TestOCFResourceAgentFollowsTheGroup(t *testing.T) {
	if _, err := exec.LookPath("/usr/lib/ocf/resource.d/heartbeat/IPaddr2"); err != nil {
		t.Fatalf("ocf:heartbeat:IPaddr2 is missing: apt-get install resource-agents (%v)", err)
	}
	c := startCluster(t, clustertest.Options{Policy: clustertest.PolicyOptions{
		Resources: []string{`service("ocfip", ocf = "heartbeat:IPaddr2", params = {"ip": "` + ocfAddr + `", "cidr_netmask": "24", "nic": "eth0"})`},
	}})
	has := func(node string) bool {
		out, err := exec.Command("ip", "-n", c.NS(node), "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in %s: %v: %s", node, err, out)
		}
		return strings.Contains(string(out), " "+ocfAddr+"/")
	}
	c.WaitFor(10*time.Second, "IPaddr2 adds its address on node1", func() bool { return has("node1") })
	if has("node2") {
		t.Fatal("the OCF address is on node2 too while node1 holds the group")
	}

	c.Crash("node1")
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	c.WaitFor(10*time.Second, "IPaddr2 adds its address on node2 after the takeover", func() bool { return has("node2") })

	// Held for a few monitor rounds: the agent's monitor (IPaddr2 monitor)
	// must keep reporting it running, so the group is not failed away.
	time.Sleep(3 * time.Second)
	if owners := c.Owners("node2", clustertest.Group); len(owners) != 1 || owners[0] != "node2" {
		t.Errorf("after the takeover the group is held by %v, want node2 (monitor of the OCF agent failing?)", owners)
	}
	if !has("node2") {
		t.Error("the OCF address left node2 while it holds the group")
	}
	st := c.MustStatus("node2")
	for _, a := range st.Alerts {
		if strings.Contains(a.Message, "ocfip") {
			t.Errorf("alert about the OCF resource: %+v", a)
		}
	}
}
