package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// pairNode builds n1 of plan.star hearing n2 (whose report is peer) and
// returns a function that delivers n2's heartbeats at a time.
func pairNode(t *testing.T, exec Executor) (*Node, func(now time.Time, peer *Report)) {
	t.Helper()
	p := loadPolicy(t, "plan.star")
	n := NewNode(p, "n1", t0, NewState(1), exec, nil)
	n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	hear := func(now time.Time, peer *Report) {
		if peer == nil {
			peer = &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash}
		}
		for _, h := range p.Paths {
			n.View.Heartbeat("n2", h.Name, now, peer)
		}
	}
	return n, hear
}

// TestStartInFlightIsHeldAndNotRedispatched: with a dispatcher, Step hands
// the start out and returns at once. While the start runs, the group counts
// as held (peers must not start it beside a slow start), no second job of
// the group is dispatched whatever else happens (an operator move), and the
// decision after the completion acts on the state then.
func TestStartInFlightIsHeldAndNotRedispatched(t *testing.T) {
	exec := &countingExec{}
	n, hear := pairNode(t, exec)
	var jobs []*Job
	n.Dispatch = func(j *Job) { jobs = append(jobs, j) }
	now := t0.Add(100 * time.Millisecond)
	hear(now, nil)
	n.Step(context.Background(), now)
	if len(jobs) != 1 || jobs[0].Group != "db" || jobs[0].Op != OpStart || len(jobs[0].Actions) != 3 {
		t.Fatalf("dispatched %+v, want one start job of db's three resources", jobs)
	}
	if len(exec.actions) != 0 {
		t.Fatalf("Step executed %d actions itself; with a dispatcher it must only hand them out", len(exec.actions))
	}
	if !n.Busy("db") || !slices.Contains(n.Report().Holds, "db") {
		t.Fatalf("while its start runs db must be busy and reported held; busy %v, report holds %v", n.Busy("db"), n.Report().Holds)
	}
	// An operator moves db away while the start still runs: nothing more is
	// dispatched until the start completes.
	now = now.Add(50 * time.Millisecond)
	if err := n.Move(now, "db", "n2"); err != nil {
		t.Fatal(err)
	}
	hear(now, nil)
	n.Step(context.Background(), now)
	if len(jobs) != 1 {
		t.Fatalf("a second job of db was dispatched while its start was in flight: %+v", jobs[1:])
	}
	now = now.Add(2 * time.Second)
	n.Complete(RunJob(context.Background(), exec, jobs[0], func() time.Time { return now }))
	if n.Busy("db") {
		t.Fatal("db still busy after its job completed")
	}
	hear(now, nil)
	n.Step(context.Background(), now)
	if len(jobs) != 2 || jobs[1].Op != OpStop {
		t.Fatalf("after the start completed the move must stop db here; dispatched %d jobs (last %+v)", len(jobs), jobs[len(jobs)-1])
	}
	n.Complete(RunJob(context.Background(), exec, jobs[1], func() time.Time { return now }))
	if slices.Contains(n.Report().Holds, "db") {
		t.Errorf("db still reported held after its stop completed: %v", n.Report().Holds)
	}
}

// TestFailedRollbackKeepsGroupHeld: a start fails and so does the stop that
// undoes it. The resource may still run here, so the group stays held on
// this node (no peer may start it), a stop-failed alert is raised, and the
// stop is retried until it succeeds; only then is the group released.
func TestFailedRollbackKeepsGroupHeld(t *testing.T) {
	exec := &countingExec{failStarts: map[string]bool{"disk:/srv/db": true}, failStops: map[string]bool{"disk:/srv/db": true}}
	n, hear := pairNode(t, exec)
	now := t0.Add(100 * time.Millisecond)
	hear(now, nil)
	n.Step(context.Background(), now)
	if !slices.Contains(n.Report().Holds, "db") {
		t.Fatalf("after a failed start whose rollback failed, db must stay held here; report holds %v", n.Report().Holds)
	}
	if _, ok := n.State.StopFailed["db"]; !ok {
		t.Fatalf("StopFailed = %v, want db", n.State.StopFailed)
	}
	// The next decision places db on n2 (failed here) and stops it here
	// again; the stop fails again: still held, alert raised.
	now = now.Add(time.Second)
	hear(now, nil)
	d := n.Step(context.Background(), now)
	if gp := placement(t, d, "db"); gp.Node != "n2" {
		t.Fatalf("db placed on %s, want n2", gp.Node)
	}
	if !slices.Contains(alertNames(d), "stop-failed") {
		t.Errorf("alerts %v, want stop-failed", alertNames(d))
	}
	for _, a := range d.Plan.For("n2") {
		if a.Op == OpStart && a.Ready {
			t.Errorf("n2's start is ready while n1 may still run db: %+v", a)
		}
	}
	if !slices.Contains(n.Report().Holds, "db") {
		t.Fatal("db released after a second failed stop")
	}
	// The stop works at last: released, alert cleared.
	exec.failStops = nil
	now = now.Add(time.Second)
	hear(now, nil)
	n.Step(context.Background(), now)
	if slices.Contains(n.Report().Holds, "db") {
		t.Fatalf("db still held after a stop that succeeded: %v", n.Report().Holds)
	}
	now = now.Add(time.Second)
	hear(now, nil)
	if d := n.Step(context.Background(), now); slices.Contains(alertNames(d), "stop-failed") {
		t.Error("stop-failed alert not cleared after a good stop")
	}
}

