package builtins_test

import (
	"testing"
	"time"

	"github.com/harules/harules/builtins"
)

// TestGrowingDurationThresholds: comparing a growing duration with a
// constant records the instant the comparison flips; the value still reads,
// prints and compares as a time.duration.
func TestGrowingDurationThresholds(t *testing.T) {
	died := evalNow.Add(-30 * time.Second) // n2's death in sampleFacts
	cases := []struct {
		expr      string
		wake      time.Time // zero: none
		untracked bool
	}{
		{`f.node("n2").down_for < duration("40s")`, died.Add(40 * time.Second), false},
		{`f.node("n2").down_for <= duration("40s")`, died.Add(40*time.Second + 1), false},
		{`not (f.node("n2").down_for >= duration("1m"))`, died.Add(time.Minute), false},
		{`f.node("n2").down_for > duration("10s")`, time.Time{}, false}, // crossed already
		{`f.node("n2").down_for == duration("30s")`, died.Add(30*time.Second + 1), false},
		{`str(f.node("n2").down_for) == "30s"`, time.Time{}, false},
		{`type(f.node("n2").down_for) == "time.duration"`, time.Time{}, false},
		{`f.node("n2").down_for < f.node("n1").up_for`, time.Time{}, false},
		{`f.node("n2").down_for + duration("5s") == duration("35s")`, time.Time{}, true},
		{`f.node("n2").down_for.seconds == 30.0`, time.Time{}, true},
		{`duration(f.node("n2").down_for) == duration("30s")`, time.Time{}, true},
		{`not (f.probe("x").ok_for >= duration("11m"))`, evalNow.Add(time.Minute), false},
	}
	for _, tc := range cases {
		fv := builtins.NewFactsValue(sampleFacts())
		v, err := eval(fv, tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if v.Truth() != true {
			t.Errorf("%s is %s, want True", tc.expr, v)
		}
		clk := fv.Clock()
		if got := clk.NextChange(); !got.Equal(tc.wake) {
			t.Errorf("%s: next change %s, want %s", tc.expr, got, tc.wake)
		}
		if clk.Untracked() != tc.untracked {
			t.Errorf("%s: untracked %t, want %t", tc.expr, clk.Untracked(), tc.untracked)
		}
	}
	// A duration that is zero because the node is not in that state stays
	// zero until a fact changes: nothing to wake for.
	fv := builtins.NewFactsValue(sampleFacts())
	if v, err := eval(fv, `f.node("n2").up_for < duration("1s")`); err != nil || !bool(v.Truth()) || !fv.Clock().NextChange().IsZero() {
		t.Errorf("up_for of a dead node: %v, %v, next change %s", v, err, fv.Clock().NextChange())
	}
}

// TestEvalRuleConstantOnTheLeft: Starlark hands `constant > growing` to
// the constant's own comparison, which cannot take the growing value; the
// rule is evaluated again with plain durations, answers correctly, and is
// marked untracked (the engine then decides again within a heartbeat).
func TestEvalRuleConstantOnTheLeft(t *testing.T) {
	for _, tc := range []struct {
		src   string
		holds bool
	}{
		{`def when(f):
    return duration("40s") > f.node("n2").down_for`, true},
		{`def when(f):
    return duration("20s") > f.node("n2").down_for`, false},
		{`def when(f):
    return sorted([f.node("n2").down_for, duration("1s")])[0] == duration("1s")`, true},
	} {
		r := ruleOf(t, "r", tc.src, nil)
		fv := builtins.NewFactsValue(sampleFacts())
		res, err := builtins.EvalRule(t.Context(), r, fv, evalNow)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if res.Holds != tc.holds {
			t.Errorf("%s: holds %t, want %t", tc.src, res.Holds, tc.holds)
		}
		if !fv.Clock().Untracked() {
			t.Errorf("%s: not marked untracked", tc.src)
		}
	}
}
