// Package policy holds the compiled, typed form of a harules policy: the
// cluster, its nodes, heartbeat paths, probes, groups of resources, placement,
// rules and backup jobs, and the decisions rules return.
//
// A Policy is produced by package rules from Starlark files and is read-only
// afterwards: the engine, the simulator and the agent all read the same value.
// Keeping it free of I/O keeps deciding a pure function.
package policy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/robfig/cron/v3"
	"go.starlark.net/starlark"
)

// Pos is a place in a policy file, printed as file:line:col.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.File == "" {
		return "<builtin>"
	}
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Policy is a whole compiled policy.
type Policy struct {
	Cluster Cluster
	Nodes   []*Node
	Paths   []*HeartbeatPath
	Probes  []*Probe
	Groups  []*Group
	Rules   []*Rule
	Backups []*Backup
	// Notifiers send events (failovers, paths down, failed backups...) to
	// webhooks and commands.
	Notifiers []*Notifier
	// Hash identifies the policy source (SHA-256 over every loaded file),
	// so two agents can tell whether they run the same policy.
	Hash string
	// Files lists the loaded files, the main policy first.
	Files []string

	nodeIndex  map[string]int
	groupIndex map[string]int
	probeIndex map[string]int
	pathIndex  map[string]int
}

// Cluster holds cluster-wide settings.
type Cluster struct {
	Name       string
	SecretFile string
	// Reevaluate is how often a node re-runs its decision even when no fact
	// changed, so time-based rules (for_ durations, failback delays) fire.
	Reevaluate time.Duration
	// StartupGrace is how long a booting node waits to hear from its peers
	// before it may start groups no peer is known to hold. Zero means the
	// longest heartbeat detection time (interval x misses).
	StartupGrace time.Duration
	// FailureTimeout is how long a node stays ineligible for a group after
	// one of the group's resources failed to start or failed its monitor.
	FailureTimeout time.Duration
	// Fence is the fencing command (argv). Before a node takes over from a
	// peer declared dead, it runs Fence with the peer's name appended (and
	// HARULES_FENCE_NODE in the environment); the takeover waits until the
	// command succeeds. Empty means no fencing.
	Fence []string
	// FenceTimeout bounds one run of the fencing command.
	FenceTimeout time.Duration
	Pos          Pos
}

// Node is one machine of the cluster.
type Node struct {
	Name    string
	Address netip.Addr
	// Addresses holds per-path addresses (path name -> address) for paths
	// that do not use Address.
	Addresses map[string]netip.Addr
	// Capacity bounds the summed load of the groups the node may run;
	// zero means unlimited.
	Capacity int
	Pos      Pos
}

// AddressOn returns the node's address for a heartbeat path.
func (n *Node) AddressOn(path string) netip.Addr {
	if a, ok := n.Addresses[path]; ok {
		return a
	}
	return n.Address
}

// HeartbeatPath is one independent way nodes hear each other.
type HeartbeatPath struct {
	Name     string
	Kind     string // "udp" or "disk"
	Interval time.Duration
	// Misses is how many consecutive intervals without a valid heartbeat
	// mark the path down.
	Misses int
	Jitter time.Duration
	Port   int
	Device string // for kind "disk"
	Pos    Pos
}

// DetectionTime is how long after the last heartbeat the path is declared down.
func (h *HeartbeatPath) DetectionTime() time.Duration {
	return time.Duration(h.Misses) * h.Interval
}

// Check is a probe's health test declaration. Params are the constructor's
// arguments as strings, kept generic so the live probe package and the
// simulator can both read them.
type Check struct {
	Kind   string
	Params map[string]string
}

func (c Check) String() string { return c.Kind }

// Probe is a periodic health test whose results become facts.
type Probe struct {
	Name    string
	Check   Check
	Every   time.Duration
	Timeout time.Duration
	Rise    int
	Fall    int
	// Nodes restricts the nodes the probe runs on; empty means all.
	Nodes []string
	Pos   Pos
}

// Resource kinds.
const (
	KindVIP      = "vip"
	KindDisk     = "disk"
	KindService  = "service"
	KindDatabase = "database"
)

// Resource is one thing a group starts and stops.
type Resource struct {
	Kind string
	Name string
	// Params are the declaration's arguments as strings (address, interface,
	// device, commands...). Executors interpret them.
	Params map[string]string
	Pos    Pos
}

// ID names the resource inside its group, e.g. "vip:web-ip".
func (r *Resource) ID() string { return r.Kind + ":" + r.Name }

// Group is a set of resources that run together on one node.
type Group struct {
	Name      string
	Resources []*Resource
	Placement Placement
	Pos       Pos
}

// Failback values.
const (
	FailbackManual = "manual"
	FailbackAuto   = "auto"
)

