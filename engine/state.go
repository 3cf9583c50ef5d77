package engine

import (
	"maps"
	"slices"
	"time"
)

// State is what one node remembers between decisions: what it holds, rule
// timers, operator requests and backup bookkeeping. The agent persists it
// atomically in its state directory; the simulator keeps it in memory.
type State struct {
	// Incarnation changes at every agent start so peers can reject replays
	// from an earlier life.
	Incarnation uint64 `json:"incarnation"`
	// Holds maps group -> when this node finished starting it.
	Holds map[string]time.Time `json:"holds"`
	// Failed maps group -> when a resource of it last failed on this node.
	Failed map[string]time.Time `json:"failed,omitempty"`
	// RulePending maps rule -> since when its condition holds (for for_).
	RulePending map[string]time.Time `json:"rule_pending,omitempty"`
	// Operator holds operator requests, gossiped to every node.
	Operator Operator `json:"operator"`
	// Maintenance makes the node evaluate but not act.
	Maintenance bool `json:"maintenance,omitempty"`
	// Leaving is set while the agent shuts down: the node takes no group and
	// gives away what it holds (a planned handover), without the lasting
	// effect of an operator's standby.
	Leaving bool `json:"-"`
	// RuleStandby is set while a rule of the last decision put this node
	// in standby (quorum settling, no quorum, a self-fence). Peers learn it
	// from the report: a holder keeps a group it could hand over to this
	// node until this node may start it (a planned move never stops the
	// source before the target may start).
	RuleStandby bool `json:"-"`
	// Starting marks the groups in Holds only because their start job is
	// still running (engine/jobs.go); a restart forgets it with the holds.
	Starting map[string]bool `json:"-"`
	// StopFailed maps group -> the last stop of it that failed here (or a
	// rollback after a failed start): the group stays held on this node,
	// since what the stop was to end may still run, until a stop succeeds.
	StopFailed map[string]StopFailure `json:"stop_failed,omitempty"`
	// Fenced maps node -> the time it was declared dead when this node
	// fenced it; a node is fenced once per death, not once per group.
	Fenced map[string]time.Time `json:"fenced,omitempty"`
	// BackupLast maps job -> the scheduled time of its last run (or skip).
	BackupLast map[string]time.Time `json:"backup_last,omitempty"`
	// BackupOK maps job -> when its newest successful run (on any node)
	// finished; a node whose own run failed earlier clears its alert.
	BackupOK map[string]time.Time `json:"backup_ok,omitempty"`
}

// StopFailure is a stop that failed: when, and why.
type StopFailure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// NewState returns an empty state.
func NewState(incarnation uint64) *State {
	return &State{Incarnation: incarnation, Holds: map[string]time.Time{}, Failed: map[string]time.Time{},
		RulePending: map[string]time.Time{}, BackupLast: map[string]time.Time{}, BackupOK: map[string]time.Time{}, Fenced: map[string]time.Time{},
		Operator: Operator{Moves: map[string]OperatorMove{}, Standby: map[string]OperatorFlag{}}}
}

// HeldGroups lists held groups sorted by name.
func (s *State) HeldGroups() []string {
	return slices.Sorted(maps.Keys(s.Holds))
}

// Operator is the set of operator requests. Every entry carries the time it
// was made; merging keeps the newest, so requests spread through heartbeats
// converge on every node whatever the order they arrive in.
type Operator struct {
	// Moves maps group -> the node an operator placed it on ("" = cleared).
	Moves map[string]OperatorMove `json:"moves,omitempty"`
	// Standby maps node -> standby flag.
	Standby map[string]OperatorFlag `json:"standby,omitempty"`
	// Cleanups maps group ("*": every group) -> when an operator cleared
	// its failures: each node forgets failures of the group recorded up to
	// then (Pacemaker's resource cleanup).
	Cleanups map[string]time.Time `json:"cleanups,omitempty"`
}

// OperatorMove is "run GROUP on NODE" from an operator.
type OperatorMove struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// OperatorFlag is an on/off request from an operator.
type OperatorFlag struct {
	On bool      `json:"on"`
	At time.Time `json:"at"`
}

// Merge folds other into o, keeping the newest entry of each key, and
// reports whether anything changed.
func (o *Operator) Merge(other Operator) bool {
	changed := false
	if o.Moves == nil {
		o.Moves = map[string]OperatorMove{}
	}
	if o.Standby == nil {
		o.Standby = map[string]OperatorFlag{}
	}
	for k, v := range other.Moves {
		if cur, ok := o.Moves[k]; !ok || v.At.After(cur.At) {
			o.Moves[k] = v
			changed = true
		}
	}
	for k, v := range other.Standby {
		if cur, ok := o.Standby[k]; !ok || v.At.After(cur.At) {
			o.Standby[k] = v
			changed = true
		}
	}
	for k, v := range other.Cleanups {
		if o.Cleanups == nil {
			o.Cleanups = map[string]time.Time{}
		}
		if cur, ok := o.Cleanups[k]; !ok || v.After(cur) {
			o.Cleanups[k] = v
			changed = true
		}
	}
	return changed
}

// Clone returns a deep copy.
func (o Operator) Clone() Operator {
	return Operator{Moves: maps.Clone(o.Moves), Standby: maps.Clone(o.Standby), Cleanups: maps.Clone(o.Cleanups)}
}
