package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/harules/harules/policy"
)

// Decisions returns the decision constructors rules use.
func Decisions() starlark.StringDict {
	return starlark.StringDict{
		"move":        starlark.NewBuiltin("move", decMove),
		"ban":         starlark.NewBuiltin("ban", decBan),
		"prefer":      starlark.NewBuiltin("prefer", decPrefer),
		"no_takeover": starlark.NewBuiltin("no_takeover", decNoTakeover),
		"stop":        starlark.NewBuiltin("stop", decStop),
		"standby":     starlark.NewBuiltin("standby", decStandby),
		"alert":       starlark.NewBuiltin("alert", decAlert),
	}
}

func decisionValue(d policy.Decision) starlark.Value {
	return newObject("decision", d.String(), d, starlark.StringDict{
		"kind": starlark.String(d.Kind), "group": starlark.String(d.Group), "node": starlark.String(d.Node)})
}

func decMove(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var g groupRef
	var to, away nodeRef
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group", &g, "to?", &to, "away_from?", &away, "reason?", &reason); err != nil {
		return nil, err
	}
	if (to == "") == (away == "") {
		return nil, fmt.Errorf("move: give exactly one of to=NODE or away_from=NODE")
	}
	return decisionValue(policy.Decision{Kind: policy.Move, Group: string(g), Node: string(to), AwayFrom: string(away), Message: reason}), nil
}

func decBan(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var g groupRef
	var n nodeRef
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group", &g, "node", &n, "reason?", &reason); err != nil {
		return nil, err
	}
	return decisionValue(policy.Decision{Kind: policy.Ban, Group: string(g), Node: string(n), Message: reason}), nil
}

func decPrefer(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var g groupRef
	var n nodeRef
	var score int
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group", &g, "node", &n, "score", &score, "reason?", &reason); err != nil {
		return nil, err
	}
	return decisionValue(policy.Decision{Kind: policy.Prefer, Group: string(g), Node: string(n), Score: score, Message: reason}), nil
}

func decNoTakeover(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	g := groupRef(policy.AllGroups)
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group?", &g, "reason?", &reason); err != nil {
		return nil, err
	}
	return decisionValue(policy.Decision{Kind: policy.NoTakeover, Group: string(g), Message: reason}), nil
}

func decStop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var g groupRef
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "group", &g, "reason?", &reason); err != nil {
		return nil, err
	}
	return decisionValue(policy.Decision{Kind: policy.Stop, Group: string(g), Message: reason}), nil
}

func decStandby(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var n nodeRef
	var reason string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "node", &n, "reason?", &reason); err != nil {
		return nil, err
	}
	return decisionValue(policy.Decision{Kind: policy.Standby, Node: string(n), Message: reason}), nil
}

func decAlert(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, message string
	severity := "warning"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "message?", &message, "severity?", &severity); err != nil {
		return nil, err
	}
	if err := checkName("alert", name); err != nil {
		return nil, err
	}
	switch severity {
	case "info", "warning", "critical":
	default:
		return nil, fmt.Errorf("alert %q: severity must be info, warning or critical; got %q", name, severity)
	}
	return decisionValue(policy.Decision{Kind: policy.Alert, Name: name, Message: message, Severity: severity}), nil
}

// maxDecisionNesting bounds how deeply lists of decisions may nest; a list
// that contains itself would otherwise recurse until the Go stack overflows,
// which kills the process instead of failing the rule.
const maxDecisionNesting = 32

// decisionsOf turns a rule's result (None, a decision, or a list/tuple of
// decisions, possibly nested) into decisions.
func decisionsOf(v starlark.Value) ([]policy.Decision, error) {
	return nestedDecisions(v, 0)
}

func nestedDecisions(v starlark.Value, depth int) ([]policy.Decision, error) {
	if depth > maxDecisionNesting {
		return nil, fmt.Errorf("lists of decisions nest more than %d deep (does a list contain itself?)", maxDecisionNesting)
	}
	switch x := v.(type) {
	case nil, starlark.NoneType:
		return nil, nil
	case *object[policy.Decision]:
		return []policy.Decision{x.v}, nil
	case *starlark.List, starlark.Tuple:
		var out []policy.Decision
		iter := x.(starlark.Iterable).Iterate()
		defer iter.Done()
		var item starlark.Value
		for iter.Next(&item) {
			ds, err := nestedDecisions(item, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a decision (move, ban, prefer, no_takeover, stop, standby, alert), a list of them or None; got %s", v.Type())
}
