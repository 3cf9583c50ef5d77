package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestPausedAgentsDoNotFailOver: both agents are frozen (SIGSTOP) for
// longer than the detection time, as when a host is overloaded or a VM is
// paused for a snapshot or a live migration, then resume. When they wake,
// every peer looks silent for seconds, but only because they themselves
// were not running: judging at once would declare the live peer dead, and
// the standby would take the VIP (and promote a database) beside a healthy
// primary. Each agent notices its own pause and listens for fresh
// heartbeats first: nothing moves.
func TestPausedAgentsDoNotFailOver(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")
	pids := []int{c.AgentPID("node1"), c.AgentPID("node2")}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	// Detection is 1.5 s (100 ms x 15): freeze for twice that.
	time.Sleep(3 * time.Second)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	holdsFor(t, c, 3*time.Second, "node1", "node1", "node2")
	ob := o.stop()
	if ob.own.EverHeld("node2") {
		t.Errorf("node2 took the VIP after a pause of both agents: %s", ob.own)
	}
	for _, node := range []string{"node1", "node2"} {
		log := c.Log(node)
		if !strings.Contains(log, "agent was paused") {
			t.Errorf("%s's log does not report the pause", node)
		}
		for _, r := range c.MustStatus(node).Recent {
			if r.Kind == "peer" && r.State == "dead" {
				t.Errorf("%s declared a peer dead after its own pause: %s at %s", node, r.Text, r.At)
			}
		}
	}
}
