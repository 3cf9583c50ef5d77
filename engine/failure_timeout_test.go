package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// TestFailureTimeoutZeroKeepsFailedNodeIneligible: with failure_timeout 0 a
// failed monitor stops the group here and places it on the peer, and the
// failure never expires: the node stays excluded an hour later, and only
// an operator cleanup makes it eligible again.
func TestFailureTimeoutZeroKeepsFailedNodeIneligible(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	p.Cluster.FailureTimeout = 0
	exec := &countingExec{}
	n := NewNode(p, "n1", t0, NewState(1), exec, func(Record) {})
	n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	peer := &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash}
	now := t0
	step := func(d time.Duration) *Decision {
		now = now.Add(d)
		for _, h := range p.Paths {
			n.View.Heartbeat("n2", h.Name, now, peer)
		}
		return n.Step(context.Background(), now)
	}
	if gp := placement(t, step(100*time.Millisecond), "db"); gp.Node != "n1" {
		t.Fatalf("db placed on %s, want n1 first", gp.Node)
	}
	if _, held := n.State.Holds["db"]; !held {
		t.Fatal("n1 did not start db")
	}

	n.ResourceFailed(now, "db", "service:postgres", nil)
	exec.actions = nil
	d := step(time.Second)
	if gp := placement(t, d, "db"); gp.Node != "n2" || !strings.Contains(gp.Reason, "until an operator cleanup") {
		t.Errorf("after the monitor failure db placed on %s (%s), want n2 with n1 excluded until a cleanup", gp.Node, gp.Reason)
	}
	var ops []string
	for _, a := range exec.actions {
		ops = append(ops, a.Op+" "+a.Resource)
	}
	if want := "stop service:postgres, stop disk:/srv/db, stop vip:198.51.100.20"; strings.Join(ops, ", ") != want {
		t.Errorf("executed %v, want %s", ops, want)
	}
	if _, held := n.State.Holds["db"]; held {
		t.Error("n1 still counts as holding db after its monitor failed")
	}

	// The peer takes db; an hour later n1 is still excluded.
	peer = &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"db"}}
	if gp := placement(t, step(time.Hour), "db"); gp.Node != "n2" || !strings.Contains(gp.Reason, "excluded n1: failed there") {
		t.Errorf("an hour later db placed on %s (%s), want n2 with n1 still excluded", gp.Node, gp.Reason)
	}
	if r := n.Report(); r.Failed["db"].IsZero() {
		t.Errorf("the report no longer tells peers about the failure: %+v", r.Failed)
	}

	// An operator cleanup forgets the failure: n1 is eligible again.
	if err := n.Cleanup(now, "db"); err != nil {
		t.Fatal(err)
	}
	if gp := placement(t, step(time.Second), "db"); strings.Contains(gp.Reason, "excluded n1") {
		t.Errorf("after a cleanup n1 is still excluded: %s", gp.Reason)
	}
	if _, failed := n.State.Failed["db"]; failed {
		t.Error("the cleanup did not forget the failure")
	}
}
