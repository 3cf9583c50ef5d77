package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

// t0 is the boot time of every node in the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// loadPolicy compiles a policy from engine/testdata.
func loadPolicy(tb testing.TB, name string) *policy.Policy {
	tb.Helper()
	p, err := rules.Load(context.Background(), filepath.Join("testdata", name), rules.Options{})
	if err != nil {
		tb.Fatalf("load testdata/%s: %v", name, err)
	}
	return p
}

// loadSource compiles policy source written to a temporary directory.
func loadSource(tb testing.TB, src string) *policy.Policy {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "policy.star")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		tb.Fatalf("write policy: %v", err)
	}
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		tb.Fatalf("load generated policy: %v\n%s", err, src)
	}
	return p
}

// cluster is a hand-driven view of one node: the tests deliver heartbeats
// and reports from peers and advance the clock explicitly.
type cluster struct {
	tb    testing.TB
	p     *policy.Policy
	self  string
	view  *View
	state *State
	now   time.Time
	// reports holds the current report of every peer that is up (sending
	// heartbeats); run delivers them.
	reports map[string]*Report
}

func newCluster(tb testing.TB, p *policy.Policy, self string) *cluster {
	return newClusterAt(tb, p, self, t0)
}

// newClusterAt starts the evaluating node at boot.
func newClusterAt(tb testing.TB, p *policy.Policy, self string, boot time.Time) *cluster {
	return &cluster{tb: tb, p: p, self: self, view: NewView(p, self, boot), state: NewState(1), now: boot,
		reports: map[string]*Report{}}
}

// up makes peer send heartbeats from now on, reporting that it holds groups,
// and delivers one heartbeat on every path at once.
func (c *cluster) up(peer string, holds ...string) {
	r := &Report{Node: peer, Incarnation: 1, PolicyHash: c.p.Hash, Holds: holds}
	if old := c.reports[peer]; old != nil {
		r.Probes = old.Probes
	}
	c.reports[peer] = r
	c.hearReport(r)
}

// down makes peer fall silent (crash or cut cable).
func (c *cluster) down(peer string) { delete(c.reports, peer) }

// peerProbe changes a probe result in peer's report.
func (c *cluster) peerProbe(peer, probe string, ok bool) {
	old := c.reports[peer]
	if old == nil {
		c.tb.Fatalf("peerProbe: %s is not up", peer)
	}
	r := *old
	r.Probes = nil
	for _, pr := range old.Probes {
		if pr.Probe != probe {
			r.Probes = append(r.Probes, pr)
		}
	}
	r.Probes = append(r.Probes, &facts.Probe{Probe: probe, Node: peer, State: probeState(ok), Since: c.now})
	c.reports[peer] = &r
	c.hearReport(&r)
}

// selfProbe sets a probe result of the evaluating node.
func (c *cluster) selfProbe(probe string, ok bool) {
	c.view.SetProbe(facts.Probe{Probe: probe, State: probeState(ok), Since: c.now})
}

func probeState(ok bool) string {
	if ok {
		return facts.ProbeOK
	}
	return facts.ProbeFailing
}

// run advances the clock by d in steps of the shortest heartbeat interval,
// delivering a heartbeat from every up peer on every path at each step.
func (c *cluster) run(d time.Duration) {
	step := c.p.Paths[0].Interval
	for _, h := range c.p.Paths {
		step = min(step, h.Interval)
	}
	end := c.now.Add(d)
	for c.now.Before(end) {
		c.now = c.now.Add(step)
		if c.now.After(end) {
			c.now = end
		}
		for _, name := range c.peerOrder() {
			c.hearReport(c.reports[name])
		}
		c.view.Update(c.now)
	}
}

func (c *cluster) peerOrder() []string {
	var out []string
	for _, n := range c.p.Nodes {
		if c.reports[n.Name] != nil {
			out = append(out, n.Name)
		}
	}
	return out
}

// hear delivers a heartbeat on every path from peer, reporting holds.
func (c *cluster) hear(peer string, holds ...string) *Report {
	r := &Report{Node: peer, Incarnation: 1, PolicyHash: c.p.Hash, Holds: holds}
	c.hearReport(r)
	return r
}

func (c *cluster) hearReport(r *Report) {
	for _, h := range c.p.Paths {
		c.view.Heartbeat(r.Node, h.Name, c.now, r)
	}
}

// hold makes the evaluating node hold groups since now.
func (c *cluster) hold(groups ...string) {
	for _, g := range groups {
		c.state.Holds[g] = c.now
	}
}

// advance moves the clock without delivering heartbeats.
func (c *cluster) advance(d time.Duration) { c.now = c.now.Add(d) }

func (c *cluster) facts() *facts.Facts {
	c.view.Update(c.now)
	return c.view.Facts(c.now, c.state)
}

// decide evaluates at the current time and keeps rule timers like Node does.
func (c *cluster) decide() *Decision {
	c.tb.Helper()
	d := Decide(context.Background(), Input{Policy: c.p, Facts: c.facts(), State: c.state})
	c.state.RulePending = d.RulePending
	return d
}

func placement(tb testing.TB, d *Decision, group string) GroupPlacement {
	tb.Helper()
	for _, gp := range d.Placement {
		if gp.Group == group {
			return gp
		}
	}
	tb.Fatalf("no placement for group %q in %+v", group, d.Placement)
	return GroupPlacement{}
}

func alertNames(d *Decision) []string {
	var out []string
	for _, a := range d.Alerts {
		out = append(out, a.Name)
	}
	return out
}

// countingExec records what a Node executes; starts of the resources (IDs)
// in failStarts fail.
type countingExec struct {
	actions    []Action
	backups    []BackupRun
	failStarts map[string]bool
	// retryStarts makes starts of these resources fail with ErrRetry.
	retryStarts map[string]bool
	// failStops makes stops of these resources fail.
	failStops map[string]bool
}

var _ Executor = (*countingExec)(nil)

func (e *countingExec) Execute(_ context.Context, a Action) error {
	e.actions = append(e.actions, a)
	if a.Op == OpStart && e.failStarts[a.Resource] {
		return fmt.Errorf("%s failed to start (test)", a.Resource)
	}
	if a.Op == OpStop && e.failStops[a.Resource] {
		return fmt.Errorf("%s failed to stop (test)", a.Resource)
	}
	if a.Op == OpStart && e.retryStarts[a.Resource] {
		return fmt.Errorf("%s refused for now (test): %w", a.Resource, ErrRetry)
	}
	return nil
}

func (e *countingExec) Backup(_ context.Context, run BackupRun) error {
	e.backups = append(e.backups, run)
	return nil
}
