package builtins

import (
	"fmt"
	"time"

	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"github.com/harules/harules/engine/facts"
)

// FactsValue is the Starlark view of facts passed to rules as `f`.
//
//	f.self            name of the evaluating node
//	f.now             current (possibly simulated) time, a time.time
//	f.nodes           dict: node name -> node
//	f.peers           list of the other nodes
//	f.groups          dict: group name -> group
//	f.node(name)      a node
//	f.owner(group)    the node holding the group (alive or unknown), or None
//	f.probe(name, node=f.self)  the probe's result on that node, or None if unknown
//	f.probe_spec(name)  the probe's timing: every, timeout, rise, fall
//	f.heartbeats      dict: path name -> interval, misses, detection_time
//
// node: name, self, alive, state ("alive"/"dead"/"unknown"), since,
// up_for / down_for (durations, zero when not in that state), standby,
// maintenance, holds (list of groups), paths (dict: path -> path).
// path: name, up, known, missed (whole intervals without a heartbeat), last_seen_ago.
// group: name, owner, holders, since, held_for, failed_on (list of nodes).
// probe: name, node, ok, state ("ok"/"failing"/"unknown"), since, duration,
// failing_for, ok_for, value, text.
//
// The durations that grow with time (up_for, down_for, last_seen_ago,
// held_for, duration, failing_for, ok_for) record in the facts' Clock the
// thresholds they are compared with (elapsed.go).
type FactsValue struct {
	f      *facts.Facts
	clk    *Clock
	nodes  *starlark.Dict
	groups *starlark.Dict
}

var _ starlark.HasAttrs = (*FactsValue)(nil)

// NewFactsValue wraps facts for rules.
func NewFactsValue(f *facts.Facts) *FactsValue { return &FactsValue{f: f, clk: NewClock(f.Now)} }

// Clock returns what the rules evaluated against these facts did with the
// durations that grow with time (see Clock).
func (v *FactsValue) Clock() *Clock { return v.clk }

func (v *FactsValue) String() string {
	return fmt.Sprintf("<facts of %s at %s>", v.f.Self, v.f.Now.Format(time.RFC3339Nano))
}
func (v *FactsValue) Type() string          { return "facts" }
func (v *FactsValue) Freeze()               {}
func (v *FactsValue) Truth() starlark.Bool  { return starlark.True }
func (v *FactsValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: facts") }
func (v *FactsValue) AttrNames() []string {
	return []string{"groups", "heartbeats", "node", "nodes", "now", "owner", "peers", "probe", "probe_spec", "self"}
}

func (v *FactsValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "self":
		return starlark.String(v.f.Self), nil
	case "now":
		// What a rule compares f.now with is unknown here: decide again
		// within a heartbeat interval.
		v.clk.untracked = true
		return starlarktime.Time(v.f.Now), nil
	case "heartbeats":
		d := starlark.NewDict(len(v.f.Heartbeats))
		for _, h := range v.f.Heartbeats {
			_ = d.SetKey(starlark.String(h.Name), newObject("heartbeat_spec", "<heartbeat "+h.Name+">", h, starlark.StringDict{
				"name":           starlark.String(h.Name),
				"interval":       starlarktime.Duration(h.Interval),
				"misses":         starlark.MakeInt(h.Misses),
				"detection_time": starlarktime.Duration(h.Interval * time.Duration(h.Misses)),
			}))
		}
		d.Freeze()
		return d, nil
	case "probe_spec":
		return starlark.NewBuiltin("probe_spec", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
				return nil, err
			}
			ps, ok := v.f.ProbeSpecs[name]
			if !ok {
				return nil, fmt.Errorf("f.probe_spec: no probe %q in the policy", name)
			}
			return newObject("probe_spec", "<probe spec "+name+">", ps, starlark.StringDict{
				"name":    starlark.String(name),
				"every":   starlarktime.Duration(ps.Every),
				"timeout": starlarktime.Duration(ps.Timeout),
				"rise":    starlark.MakeInt(ps.Rise),
				"fall":    starlark.MakeInt(ps.Fall),
			}), nil
		}), nil
	case "nodes":
		return v.nodeDict(), nil
	case "peers":
		var peers []starlark.Value
		for _, n := range v.f.Nodes {
			if !n.Self {
				peers = append(peers, v.nodeValue(n))
			}
		}
		l := starlark.NewList(peers)
		l.Freeze()
		return l, nil
	case "groups":
		return v.groupDict(), nil
	case "node":
		return starlark.NewBuiltin("node", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var n nodeRef
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &n); err != nil {
				return nil, err
			}
			nf := v.f.Node(string(n))
			if nf == nil {
				return nil, fmt.Errorf("f.node: no node %q in the policy", n)
			}
			return v.nodeValue(nf), nil
		}), nil
	case "owner":
		return starlark.NewBuiltin("owner", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var g groupRef
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &g); err != nil {
				return nil, err
			}
			if v.f.Group(string(g)) == nil {
				return nil, fmt.Errorf("f.owner: no group %q in the policy", g)
			}
			if o := v.f.Owner(string(g)); o != "" {
				return starlark.String(o), nil
			}
			return starlark.None, nil
		}), nil
	case "probe":
		return starlark.NewBuiltin("probe", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name string
			var node starlark.Value = starlark.None
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "node?", &node); err != nil {
				return nil, err
			}
			if _, ok := v.f.Probes[name]; !ok {
				return nil, fmt.Errorf("f.probe: no probe %q in the policy", name)
			}
			nodeName := v.f.Self
			if node != starlark.None {
				s, err := nameOf(node, "node")
				if err != nil {
					return nil, fmt.Errorf("f.probe: node: %w", err)
				}
				nodeName = s
			}
			p := v.f.Probe(name, nodeName)
			if p == nil {
				return starlark.None, nil
			}
			return &probeValue{p: p, clk: v.clk}, nil
		}), nil
	}
	return nil, nil
}

