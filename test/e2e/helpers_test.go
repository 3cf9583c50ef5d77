package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/clustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// maxGap is the loose bound on a client-visible failover: detection is
// ~1.5 s (100 ms x 15 misses), so 10 s only catches a takeover that hangs,
// not a slow machine. The measured gaps are logged.
const maxGap = 10 * time.Second

// startCluster builds a two-node cluster with the name servers and agents
// running and node1 serving the group.
func startCluster(t *testing.T, o clustertest.Options) *clustertest.Cluster {
	t.Helper()
	c := clustertest.New(t, o)
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)
	return c
}

// observers watch the VIP from the client (prober, ARP) and the nodes
// (ownership sampler).
type observers struct {
	prober  *clustertest.Prober
	arp     *clustertest.ARPWatcher
	sampler *clustertest.OwnershipSampler
}

func observe(t *testing.T, c *clustertest.Cluster, expectFirst string) *observers {
	t.Helper()
	o := &observers{
		sampler: c.StartSampler(20 * time.Millisecond),
		arp:     c.StartARPWatcher(25 * time.Millisecond),
		prober:  c.StartProber(5 * time.Millisecond),
	}
	c.WaitFor(10*time.Second, "the client gets answers from "+expectFirst, func() bool {
		return clustertest.Answerers(o.prober.Samples(), time.Time{})[expectFirst] > 3
	})
	// A baseline, so the observers have seen the steady state.
	time.Sleep(observeMargin)
	return o
}

// observeMargin is how long observers run before the event and after the
// test's last wait: a node that re-adds the VIP shortly after a switch is
// caught too.
const observeMargin = 500 * time.Millisecond

type observed struct {
	samples []clustertest.Sample
	arp     clustertest.ARPReport
	own     clustertest.OwnershipReport
}

func (o *observers) stop() observed {
	time.Sleep(observeMargin)
	return observed{samples: o.prober.Stop(), arp: o.arp.Stop(), own: o.sampler.Stop()}
}

// waitAnswers waits until node answered the client at least n times.
func waitAnswers(t *testing.T, c *clustertest.Cluster, o *observers, node string, n int, timeout time.Duration) {
	t.Helper()
	c.WaitFor(timeout, "the client gets answers from "+node+" on the VIP", func() bool {
		return clustertest.Answerers(o.prober.Samples(), time.Time{})[node] >= n
	})
}

// assertNeverDual fails when the VIP was ever on two live nodes (sampler)
// or two hosts answered one ARP who-has (watcher).
func assertNeverDual(t *testing.T, ob observed) {
	t.Helper()
	if d := ob.own.DualPresent(); len(d) > 0 {
		t.Errorf("the VIP was configured on two nodes at once: %s", ob.own)
	}
	if ob.arp.Dual() {
		t.Errorf("two hosts answered ARP for the VIP at once: %s", ob.arp)
	}
	if ob.arp.Rounds < 10 || len(ob.own.Samples) < 10 {
		t.Errorf("observers barely ran (%d ARP rounds, %d ownership samples): the check above proves nothing", ob.arp.Rounds, len(ob.own.Samples))
	}
}

// gap measures and logs the client-visible switch from one node to another.
func gap(t *testing.T, what string, samples []clustertest.Sample, from, to string) clustertest.Switch {
	t.Helper()
	sw, err := clustertest.GapBetween(samples, from, to)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %s", what, sw)
	if sw.Gap > maxGap {
		t.Errorf("%s: clients got no answer for %s (> %s)", what, sw.Gap, maxGap)
	}
	return sw
}

// holdsFor checks, for d, that owner alone holds the group (every given
// agent's view and the VIP itself).
func holdsFor(t *testing.T, c *clustertest.Cluster, d time.Duration, owner string, views ...string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if h := c.VIPHolders(); len(h) != 1 || h[0] != owner {
			t.Fatalf("the VIP moved: held by %v, want %s only", h, owner)
		}
		for _, v := range views {
			if h := c.Owners(v, clustertest.Group); len(h) != 1 || h[0] != owner {
				t.Fatalf("%s reports %s held by %v, want %s", v, clustertest.Group, h, owner)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// harulesCLI runs the real harules binary (status, move, ...) and returns
// its stdout.
func harulesCLI(t *testing.T, c *clustertest.Cluster, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), &cliError{args: args, err: err, stderr: errb.String()}
	}
	return out.String(), nil
}

type cliError struct {
	args   []string
	err    error
	stderr string
}

func (e *cliError) Error() string {
	return "harules " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// statusJSON runs `harules status --json` against node's agent.
func statusJSON(t *testing.T, c *clustertest.Cluster, node string) *agent.Status {
	t.Helper()
	out, err := harulesCLI(t, c, "status", "--control", c.ControlSocket(node), "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("harules status --json printed something that is not a status document: %v\n%s", err, out)
	}
	return &st
}

func peer(st *agent.Status, name string) agent.NodeStatus {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	return agent.NodeStatus{}
}

func hasAlert(st *agent.Status, name, contains string) bool {
	return slices.ContainsFunc(st.Alerts, func(a engine.Alert) bool {
		return a.Name == name && strings.Contains(a.Message, contains)
	})
}

func rejected(st *agent.Status, path string, reasons ...string) uint64 {
	var n uint64
	for _, h := range st.Heartbeats {
		if h.Path != path {
			continue
		}
		for _, r := range reasons {
			n += h.Rejected[r]
		}
	}
	return n
}

func accepted(st *agent.Status, path string) uint64 {
	for _, h := range st.Heartbeats {
		if h.Path == path {
			return h.Accepted
		}
	}
	return 0
}

// splitAt splits samples into those started before t and the rest.
func splitAt(samples []clustertest.Sample, t time.Time) (before, after []clustertest.Sample) {
	for _, s := range samples {
		if s.At.Before(t) {
			before = append(before, s)
		} else {
			after = append(after, s)
		}
	}
	return before, after
}

// waitSingleHolder waits until exactly one node has the VIP and both
// agents agree that it holds the group, and returns that node.
func waitSingleHolder(t *testing.T, c *clustertest.Cluster) string {
	t.Helper()
	var owner string
	c.WaitFor(20*time.Second, "a single holder both agents agree on", func() bool {
		h := c.VIPHolders()
		o1, o2 := c.Owners("node1", clustertest.Group), c.Owners("node2", clustertest.Group)
		if len(h) != 1 || len(o1) != 1 || len(o2) != 1 || o1[0] != h[0] || o2[0] != h[0] {
			return false
		}
		owner = h[0]
		return true
	})
	return owner
}
