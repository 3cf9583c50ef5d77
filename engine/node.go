package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// ErrRetry, wrapped by an executor's error, means an action could not run
// now but may at the next decision: the group is not marked failed on this
// node (a failure would make the node ineligible for failure_timeout, so a
// real failure of the peer in that window would not be taken over).
var ErrRetry = errors.New("not now; retried at the next decision")

// Executor carries out actions. The agent's executor moves VIPs, mounts
// disks and starts services; the simulator's records them.
type Executor interface {
	// Execute performs one start or stop action on the local node.
	Execute(ctx context.Context, a Action) error
	// Backup runs one backup job on the local node.
	Backup(ctx context.Context, run BackupRun) error
}

// Record is one line of a node's timeline: what it saw, decided and did.
type Record struct {
	At     time.Time `json:"at"`
	Node   string    `json:"node"`
	Kind   string    `json:"kind"`
	Group  string    `json:"group,omitempty"`
	Text   string    `json:"text"`
	Reason string    `json:"reason,omitempty"`
	Error  string    `json:"error,omitempty"`

	// Structured details, so readers (notifications, the console) need not
	// parse Text. Actions: Op and Resource ("fence:PEER" for a fence), and
	// TakeoverFrom when the start proceeds without peers declared dead.
	// Path and peer records: Peer, Path (path records) and State ("up",
	// "down"; "alive", "dead"). Placement records: Target, the node the
	// group should run on ("" for nowhere).
	Op           string   `json:"op,omitempty"`
	Resource     string   `json:"resource,omitempty"`
	TakeoverFrom []string `json:"takeover_from,omitempty"`
	Peer         string   `json:"peer,omitempty"`
	Path         string   `json:"path,omitempty"`
	State        string   `json:"state,omitempty"`
	Target       string   `json:"target,omitempty"`
	// DryRun marks an action record of a node in maintenance: it says what
	// would have run; nothing ran.
	DryRun bool `json:"dry_run,omitempty"`
}

// Record kinds.
const (
	RecEvent  = "event"  // something that happened to the node (scenario or OS)
	RecPath   = "path"   // a heartbeat path changed state
	RecPeer   = "peer"   // a peer was declared alive or dead
	RecAction = "action" // an action ran
	RecWait   = "wait"   // a start waits for something
	RecAlert  = "alert"  // an alert was raised
	RecClear  = "clear"  // an alert cleared
	RecBackup = "backup" // a backup job ran or was skipped
	RecPolicy = "policy" // placement changed
)

// Node is one node's decision loop: facts in, Decide, execute own actions,
// remember the outcome. The agent and the simulator both drive it with Step.
type Node struct {
	Policy *policy.Policy
	Name   string
	State  *State
	View   *View
	Exec   Executor
	// Record receives timeline records; nil discards them.
	Record func(Record)

	last      *Decision
	alerts    map[string]Alert
	waits     map[string]string
	targets   map[string]string
	prevPaths map[string]bool
	prevPeers map[string]string
	// refused holds the group/resource starts refused for now (ErrRetry)
	// whose refusal is already on the timeline: a start retried at every
	// decision (a lease wait of 20 s) is recorded once, not every time.
	refused map[string]bool
	report  *Report

	// Dispatch runs this node's jobs (jobs.go); nil runs each job at once,
	// inside Step (tests, and a simulator whose actions take no time).
	Dispatch Dispatcher
	// inflight maps group -> its job not yet completed (State.Starting
	// marks the groups held only because a start job is in flight);
	// fencing marks the peers a job in flight is fencing.
	inflight map[string]*Job
	fencing  map[string]bool
	// stopErr holds the last error of each group/resource stop that
	// failed, so a stop retried at every decision is recorded once.
	stopErr map[string]string
	// pending holds operator requests made on this node that some alive
	// peer has not reported yet (opack.go).
	pending []pendingOp
}