func (v *FactsValue) nodeDict() *starlark.Dict {
	if v.nodes == nil {
		v.nodes = starlark.NewDict(len(v.f.Nodes))
		for _, n := range v.f.Nodes {
			_ = v.nodes.SetKey(starlark.String(n.Name), v.nodeValue(n))
		}
		v.nodes.Freeze()
	}
	return v.nodes
}

func (v *FactsValue) groupDict() *starlark.Dict {
	if v.groups == nil {
		v.groups = starlark.NewDict(len(v.f.Groups))
		for _, g := range v.f.Groups {
			_ = v.groups.SetKey(starlark.String(g.Name), &groupValue{g: g, f: v.f, clk: v.clk})
		}
		v.groups.Freeze()
	}
	return v.groups
}

func (v *FactsValue) nodeValue(n *facts.Node) starlark.Value { return &nodeValue{n: n, clk: v.clk} }

// readOnly provides the boilerplate of the fact values.
type readOnly struct{}

func (readOnly) Freeze()               {}
func (readOnly) Truth() starlark.Bool  { return starlark.True }
func (readOnly) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable") }

type nodeValue struct {
	readOnly
	n   *facts.Node
	clk *Clock
}

func (v *nodeValue) String() string { return fmt.Sprintf("<node %s %s>", v.n.Name, v.n.State) }
func (v *nodeValue) Type() string   { return "node_facts" }
func (v *nodeValue) AttrNames() []string {
	return []string{"alive", "down_for", "hears", "holds", "maintenance", "name", "paths", "self", "since", "standby", "state", "up_for"}
}
func (v *nodeValue) Attr(name string) (starlark.Value, error) {
	n := v.n
	switch name {
	case "name":
		return starlark.String(n.Name), nil
	case "self":
		return starlark.Bool(n.Self), nil
	case "alive":
		return starlark.Bool(n.Alive()), nil
	case "state":
		return starlark.String(n.State), nil
	case "since":
		return starlarktime.Time(n.Since), nil
	case "up_for":
		return v.clk.growing(n.Alive(), n.Since), nil
	case "down_for":
		return v.clk.growing(n.State == facts.Dead, n.Since), nil
	case "standby":
		return starlark.Bool(n.Standby), nil
	case "maintenance":
		return starlark.Bool(n.Maintenance), nil
	case "holds":
		return stringsList(n.Holds), nil
	case "hears":
		if n.Hears == nil {
			return starlark.None, nil
		}
		return stringsList(n.Hears), nil
	case "paths":
		d := starlark.NewDict(len(n.Paths))
		for _, p := range n.Paths {
			_ = d.SetKey(starlark.String(p.Name), &pathValue{p: p, clk: v.clk})
		}
		d.Freeze()
		return d, nil
	}
	return nil, nil
}

