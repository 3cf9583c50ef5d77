package simulate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

// Scenario is a timeline of events against a policy, plus expectations.
type Scenario struct {
	File     string
	Name     string
	Duration time.Duration
	Start    time.Time
	Seed     int64
	// Latency delays every heartbeat.
	Latency time.Duration
	// Boot lists the nodes up at time 0 (default: all).
	Boot   []string
	Events []Event
	Expect []Expectation
}

// Event is one scheduled change.
type Event struct {
	At   time.Duration
	Kind string
	Node string
	Path string
	// Peer narrows a link event on Node to the link between Node and Peer.
	Peer string
	// For is how long a pause lasts.
	For   time.Duration
	Group string
	Probe string
	OK    bool
	Value float64
	Text  string
	// Silent makes a failing probe's checks get no answer: each fails only
	// when it times out (a gateway that drops frames silently).
	Silent bool
	Pos    policy.Pos
}

// Expectation is a property the run must satisfy.
type Expectation struct {
	Kind  string
	Group string
	Node  string // "" with kind owner means "nobody"
	Name  string
	At    time.Duration
	End   time.Duration
	Count int
	Pos   policy.Pos
}

const scenarioKey = "harules.scenario"

// LoadScenario executes a scenario file.
func LoadScenario(ctx context.Context, path string, p *policy.Policy) (*Scenario, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	sc := &Scenario{File: path, Name: path, Duration: time.Minute, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Seed: 1}
	thread := &starlark.Thread{Name: "scenario " + path}
	thread.SetLocal(scenarioKey, sc)
	thread.SetMaxExecutionSteps(rules.MaxLoadSteps)
	if ctx.Done() != nil {
		context.AfterFunc(ctx, func() { thread.Cancel("cancelled") })
	}
	opts := &syntax.FileOptions{TopLevelControl: true, Set: true, While: true}
	if _, err := starlark.ExecFileOptions(opts, thread, path, src, scenarioUniverse(p)); err != nil {
		return nil, scenarioError(err, path)
	}
	for _, e := range sc.Events {
		if e.At > sc.Duration {
			return nil, rules.Errors{{Pos: e.Pos, Msg: fmt.Sprintf("event at %s is after the end of the scenario (duration %s): raise scenario(duration=...)", e.At, sc.Duration)}}
		}
	}
	return sc, nil
}

func scenarioError(err error, path string) error {
	var se syntax.Error
	var ee *starlark.EvalError
	switch {
	case errors.As(err, &se):
		return rules.Errors{{Pos: policy.Pos{File: se.Pos.Filename(), Line: int(se.Pos.Line), Col: int(se.Pos.Col)}, Msg: se.Msg}}
	case errors.As(err, &ee):
		pos := policy.Pos{File: path, Line: 1, Col: 1}
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if p := ee.CallStack[i].Pos; p.Filename() != "<builtin>" && p.Line > 0 {
				pos = policy.Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
				break
			}
		}
		return rules.Errors{{Pos: pos, Msg: ee.Msg}}
	}
	var re interface{ Error() string }
	if errors.As(err, &re) {
		return rules.Errors{{Pos: policy.Pos{File: path, Line: 1, Col: 1}, Msg: err.Error()}}
	}
	return err
}

func current(thread *starlark.Thread) *Scenario { return thread.Local(scenarioKey).(*Scenario) }

