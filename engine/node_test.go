package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// TestFailedStartRollsBackAndMovesAway drives Node.Step: the second resource
// of db fails to start; it is stopped (a failed start may have left part of
// it running), then the first, and failure_timeout keeps db off this node so
// the next decision places it on the peer.
func TestFailedStartRollsBackAndMovesAway(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	exec := &countingExec{failStarts: map[string]bool{"disk:/srv/db": true}}
	var recs []Record
	n := NewNode(p, "n1", t0, NewState(1), exec, func(r Record) { recs = append(recs, r) })
	n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	peer := &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash}
	now := t0.Add(100 * time.Millisecond)
	for _, h := range p.Paths {
		n.View.Heartbeat("n2", h.Name, now, peer)
	}
	d := n.Step(context.Background(), now)
	if gp := placement(t, d, "db"); gp.Node != "n1" {
		t.Fatalf("db placed on %s, want n1 first", gp.Node)
	}
	var ops []string
	for _, a := range exec.actions {
		ops = append(ops, a.Op+" "+a.Resource)
	}
	want := "start vip:198.51.100.20, start disk:/srv/db, stop disk:/srv/db, stop vip:198.51.100.20"
	if strings.Join(ops, ", ") != want {
		t.Errorf("executed %v, want %s (roll back what started, the failed resource too)", ops, want)
	}
	if _, held := n.State.Holds["db"]; held {
		t.Error("db is held after a failed start")
	}
	if ft, ok := n.State.Failed["db"]; !ok || !ft.Equal(now) {
		t.Errorf("Failed[db] = %v, want %s", n.State.Failed, now)
	}
	if !hasRecord(recs, RecAction, "start disk:/srv/db", "failed to start") {
		t.Errorf("timeline lacks the failed start: %+v", recs)
	}
	// Next decision: n1 is excluded for failure_timeout (default 1m).
	now = now.Add(time.Second)
	for _, h := range p.Paths {
		n.View.Heartbeat("n2", h.Name, now, peer)
	}
	d = n.Step(context.Background(), now)
	gp := placement(t, d, "db")
	if gp.Node != "n2" || !strings.Contains(gp.Reason, "excluded n1: failed there 1s ago (failure_timeout 1m0s)") {
		t.Errorf("db placed on %s (%s), want n2 with n1 excluded for its failure", gp.Node, gp.Reason)
	}
	if r := n.Report(); r.Failed["db"].IsZero() {
		t.Errorf("report does not tell peers about the failure: %+v", r.Failed)
	}
}

func hasRecord(recs []Record, kind, text, errSub string) bool {
	for _, r := range recs {
		if r.Kind == kind && strings.HasPrefix(r.Text, text) && strings.Contains(r.Error, errSub) {
			return true
		}
	}
	return false
}

// TestNodeOnlyExecutesOwnReadyActions checks that a node waiting for its
// peer to stop a group executes nothing, and starts once the peer's report
// no longer lists the group.
func TestNodeOnlyExecutesOwnReadyActions(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	exec := &countingExec{}
	n := NewNode(p, "n2", t0, NewState(1), exec, nil)
	n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	holding := &Report{Node: "n1", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"db"}}
	now := t0
	step := func(r *Report) *Decision {
		now = now.Add(100 * time.Millisecond)
		for _, h := range p.Paths {
			n.View.Heartbeat("n1", h.Name, now, r)
		}
		return n.Step(context.Background(), now)
	}
	step(holding)
	if err := n.Move(now, "db", "n2"); err != nil {
		t.Fatal(err)
	}
	d := step(holding)
	if len(exec.actions) != 0 {
		t.Fatalf("executed %+v while n1 still holds db", exec.actions)
	}
	if len(d.Plan.For("n2")) != 3 || d.Plan.For("n2")[0].Wait == "" {
		t.Fatalf("plan for n2: %v, want three waiting starts", planLines(d.Plan.For("n2")))
	}
	// n1 stopped db, and its report shows the operator's move (it learned
	// it from n2's heartbeats): n2, where the move was made, may start.
	step(&Report{Node: "n1", Incarnation: 1, PolicyHash: p.Hash, Operator: n.State.Operator.Clone()})
	if len(exec.actions) != 3 {
		t.Fatalf("executed %d actions after n1 let go, want 3 starts", len(exec.actions))
	}
	for i, a := range exec.actions {
		if a.Op != OpStart || a.Node != "n2" {
			t.Errorf("action %d: %s on %s", i, a.Op, a.Node)
		}
	}
	if _, held := n.State.Holds["db"]; !held {
		t.Error("db not held after its starts succeeded")
	}
	if err := n.Move(now, "nope", "n2"); err == nil || !strings.Contains(err.Error(), "unknown group") {
		t.Errorf("Move of an unknown group: %v", err)
	}
	if err := n.SetStandby(now, "n9", true); err == nil {
		t.Error("SetStandby of an unknown node succeeded")
	}
}

// TestRetryableStartIsNotAFailure: a start refused with ErrRetry (the agent's
// ARP probe saw the previous holder still answer) rolls back but does not
// mark the group failed, so the node stays eligible and tries again.
func TestRetryableStartIsNotAFailure(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	exec := &countingExec{retryStarts: map[string]bool{"disk:/srv/db": true}}
	var refusals int
	n := NewNode(p, "n1", t0, NewState(1), exec, func(r Record) {
		if r.Kind == RecAction && r.Resource == "disk:/srv/db" && r.Error != "" {
			refusals++
		}
	})
	n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	peer := &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash}
	now := t0.Add(100 * time.Millisecond)
	// Refused at three decisions in a row: the timeline says so once.
	for i := 0; i < 3; i++ {
		now = now.Add(time.Duration(i) * 200 * time.Millisecond)
		for _, h := range p.Paths {
			n.View.Heartbeat("n2", h.Name, now, peer)
		}
		n.Step(context.Background(), now)
	}
	if refusals != 1 {
		t.Errorf("a start refused at 3 decisions was recorded %d times, want once", refusals)
	}
	if _, failed := n.State.Failed["db"]; failed {
		t.Fatalf("a retryable refusal marked db failed: %v", n.State.Failed)
	}
	if _, held := n.State.Holds["db"]; held {
		t.Fatal("db is held although its start was refused")
	}
	// The refusal clears: the next decision starts db here.
	exec.retryStarts = nil
	now = now.Add(time.Second)
	for _, h := range p.Paths {
		n.View.Heartbeat("n2", h.Name, now, peer)
	}
	d := n.Step(context.Background(), now)
	if gp := placement(t, d, "db"); gp.Node != "n1" {
		t.Errorf("db placed on %s after a retryable refusal, want n1 still", gp.Node)
	}
	if _, held := n.State.Holds["db"]; !held {
		t.Error("db was not started on the retry")
	}
}
