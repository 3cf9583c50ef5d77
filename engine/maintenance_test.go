package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// upWith makes peer send heartbeats carrying a report with the given
// incarnation, maintenance flag and holds (see up).
func (c *cluster) upWith(peer string, incarnation uint64, maintenance bool, holds ...string) {
	r := &Report{Node: peer, Incarnation: incarnation, PolicyHash: c.p.Hash, Holds: holds, Maintenance: maintenance}
	c.reports[peer] = r
	c.hearReport(r)
}

// actionsOf lists "node op resource" of the plan's actions for group.
func actionsOf(d *Decision, group string) []string {
	var out []string
	for _, a := range d.Plan {
		if a.Group == group {
			out = append(out, a.Node+" "+a.Op+" "+a.Resource)
		}
	}
	return out
}

// TestMaintenanceUnmanaged covers what peers do about a node in
// maintenance: an unreachable one keeps its groups (alert instead of a
// takeover), one that comes back still holding keeps them too, and a node
// in maintenance takes no new group.
func TestMaintenanceUnmanaged(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	const deadAfter = 2 * time.Second // > interval 100ms x misses 3
	cases := []struct {
		name  string
		self  string
		setup func(c *cluster)
		// placement of group "manual": node and reason substring.
		node, reason string
		// actions of group "manual" in the plan ("node op resource").
		actions []string
		// alert of AlertMaintenanceUnreachable whose message contains this;
		// "" means no such alert.
		alert string
	}{
		{
			name: "an unreachable node in maintenance keeps its group: no takeover, an alert",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
			},
			node: "n1", reason: "unmanaged: n1 holds it in maintenance and is unreachable",
			alert: "node n1 is in maintenance and unreachable: its groups are not taken over (manual); leave maintenance or fence it",
		},
		{
			name: "the same crash out of maintenance is taken over (no regression)",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, false, "manual")
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
			},
			node: "n2", reason: "excluded n1: dead",
			actions: []string{"n1 release ", "n2 start vip:198.51.100.10"},
		},
		{
			name: "the node comes back with a new incarnation, still in maintenance and holding: nothing moves",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
				c.upWith("n1", 2, true, "manual")
				c.run(time.Second)
			},
			node: "n1", reason: "holds it",
		},
		{
			name: "the node comes back in maintenance holding nothing (nothing ran): the peer starts the group",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
				c.upWith("n1", 2, true)
				c.run(time.Second)
			},
			node: "n2", reason: "excluded n1: in maintenance (takes no new group)",
			actions: []string{"n2 start vip:198.51.100.10"},
		},
		{
			name: "an operator's move after the node was declared dead lifts it: takeover",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
				c.state.Operator.Moves["manual"] = OperatorMove{Node: "n2", At: c.now}
				c.run(100 * time.Millisecond)
			},
			node: "n2", reason: "operator moved it here",
			actions: []string{"n1 release ", "n2 start vip:198.51.100.10"},
		},
		{
			name: "an operator's move from before the node was declared dead does not lift it",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
				c.state.Operator.Moves["manual"] = OperatorMove{Node: "n2", At: c.now}
				c.down("n1")
				c.run(deadAfter)
			},
			node: "n1", reason: "unmanaged",
			alert: "(manual)",
		},
		{
			name: "an alive node in maintenance keeps what it holds",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true, "manual")
				c.run(time.Second)
			},
			node: "n1", reason: "holds it",
		},
		{
			name: "an alive node in maintenance takes no new group",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true)
				c.run(time.Second)
			},
			node: "n2", reason: "excluded n1: in maintenance (takes no new group)",
			actions: []string{"n2 start vip:198.51.100.10"},
		},
		{
			name: "the evaluating node in maintenance places a group it does not hold on its peer",
			self: "n1",
			setup: func(c *cluster) {
				c.state.Maintenance = true
				c.upWith("n2", 1, false)
				c.run(time.Second)
			},
			node: "n2", reason: "excluded n1: in maintenance",
			actions: []string{"n2 start vip:198.51.100.10"},
		},
		{
			name: "a dead node in maintenance that held nothing blocks nothing",
			self: "n2",
			setup: func(c *cluster) {
				c.upWith("n1", 1, true)
				c.run(time.Second)
				c.down("n1")
				c.run(deadAfter)
			},
			node: "n2", reason: "excluded n1: dead",
			actions: []string{"n2 start vip:198.51.100.10"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, p, tc.self)
			tc.setup(c)
			d := c.decide()
			gp := placement(t, d, "manual")
			if gp.Node != tc.node || !strings.Contains(gp.Reason, tc.reason) {
				t.Errorf("manual placed on %q (%s), want %q with %q", gp.Node, gp.Reason, tc.node, tc.reason)
			}
			if got := actionsOf(d, "manual"); !slices.Equal(got, tc.actions) {
				t.Errorf("plan for manual = %q, want %q", got, tc.actions)
			}
			var found []string
			for _, a := range d.Alerts {
				if a.Name == AlertMaintenanceUnreachable {
					found = append(found, a.Message)
				}
			}
			switch {
			case tc.alert == "" && len(found) > 0:
				t.Errorf("unexpected alert %q", found)
			case tc.alert != "" && (len(found) != 1 || !strings.Contains(found[0], tc.alert)):
				t.Errorf("alerts %q, want one containing %q (all: %v)", found, tc.alert, alertNames(d))
			}
		})
	}
}

