package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/clustertest"
)

// serviceScript is a start/stop/monitor service whose daemon (a real
// process, detached with setsid) keeps running when harules stops, as a
// database started by pg_ctl or an OCF agent does. Its pid file is per
// node (HARULES_NODE is in every agent's environment).
const serviceScript = `#!/bin/sh
pidfile="%s/svc-$HARULES_NODE.pid"
alive() { [ -f "$pidfile" ] || return 1; pid=$(cat "$pidfile"); st=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; }
case "$1" in
start)
	alive && exit 0
	setsid sleep 1000000 </dev/null >/dev/null 2>&1 &
	echo $! > "$pidfile"
	;;
stop)
	alive && kill "$(cat "$pidfile")"
	i=0
	while alive && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	alive && exit 1
	rm -f "$pidfile"
	;;
monitor)
	alive || exit 7
	;;
esac
exit 0
`

// maintenanceCluster starts a two-node cluster whose group runs the VIP and
// the detached service above, with node1 serving.
func maintenanceCluster(t *testing.T) *clustertest.Cluster {
	t.Helper()
	c := clustertest.New(t, clustertest.Options{})
	script := filepath.Join(c.Dir, "svc.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(serviceScript, c.Dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	text := c.Policy(clustertest.PolicyOptions{})
	const processService = `command = ["sleep", "1000000"]`
	if !strings.Contains(text, processService) {
		t.Fatalf("the default policy no longer declares %s; update this test:\n%s", processService, text)
	}
	c.WritePolicy(strings.Replace(text, processService, fmt.Sprintf(`start = ["/bin/sh", %q, "start"], stop = ["/bin/sh", %q, "stop"], monitor = ["/bin/sh", %q, "monitor"]`, script, script, script), 1))
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)
	return c
}

// servicePID returns the pid of node's service daemon, 0 if none runs.
func servicePID(c *clustertest.Cluster, node string) int {
	b, err := os.ReadFile(filepath.Join(c.Dir, "svc-"+node+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) S ...": a zombie does not run.
	s := string(st)
	if i := strings.LastIndexByte(s, ')'); i < 0 || strings.HasPrefix(s[i+1:], " Z") || strings.HasPrefix(s[i+1:], " X") {
		return 0
	}
	return pid
}

// killTree kills node's supervisor and agent at once with SIGKILL (stopped
// first, so the agent never sees its supervisor die and shuts down).
func killTree(t *testing.T, c *clustertest.Cluster, node string) {
	t.Helper()
	pids := []int{c.SupervisorPID(node), c.AgentPID(node)}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d on %s: %v", pid, node, err)
		}
	}
	_ = c.WaitExit(node, 20*time.Second)
}

