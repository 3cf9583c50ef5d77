package builtins_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/harules/harules/builtins"
	"github.com/harules/harules/policy"
)

var testOptions = &syntax.FileOptions{Set: true, TopLevelControl: true, While: true}

// compile executes src with the harules universe (plus extra) and returns
// its globals, frozen as after a real load.
func compile(t *testing.T, src string, extra starlark.StringDict) starlark.StringDict {
	t.Helper()
	env := builtins.Universe()
	for k, v := range extra {
		env[k] = v
	}
	g, err := starlark.ExecFileOptions(testOptions, &starlark.Thread{Name: "test"}, "rule_test.star", src, env)
	if err != nil {
		t.Fatalf("compile:\n%s\n%v", src, err)
	}
	return g
}

// ruleOf builds a rule from the globals "when" and (if present) "then".
func ruleOf(t *testing.T, name, src string, extra starlark.StringDict) *policy.Rule {
	t.Helper()
	g := compile(t, src, extra)
	when, ok := g["when"].(starlark.Callable)
	if !ok {
		t.Fatalf("test source defines no callable when: %s", src)
	}
	r := &policy.Rule{Name: name, When: when, Pos: policy.Pos{File: "rule_test.star", Line: 1, Col: 1}}
	if then, ok := g["then"]; ok {
		r.Then = then
	}
	return r
}

var evalNow = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