// TestAdopt covers the restart rules of a node that restarts in
// maintenance: what it keeps holding depends on what runs.
func TestAdopt(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	saved := t0.Add(-time.Hour)
	now := t0
	ok := func(id string) AdoptCheck { return AdoptCheck{Resource: id} }
	bad := func(id string) AdoptCheck { return AdoptCheck{Resource: id, Err: errors.New(id + " is not running")} }
	const (
		vipID  = "vip:198.51.100.20"
		diskID = "disk:/srv/db"
		svcID  = "service:postgres"
	)
	cases := []struct {
		name   string
		saved  map[string]time.Time
		checks map[string][]AdoptCheck
		held   []string
		failed []string
		text   string // substring of the record of group db (or of the only record)
		err    string // substring of the record's error ("" = none)
	}{
		{
			name:   "every resource runs: adopted, held since the saved time",
			saved:  map[string]time.Time{"db": saved},
			checks: map[string][]AdoptCheck{"db": {ok(vipID), ok(diskID), ok(svcID)}},
			held:   []string{"db"},
			text:   "maintenance: adopted db, all its resources run here",
		},
		{
			name:   "nothing runs: dropped, not failed",
			saved:  map[string]time.Time{"db": saved},
			checks: map[string][]AdoptCheck{"db": {bad(vipID), bad(diskID), bad(svcID)}},
			text:   "maintenance: db no longer runs here; dropped",
			err:    "service:postgres is not running",
		},
		{
			name:   "partly runs: kept held and marked failed",
			saved:  map[string]time.Time{"db": saved},
			checks: map[string][]AdoptCheck{"db": {ok(vipID), bad(diskID), ok(svcID)}},
			held:   []string{"db"},
			failed: []string{"db"},
			text:   "db only partly runs here (vip:198.51.100.20, service:postgres run; disk:/srv/db do not)",
			err:    "disk:/srv/db is not running",
		},
		{
			name:  "no check possible: kept held",
			saved: map[string]time.Time{"db": saved},
			held:  []string{"db"},
			text:  "kept held without a check",
		},
		{
			name:   "a group the policy no longer declares is dropped",
			saved:  map[string]time.Time{"gone": saved},
			checks: map[string][]AdoptCheck{"gone": {ok("vip:1")}},
			text:   "gone is no longer in the policy",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(2)
			s.Maintenance = true
			recs := Adopt(p, "n1", s, tc.saved, tc.checks, now)
			if got := s.HeldGroups(); !slices.Equal(got, tc.held) && !(len(got) == 0 && len(tc.held) == 0) {
				t.Errorf("holds %v, want %v", got, tc.held)
			}
			for _, g := range tc.held {
				if !s.Holds[g].Equal(saved) {
					t.Errorf("%s held since %s, want the saved time %s", g, s.Holds[g], saved)
				}
			}
			var failed []string
			for g := range s.Failed {
				failed = append(failed, g)
			}
			slices.Sort(failed)
			if !slices.Equal(failed, tc.failed) && !(len(failed) == 0 && len(tc.failed) == 0) {
				t.Errorf("failed %v, want %v", failed, tc.failed)
			}
			if len(recs) != 1 {
				t.Fatalf("records %+v, want one", recs)
			}
			r := recs[0]
			if !strings.Contains(r.Text, tc.text) || r.Kind != RecEvent || r.Node != "n1" || !r.At.Equal(now) {
				t.Errorf("record %+v, want an event of n1 at %s with %q", r, now, tc.text)
			}
			if (tc.err == "") != (r.Error == "") || !strings.Contains(r.Error, tc.err) {
				t.Errorf("record error %q, want %q", r.Error, tc.err)
			}
		})
	}
}