func recent(st *agent.Status, kind, group, text string, since time.Time) []engine.Record {
	var out []engine.Record
	for _, r := range st.Recent {
		if r.Kind == kind && (group == "" || r.Group == group) && strings.Contains(r.Text, text) && !r.At.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// TestMaintenanceRestartKeepsResources: with node1 in maintenance, its
// agent is stopped (SIGTERM), killed alone (kill -9, the supervisor
// stays), and killed with its supervisor, and started again each time: the
// VIP stays on node1 throughout, the service keeps its pid, node2 never
// takes over and raises the maintenance-unreachable alert while node1 is
// silent. Leaving maintenance restarts nothing; a crash after that fails
// over to node2 as always.
func TestMaintenanceRestartKeepsResources(t *testing.T) {
	c := maintenanceCluster(t)
	pid := servicePID(c, "node1")
	if pid == 0 {
		t.Fatalf("node1 serves the group but its service daemon does not run")
	}
	sampler := c.StartSampler(20 * time.Millisecond)
	prober := c.StartProber(10 * time.Millisecond)

	if out, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "on"); err != nil || !strings.Contains(out, "maintenance on: accepted") {
		t.Fatalf("harules maintenance on: %q, %v", out, err)
	}
	c.WaitFor(10*time.Second, "node1's saved state says maintenance", func() bool {
		on, err := agent.SavedMaintenance(c.StateDir("node1"))
		return err == nil && on
	})
	// node2 hears the new report with the next heartbeat (100 ms).
	time.Sleep(time.Second)

	// silentAndBack checks node2 while node1 is down, then starts node1
	// again and checks it adopted the group.
	silentAndBack := func(how string) {
		t.Helper()
		c.WaitFor(20*time.Second, "node2 raises the maintenance alert after "+how, func() bool {
			return hasAlert(statusJSON(t, c, "node2"), engine.AlertMaintenanceUnreachable, "node node1 is in maintenance and unreachable")
		})
		st := statusJSON(t, c, "node2")
		if p := peer(st, "node1"); p.State != "dead" {
			t.Errorf("after %s node2 sees node1 %s, want dead", how, p.State)
		}
		for _, g := range st.Groups {
			if g.Name == clustertest.Group && (g.Target != "node1" || !strings.Contains(g.Reason, "unmanaged")) {
				t.Errorf("after %s node2 places %s on %q (%s), want it left on node1, unmanaged", how, g.Name, g.Target, g.Reason)
			}
		}
		holdsFor(t, c, time.Second, "node1") // and node2 does not start it meanwhile
		if got := servicePID(c, "node1"); got != pid {
			t.Fatalf("after %s the service pid on node1 is %d, want %d (untouched)", how, got, pid)
		}
		if got := servicePID(c, "node2"); got != 0 {
			t.Fatalf("after %s node2 runs the service (pid %d)", how, got)
		}

		back := time.Now()
		c.Start("node1")
		c.WaitFor(20*time.Second, "node1 holds the group again, in maintenance", func() bool {
			st, err := c.Status("node1")
			return err == nil && st.Maintenance && len(recent(st, engine.RecEvent, clustertest.Group, "maintenance: adopted "+clustertest.Group, back)) > 0
		})
		c.WaitFor(20*time.Second, "node2 sees node1 back, holding the group, and the alert cleared", func() bool {
			st := statusJSON(t, c, "node2")
			h := c.Owners("node2", clustertest.Group)
			return peer(st, "node1").State == "alive" && len(h) == 1 && h[0] == "node1" &&
				!hasAlert(st, engine.AlertMaintenanceUnreachable, "")
		})
		if got := servicePID(c, "node1"); got != pid {
			t.Fatalf("after %s and a restart the service pid on node1 is %d, want %d", how, got, pid)
		}
	}

	// 1. A planned stop (SIGTERM): no handover, no release.
	c.Stop("node1", 30*time.Second)
	if log := c.Log("node1"); !strings.Contains(log, "maintenance: leaving resources running") || strings.Contains(log, "shutting down: handing over held groups") {
		t.Errorf("node1's log does not show a stop that leaves everything running")
	}
	silentAndBack("SIGTERM")

	// 2. The agent alone dies: the supervisor releases nothing.
	c.KillAgent("node1")
	if err := c.WaitExit("node1", 20*time.Second); err == nil {
		t.Errorf("the supervisor exited with 0 after its agent was killed")
	}
	if log := c.Log("node1"); !strings.Contains(log, "agent died while the node is in maintenance; leaving its VIPs and services running") {
		t.Errorf("node1's supervisor log does not say it left the resources running")
	}
	silentAndBack("kill -9 of the agent")

	// 3. Supervisor and agent die at once (an upgrade gone wrong, the OOM
	// killer): nothing runs that could release.
	killTree(t, c, "node1")
	silentAndBack("kill -9 of the supervisor and the agent")

	// Leave maintenance: normal management resumes, nothing restarts.
	left := time.Now()
	if out, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "off"); err != nil || !strings.Contains(out, "maintenance off: accepted") {
		t.Fatalf("harules maintenance off: %q, %v", out, err)
	}
	c.WaitFor(10*time.Second, "node1 is out of maintenance", func() bool {
		st, err := c.Status("node1")
		return err == nil && !st.Maintenance
	})
	holdsFor(t, c, 3*time.Second, "node1", "node1", "node2")
	if acts := recent(c.MustStatus("node1"), engine.RecAction, clustertest.Group, "", left); len(acts) > 0 {
		t.Errorf("leaving maintenance acted on %s: %+v", clustertest.Group, acts)
	}
	if got := servicePID(c, "node1"); got != pid {
		t.Errorf("after leaving maintenance the service pid on node1 is %d, want %d", got, pid)
	}

	own := sampler.Stop()
	samples := prober.Stop()
	for _, s := range own.Samples {
		if h := s.Holders(); len(h) != 1 || h[0] != "node1" {
			t.Errorf("at %s the VIP was on %v, want node1 alone throughout maintenance", s.At.Format("15:04:05.000"), h)
			break
		}
	}
	answered := clustertest.Answerers(samples, time.Time{})
	if len(own.Samples) < 50 || answered["node1"] < 50 || answered["node2"] > 0 {
		t.Errorf("observers: %d ownership samples, client answers %v; want many, all from node1", len(own.Samples), answered)
	}
	t.Logf("maintenance phase: %d ownership samples, client answers %v", len(own.Samples), answered)

	// Out of maintenance a crash of node1's agent fails over as always.
	c.KillAgent("node1")
	if err := c.WaitExit("node1", 30*time.Second); err == nil {
		t.Errorf("the supervisor exited with 0 after its agent was killed")
	}
	if log := c.Log("node1"); !strings.Contains(log, "agent died; releasing its VIPs and services") {
		t.Errorf("node1's supervisor did not release after the agent died out of maintenance")
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	c.WaitFor(20*time.Second, "node2 runs the service and node1's is gone", func() bool {
		return servicePID(c, "node2") != 0 && servicePID(c, "node1") == 0
	})
}

// TestMaintenanceRestartWithProcessService: a command= (process) service is
// a child of the agent and dies with it, so a restart in maintenance finds
// its group only partly running (the VIP is still up). The group stays held
// and failed on node1, node2 does not start it while node1 is in
// maintenance, and leaving maintenance moves it to node2 in one clean
// switch.
func TestMaintenanceRestartWithProcessService(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	if out, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "on"); err != nil {
		t.Fatalf("harules maintenance on: %q, %v", out, err)
	}
	c.WaitFor(10*time.Second, "node1's saved state says maintenance", func() bool {
		on, err := agent.SavedMaintenance(c.StateDir("node1"))
		return err == nil && on
	})
	time.Sleep(time.Second)
	sampler := c.StartSampler(20 * time.Millisecond)

	c.Stop("node1", 30*time.Second)
	if log := c.Log("node1"); !strings.Contains(log, "this process service runs as a child of the agent and stops with it") {
		t.Errorf("node1's stop in maintenance did not warn that its process service stops with it")
	}
	back := time.Now()
	c.Start("node1")
	c.WaitFor(20*time.Second, "node1 finds the group only partly running", func() bool {
		st, err := c.Status("node1")
		return err == nil && len(recent(st, engine.RecEvent, clustertest.Group, "only partly runs here", back)) > 0
	})
	c.WaitFor(20*time.Second, "node2 sees node1 back, still holding the group", func() bool {
		h := c.Owners("node2", clustertest.Group)
		return peer(statusJSON(t, c, "node2"), "node1").State == "alive" && len(h) == 1 && h[0] == "node1"
	})
	// node2 wants the group (node1 failed it) but waits for node1, which
	// does not act in maintenance.
	holdsFor(t, c, 2*time.Second, "node1", "node2")

	if _, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "off"); err != nil {
		t.Fatal(err)
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	c.WaitOwner("node1", clustertest.Group, "node2", 10*time.Second)
	own := sampler.Stop()
	if d := own.DualPresent(); len(d) > 0 {
		t.Errorf("the VIP was on both nodes: %s", own)
	}
	if len(own.Samples) < 50 {
		t.Errorf("only %d ownership samples: the check above proves little", len(own.Samples))
	}
}