// NewNode builds the loop for node name, booted at boot.
func NewNode(p *policy.Policy, name string, boot time.Time, s *State, exec Executor, record func(Record)) *Node {
	if record == nil {
		record = func(Record) {}
	}
	return &Node{Policy: p, Name: name, State: s, View: NewView(p, name, boot), Exec: exec, Record: record,
		alerts: map[string]Alert{}, waits: map[string]string{}, targets: map[string]string{},
		prevPaths: map[string]bool{}, prevPeers: map[string]string{}, refused: map[string]bool{},
		inflight: map[string]*Job{}, fencing: map[string]bool{}, stopErr: map[string]string{}}
}

// Last returns the most recent decision (nil before the first Step).
func (n *Node) Last() *Decision { return n.last }

// Step runs one evaluation at now and dispatches this node's ready actions
// (jobs.go): it never waits for them unless Dispatch is nil.
func (n *Node) Step(ctx context.Context, now time.Time) *Decision {
	n.View.Update(now)
	n.View.Merge(n.State)
	n.applyCleanups(now)
	f := n.View.Facts(now, n.State)
	n.recordTransitions(f)
	d := Decide(ctx, Input{Policy: n.Policy, Facts: f, State: n.State})
	n.holdStartsForAck(f, d)
	n.State.RulePending = d.RulePending
	n.State.RuleStandby = selfStandby(d, n.Name)
	n.recordDecision(now, d)
	n.dispatch(ctx, now, d)
	n.runBackups(ctx, now, d)
	n.last = d
	return d
}

func (n *Node) rec(now time.Time, kind, group, text, reason string, err error) {
	n.emit(Record{At: now, Node: n.Name, Kind: kind, Group: group, Text: text, Reason: reason}, err)
}

func (n *Node) emit(r Record, err error) {
	if err != nil {
		r.Error = err.Error()
	}
	n.Record(r)
}

// recAction records an action that ran (or failed).
func (n *Node) recAction(now time.Time, a Action, text, reason string, err error) {
	r := Record{At: now, Node: n.Name, Kind: RecAction, Group: a.Group, Text: text, Reason: reason,
		Op: a.Op, Resource: a.Resource, TakeoverFrom: a.From}
	n.emit(r, err)
}

func (n *Node) recordTransitions(f *facts.Facts) {
	for _, nf := range f.Nodes {
		if nf.Self {
			continue
		}
		for _, p := range nf.Paths {
			key := nf.Name + "/" + p.Name
			prev, seen := n.prevPaths[key]
			if seen && prev != p.Up || !seen && p.Up {
				state := "down"
				reason := fmt.Sprintf("%d heartbeats missed", p.Missed)
				if p.Up {
					state, reason = "up", "heartbeat received"
				}
				n.emit(Record{At: p.Since, Node: n.Name, Kind: RecPath, Text: fmt.Sprintf("path %s to %s %s", p.Name, nf.Name, state),
					Reason: reason, Peer: nf.Name, Path: p.Name, State: state}, nil)
			}
			n.prevPaths[key] = p.Up
		}
		if prev := n.prevPeers[nf.Name]; prev != nf.State {
			if prev != "" || nf.State != facts.Unknown {
				reason := "heartbeat received"
				switch nf.State {
				case facts.Dead:
					reason = "no heartbeat on any path"
					if prev == facts.Unknown {
						reason = "not heard from within the startup grace"
					}
				}
				n.emit(Record{At: f.Now, Node: n.Name, Kind: RecPeer, Text: fmt.Sprintf("%s is %s", nf.Name, nf.State),
					Reason: reason, Peer: nf.Name, State: nf.State}, nil)
			}
			n.prevPeers[nf.Name] = nf.State
		}
	}
}

