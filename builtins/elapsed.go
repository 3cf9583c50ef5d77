package builtins

import (
	"fmt"
	"time"

	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Clock is the decision time of one evaluation, and what the rules did with
// the durations that grow with it (down_for, ok_for, last_seen_ago, ...).
//
// A rule such as `p.down_for < duration("2s")` changes its answer when time
// passes, without any new fact. Those durations are handed to Starlark as
// values that remember the thresholds they are compared with, so the engine
// knows the next instant at which a comparison flips and can decide again
// right then, instead of at the next periodic re-evaluation.
type Clock struct {
	now time.Time
	// plain hands out ordinary time.duration values (see EvalRule: a rule
	// that compares a constant on the left with a growing duration on the
	// right is evaluated again that way).
	plain bool
	next  time.Time
	// untracked: a growing value was used in a way whose crossing cannot
	// be computed (arithmetic, .seconds, f.now, a plain evaluation).
	untracked bool
}

// NewClock returns the clock of an evaluation at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now is the decision time.
func (c *Clock) Now() time.Time { return c.now }

// NextChange is the earliest instant after now at which a comparison made
// by the rules with a growing duration changes its result (zero: none).
func (c *Clock) NextChange() time.Time { return c.next }

// Untracked reports whether a rule used the passing of time in a way whose
// next change is unknown; the caller should then decide again soon (one
// heartbeat interval).
func (c *Clock) Untracked() bool { return c.untracked }

// wakeAt notes an instant at which a comparison flips.
func (c *Clock) wakeAt(t time.Time) {
	if t.After(c.now) && (c.next.IsZero() || t.Before(c.next)) {
		c.next = t
	}
}

// growing returns the time elapsed since since: zero (a constant) when cond
// is false, else a value that grows with time.
func (c *Clock) growing(cond bool, since time.Time) starlark.Value {
	d := c.now.Sub(since)
	if !cond || d < 0 {
		return starlarktime.Duration(0)
	}
	if c.plain {
		c.untracked = true
		return starlarktime.Duration(d)
	}
	return &elapsed{d: d, since: since, clk: c}
}

// elapsed is a time.duration that equals now - since and remembers the
// thresholds it is compared with.
type elapsed struct {
	d     time.Duration
	since time.Time
	clk   *Clock
}

var (
	_ starlark.Comparable = (*elapsed)(nil)
	_ starlark.HasBinary  = (*elapsed)(nil)
	_ starlark.HasAttrs   = (*elapsed)(nil)
)

func (e *elapsed) plainValue() starlarktime.Duration { return starlarktime.Duration(e.d) }
func (e *elapsed) String() string                    { return e.d.String() }

// Type is that of Starlark's durations, so comparisons with them reach
// CompareSameType.
func (e *elapsed) Type() string          { return "time.duration" }
func (e *elapsed) Freeze()               {}
func (e *elapsed) Truth() starlark.Bool  { return e.d != 0 }
func (e *elapsed) Hash() (uint32, error) { return e.plainValue().Hash() }

func (e *elapsed) Attr(name string) (starlark.Value, error) {
	e.clk.untracked = true
	return e.plainValue().Attr(name)
}
func (e *elapsed) AttrNames() []string { return e.plainValue().AttrNames() }

// CompareSameType compares with a duration; a constant threshold c makes
// the comparison flip at since + c (just after, for <= and >).
func (e *elapsed) CompareSameType(op syntax.Token, y starlark.Value, _ int) (bool, error) {
	var c time.Duration
	switch y := y.(type) {
	case *elapsed:
		// Both grow at the same pace: the answer holds until facts change.
		return cmpDur(op, e.d, y.d), nil
	case starlarktime.Duration:
		c = time.Duration(y)
	default:
		return false, fmt.Errorf("%s %s %s not implemented", e.Type(), op, y.Type())
	}
	at := e.since.Add(c)
	switch op {
	case syntax.LT, syntax.GE:
		e.clk.wakeAt(at)
	case syntax.LE, syntax.GT:
		e.clk.wakeAt(at.Add(1))
	default: // == and !=
		e.clk.wakeAt(at)
		e.clk.wakeAt(at.Add(1))
	}
	return cmpDur(op, e.d, c), nil
}

func cmpDur(op syntax.Token, x, y time.Duration) bool {
	switch op {
	case syntax.LT:
		return x < y
	case syntax.LE:
		return x <= y
	case syntax.GT:
		return x > y
	case syntax.GE:
		return x >= y
	case syntax.EQL:
		return x == y
	default: // NEQ
		return x != y
	}
}

// Binary computes with the current value; the result no longer follows
// time, so the rule is marked for an early re-evaluation instead.
func (e *elapsed) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	e.clk.untracked = true
	if o, ok := y.(*elapsed); ok {
		y = o.plainValue()
	}
	if side == starlark.Left {
		return starlark.Binary(op, e.plainValue(), y)
	}
	return starlark.Binary(op, y, e.plainValue())
}
