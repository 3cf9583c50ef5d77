package e2e

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/clustertest"
)

// slowDetection makes the detection time (100 ms x 50 = 5 s) far longer
// than an announced takeover, so "node2 took over while it still saw node1
// alive" can only come from node1's supervisor's announcement.
var slowDetection = clustertest.PolicyOptions{Interval: "100ms", Misses: 50}

// TestAgentKillIsAnnounced: kill -9 of node1's agent. Its supervisor
// releases the VIP and then announces the release with an authenticated
// heartbeat (holds nothing, leaving), so node2 takes over at once, like
// after a planned handover, instead of waiting for the detection time.
// Before the announcement node2 waited the full 5 s.
func TestAgentKillIsAnnounced(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: slowDetection})
	o := observe(t, c, "node1")

	killAt := c.KillAgent("node1")
	waitAnswers(t, c, o, "node2", 1, maxGap)
	tookOver := time.Since(killAt)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	st := c.MustStatus("node2")
	ob := o.stop()
	sw := gap(t, "kill -9 of node1's agent", ob.samples, "node1", "node2")
	t.Logf("kill to first answer of node2: %s", sw.FirstTo.Sub(killAt).Round(time.Millisecond))
	detection := 5 * time.Second
	if tookOver >= detection {
		t.Errorf("node2 answered %s after the kill, not before its detection time %s: the release was not announced", tookOver, detection)
	}
	// Right after the takeover node2 has not declared node1 dead: the
	// announcement, not the detection, moved the group.
	if p := peer(st, "node1"); p.State != "alive" || !p.Standby || len(p.Holds) != 0 {
		t.Errorf("node2 sees node1 as %q standby=%v holds=%v at the takeover; want alive, leaving, holding nothing (the announcement)", p.State, p.Standby, p.Holds)
	}
	assertNeverDual(t, ob)
	log := c.Log("node1")
	if !strings.Contains(log, "announced to the peers that this node released everything") {
		t.Errorf("node1's supervisor log does not show the announcement")
	}
	if i, j := strings.Index(log, "released everything after the agent stopped"), strings.Index(log, "announced to the peers"); i < 0 || j < i {
		t.Errorf("node1's supervisor announced before its release completed (release at %d, announcement at %d in its log)", i, j)
	}
}

// TestWedgedAgentIsReplaced: node1's decision loop gets stuck (a SIGHUP
// reload reading a policy file that never ends: a FIFO standing in for a
// hung mount). Its heartbeats stop, the agent exits with WedgedExitCode
// after the abort time, and the supervisor releases and announces, so
// node2 takes over; the VIP is never on both nodes. Before the liveness
// gate node1 kept beating and holding the VIP for ever.
func TestWedgedAgentIsReplaced(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")

	text, err := os.ReadFile(c.PolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c.PolicyPath); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(c.PolicyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		// A reader still blocked on the FIFO gets the policy; then the
		// regular file is back for everyone else.
		if f, err := os.OpenFile(c.PolicyPath, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			_, _ = f.Write(text)
			_ = f.Close()
		}
		_ = os.Remove(c.PolicyPath)
		_ = os.WriteFile(c.PolicyPath, text, 0o600)
	}
	t.Cleanup(restore)
	wedgeAt := time.Now()
	c.Reload("node1")

	err = c.WaitExit("node1", 30*time.Second)
	exited := time.Since(wedgeAt)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != agent.WedgedExitCode {
		t.Errorf("node1's supervisor exited with %v, want the agent's exit status %d (wedged)", err, agent.WedgedExitCode)
	}
	restore()
	waitAnswers(t, c, o, "node2", 5, maxGap)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	ob := o.stop()
	sw := gap(t, "wedged agent on node1", ob.samples, "node1", "node2")
	t.Logf("wedge to agent exit: %s; wedge to first answer of node2: %s", exited.Round(time.Millisecond), sw.FirstTo.Sub(wedgeAt).Round(time.Millisecond))
	assertNeverDual(t, ob)
	log := c.Log("node1")
	for _, want := range []string{"heartbeats paused", "decision loop stuck", "released after agent death"} {
		if !strings.Contains(log, want) {
			t.Errorf("node1's log lacks %q", want)
		}
	}
}

// TestPlannedStopIsHeardBeforeDetection: SIGTERM of the holder hands the
// group over, and its last heartbeats say it holds nothing, so the peer
// takes over at once, long before its detection time (5 s). When the
// handover's last stop job ended the handover without a new report, the
// peer waited for the detection time.
func TestPlannedStopIsHeardBeforeDetection(t *testing.T) {
	c := startCluster(t, clustertest.Options{Policy: slowDetection})
	o := observe(t, c, "node1")

	stopAt := c.Stop("node1", 30*time.Second)
	waitAnswers(t, c, o, "node2", 1, maxGap)
	tookOver := time.Since(stopAt)
	c.WaitOwner("node2", clustertest.Group, "node2", 10*time.Second)
	st := c.MustStatus("node2")
	ob := o.stop()
	gap(t, "SIGTERM of node1", ob.samples, "node1", "node2")
	if detection := 5 * time.Second; tookOver >= detection {
		t.Errorf("node2 answered %s after node1's SIGTERM, not before its detection time %s: the handover's last report still listed the group", tookOver, detection)
	}
	if p := peer(st, "node1"); p.State != "alive" || len(p.Holds) != 0 {
		t.Errorf("node2 sees node1 as %q holds=%v at the takeover; want alive, holding nothing (its last heartbeats)", p.State, p.Holds)
	}
	assertNeverDual(t, ob)
}