// TestPeerWaitsForStartingHolder: a peer that reads a report with the group
// held while its start is in flight waits for it to stop instead of starting.
func TestPeerWaitsForStartingHolder(t *testing.T) {
	exec := &countingExec{}
	n1, hear1 := pairNode(t, exec)
	n1.Dispatch = func(*Job) {}
	now := t0.Add(100 * time.Millisecond)
	hear1(now, nil)
	n1.Step(context.Background(), now)
	rep := n1.Report()

	p := n1.Policy
	n2 := NewNode(p, "n2", t0, NewState(1), exec, nil)
	n2.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	if err := n2.Move(now, "db", "n2"); err != nil {
		t.Fatal(err)
	}
	for _, h := range p.Paths {
		n2.View.Heartbeat("n1", h.Name, now, rep)
	}
	d := n2.Step(context.Background(), now)
	for _, a := range d.Plan.For("n2") {
		if a.Op == OpStart && (a.Ready || !strings.Contains(a.Wait, "n1")) {
			t.Errorf("n2 start %s: ready %v wait %q; want it waiting for n1", a.Resource, a.Ready, a.Wait)
		}
	}
}

// TestStartingPeerDoesNotWinAGroupHeldHere: node n1 (preferred) reports
// db held while its start is still running, and n2 runs db already (the
// two met again after a partition). n2 keeps db: a start in flight may
// still fail or be refused, so it does not take the group from a node that
// runs it. Before, the starting node counted as a full holder, n2 stopped
// db for it, and n1's start was then refused: db was down for seconds.
func TestStartingPeerDoesNotWinAGroupHeldHere(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	exec := &countingExec{}
	n2 := NewNode(p, "n2", t0, NewState(1), exec, nil)
	n2.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
	n2.State.Holds["db"] = t0
	now := t0.Add(100 * time.Millisecond)
	starting := &Report{Node: "n1", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"db"}, Starting: []string{"db"}}
	for _, h := range p.Paths {
		n2.View.Heartbeat("n1", h.Name, now, starting)
	}
	d := n2.Step(context.Background(), now)
	if gp := placement(t, d, "db"); gp.Node != "n2" {
		t.Fatalf("db placed on %s (%s), want it kept on n2, which runs it", gp.Node, gp.Reason)
	}
	for _, a := range exec.actions {
		if a.Op == OpStop {
			t.Errorf("n2 stopped %s for a peer whose start is still running", a.Resource)
		}
	}
}

// TestConcurrentOnlineRequestsStartOnce: both nodes of plan.star are in
// standby and db runs nowhere. An operator (a script on every node) takes
// each node online through its own agent at the same moment: each node
// applies its own request before the peer's heartbeat brings the other.
// Before, each saw the other in standby and both started db. Now a node
// that took an operator request starts nothing nobody holds until every
// alive peer reports the request, and then both decide on the same state.
func TestConcurrentOnlineRequestsStartOnce(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	ex1, ex2 := &countingExec{}, &countingExec{}
	n1 := NewNode(p, "n1", t0, NewState(1), ex1, nil)
	n2 := NewNode(p, "n2", t0, NewState(1), ex2, nil)
	now := t0.Add(100 * time.Millisecond)
	for _, n := range []*Node{n1, n2} {
		n.View.SetProbe(facts.Probe{Probe: "gateway", State: facts.ProbeOK, Since: t0})
		for _, name := range []string{"n1", "n2"} {
			if err := n.SetStandby(t0, name, true); err != nil {
				t.Fatal(err)
			}
		}
		n.pending = nil // the standby requests were made long ago
	}
	hear := func(to, from *Node, at time.Time) {
		for _, h := range p.Paths {
			to.View.Heartbeat(from.Name, h.Name, at, from.Report())
		}
	}
	hear(n1, n2, now)
	hear(n2, n1, now)
	n1.Step(context.Background(), now)
	n2.Step(context.Background(), now)
	// The two requests, 2 ms apart, each on its own node; each node decides
	// before the other's heartbeat arrives.
	now = now.Add(time.Second)
	hear(n1, n2, now.Add(-time.Millisecond)) // both alive, both in standby
	hear(n2, n1, now.Add(-time.Millisecond))
	if err := n1.SetStandby(now, "n1", false); err != nil {
		t.Fatal(err)
	}
	n1.Step(context.Background(), now)
	now = now.Add(2 * time.Millisecond)
	if err := n2.SetStandby(now, "n2", false); err != nil {
		t.Fatal(err)
	}
	n2.Step(context.Background(), now)
	// Then the heartbeats cross, a few rounds.
	for range 4 {
		now = now.Add(time.Millisecond)
		hear(n2, n1, now)
		n2.Step(context.Background(), now)
		hear(n1, n2, now)
		n1.Step(context.Background(), now)
	}
	started := func(ex *countingExec) bool {
		for _, a := range ex.actions {
			if a.Op == OpStart {
				return true
			}
		}
		return false
	}
	if started(ex1) && started(ex2) {
		t.Fatalf("both nodes started db: n1 %v, n2 %v", planLines(ex1.actions), planLines(ex2.actions))
	}
	if !started(ex1) && !started(ex2) {
		t.Fatalf("db started nowhere once both were online")
	}
}