// TestPeerRestartRemembersMaintenance: node1 is in maintenance and its
// agent is down; node2's agent restarts meanwhile. The new node2 has never
// heard from node1, but its previous run saved node1's last report: after
// the startup grace it leaves the group on node1 and raises the alert
// instead of taking over.
func TestPeerRestartRemembersMaintenance(t *testing.T) {
	c := maintenanceCluster(t)
	pid := servicePID(c, "node1")
	if out, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "on"); err != nil {
		t.Fatalf("harules maintenance on: %q, %v", out, err)
	}
	c.WaitFor(10*time.Second, "node2 saved node1's report in maintenance", func() bool {
		b, err := os.ReadFile(filepath.Join(c.StateDir("node2"), "peers-maintenance.json"))
		return err == nil && strings.Contains(string(b), `"maintenance": true`)
	})
	c.Stop("node1", 30*time.Second)
	c.Stop("node2", 30*time.Second)
	started := time.Now()
	c.Start("node2")
	c.WaitFor(20*time.Second, "the restarted node2 raises the maintenance alert", func() bool {
		return hasAlert(statusJSON(t, c, "node2"), engine.AlertMaintenanceUnreachable, "node node1 is in maintenance and unreachable")
	})
	st := statusJSON(t, c, "node2")
	for _, g := range st.Groups {
		if g.Name == clustertest.Group && (g.Target != "node1" || !strings.Contains(g.Reason, "unmanaged")) {
			t.Errorf("the restarted node2 places %s on %q (%s), want it left on node1", g.Name, g.Target, g.Reason)
		}
	}
	holdsFor(t, c, time.Second, "node1")
	if acts := recent(c.MustStatus("node2"), engine.RecAction, clustertest.Group, "", started); len(acts) > 0 {
		t.Errorf("the restarted node2 acted on %s: %+v", clustertest.Group, acts)
	}
	if servicePID(c, "node1") != pid || servicePID(c, "node2") != 0 {
		t.Errorf("service pids: node1 %d (want %d), node2 %d (want none)", servicePID(c, "node1"), pid, servicePID(c, "node2"))
	}

	// node1 comes back out of maintenance: node2 forgets the saved report.
	c.Start("node1")
	if _, err := harulesCLI(t, c, "maintenance", "--control", c.ControlSocket("node1"), "off"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(20*time.Second, "node2 no longer keeps node1's report in maintenance", func() bool {
		b, err := os.ReadFile(filepath.Join(c.StateDir("node2"), "peers-maintenance.json"))
		return err == nil && !strings.Contains(string(b), "node1")
	})
	holdsFor(t, c, time.Second, "node1", "node1", "node2")
}
