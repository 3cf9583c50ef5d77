package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Deciding never waits on an action. A decision turns this node's ready
// actions into one Job per group; a job runs on its own (the agent runs it
// on a worker goroutine, the simulator completes it after the scenario's
// action durations) and its Result comes back to the node as an event
// (Node.Complete). Until then the group is busy: no other job of it is
// dispatched, and a start in flight counts as held, so peers never start a
// group this node may be bringing up. Heartbeats, probes and operator
// requests keep flowing through the loop meanwhile, so a slow start never
// makes a live peer look dead.

// Job is one group's actions of one decision on this node: its fences and
// starts, or its stops, in plan order.
type Job struct {
	Group   string
	Op      string // OpStart or OpStop: what the job does to the group
	Actions []Action
	// Decided is when the decision that made the job was taken.
	Decided time.Time
	// movedAway: a rule moved the group away from this node (its stop
	// marks the group failed here, see Complete).
	movedAway bool
}

// Outcome is what became of one action of a job.
type Outcome struct {
	Action Action
	At     time.Time // when the action finished
	Err    error
	// Rollback marks the stops that undo a failed start.
	Rollback bool
}

// Result is the outcome of a job.
type Result struct {
	Job      *Job
	Outcomes []Outcome
	// Failed is the error that ended the job early (nil: every action
	// succeeded).
	Failed error
	// RollbackFailed is set when a stop undoing a failed start failed: the
	// resource may still run here, so the group stays held on this node.
	RollbackFailed error
	// Finished is when the last action (or rollback) finished.
	Finished time.Time
}

// Dispatcher hands a job to whatever runs it; it must not block. The result
// goes back to Node.Complete on the node's own goroutine.
type Dispatcher func(j *Job)

// RunJob executes a job's actions in order with exec and returns what
// happened. It touches no engine state, so it may run on any goroutine.
//
// A failed start stops what the job started, the failing resource included
// (a VIP may be configured although its announcement failed; a database may
// be promoted although a later step failed). A start refused for now
// (ErrRetry) changed nothing, so only the resources before it are stopped.
func RunJob(ctx context.Context, exec Executor, j *Job, now func() time.Time) Result {
	res := Result{Job: j}
	var done []Action
	for _, a := range j.Actions {
		err := exec.Execute(ctx, a)
		res.Outcomes = append(res.Outcomes, Outcome{Action: a, At: now(), Err: err})
		if err != nil {
			res.Failed = err
			if a.Op == OpStart && !errors.Is(err, ErrRetry) {
				done = append(done, a)
			}
			break
		}
		if a.Op == OpStart {
			done = append(done, a)
		}
	}
	if res.Failed != nil && j.Op == OpStart && len(done) > 0 {
		var rbErrs []error
		for i := len(done) - 1; i >= 0; i-- {
			a := done[i]
			a.Op, a.Detail = OpStop, describe(a.res, OpStop)
			a.Reason = fmt.Sprintf("rolling back %s after a failed start: %v", j.Group, res.Failed)
			err := exec.Execute(ctx, a)
			res.Outcomes = append(res.Outcomes, Outcome{Action: a, At: now(), Err: err, Rollback: true})
			if err != nil {
				rbErrs = append(rbErrs, fmt.Errorf("%s: %w", a.Resource, err))
			}
		}
		res.RollbackFailed = errors.Join(rbErrs...)
	}
	res.Finished = now()
	return res
}

// Busy reports whether a job of group is in flight on this node.
func (n *Node) Busy(group string) bool {
	_, ok := n.inflight[group]
	return ok
}

// InFlight returns how many jobs are in flight.
func (n *Node) InFlight() int { return len(n.inflight) }

// Starting lists the groups whose start job is in flight (held only because
// they may be coming up here), sorted.
func (n *Node) Starting() []string { return slices.Sorted(maps.Keys(n.State.Starting)) }

// Settled reports whether group is held here and not coming up or going
// down: its resources are as the last completed job left them.
func (n *Node) Settled(group string) bool {
	_, held := n.State.Holds[group]
	return held && !n.Busy(group)
}

// dispatch builds this node's jobs from a decision and hands them out: one
// per group, none for a group whose previous job is still in flight (the
// decision after its completion sees the new state), and none that would
// fence a peer another job is fencing now.
func (n *Node) dispatch(ctx context.Context, now time.Time, d *Decision) {
	byGroup := map[string][]Action{}
	var order []string
	for _, a := range d.Plan {
		if a.Node != n.Name || !a.Ready || a.Op == OpRelease {
			continue
		}
		if _, ok := byGroup[a.Group]; !ok {
			order = append(order, a.Group)
		}
		byGroup[a.Group] = append(byGroup[a.Group], a)
	}
	for _, g := range order {
		actions := byGroup[g]
		if n.State.Maintenance {
			for _, a := range actions {
				n.emit(Record{At: now, Node: n.Name, Kind: RecAction, Group: a.Group, Text: "maintenance: would " + a.Op + " " + a.Resource + ": " + a.Detail,
					Reason: a.Reason, Op: a.Op, Resource: a.Resource, TakeoverFrom: a.From, DryRun: true}, nil)
			}
			continue
		}
		if n.Busy(g) {
			continue
		}
		// Fences already done for this death are skipped; a peer being
		// fenced by another group's job holds this job back until then.
		var kept []Action
		blocked := false
		for _, a := range actions {
			if a.Op == OpFence {
				if n.State.Fenced[a.fencePeer].Equal(a.fenceSince) {
					continue
				}
				if n.fencing[a.fencePeer] {
					blocked = true
					break
				}
			}
			kept = append(kept, a)
		}
		if blocked || len(kept) == 0 {
			continue
		}
		j := &Job{Group: g, Op: kept[len(kept)-1].Op, Actions: kept, Decided: now, movedAway: movedAway(d, g, n.Name)}
		for _, a := range kept {
			if a.Op == OpFence {
				n.fencing[a.fencePeer] = true
			}
		}
		if j.Op == OpStart {
			if _, held := n.State.Holds[g]; !held {
				// From the first start on, the group may run here: report
				// it held, so no peer starts it beside a slow start.
				n.State.Holds[g] = now
				n.State.markStarting(g)
			}
		}
		n.inflight[g] = j
		if n.Dispatch != nil {
			n.Dispatch(j)
			continue
		}
		n.Complete(RunJob(ctx, n.Exec, j, func() time.Time { return now }))
	}
}

