// Package facts defines what one node knows about the cluster at one moment:
// which peers it hears on which heartbeat path, what they report holding,
// probe results, and operator requests. Facts are the only input of a
// decision besides the policy, the node's own state and the time.
//
// The live agent and the simulator both build Facts with engine.View, so the
// rules see the same shape in production and in a scenario.
package facts

import (
	"slices"
	"time"
)

// Node states as seen from the evaluating node.
const (
	Alive   = "alive"
	Dead    = "dead"
	Unknown = "unknown" // not heard from since this node started; within the startup grace
)

// Probe states.
const (
	ProbeOK      = "ok"
	ProbeFailing = "failing"
	ProbeUnknown = "unknown"
)

// Facts is one node's view of the cluster.
type Facts struct {
	// Self is the evaluating node.
	Self string
	Now  time.Time
	// Nodes holds every node of the policy, in policy order.
	Nodes []*Node
	// Groups holds every group of the policy, in policy order.
	Groups []*Group
	// Probes maps probe name -> node name -> result.
	Probes map[string]map[string]*Probe
	// Boot is when the evaluating node started.
	Boot time.Time
	// Heartbeats and ProbeSpecs are the policy's timing, for rules that
	// derive their delays from it (stdlib takeover_delay) instead of
	// repeating numbers by hand. Shared between decisions: read only.
	Heartbeats []HeartbeatSpec
	ProbeSpecs map[string]ProbeSpec

	nodeIndex  map[string]*Node
	groupIndex map[string]*Group
}

// Node is what the evaluating node knows about one node (itself included).
type Node struct {
	Name  string
	Self  bool
	State string // Alive, Dead or Unknown
	// Since is when State last changed.
	Since   time.Time
	Standby bool
	// RuleStandby (peers only): a rule of the node itself puts it in
	// standby now, as its last report said.
	RuleStandby bool
	Maintenance bool
	Paths       []*Path
	// Holds lists the groups the node reports holding (for a dead node: what
	// it last reported).
	Holds []string
	// Starting lists those of Holds whose start is still running there:
	// held for safety (they may be coming up), not yet serving.
	Starting []string
	// Hears lists the peers the node considers alive: for this node its own
	// view, for a peer what its last report said (nil when unknown: no
	// report yet, or an agent from before reports carried it). Quorum rules
	// use it to tell "dead to me" from "dead to the majority".
	Hears       []string
	Incarnation uint64
	PolicyHash  string
}

// Alive reports whether the node is considered alive.
func (n *Node) Alive() bool { return n.State == Alive }

// HeartbeatSpec is the timing of one heartbeat path.
type HeartbeatSpec struct {
	Name     string
	Interval time.Duration
	Misses   int
}

// ProbeSpec is the timing of one probe.
type ProbeSpec struct {
	Every, Timeout time.Duration
	Rise, Fall     int
}

// Path is the state of one heartbeat path to a peer.
type Path struct {
	Name string
	// Interval is the path's heartbeat interval.
	Interval time.Duration
	Up       bool
	// Known is false until a first heartbeat arrived on the path.
	Known bool
	// Missed counts whole heartbeat intervals since the last valid heartbeat.
	Missed   int
	LastSeen time.Time
	Since    time.Time
}

// Group is what the evaluating node knows about one group.
type Group struct {
	Name string
	// Holders lists the nodes believed to hold the group, in policy node
	// order; a dead node's last report is included (see Node.State).
	Holders []string
	// Starting lists those of Holders whose start is still running.
	Starting []string
	// Since is when the holder set last changed in this node's view.
	Since time.Time
	// FailedOn maps node -> when a resource of the group last failed there.
	FailedOn map[string]time.Time
}

// Probe is one probe's debounced result on one node.
type Probe struct {
	Probe string
	Node  string
	State string
	Since time.Time
	Value float64
	Text  string
}

// Index builds the lookup tables; call after filling Nodes and Groups.
func (f *Facts) Index() {
	f.nodeIndex = make(map[string]*Node, len(f.Nodes))
	for _, n := range f.Nodes {
		f.nodeIndex[n.Name] = n
	}
	f.groupIndex = make(map[string]*Group, len(f.Groups))
	for _, g := range f.Groups {
		f.groupIndex[g.Name] = g
	}
}

// Node returns the named node, or nil.
func (f *Facts) Node(name string) *Node { return f.nodeIndex[name] }

// Group returns the named group, or nil.
func (f *Facts) Group(name string) *Group { return f.groupIndex[name] }

// Probe returns a probe's result on a node, or nil when unknown.
func (f *Facts) Probe(probe, node string) *Probe {
	return f.Probes[probe][node]
}

// Holds reports whether node is among the group's holders (what it
// reports holding; for a dead node, what it last reported).
func (f *Facts) Holds(node, group string) bool {
	g := f.groupIndex[group]
	return g != nil && slices.Contains(g.Holders, node)
}

// Owner returns the first alive holder of a group whose start is not still
// running, else the first alive holder, or "". A node whose start is in
// flight holds the group for safety, but it must not win the group from a
// node that runs it already (its start may still fail or be refused).
func (f *Facts) Owner(group string) string {
	g := f.groupIndex[group]
	if g == nil {
		return ""
	}
	first := ""
	for _, h := range g.Holders {
		if n := f.nodeIndex[h]; n != nil && n.State != Dead {
			if !slices.Contains(g.Starting, h) {
				return h
			}
			if first == "" {
				first = h
			}
		}
	}
	return first
}