// Placement says where a group may run and which node it prefers. The
// stdlib's active_standby and active_active build it; operators may build
// their own with the placement() primitive.
type Placement struct {
	// Kind is a label for humans ("active_standby", "active_active", ...).
	Kind string
	// Nodes are the candidate nodes in order of preference (ties go to the
	// earlier node). Empty means every node, in declaration order.
	Nodes []string
	// Scores add to a node's score for this group.
	Scores map[string]int
	// Stickiness is added to the score of the node currently holding the group.
	Stickiness int
	// Failback is "manual" (never move back by itself) or "auto" (move back to
	// the best-scoring node once it has been up for FailbackDelay).
	Failback      string
	FailbackDelay time.Duration
	// Priority orders groups when capacity is short: higher goes first, the
	// lowest are shed.
	Priority int
	// Weight is what the group costs against a node's Capacity.
	Weight int
	// Score, when set, is a Starlark function score(facts, group) -> dict of
	// node -> int added to the scores on every decision.
	Score starlark.Callable
	Pos   Pos
}

// Rule is an operator-written rule over facts.
type Rule struct {
	Name string
	// When is called with the facts; it returns a bool (then Then gives the
	// decisions) or decisions directly (a decision, a list, or None).
	When starlark.Callable
	// Then is a decision, a list of decisions, or a function of the facts
	// returning them. Nil when When returns decisions itself.
	Then starlark.Value
	// For is how long When must hold continuously before the rule fires
	// (Prometheus' "for").
	For time.Duration
	Pos Pos
}

// Backup is a scheduled backup job.
type Backup struct {
	Name     string
	Schedule string
	Sched    cron.Schedule
	Location *time.Location
	// Group binds the job to a group: it runs on the node holding the group.
	// Empty means it runs on every node.
	Group string
	Kind  string
	// CatchUp runs a job once when its scheduled time was missed (no node
	// held the group then).
	CatchUp bool
	Params  map[string]string
	Pos     Pos
}

// Index builds the lookup tables. rules calls it after loading.
func (p *Policy) Index() {
	p.nodeIndex = make(map[string]int, len(p.Nodes))
	for i, n := range p.Nodes {
		p.nodeIndex[n.Name] = i
	}
	p.groupIndex = make(map[string]int, len(p.Groups))
	for i, g := range p.Groups {
		p.groupIndex[g.Name] = i
	}
	p.probeIndex = make(map[string]int, len(p.Probes))
	for i, pr := range p.Probes {
		p.probeIndex[pr.Name] = i
	}
	p.pathIndex = make(map[string]int, len(p.Paths))
	for i, h := range p.Paths {
		p.pathIndex[h.Name] = i
	}
}

// Node returns the node with that name, or nil.
func (p *Policy) Node(name string) *Node {
	if i, ok := p.nodeIndex[name]; ok {
		return p.Nodes[i]
	}
	return nil
}

// NodeOrder returns the declaration index of a node (-1 if unknown).
func (p *Policy) NodeOrder(name string) int {
	if i, ok := p.nodeIndex[name]; ok {
		return i
	}
	return -1
}

// Group returns the group with that name, or nil.
func (p *Policy) Group(name string) *Group {
	if i, ok := p.groupIndex[name]; ok {
		return p.Groups[i]
	}
	return nil
}

// Probe returns the probe with that name, or nil.
func (p *Policy) Probe(name string) *Probe {
	if i, ok := p.probeIndex[name]; ok {
		return p.Probes[i]
	}
	return nil
}

// Path returns the heartbeat path with that name, or nil.
func (p *Policy) Path(name string) *HeartbeatPath {
	if i, ok := p.pathIndex[name]; ok {
		return p.Paths[i]
	}
	return nil
}

// DetectionTime is the longest heartbeat detection time over all paths.
func (p *Policy) DetectionTime() time.Duration {
	var d time.Duration
	for _, h := range p.Paths {
		if t := h.DetectionTime(); t > d {
			d = t
		}
	}
	return d
}

// StartupGrace is how long a booting node waits for its peers.
func (p *Policy) StartupGrace() time.Duration {
	if p.Cluster.StartupGrace > 0 {
		return p.Cluster.StartupGrace
	}
	return p.DetectionTime()
}

// NodeNames lists the nodes in declaration order.
func (p *Policy) NodeNames() []string {
	out := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = n.Name
	}
	return out
}

// GroupNames lists the groups in declaration order.
func (p *Policy) GroupNames() []string {
	out := make([]string, len(p.Groups))
	for i, g := range p.Groups {
		out[i] = g.Name
	}
	return out
}

// CandidateNodes returns the group's candidate nodes in preference order.
func (p *Policy) CandidateNodes(g *Group) []string {
	if len(g.Placement.Nodes) > 0 {
		return g.Placement.Nodes
	}
	return p.NodeNames()
}
