package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestCrashOfActiveNodeAndManualFailback: node1 loses power (links down,
// every process killed); node2 must answer on the VIP. When node1 comes
// back with failback="manual", the group stays on node2.
func TestCrashOfActiveNodeAndManualFailback(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: clustertest.PolicyOptions{Failback: "manual"}})
	o := observe(t, c, "node1")

	crashAt := c.Crash("node1")
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	if st := c.MustStatus("node2"); peer(st, "node1").State != "dead" {
		t.Errorf("node2 sees node1 as %q after the crash, want dead", peer(st, "node1").State)
	}

	// Recovery: node1 reboots and its agent starts again.
	c.Recover("node1")
	c.Start("node1")
	c.WaitFor(30*time.Second, "node1 and node2 see each other alive again", func() bool {
		s1, err1 := c.Status("node1")
		s2, err2 := c.Status("node2")
		return err1 == nil && err2 == nil && peer(s1, "node2").State == "alive" && peer(s2, "node1").State == "alive"
	})
	// Manual failback: node2 keeps the group although node1 is preferred.
	holdsFor(t, c, 3*time.Second, "node2", "node1", "node2")
	ob := o.stop()

	sw := gap(t, "crash of node1", ob.samples, "node1", "node2")
	t.Logf("crash to first answer of node2: %s", sw.FirstTo.Sub(crashAt).Round(time.Millisecond))
	if sw.FromAgain {
		t.Errorf("node1 answered again after node2 took over (manual failback): %s", clustertest.Summary(ob.samples))
	}
	assertNeverDual(t, ob)
}

// TestRecoveryWithAutoFailback: after a crash and recovery of node1, with
// failback="auto" the group moves back to node1 (the preferred node), in
// one clean switch.
func TestRecoveryWithAutoFailback(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: clustertest.PolicyOptions{Failback: "auto", FailbackDelay: "1s"}})
	o := observe(t, c, "node1")

	c.Crash("node1")
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	backAt := time.Now()
	c.Recover("node1")
	c.Start("node1")
	c.WaitOwner("node2", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node1", clustertest.Group, "node1", 10*time.Second)
	c.WaitFor(10*time.Second, "the client gets answers from node1 again", func() bool {
		return clustertest.Answerers(o.prober.Samples(), backAt)["node1"] > 3
	})
	ob := o.stop()

	gap(t, "crash of node1", ob.samples, "node1", "node2")
	_, after := splitAt(ob.samples, backAt)
	sw := gap(t, "auto failback to node1", after, "node2", "node1")
	if sw.FromAgain {
		t.Errorf("node2 answered again after the failback: %s", clustertest.Summary(after))
	}
	assertNeverDual(t, ob)
}