type pathValue struct {
	readOnly
	p   *facts.Path
	clk *Clock
}

func (v *pathValue) String() string { return fmt.Sprintf("<path %s up=%t>", v.p.Name, v.p.Up) }
func (v *pathValue) Type() string   { return "path_facts" }
func (v *pathValue) AttrNames() []string {
	return []string{"known", "last_seen_ago", "missed", "name", "up"}
}
func (v *pathValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(v.p.Name), nil
	case "up":
		return starlark.Bool(v.p.Up), nil
	case "known":
		return starlark.Bool(v.p.Known), nil
	case "missed":
		// The count grows by one every interval without a heartbeat. Once
		// a heartbeat is late, decide again when it grows: a threshold on
		// it then takes effect on time. (While heartbeats arrive on time
		// the count is 0 and no wake-up is scheduled for it.)
		if v.p.Missed > 0 && v.p.Interval > 0 {
			ref := v.p.LastSeen
			if !v.p.Known {
				ref = v.clk.now.Add(-time.Duration(v.p.Missed) * v.p.Interval)
			}
			v.clk.wakeAt(ref.Add(time.Duration(v.p.Missed+1) * v.p.Interval))
		}
		return starlark.MakeInt(v.p.Missed), nil
	case "last_seen_ago":
		return v.clk.growing(v.p.Known, v.p.LastSeen), nil
	}
	return nil, nil
}

type groupValue struct {
	readOnly
	g   *facts.Group
	f   *facts.Facts
	clk *Clock
}

func (v *groupValue) String() string { return fmt.Sprintf("<group %s>", v.g.Name) }
func (v *groupValue) Type() string   { return "group_facts" }
func (v *groupValue) AttrNames() []string {
	return []string{"failed_on", "held_for", "holders", "name", "owner", "since"}
}
func (v *groupValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(v.g.Name), nil
	case "owner":
		if o := v.f.Owner(v.g.Name); o != "" {
			return starlark.String(o), nil
		}
		return starlark.None, nil
	case "holders":
		return stringsList(v.g.Holders), nil
	case "since":
		return starlarktime.Time(v.g.Since), nil
	case "held_for":
		// Since is only known for groups this node holds; a peer's group
		// would otherwise read as held since year 1.
		return v.clk.growing(len(v.g.Holders) > 0 && !v.g.Since.IsZero(), v.g.Since), nil
	case "failed_on":
		var nodes []string
		for _, n := range v.f.Nodes {
			if _, ok := v.g.FailedOn[n.Name]; ok {
				nodes = append(nodes, n.Name)
			}
		}
		return stringsList(nodes), nil
	}
	return nil, nil
}

type probeValue struct {
	readOnly
	p   *facts.Probe
	clk *Clock
}

func (v *probeValue) String() string {
	return fmt.Sprintf("<probe %s on %s: %s>", v.p.Probe, v.p.Node, v.p.State)
}
func (v *probeValue) Type() string { return "probe_facts" }
func (v *probeValue) AttrNames() []string {
	return []string{"duration", "failing_for", "name", "node", "ok", "ok_for", "since", "state", "text", "value"}
}
func (v *probeValue) Attr(name string) (starlark.Value, error) {
	p := v.p
	switch name {
	case "name":
		return starlark.String(p.Probe), nil
	case "node":
		return starlark.String(p.Node), nil
	case "ok":
		return starlark.Bool(p.State == facts.ProbeOK), nil
	case "state":
		return starlark.String(p.State), nil
	case "since":
		return starlarktime.Time(p.Since), nil
	case "duration":
		return v.clk.growing(true, p.Since), nil
	case "failing_for":
		return v.clk.growing(p.State == facts.ProbeFailing, p.Since), nil
	case "ok_for":
		return v.clk.growing(p.State == facts.ProbeOK, p.Since), nil
	case "value":
		return starlark.Float(p.Value), nil
	case "text":
		return starlark.String(p.Text), nil
	}
	return nil, nil
}

func stringsList(ss []string) *starlark.List {
	vals := make([]starlark.Value, len(ss))
	for i, s := range ss {
		vals[i] = starlark.String(s)
	}
	l := starlark.NewList(vals)
	l.Freeze()
	return l
}
