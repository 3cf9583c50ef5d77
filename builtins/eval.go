package builtins

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/harules/harules/policy"
)

// MaxRuleSteps bounds one rule evaluation, so a runaway rule is stopped
// with an error naming it instead of stalling failover.
const MaxRuleSteps = 1_000_000

// Universe returns what every policy and library file sees: declarations,
// decisions, and helpers (time, duration, struct, fail).
func Universe() starlark.StringDict {
	u := Declarations()
	for k, v := range Decisions() {
		u[k] = v
	}
	u["time"] = starlarktime.Module
	u["struct"] = starlark.NewBuiltin("struct", starlarkstruct.Make)
	u["duration"] = starlark.NewBuiltin("duration", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var d duration
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &d); err != nil {
			return nil, err
		}
		return starlarktime.Duration(d), nil
	})
	u["fail"] = starlark.NewBuiltin("fail", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		parts := make([]string, len(args))
		for i, a := range args {
			if s, ok := a.(starlark.String); ok {
				parts[i] = string(s)
			} else {
				parts[i] = a.String()
			}
		}
		return nil, errors.New(strings.Join(parts, " "))
	})
	return u
}

// RuleResult is what one rule said in one evaluation.
type RuleResult struct {
	Rule *policy.Rule
	// Holds reports whether the rule's condition holds now.
	Holds     bool
	Decisions []policy.Decision
}

// RuleError is a rule that failed to evaluate.
type RuleError struct {
	Rule *policy.Rule
	Err  error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("%s: rule %q: %v", e.Rule.Pos, e.Rule.Name, e.Err)
}
func (e *RuleError) Unwrap() error { return e.Err }

// EvalRule runs one rule against the facts. now is the evaluation time the
// rule sees through time.now(). A rule that raises an error or runs past
// MaxRuleSteps returns a *RuleError.
//
// The durations that grow with time (f.node(...).down_for, ok_for, ...)
// record the thresholds they are compared with in f.Clock(). A comparison
// with such a duration on the right of a constant (`duration("2s") >
// p.down_for`) cannot be tracked (Starlark hands it to the constant's own
// comparison); the rule is then evaluated again with ordinary durations and
// the clock is marked untracked.
func EvalRule(ctx context.Context, r *policy.Rule, f *FactsValue, now time.Time) (RuleResult, error) {
	res, panicked, err := evalRuleOnce(ctx, r, f, now)
	if panicked == nil {
		return res, err
	}
	f.clk.plain = true
	defer func() { f.clk.plain = false }()
	res, panicked, err = evalRuleOnce(ctx, r, f, now)
	if panicked != nil {
		return RuleResult{Rule: r}, &RuleError{Rule: r, Err: fmt.Errorf("evaluation failed: %v", panicked)}
	}
	return res, err
}

// evalRuleOnce runs the rule once; a panic inside the evaluation is
// returned, not raised.
func evalRuleOnce(ctx context.Context, r *policy.Rule, f *FactsValue, now time.Time) (res RuleResult, panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	res, err = evalRule(ctx, r, f, now)
	return res, nil, err
}

func evalRule(ctx context.Context, r *policy.Rule, f *FactsValue, now time.Time) (RuleResult, error) {
	thread := &starlark.Thread{Name: "rule " + r.Name}
	thread.SetMaxExecutionSteps(MaxRuleSteps)
	starlarktime.SetNow(thread, func() (time.Time, error) {
		// Compared with what, nobody knows: decide again soon.
		f.clk.untracked = true
		return now, nil
	})
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { thread.Cancel("decision cancelled: " + context.Cause(ctx).Error()) })
		defer stop()
	}
	res := RuleResult{Rule: r}
	wrap := func(err error) error {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			msg := ee.Msg
			if thread.ExecutionSteps() >= MaxRuleSteps {
				msg = fmt.Sprintf("stopped after %d steps (is there an endless loop?): %s", MaxRuleSteps, ee.Msg)
			}
			if strings.Contains(msg, "frozen") {
				msg += " (the policy's values are read-only once it has loaded: a rule cannot keep state in globals; copy a value, e.g. list(X), to change it)"
			}
			return &RuleError{Rule: r, Err: fmt.Errorf("%s\n%s", msg, ee.CallStack.String())}
		}
		return &RuleError{Rule: r, Err: err}
	}
	out, err := starlark.Call(thread, r.When, starlark.Tuple{f}, nil)
	if err != nil {
		return res, wrap(err)
	}
	if b, ok := out.(starlark.Bool); ok {
		res.Holds = bool(b)
		if !res.Holds || r.Then == nil {
			return res, nil
		}
		then := r.Then
		if fn, ok := then.(starlark.Callable); ok {
			if then, err = starlark.Call(thread, fn, starlark.Tuple{f}, nil); err != nil {
				return res, wrap(err)
			}
		}
		if res.Decisions, err = decisionsOf(then); err != nil {
			return res, &RuleError{Rule: r, Err: fmt.Errorf("then: %w", err)}
		}
		return res, nil
	}
	if r.Then != nil {
		return res, &RuleError{Rule: r, Err: fmt.Errorf("when returned %s; with then= it must return True or False", out.Type())}
	}
	if res.Decisions, err = decisionsOf(out); err != nil {
		return res, &RuleError{Rule: r, Err: fmt.Errorf("when: %w", err)}
	}
	res.Holds = len(res.Decisions) > 0
	return res, nil
}

// EvalScore calls a placement's score function and returns node -> score.
// Growing durations are tracked as in EvalRule.
func EvalScore(ctx context.Context, fn starlark.Callable, f *FactsValue, group string, now time.Time) (map[string]int, error) {
	scores, panicked, err := evalScoreOnce(ctx, fn, f, group, now)
	if panicked == nil {
		return scores, err
	}
	f.clk.plain = true
	defer func() { f.clk.plain = false }()
	scores, panicked, err = evalScoreOnce(ctx, fn, f, group, now)
	if panicked != nil {
		return nil, fmt.Errorf("score function of group %q: evaluation failed: %v", group, panicked)
	}
	return scores, err
}

func evalScoreOnce(ctx context.Context, fn starlark.Callable, f *FactsValue, group string, now time.Time) (scores map[string]int, panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	scores, err = evalScore(ctx, fn, f, group, now)
	return scores, nil, err
}

func evalScore(_ context.Context, fn starlark.Callable, f *FactsValue, group string, now time.Time) (map[string]int, error) {
	thread := &starlark.Thread{Name: "score " + group}
	thread.SetMaxExecutionSteps(MaxRuleSteps)
	starlarktime.SetNow(thread, func() (time.Time, error) {
		f.clk.untracked = true
		return now, nil
	})
	out, err := starlark.Call(thread, fn, starlark.Tuple{f, starlark.String(group)}, nil)
	if err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("score function of group %q: %s\n%s", group, ee.Msg, ee.CallStack.String())
		}
		return nil, fmt.Errorf("score function of group %q: %w", group, err)
	}
	d, ok := out.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("score function of group %q returned %s; want a dict of node -> int", group, out.Type())
	}
	scores := make(map[string]int, d.Len())
	for _, kv := range d.Items() {
		n, err := nameOf(kv[0], "node")
		if err != nil {
			return nil, fmt.Errorf("score function of group %q: %w", group, err)
		}
		v, err := starlark.AsInt32(kv[1])
		if err != nil {
			return nil, fmt.Errorf("score function of group %q: score of %q: want a 32-bit int: %v", group, n, err)
		}
		scores[n] = v
	}
	return scores, nil
}