// TestAgentKillReleasesVIP: kill -9 of the agent child on the active node.
// The supervisor releases the VIP at once, node2 takes over after it
// declares node1 dead, and the VIP is never on both nodes.
func TestAgentKillReleasesVIP(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")

	// The pid files next to the control socket tell the supervisor and the
	// agent apart (docs/operations.md, processes, signals and files).
	pidDir := filepath.Dir(c.ControlSocket("node1"))
	readPid := func(name string) int {
		b, err := os.ReadFile(filepath.Join(pidDir, name))
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	if got, want := readPid("harules.pid"), c.SupervisorPID("node1"); got != want {
		t.Errorf("harules.pid holds %d, want the supervisor's pid %d", got, want)
	}
	if got, want := readPid("agent.pid"), c.AgentPID("node1"); got != want {
		t.Errorf("agent.pid holds %d, want the agent's pid %d", got, want)
	}

	killAt := c.KillAgent("node1")
	if err := c.WaitExit("node1", 30*time.Second); err == nil {
		t.Errorf("the supervisor exited with status 0 after its agent was killed; want the agent's failure passed on (systemd restarts it)")
	}
	if _, err := os.Stat(filepath.Join(pidDir, "harules.pid")); !os.IsNotExist(err) {
		t.Errorf("the supervisor left its pid file behind (%v)", err)
	}
	// The supervisor released before exiting.
	for _, h := range c.VIPHolders() {
		if h == "node1" {
			t.Errorf("node1 still has the VIP after its supervisor exited")
		}
	}
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	ob := o.stop()

	sw := gap(t, "kill -9 of node1's agent", ob.samples, "node1", "node2")
	t.Logf("kill to first answer of node2: %s", sw.FirstTo.Sub(killAt).Round(time.Millisecond))
	assertNeverDual(t, ob)
	if sw.FromAgain {
		t.Errorf("node1 answered again after node2 took over: %s", clustertest.Summary(ob.samples))
	}
	log := c.Log("node1")
	if !strings.Contains(log, "agent died; releasing its VIPs and services") || !strings.Contains(log, "released after agent death") {
		t.Errorf("node1's supervisor log does not show the release after the agent's death")
	}
}

// TestOneHeartbeatPathDown: losing the backnet path moves nothing; both
// agents raise a path-down alert (visible in `harules status --json`),
// which clears when the path is back.
func TestOneHeartbeatPathDown(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")

	c.SetLink("node2", "eth1", false)
	c.WaitFor(20*time.Second, "both agents raise a path-down alert for backnet", func() bool {
		return hasAlert(statusJSON(t, c, "node1"), "path-down", "backnet") && hasAlert(statusJSON(t, c, "node2"), "path-down", "backnet")
	})
	holdsFor(t, c, 3*time.Second, "node1", "node1", "node2")
	st := statusJSON(t, c, "node2")
	if p := peer(st, "node1"); p.State != "alive" {
		t.Errorf("node2 sees node1 as %q with the lan path still up, want alive", p.State)
	}

	c.SetLink("node2", "eth1", true)
	c.WaitFor(20*time.Second, "the path-down alerts clear", func() bool {
		return !hasAlert(statusJSON(t, c, "node1"), "path-down", "") && !hasAlert(statusJSON(t, c, "node2"), "path-down", "")
	})
	ob := o.stop()
	if a := clustertest.Answerers(ob.samples, time.Time{}); a["node2"] > 0 {
		t.Errorf("node2 answered on the VIP with one path down: %v", a)
	}
	assertNeverDual(t, ob)
}

// TestPlannedSwitchover: `harules move` and then SIGTERM of the holder
// each move the group in one clean switch.
func TestPlannedSwitchover(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")

	out, err := harulesCLI(t, c, "move", clustertest.Group, "node2", "--control", c.ControlSocket("node1"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(out, "accepted") {
		t.Errorf("harules move printed %q, want it to say the move was accepted", out)
	}
	c.WaitOwner("node1", clustertest.Group, "node2", 20*time.Second)
	waitAnswers(t, c, o, "node2", 5, 10*time.Second)
	moved := time.Now()
	// The handover below can finish within one probe interval: let node2
	// answer after the split point first, so the second switch has a
	// "from" side to measure.
	c.WaitFor(10*time.Second, "node2 answers after the first switch", func() bool {
		return clustertest.Answerers(o.prober.Samples(), moved)["node2"] >= 3
	})

	c.Stop("node2", 40*time.Second)
	c.WaitOwner("node1", clustertest.Group, "node1", 20*time.Second)
	c.WaitFor(10*time.Second, "the client gets answers from node1 again", func() bool {
		return clustertest.Answerers(o.prober.Samples(), moved)["node1"] > 3
	})
	ob := o.stop()

	before, after := splitAt(ob.samples, moved)
	sw := gap(t, "harules move web node2", before, "node1", "node2")
	if sw.FromAgain {
		t.Errorf("node1 answered again after the move to node2: %s", clustertest.Summary(before))
	}
	sw2 := gap(t, "SIGTERM of node2 (planned handover)", after, "node2", "node1")
	if sw2.FromAgain {
		t.Errorf("node2 answered again after the handover: %s", clustertest.Summary(after))
	}
	assertNeverDual(t, ob)
	if log := c.Log("node2"); !strings.Contains(log, "shutting down: handing over held groups") {
		t.Errorf("node2's log does not show a planned handover after SIGTERM")
	}
}