// Complete applies a finished job: it records each action, then updates
// what the node holds. A failed start, rolled back, marks the group failed
// here so placement moves it elsewhere; a failed stop, or a rollback that
// could not stop what it started, keeps the group held (it may still run
// here: no peer may start it) and raises a stop-failed alert until a stop
// succeeds.
func (n *Node) Complete(res Result) {
	j := res.Job
	if cur, ok := n.inflight[j.Group]; !ok || cur != j {
		return // a job of an earlier life of the node (or already applied)
	}
	delete(n.inflight, j.Group)
	wasStarting := n.State.Starting[j.Group]
	delete(n.State.Starting, j.Group)
	for _, o := range res.Outcomes {
		a := o.Action
		if a.Op == OpFence {
			n.recAction(o.At, a, a.Op+" "+a.fencePeer+": "+a.Detail, a.Reason, o.Err)
			if o.Err == nil {
				if n.State.Fenced == nil {
					n.State.Fenced = map[string]time.Time{}
				}
				n.State.Fenced[a.fencePeer] = a.fenceSince
			}
			continue
		}
		if o.Rollback {
			n.recAction(o.At, a, a.Op+" "+a.Resource+": "+a.Detail, a.Reason, o.Err)
			continue
		}
		key := a.Group + "/" + a.Resource
		if a.Op == OpStop && o.Err != nil {
			// A stop retried at every decision that keeps failing the same
			// way is on the timeline once (the stop-failed alert stays up).
			if n.stopErr[key] == o.Err.Error() {
				continue
			}
			n.stopErr[key] = o.Err.Error()
		} else if a.Op == OpStop {
			delete(n.stopErr, key)
		}
		if again := errors.Is(o.Err, ErrRetry); !again || !n.refused[key] {
			n.recAction(o.At, a, a.Op+" "+a.Resource+": "+a.Detail, a.Reason, o.Err)
			n.refused[key] = again
		}
	}
	for _, a := range j.Actions {
		if a.Op == OpFence {
			delete(n.fencing, a.fencePeer) // done, failed or never ran
		}
	}
	g, at := j.Group, res.Finished
	failed := res.Failed
	if f := lastFence(res); f != nil {
		// No takeover without fencing; try again at the next decision.
		// Not this node's fault: nothing is marked failed.
		failed = fmt.Errorf("fencing %s failed: %w (%w)", f.Action.fencePeer, f.Err, ErrRetry)
	}
	switch {
	case failed == nil && j.Op == OpStart:
		n.State.Holds[g] = at
		delete(n.State.StopFailed, g)
	case failed == nil && j.Op == OpStop:
		delete(n.State.Holds, g)
		delete(n.State.StopFailed, g)
		// A rule that moved the group away from this node judged it
		// unhealthy here. Once stopped, the rule's condition (usually
		// "failing on the owner") no longer holds, so without marking
		// it failed the group would come straight back; failure_timeout
		// keeps it away, as after a failed monitor.
		if j.movedAway {
			n.State.Failed[g] = at
		}
	case j.Op == OpStart:
		// A start refused for now (ErrRetry: e.g. the previous holder
		// still answers for the VIP) is tried again at the next decision;
		// it says nothing about this node's health.
		if !errors.Is(failed, ErrRetry) {
			n.State.Failed[g] = at
		}
		if res.RollbackFailed != nil {
			n.stopFailed(g, at, res.RollbackFailed)
		} else if wasStarting {
			delete(n.State.Holds, g)
		}
	default:
		n.State.Failed[g] = at
		n.stopFailed(g, at, failed)
	}
}

// lastFence returns the failed fence outcome that ended a job, if any.
func lastFence(res Result) *Outcome {
	if res.Failed == nil || len(res.Outcomes) == 0 {
		return nil
	}
	o := res.Outcomes[len(res.Outcomes)-1]
	if o.Action.Op != OpFence || o.Err == nil {
		return nil
	}
	return &o
}

// stopFailed keeps group held here after a stop that failed: what the
// stop was to end may still run, so peers must not start the group until a
// later stop succeeds (or an operator clears it after checking by hand).
func (n *Node) stopFailed(group string, at time.Time, err error) {
	if _, held := n.State.Holds[group]; !held {
		n.State.Holds[group] = at
	}
	if n.State.StopFailed == nil {
		n.State.StopFailed = map[string]StopFailure{}
	}
	n.State.StopFailed[group] = StopFailure{At: at, Error: err.Error()}
}

func (s *State) markStarting(group string) {
	if s.Starting == nil {
		s.Starting = map[string]bool{}
	}
	s.Starting[group] = true
}