func (n *Node) recordDecision(now time.Time, d *Decision) {
	current := map[string]Alert{}
	for _, a := range d.Alerts {
		current[a.Key()] = a
		if _, ok := n.alerts[a.Key()]; !ok {
			n.rec(now, RecAlert, "", fmt.Sprintf("%s [%s] %s", a.Name, a.Severity, a.Message), ruleOf(a), nil)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.alerts)) {
		if _, ok := current[k]; !ok {
			a := n.alerts[k]
			n.rec(now, RecClear, "", fmt.Sprintf("%s cleared: %s", a.Name, a.Message), ruleOf(a), nil)
		}
	}
	n.alerts = current
	for _, gp := range d.Placement {
		if prev, ok := n.targets[gp.Group]; !ok || prev != gp.Node {
			target := gp.Node
			if target == "" {
				target = "nowhere (stopped)"
			}
			n.emit(Record{At: now, Node: n.Name, Kind: RecPolicy, Group: gp.Group, Target: gp.Node,
				Text: fmt.Sprintf("%s should run on %s", gp.Group, target), Reason: gp.Reason}, nil)
			n.targets[gp.Group] = gp.Node
			// A new placement is a new attempt: its refusals are news.
			for key := range n.refused {
				if strings.HasPrefix(key, gp.Group+"/") {
					delete(n.refused, key)
				}
			}
		}
	}
	waits := map[string]string{}
	for _, a := range d.Plan {
		if a.Node == n.Name && a.Wait != "" {
			waits[a.Group] = a.Wait
		}
	}
	for _, g := range slices.Sorted(maps.Keys(waits)) {
		if n.waits[g] != waits[g] {
			n.rec(now, RecWait, g, waits[g], "", nil)
		}
	}
	n.waits = waits
}

func ruleOf(a Alert) string {
	if a.Rule != "" {
		return "rule " + a.Rule
	}
	return ""
}

// selfStandby reports whether a fired rule put node in standby.
func selfStandby(d *Decision, node string) bool {
	for _, dec := range d.Fired {
		if dec.Kind == policy.Standby && dec.Node == node {
			return true
		}
	}
	return false
}

// movedAway reports whether a fired rule moved group away from node.
func movedAway(d *Decision, group, node string) bool {
	for _, dec := range d.Fired {
		if dec.Kind == policy.Move && dec.AwayFrom == node && dec.AppliesTo(group) {
			return true
		}
	}
	return false
}

// ResourceFailed records that a resource of a held group failed its monitor:
// the group becomes ineligible here for the failure timeout, so the next
// decision stops it here and places it elsewhere.
func (n *Node) ResourceFailed(now time.Time, group, resource string, err error) {
	n.State.Failed[group] = now
	n.rec(now, RecEvent, group, fmt.Sprintf("%s failed on %s", resource, n.Name), "monitor", err)
}

func (n *Node) runBackups(ctx context.Context, now time.Time, d *Decision) {
	for _, run := range d.Backups {
		if run.Skip {
			n.rec(now, RecBackup, "", "skip backup "+run.Job, run.Reason, nil)
		} else if n.State.Maintenance {
			n.rec(now, RecBackup, "", "maintenance: would run backup "+run.Job, run.Reason, nil)
			continue
		} else {
			err := n.Exec.Backup(ctx, run)
			n.rec(now, RecBackup, "", "run backup "+run.Job, run.Reason, err)
		}
		n.State.BackupLast[run.Job] = run.Scheduled
	}
}

// Report returns what this node tells its peers; the pointer changes only
// when the content does, so receivers can detect changes cheaply.
func (n *Node) Report() *Report {
	// Report runs at every heartbeat; comparing in place avoids building
	// and deep-comparing a new report when nothing changed (the common case).
	if n.report != nil && n.reportCurrent(n.report) {
		return n.report
	}
	failed := map[string]time.Time{}
	for g, t := range n.State.Failed {
		if n.Policy.Cluster.FailureTimeout == 0 || (n.last != nil && n.last.Now.Sub(t) < n.Policy.Cluster.FailureTimeout) {
			failed[g] = t
		}
	}
	r := &Report{Node: n.Name, Incarnation: n.State.Incarnation, PolicyHash: n.Policy.Hash, Holds: n.State.HeldGroups(), Starting: n.Starting(), Hears: n.View.Hears(),
		Standby: n.State.Leaving, RuleStandby: n.State.RuleStandby, Maintenance: n.State.Maintenance, Probes: n.View.Probes(), Failed: failed,
		Operator: n.State.Operator.Clone(), BackupLast: maps.Clone(n.State.BackupLast), BackupOK: maps.Clone(n.State.BackupOK)}
	n.report = r
	return r
}