// TestMaintenanceRestartThenLeave drives Node.Step on a node that restarted
// in maintenance holding a running group: it executes nothing while in
// maintenance, and nothing either when it leaves maintenance (the group is
// already where the policy wants it).
func TestMaintenanceRestartThenLeave(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	exec := &countingExec{}
	s := NewState(2)
	s.Maintenance = true
	Adopt(p, "n1", s, map[string]time.Time{"manual": t0.Add(-time.Hour)},
		map[string][]AdoptCheck{"manual": {{Resource: "vip:198.51.100.10"}}}, t0)
	n := NewNode(p, "n1", t0, s, exec, nil)
	peer := &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash}
	now := t0
	step := func(d time.Duration) *Decision {
		end := now.Add(d)
		var last *Decision
		for now.Before(end) {
			now = now.Add(100 * time.Millisecond)
			for _, h := range p.Paths {
				n.View.Heartbeat("n2", h.Name, now, peer)
			}
			last = n.Step(context.Background(), now)
		}
		return last
	}
	d := step(2 * time.Second)
	if r := n.Report(); !slices.Equal(r.Holds, []string{"manual"}) || !r.Maintenance {
		t.Errorf("report holds %v maintenance %v, want [manual] in maintenance", r.Holds, r.Maintenance)
	}
	if gp := placement(t, d, "manual"); gp.Node != "n1" {
		t.Errorf("manual placed on %s (%s), want n1 (it holds it)", gp.Node, gp.Reason)
	}
	n.State.Maintenance = false
	d = step(2 * time.Second)
	for _, a := range exec.actions {
		if a.Group == "manual" {
			t.Errorf("executed %s %s for manual, want nothing (it runs here already)", a.Op, a.Resource)
		}
	}
	if _, held := n.State.Holds["manual"]; !held {
		t.Error("manual no longer held after leaving maintenance")
	}
	// "auto" was not held: out of maintenance the node starts it as usual.
	if gp := placement(t, d, "auto"); gp.Node != "n1" || !slices.ContainsFunc(exec.actions, func(a Action) bool { return a.Group == "auto" && a.Op == OpStart }) {
		t.Errorf("auto placed on %s and not started out of maintenance; actions %+v", gp.Node, exec.actions)
	}
}

// TestRememberedMaintenanceReport: a node that starts while a peer in
// maintenance is unreachable keeps that peer's groups on it (the agent
// hands it the report it saved); a report heard afterwards replaces it.
func TestRememberedMaintenanceReport(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	saved := &Report{Node: "n1", Incarnation: 4, PolicyHash: p.Hash, Holds: []string{"manual"}, Maintenance: true}

	c := newCluster(t, p, "n2")
	c.view.Remember(saved)
	c.run(p.StartupGrace() + time.Second) // n1 never heard: dead after the grace
	d := c.decide()
	if gp := placement(t, d, "manual"); gp.Node != "n1" || !strings.Contains(gp.Reason, "unmanaged") {
		t.Errorf("manual placed on %q (%s), want it left on n1 (remembered in maintenance)", gp.Node, gp.Reason)
	}
	if got := actionsOf(d, "manual"); len(got) != 0 {
		t.Errorf("plan for manual = %q, want nothing", got)
	}
	if !slices.Contains(alertNames(d), AlertMaintenanceUnreachable) {
		t.Errorf("alerts %v, want %s", alertNames(d), AlertMaintenanceUnreachable)
	}

	// n1 comes back out of maintenance holding nothing: its report wins.
	c.upWith("n1", 5, false)
	c.run(time.Second)
	d = c.decide()
	if gp := placement(t, d, "manual"); gp.Node != "n1" || strings.Contains(gp.Reason, "unmanaged") {
		t.Errorf("manual placed on %q (%s), want n1 by score once it reports", gp.Node, gp.Reason)
	}

	// Without the remembered report the same start takes over (what the
	// agent did before it kept the report).
	c = newCluster(t, p, "n2")
	c.run(p.StartupGrace() + time.Second)
	if gp := placement(t, c.decide(), "manual"); gp.Node != "n2" {
		t.Errorf("manual placed on %q without a remembered report, want n2", gp.Node)
	}

	// A report already heard is not replaced by a remembered one.
	c = newCluster(t, p, "n2")
	c.upWith("n1", 6, false)
	c.view.Remember(saved)
	if r := c.view.PeerReport("n1"); r == saved {
		t.Error("Remember replaced a report heard from the peer")
	}
}