func TestEvalRule(t *testing.T) {
	fv := builtins.NewFactsValue(sampleFacts())
	tests := []struct {
		name      string
		src       string
		holds     bool
		decisions []string // Decision.String() of each
		err       string   // substring of the error; "" for success
	}{
		{name: "bool true with then list",
			src:   "when = lambda f: f.self == 'n1'\nthen = [move('web', to = 'n3', reason = 'r'), alert('a', message = 'm')]",
			holds: true, decisions: []string{"move", "alert"}},
		{name: "bool true with then function",
			src:   "when = lambda f: True\ndef then(f):\n    return ban('web', f.self)",
			holds: true, decisions: []string{"ban"}},
		{name: "bool true without then",
			src:   "when = lambda f: True",
			holds: true},
		{name: "bool false does not call then",
			src: "when = lambda f: False\ndef then(f):\n    fail('then must not run when the condition is false')"},
		{name: "decisions directly",
			src:   "def when(f):\n    return [no_takeover(reason = 'x'), [standby('n2'), prefer('web', 'n1', 10)]]",
			holds: true, decisions: []string{"no_takeover", "standby", "prefer"}},
		{name: "single decision",
			src:   "when = lambda f: stop('web')",
			holds: true, decisions: []string{"stop"}},
		{name: "empty list holds no",
			src: "when = lambda f: []"},
		{name: "None holds no",
			src: "def when(f):\n    pass"},
		{name: "string result",
			src: "when = lambda f: 'move web'",
			err: "when: want a decision (move, ban, prefer, no_takeover, stop, standby, alert), a list of them or None; got string"},
		{name: "list with a non-decision",
			src: "when = lambda f: [alert('a'), 3]",
			err: "when: want a decision"},
		{name: "non-bool with then",
			src: "when = lambda f: 1\nthen = alert('a')",
			err: "when returned int; with then= it must return True or False"},
		{name: "then function returns junk",
			src: "when = lambda f: True\nthen = lambda f: {'move': 'web'}",
			err: "then: want a decision"},
		{name: "error raised in when",
			src: "def when(f):\n    return f.nodes['n9'].alive",
			err: `key "n9" not in dict`},
		{name: "decision with bad arguments at decide time",
			src: "when = lambda f: [move('web')]",
			err: "move: give exactly one of to=NODE or away_from=NODE"},
		{name: "list containing itself",
			src: "def when(f):\n    loop = [alert('a')]\n    loop.append(loop)\n    return loop",
			err: "when: lists of decisions nest more than 32 deep (does a list contain itself?)"},
		{name: "deeply nested but finite",
			src:   "def when(f):\n    x = alert('a')\n    for i in range(20):\n        x = [x]\n    return x",
			holds: true, decisions: []string{"alert"}},
		{name: "time.now is the evaluation time",
			src:   "when = lambda f: time.now() == f.now and f.now.year == 2026",
			holds: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ruleOf(t, "r1", tc.src, nil)
			res, err := builtins.EvalRule(context.Background(), r, fv, evalNow)
			if tc.err != "" {
				var re *builtins.RuleError
				if !errors.As(err, &re) || re.Rule != r {
					t.Fatalf("err = %v; want a *RuleError for the rule", err)
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `rule "r1"`) {
					t.Fatalf("err = %q; want it to name the rule and contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("EvalRule: %v", err)
			}
			if res.Holds != tc.holds || res.Rule != r {
				t.Errorf("Holds = %t, want %t", res.Holds, tc.holds)
			}
			var kinds []string
			for _, d := range res.Decisions {
				kinds = append(kinds, string(d.Kind))
			}
			if fmt.Sprint(kinds) != fmt.Sprint(tc.decisions) {
				t.Errorf("decisions = %v, want %v", res.Decisions, tc.decisions)
			}
		})
	}
}

func TestEvalRuleDecisionFields(t *testing.T) {
	src := "when = lambda f: True\nthen = lambda f: [move('web', away_from = f.node('n2'), reason = 'why'), alert('disk', message = 'm', severity = 'critical'), no_takeover()]"
	res, err := builtins.EvalRule(context.Background(), ruleOf(t, "fields", src, nil), builtins.NewFactsValue(sampleFacts()), evalNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Decision{
		{Kind: policy.Move, Group: "web", AwayFrom: "n2", Message: "why"},
		{Kind: policy.Alert, Name: "disk", Message: "m", Severity: "critical"},
		{Kind: policy.NoTakeover, Group: policy.AllGroups},
	}
	if fmt.Sprintf("%+v", res.Decisions) != fmt.Sprintf("%+v", want) {
		t.Errorf("decisions =\n %+v\nwant\n %+v", res.Decisions, want)
	}
}

// TestEvalRuleRunaway: an endless loop is stopped by the step limit, and
// the error names the rule and says why.
func TestEvalRuleRunaway(t *testing.T) {
	r := ruleOf(t, "spin", "def when(f):\n    while True:\n        pass", nil)
	_, err := builtins.EvalRule(context.Background(), r, builtins.NewFactsValue(sampleFacts()), evalNow)
	if err == nil {
		t.Fatal("runaway rule returned without error")
	}
	for _, s := range []string{`rule "spin"`, fmt.Sprintf("stopped after %d steps", builtins.MaxRuleSteps), "endless loop", "in when"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// TestEvalRuleCancelled: cancelling the context stops a rule that is still
// running, well before its step limit.
func TestEvalRuleCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	// tick cancels the context on its first call, then slows the loop down so
	// the cancellation (delivered on another goroutine) lands long before
	// the step limit; it gives up after ~10 s so a broken cancel fails
	// instead of hanging.
	tick := starlark.NewBuiltin("tick", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		n := calls.Add(1)
		if n == 1 {
			cancel()
			return starlark.None, nil
		}
		if n > 10_000 {
			return nil, errors.New("cancellation never reached the rule")
		}
		time.Sleep(time.Millisecond)
		return starlark.None, nil
	})
	r := ruleOf(t, "slow", "def when(f):\n    while True:\n        tick()", starlark.StringDict{"tick": tick})
	_, err := builtins.EvalRule(ctx, r, builtins.NewFactsValue(sampleFacts()), evalNow)
	if err == nil || !strings.Contains(err.Error(), "decision cancelled: context canceled") || !strings.Contains(err.Error(), `rule "slow"`) {
		t.Fatalf("err = %v; want the rule stopped with \"decision cancelled\"", err)
	}
	if strings.Contains(err.Error(), "steps") {
		t.Errorf("err = %v; cancellation was reported as the step limit", err)
	}
}

func TestEvalScore(t *testing.T) {
	g := compile(t, "def score(f, group):\n    return {n.name: (10 if n.alive else -10) for n in f.nodes.values()}\ndef bad(f, group):\n    return [group]\ndef badval(f, group):\n    return {'n1': 'high'}", nil)
	fv := builtins.NewFactsValue(sampleFacts())
	scores, err := builtins.EvalScore(context.Background(), g["score"].(starlark.Callable), fv, "web", evalNow)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(scores) != "map[n1:10 n2:-10 n3:-10]" {
		t.Errorf("scores = %v", scores)
	}
	if _, err := builtins.EvalScore(context.Background(), g["bad"].(starlark.Callable), fv, "web", evalNow); err == nil || !strings.Contains(err.Error(), `score function of group "web" returned list; want a dict of node -> int`) {
		t.Errorf("bad score err = %v", err)
	}
	if _, err := builtins.EvalScore(context.Background(), g["badval"].(starlark.Callable), fv, "web", evalNow); err == nil || !strings.Contains(err.Error(), `score of "n1": want a 32-bit int: got string, want int`) {
		t.Errorf("badval score err = %v", err)
	}
}