// Move records an operator's request to run group on node.
func (n *Node) Move(now time.Time, group, node string) error {
	if n.Policy.Group(group) == nil {
		return fmt.Errorf("unknown group %q (groups: %s)", group, strings.Join(n.Policy.GroupNames(), ", "))
	}
	if node != "" && n.Policy.Node(node) == nil {
		return fmt.Errorf("unknown node %q", node)
	}
	n.State.Operator.Merge(Operator{Moves: map[string]OperatorMove{group: {Node: node, At: now}}})
	n.notePending("move", group, now)
	n.rec(now, RecEvent, group, fmt.Sprintf("operator: move %s to %s", group, orDefault(node, "(cleared)")), "", nil)
	return nil
}

// BackupSucceeded records that a run of job finished well at, so every node
// learns it with the heartbeats (one whose own run failed earlier drops its
// alert).
func (n *Node) BackupSucceeded(job string, at time.Time) {
	if at.After(n.State.BackupOK[job]) {
		if n.State.BackupOK == nil {
			n.State.BackupOK = map[string]time.Time{}
		}
		n.State.BackupOK[job] = at
	}
}

// Cleanup records an operator's request to forget the failures of group
// ("*": every group) on every node, so failure_timeout no longer keeps the
// group away from them (Pacemaker's `crm resource cleanup`). The request
// reaches the other nodes with the heartbeats; each forgets its own
// failures recorded up to now.
func (n *Node) Cleanup(now time.Time, group string) error {
	if group != "*" && n.Policy.Group(group) == nil {
		return fmt.Errorf("unknown group %q (groups: %s; \"*\" for all)", group, strings.Join(n.Policy.GroupNames(), ", "))
	}
	n.State.Operator.Merge(Operator{Cleanups: map[string]time.Time{group: now}})
	n.notePending("cleanup", group, now)
	if group == "*" {
		n.rec(now, RecEvent, "", "operator: clean up the failures of every group", "", nil)
	} else {
		n.rec(now, RecEvent, group, "operator: clean up the failures of "+group, "", nil)
	}
	return nil
}

// applyCleanups forgets this node's failures that an operator cleanup
// (made here or gossiped from a peer) came after.
func (n *Node) applyCleanups(now time.Time) {
	all, hasAll := n.State.Operator.Cleanups["*"]
	for _, g := range slices.Sorted(maps.Keys(n.State.Failed)) {
		failedAt := n.State.Failed[g]
		t, ok := n.State.Operator.Cleanups[g]
		if hasAll && (!ok || all.After(t)) {
			t, ok = all, true
		}
		if ok && !failedAt.After(t) {
			delete(n.State.Failed, g)
			n.rec(now, RecEvent, g, fmt.Sprintf("operator cleanup: the failure of %s on %s at %s is forgotten", g, n.Name, failedAt.UTC().Format(time.RFC3339)), "", nil)
		}
	}
}

// SetStandby records an operator's standby (on) or online (off) request.
func (n *Node) SetStandby(now time.Time, node string, on bool) error {
	if n.Policy.Node(node) == nil {
		return fmt.Errorf("unknown node %q", node)
	}
	n.State.Operator.Merge(Operator{Standby: map[string]OperatorFlag{node: {On: on, At: now}}})
	n.notePending("standby", node, now)
	word := "online"
	if on {
		word = "standby"
	}
	n.rec(now, RecEvent, "", fmt.Sprintf("operator: %s %s", word, node), "", nil)
	return nil
}
