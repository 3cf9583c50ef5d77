package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// peerFacts returns what the view's owner knows about peer at now.
func peerFacts(t *testing.T, v *View, now time.Time, peer string) *facts.Node {
	t.Helper()
	n := v.Facts(now, NewState(1)).Node(peer)
	if n == nil {
		t.Fatalf("no facts for %s", peer)
	}
	return n
}

func pathOf(n *facts.Node, name string) *facts.Path {
	for _, p := range n.Paths {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// TestFailureDetector steps the detector of testdata/plan.star (lan: 3 x
// 100 ms, back: 5 x 200 ms) around every threshold.
func TestFailureDetector(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	v := NewView(p, "n2", t0)
	hb := t0.Add(100 * time.Millisecond)
	if !v.Heartbeat("n1", "lan", hb, nil) {
		t.Fatal("first heartbeat reported no change")
	}
	v.Heartbeat("n1", "back", hb, nil)
	if v.Heartbeat("n1", "lan", hb, nil) {
		t.Error("a repeated heartbeat on an up path reported a change")
	}
	steps := []struct {
		at          time.Duration // after the last heartbeat
		changed     bool
		lanUp       bool
		backUp      bool
		state       string
		lanMissed   int
		since       time.Duration // of the peer state, after the heartbeat
		lanDownedAt time.Duration // of the lan path when down
	}{
		{at: 0, lanUp: true, backUp: true, state: facts.Alive},
		{at: 300*time.Millisecond - time.Nanosecond, lanUp: true, backUp: true, state: facts.Alive, lanMissed: 2},
		{at: 300 * time.Millisecond, changed: true, backUp: true, state: facts.Alive, lanMissed: 3, lanDownedAt: 300 * time.Millisecond},
		{at: 600 * time.Millisecond, backUp: true, state: facts.Alive, lanMissed: 6, lanDownedAt: 300 * time.Millisecond},
		{at: time.Second - time.Nanosecond, backUp: true, state: facts.Alive, lanMissed: 9, lanDownedAt: 300 * time.Millisecond},
		{at: time.Second, changed: true, state: facts.Dead, lanMissed: 10, since: time.Second, lanDownedAt: 300 * time.Millisecond},
		{at: 5 * time.Second, state: facts.Dead, lanMissed: 50, since: time.Second, lanDownedAt: 300 * time.Millisecond},
	}
	for _, st := range steps {
		now := hb.Add(st.at)
		if changed := v.Update(now); changed != st.changed {
			t.Errorf("+%s: Update changed=%t, want %t", st.at, changed, st.changed)
		}
		n := peerFacts(t, v, now, "n1")
		lan, back := pathOf(n, "lan"), pathOf(n, "back")
		if lan.Up != st.lanUp || back.Up != st.backUp || n.State != st.state {
			t.Errorf("+%s: lan up=%t back up=%t state=%s, want %t %t %s", st.at, lan.Up, back.Up, n.State, st.lanUp, st.backUp, st.state)
		}
		if lan.Missed != st.lanMissed {
			t.Errorf("+%s: lan missed %d, want %d", st.at, lan.Missed, st.lanMissed)
		}
		if !lan.Known || !lan.LastSeen.Equal(hb) {
			t.Errorf("+%s: lan known=%t last seen %s, want known at %s", st.at, lan.Known, lan.LastSeen, hb)
		}
		wantSince := hb.Add(st.since)
		if !n.Since.Equal(wantSince) {
			t.Errorf("+%s: peer state since %s, want %s", st.at, n.Since, wantSince)
		}
		if !lan.Up && !lan.Since.Equal(hb.Add(st.lanDownedAt)) {
			t.Errorf("+%s: lan down since %s, want %s (last heartbeat + misses x interval)", st.at, lan.Since, hb.Add(st.lanDownedAt))
		}
	}
	// The peer comes back: alive again from the heartbeat on.
	back := hb.Add(7 * time.Second)
	if !v.Heartbeat("n1", "back", back, nil) {
		t.Error("heartbeat of a dead peer reported no change")
	}
	n := peerFacts(t, v, back, "n1")
	if n.State != facts.Alive || !n.Since.Equal(back) || !pathOf(n, "back").Up || pathOf(n, "lan").Up {
		t.Errorf("after a heartbeat on back: state %s since %s, back up %t, lan up %t; want alive since %s, back up, lan down",
			n.State, n.Since, pathOf(n, "back").Up, pathOf(n, "lan").Up, back)
	}
}

// TestOnePathDown keeps heartbeats flowing on one path only: the other path
// goes down, the peer stays alive and keeps its groups.
func TestOnePathDown(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	c := newCluster(t, p, "n2")
	c.selfProbe("gateway", true)
	c.up("n1", "db")
	c.run(time.Second)
	for i := 0; i < 100; i++ { // 10 s of heartbeats on lan only
		c.advance(100 * time.Millisecond)
		c.view.Heartbeat("n1", "lan", c.now, c.reports["n1"])
		c.view.Update(c.now)
	}
	f := c.facts()
	n1 := f.Node("n1")
	if n1.State != facts.Alive {
		t.Fatalf("n1 is %s with one path up, want alive", n1.State)
	}
	if pathOf(n1, "back").Up || !pathOf(n1, "lan").Up {
		t.Errorf("paths: back up %t, lan up %t; want back down, lan up", pathOf(n1, "back").Up, pathOf(n1, "lan").Up)
	}
	if f.Owner("db") != "n1" {
		t.Errorf("owner of db is %q, want n1", f.Owner("db"))
	}
	d := c.decide()
	if gp := placement(t, d, "db"); gp.Node != "n1" || len(d.Plan) != 0 {
		t.Errorf("db placed on %q with plan %v; want it left on n1 with no action", gp.Node, planLines(d.Plan))
	}
	// The path comes back: up from that heartbeat.
	c.advance(100 * time.Millisecond)
	if !c.view.Heartbeat("n1", "back", c.now, c.reports["n1"]) {
		t.Error("heartbeat on a down path reported no change")
	}
	if bp := pathOf(c.facts().Node("n1"), "back"); !bp.Up || !bp.Since.Equal(c.now) {
		t.Errorf("back up=%t since %s, want up since %s", bp.Up, bp.Since, c.now)
	}
}

// TestHoldUntil: while the view holds (the node noticed it had been
// paused), a silent peer is not declared dead; heartbeats still count, and
// once the hold ends a peer that stayed silent is judged as usual.
func TestHoldUntil(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	c := newCluster(t, p, "n2")
	c.up("n1", "db")
	c.run(time.Second)
	// Three seconds without running: every path's last heartbeat is old.
	c.advance(3 * time.Second)
	c.view.HoldUntil(c.now.Add(PauseHold(p)))
	if c.view.Update(c.now) || c.facts().Node("n1").State != facts.Alive {
		t.Fatal("a held view declared n1 dead")
	}
	c.advance(PauseHold(p) / 2)
	c.view.Heartbeat("n1", "lan", c.now, c.reports["n1"])
	c.advance(PauseHold(p)/2 + time.Millisecond) // past the hold: back stayed silent, lan spoke 201 ms ago
	c.view.Update(c.now)
	n1 := c.facts().Node("n1")
	if n1.State != facts.Alive || pathOf(n1, "back").Up || !pathOf(n1, "lan").Up {
		t.Fatalf("after the hold: n1 %s, back up %t, lan up %t; want alive over lan, back down", n1.State, pathOf(n1, "back").Up, pathOf(n1, "lan").Up)
	}
}

// TestStartupGrace checks when a never-heard peer turns from unknown to dead.
func TestStartupGrace(t *testing.T) {
	cases := []struct {
		policy string
		grace  time.Duration
	}{
		{"plan.star", 2 * time.Second},             // startup_grace = "2s"
		{"placement.star", 300 * time.Millisecond}, // default: the detection time, 3 x 100 ms
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			p := loadPolicy(t, tc.policy)
			if p.StartupGrace() != tc.grace {
				t.Fatalf("StartupGrace() = %s, want %s", p.StartupGrace(), tc.grace)
			}
			v := NewView(p, "n2", t0)
			if v.Update(t0.Add(tc.grace - time.Nanosecond)) {
				t.Error("Update reported a change within the grace")
			}
			if n := peerFacts(t, v, t0.Add(tc.grace-time.Nanosecond), "n1"); n.State != facts.Unknown || !n.Since.Equal(t0) {
				t.Errorf("within the grace n1 is %s since %s, want unknown since boot", n.State, n.Since)
			}
			if !v.Update(t0.Add(tc.grace)) {
				t.Error("Update reported no change when the grace ended")
			}
			if n := peerFacts(t, v, t0.Add(tc.grace), "n1"); n.State != facts.Dead || !n.Since.Equal(t0.Add(tc.grace)) {
				t.Errorf("after the grace n1 is %s since %s, want dead since %s", n.State, n.Since, t0.Add(tc.grace))
			}
			for _, path := range peerFacts(t, v, t0.Add(tc.grace), "n1").Paths {
				if path.Known || path.Up {
					t.Errorf("path %s known=%t up=%t without any heartbeat", path.Name, path.Known, path.Up)
				}
			}
		})
	}
}