func pos(thread *starlark.Thread) policy.Pos {
	p := thread.CallFrame(1).Pos
	return policy.Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

type dur time.Duration

func (d *dur) Unpack(v starlark.Value) error {
	s, ok := v.(starlark.String)
	if !ok {
		return fmt.Errorf("want a time offset like \"10s\" or \"1h30m\", got %s", v.Type())
	}
	t, err := time.ParseDuration(string(s))
	if err != nil || t < 0 {
		return fmt.Errorf("want a time offset like \"10s\" or \"1h30m\", got %q", string(s))
	}
	*d = dur(t)
	return nil
}

// eventValue is an event built by crash(), link_down(), ... waiting for at().
type eventValue struct{ e Event }

func (v *eventValue) String() string        { return "<event " + v.e.Kind + ">" }
func (v *eventValue) Type() string          { return "event" }
func (v *eventValue) Freeze()               {}
func (v *eventValue) Truth() starlark.Bool  { return true }
func (v *eventValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: event") }

func scenarioUniverse(p *policy.Policy) starlark.StringDict {
	checkNode := func(name string) error {
		if p.Node(name) == nil {
			return fmt.Errorf("unknown node %q: the policy declares %s", name, strings.Join(p.NodeNames(), ", "))
		}
		return nil
	}
	checkPath := func(name string) error {
		if name != "" && p.Path(name) == nil {
			return fmt.Errorf("unknown heartbeat path %q", name)
		}
		return nil
	}
	checkGroup := func(name string) error {
		if p.Group(name) == nil {
			return fmt.Errorf("unknown group %q", name)
		}
		return nil
	}
	ev := func(name string, fn func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			e, err := fn(args, kwargs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			e.Kind, e.Pos = name, pos(thread)
			return &eventValue{e: e}, nil
		})
	}
	nodeEvent := func(name string) *starlark.Builtin {
		return ev(name, func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node string
			if err := starlark.UnpackPositionalArgs(name, args, kwargs, 1, &node); err != nil {
				return Event{}, err
			}
			return Event{Node: node}, checkNode(node)
		})
	}
	linkEvent := func(name string) *starlark.Builtin {
		return ev(name, func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var path, node, peer string
			if err := starlark.UnpackArgs(name, args, kwargs, "path?", &path, "node?", &node, "peer?", &peer); err != nil {
				return Event{}, err
			}
			for _, n := range []string{node, peer} {
				if n != "" {
					if err := checkNode(n); err != nil {
						return Event{}, err
					}
				}
			}
			if peer != "" && (node == "" || node == peer) {
				return Event{}, fmt.Errorf("peer = %q needs node = another node: the link between the two is cut", peer)
			}
			return Event{Path: path, Node: node, Peer: peer}, checkPath(path)
		})
	}
	expect := func(name string, fn func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			x, err := fn(args, kwargs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			x.Kind, x.Pos = name, pos(thread)
			sc := current(thread)
			sc.Expect = append(sc.Expect, x)
			return starlark.None, nil
		})
	}
	return starlark.StringDict{
		"scenario": starlark.NewBuiltin("scenario", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			sc := current(thread)
			var name, start string
			d, lat := dur(sc.Duration), dur(0)
			var boot *starlark.List
			seed := int(sc.Seed)
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name?", &name, "duration?", &d, "start?", &start,
				"seed?", &seed, "latency?", &lat, "boot?", &boot); err != nil {
				return nil, err
			}
			if name != "" {
				sc.Name = name
			}
			sc.Duration, sc.Seed, sc.Latency = time.Duration(d), int64(seed), time.Duration(lat)
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return nil, fmt.Errorf("scenario: start %q is not an RFC 3339 time like 2026-01-01T01:59:00Z", start)
				}
				sc.Start = t
			}
			if boot != nil {
				for i := 0; i < boot.Len(); i++ {
					s, ok := boot.Index(i).(starlark.String)
					if !ok || checkNode(string(s)) != nil {
						return nil, fmt.Errorf("scenario: boot: %s is not a node of the policy", boot.Index(i))
					}
					sc.Boot = append(sc.Boot, string(s))
				}
				if sc.Boot == nil {
					sc.Boot = []string{}
				}
			}
			return starlark.None, nil
		}),
		"at": starlark.NewBuiltin("at", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(args) < 2 || len(kwargs) > 0 {
				return nil, fmt.Errorf("at: want at(\"10s\", event, ...), e.g. at(\"10s\", crash(\"node1\"))")
			}
			var t dur
			if err := t.Unpack(args[0]); err != nil {
				return nil, fmt.Errorf("at: %w", err)
			}
			sc := current(thread)
			for _, a := range args[1:] {
				e, ok := a.(*eventValue)
				if !ok {
					return nil, fmt.Errorf("at: want events such as crash(\"node1\") or link_down(\"lan\"), got %s", a.Type())
				}
				x := e.e
				x.At = time.Duration(t)
				sc.Events = append(sc.Events, x)
			}
			return starlark.None, nil
		}),
		"crash": nodeEvent("crash"),
		"pause": ev("pause", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node string
			var d dur
			if err := starlark.UnpackArgs("pause", args, kwargs, "node", &node, "duration", &d); err != nil {
				return Event{}, err
			}
			if d <= 0 {
				return Event{}, fmt.Errorf("duration must be positive, got %s", time.Duration(d))
			}
			return Event{Node: node, For: time.Duration(d)}, checkNode(node)
		}),
		"boot":      nodeEvent("boot"),
		"link_down": linkEvent("link_down"),
		"link_up":   linkEvent("link_up"),
		"probe": ev("probe", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var name, node, text string
			ok, silent := false, false
			var value starlark.Float
			if err := starlark.UnpackArgs("probe", args, kwargs, "name", &name, "node", &node, "ok", &ok, "value?", &value, "text?", &text, "silent?", &silent); err != nil {
				return Event{}, err
			}
			if p.Probe(name) == nil {
				return Event{}, fmt.Errorf("unknown probe %q", name)
			}
			return Event{Probe: name, Node: node, OK: ok, Value: float64(value), Text: text, Silent: silent}, checkNode(node)
		}),
		"operator_move": ev("operator_move", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var group, node string
			if err := starlark.UnpackArgs("operator_move", args, kwargs, "group", &group, "node", &node); err != nil {
				return Event{}, err
			}
			if err := checkGroup(group); err != nil {
				return Event{}, err
			}
			return Event{Group: group, Node: node}, checkNode(node)
		}),
		"operator_cleanup": ev("operator_cleanup", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var group string
			if err := starlark.UnpackArgs("operator_cleanup", args, kwargs, "group", &group); err != nil {
				return Event{}, err
			}
			if group == "*" {
				return Event{Group: group}, nil
			}
			return Event{Group: group}, checkGroup(group)
		}),
		"operator_standby": nodeEvent("operator_standby"),
		"operator_online":  nodeEvent("operator_online"),
		"maintenance":      nodeEvent("maintenance"),
		"resource_fail": ev("resource_fail", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node, group, resource string
			if err := starlark.UnpackArgs("resource_fail", args, kwargs, "node", &node, "group", &group, "resource?", &resource); err != nil {
				return Event{}, err
			}
			if err := checkGroup(group); err != nil {
				return Event{}, err
			}
			return Event{Node: node, Group: group, Text: resource}, checkNode(node)
		}),
		"fail_fence": ev("fail_fence", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node string
			ok := false
			if err := starlark.UnpackArgs("fail_fence", args, kwargs, "node", &node, "fixed?", &ok); err != nil {
				return Event{}, err
			}
			if len(p.Cluster.Fence) == 0 {
				return Event{}, fmt.Errorf("the policy has no fence command (cluster(fence=...)), so there is nothing to fail")
			}
			return Event{Node: node, OK: ok}, checkNode(node)
		}),
		"fail_starts": ev("fail_starts", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node, group string
			ok := false
			if err := starlark.UnpackArgs("fail_starts", args, kwargs, "node", &node, "group", &group, "fixed?", &ok); err != nil {
				return Event{}, err
			}
			if err := checkGroup(group); err != nil {
				return Event{}, err
			}
			return Event{Node: node, Group: group, OK: ok}, checkNode(node)
		}),
		"fail_stops": ev("fail_stops", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node, group string
			ok := false
			if err := starlark.UnpackArgs("fail_stops", args, kwargs, "node", &node, "group", &group, "fixed?", &ok); err != nil {
				return Event{}, err
			}
			if err := checkGroup(group); err != nil {
				return Event{}, err
			}
			return Event{Node: node, Group: group, OK: ok}, checkNode(node)
		}),
		"slow_actions": ev("slow_actions", func(args starlark.Tuple, kwargs []starlark.Tuple) (Event, error) {
			var node, group, op string
			var d dur
			if err := starlark.UnpackArgs("slow_actions", args, kwargs, "node", &node, "group", &group, "duration", &d, "op?", &op); err != nil {
				return Event{}, err
			}
			if err := checkGroup(group); err != nil {
				return Event{}, err
			}
			if op != "" && op != "start" && op != "stop" {
				return Event{}, fmt.Errorf("op: want \"start\", \"stop\" or \"\" (both), got %q", op)
			}
			if d < 0 {
				return Event{}, fmt.Errorf("duration: must not be negative")
			}
			return Event{Node: node, Group: group, For: time.Duration(d), Text: op}, checkNode(node)
		}),
		"expect_owner": expect("expect_owner", func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error) {
			var group string
			var node starlark.Value
			var at dur
			if err := starlark.UnpackArgs("expect_owner", args, kwargs, "group", &group, "node", &node, "at", &at); err != nil {
				return Expectation{}, err
			}
			x := Expectation{Group: group, At: time.Duration(at)}
			if s, ok := node.(starlark.String); ok {
				x.Node = string(s)
				if err := checkNode(x.Node); err != nil {
					return x, err
				}
			} else if node != starlark.None {
				return x, fmt.Errorf("node: want a node name or None (nobody), got %s", node.Type())
			}
			return x, checkGroup(group)
		}),
		"expect_single_owner": expect("expect_single_owner", func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error) {
			var group string
			if err := starlark.UnpackArgs("expect_single_owner", args, kwargs, "group?", &group); err != nil {
				return Expectation{}, err
			}
			if group != "" {
				return Expectation{Group: group}, checkGroup(group)
			}
			return Expectation{}, nil
		}),
		"expect_no_actions": expect("expect_no_actions", func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error) {
			var start, end dur
			var node string
			if err := starlark.UnpackArgs("expect_no_actions", args, kwargs, "start", &start, "end", &end, "node?", &node); err != nil {
				return Expectation{}, err
			}
			if end < start {
				return Expectation{}, fmt.Errorf("end %s is before start %s", time.Duration(end), time.Duration(start))
			}
			if node != "" {
				if err := checkNode(node); err != nil {
					return Expectation{}, err
				}
			}
			return Expectation{At: time.Duration(start), End: time.Duration(end), Node: node}, nil
		}),
		"expect_alert": expect("expect_alert", func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error) {
			var name, node string
			at := dur(-1)
			if err := starlark.UnpackArgs("expect_alert", args, kwargs, "name", &name, "node?", &node, "at?", &at); err != nil {
				return Expectation{}, err
			}
			return Expectation{Name: name, Node: node, At: time.Duration(at)}, nil
		}),
		"expect_backup": expect("expect_backup", func(args starlark.Tuple, kwargs []starlark.Tuple) (Expectation, error) {
			var job, node string
			count := -1
			if err := starlark.UnpackArgs("expect_backup", args, kwargs, "job", &job, "node?", &node, "count?", &count); err != nil {
				return Expectation{}, err
			}
			found := false
			for _, b := range p.Backups {
				found = found || b.Name == job
			}
			if !found {
				return Expectation{}, fmt.Errorf("unknown backup job %q", job)
			}
			return Expectation{Name: job, Node: node, Count: count}, nil
		}),
	}
}