func TestHeartbeatFromStrangers(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	v := NewView(p, "n2", t0)
	if v.Heartbeat("n9", "lan", t0, nil) {
		t.Error("heartbeat from a node outside the policy changed the view")
	}
	if v.Heartbeat("n1", "wifi", t0, nil) {
		t.Error("heartbeat on an unknown path changed the view")
	}
	if v.Heartbeat("n2", "lan", t0, nil) {
		t.Error("heartbeat from itself changed the view")
	}
	if n := peerFacts(t, v, t0, "n1"); n.State != facts.Unknown {
		t.Errorf("n1 is %s, want unknown", n.State)
	}
}

// TestViewFacts checks how facts combine the node's own state with peers'
// reports.
func TestViewFacts(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	v := NewView(p, "n2", t0)
	s := NewState(7)
	s.Holds["manual"] = t0.Add(time.Second)
	s.Failed["auto"] = t0.Add(2 * time.Second)
	s.Maintenance = true
	v.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeFailing, Since: t0})
	r := &Report{Node: "n1", Incarnation: 3, PolicyHash: "other", Holds: []string{"auto", "manual"},
		Probes:  []*facts.Probe{{Probe: "ban_flag", Node: "n1", State: facts.ProbeOK, Since: t0}},
		Failed:  map[string]time.Time{"manual": t0},
		Standby: true}
	now := t0.Add(3 * time.Second)
	v.Heartbeat("n1", "lan", now, r)
	f := v.Facts(now, s)
	if f.Self != "n2" || !f.Now.Equal(now) || !f.Boot.Equal(t0) {
		t.Errorf("self %s now %s boot %s", f.Self, f.Now, f.Boot)
	}
	var names []string
	for _, n := range f.Nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"n1", "n2"}) {
		t.Errorf("nodes %v, want policy order n1, n2", names)
	}
	me := f.Node("n2")
	if !me.Self || me.State != facts.Alive || !me.Since.Equal(t0) || !me.Maintenance || me.Incarnation != 7 || me.PolicyHash != p.Hash {
		t.Errorf("self facts %+v", me)
	}
	peer := f.Node("n1")
	if peer.Incarnation != 3 || peer.PolicyHash != "other" || !slices.Equal(peer.Holds, []string{"auto", "manual"}) {
		t.Errorf("peer facts %+v", peer)
	}
	if got := f.Group("manual").Holders; !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("manual holders %v, want [n1 n2] (policy node order)", got)
	}
	if !f.Group("manual").Since.Equal(t0.Add(time.Second)) {
		t.Errorf("manual since %s, want when this node started it", f.Group("manual").Since)
	}
	if fo := f.Group("manual").FailedOn; len(fo) != 1 || !fo["n1"].Equal(t0) {
		t.Errorf("manual failed on %v, want n1 at t0", fo)
	}
	if fo := f.Group("auto").FailedOn; len(fo) != 1 || !fo["n2"].Equal(t0.Add(2*time.Second)) {
		t.Errorf("auto failed on %v, want n2", fo)
	}
	if pr := f.Probe("ban_flag", "n2"); pr == nil || pr.State != facts.ProbeFailing || pr.Node != "n2" {
		t.Errorf("own probe %+v", pr)
	}
	if pr := f.Probe("ban_flag", "n1"); pr == nil || pr.State != facts.ProbeOK {
		t.Errorf("peer probe %+v", pr)
	}
	if pr := f.Probe("move_flag", "n1"); pr != nil {
		t.Errorf("a probe the peer did not report: %+v, want nil", pr)
	}
	if _, ok := f.Probes["move_flag"]; !ok {
		t.Error("every probe of the policy has an entry in Probes, results or not")
	}
	// A peer's policy hash differing from ours raises an alert.
	d := Decide(t.Context(), Input{Policy: p, Facts: f, State: s})
	if !slices.Contains(alertNames(d), "policy-mismatch") {
		t.Errorf("alerts %v, want policy-mismatch", alertNames(d))
	}
}

// TestSetProbe checks that only a change of state counts as a change.
func TestSetProbe(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	v := NewView(p, "n1", t0)
	if !v.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeOK, Since: t0, Value: 1}) {
		t.Error("first result reported no change")
	}
	if v.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeOK, Since: t0.Add(time.Second), Value: 2, Text: "x"}) {
		t.Error("same state reported a change")
	}
	got := v.Probes()
	if len(got) != 1 || got[0].Value != 2 || got[0].Text != "x" || !got[0].Since.Equal(t0) || got[0].Node != "n1" {
		t.Errorf("probe after an update of value: %+v; want value and text updated, since kept", got[0])
	}
	if !v.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeFailing, Since: t0.Add(2 * time.Second)}) {
		t.Error("state change reported no change")
	}
	v.SetProbe(facts.Probe{Probe: "aaa_unknown", State: facts.ProbeOK})
	if got := v.Probes(); len(got) != 2 || got[0].Probe != "aaa_unknown" || got[1].Probe != "ban_flag" {
		t.Errorf("Probes() not sorted by name: %v", got)
	}
}
