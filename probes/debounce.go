package probes

import (
	"fmt"
	"time"
)

// State is the debounced state of a probe.
type State string

// The states a probe can be in. A probe is unknown until it has seen enough
// results to reach either threshold.
const (
	StateUnknown State = "unknown"
	StateOK      State = "ok"
	StateFailing State = "failing"
)

// DefaultFlapChanges is how many raw state changes within FlapWindow mark a
// probe as flapping when DebounceConfig.FlapChanges is zero.
const DefaultFlapChanges = 4

// DebounceConfig sets the thresholds of a Debouncer.
type DebounceConfig struct {
	// Rise is how many consecutive successes turn the state ok (0 means 1).
	Rise int
	// Fall is how many consecutive failures turn the state failing (0 means 1).
	Fall int
	// FlapWindow is the window over which state changes are counted; zero
	// disables flap damping.
	FlapWindow time.Duration
	// FlapChanges is how many changes between ok and failing within
	// FlapWindow make the probe flapping (0 means DefaultFlapChanges).
	FlapChanges int
}

func (c DebounceConfig) withDefaults() (DebounceConfig, error) {
	if c.Rise < 0 || c.Fall < 0 {
		return c, fmt.Errorf("rise (%d) and fall (%d) must not be negative", c.Rise, c.Fall)
	}
	if c.FlapWindow < 0 || c.FlapChanges < 0 {
		return c, fmt.Errorf("flap window (%s) and flap changes (%d) must not be negative", c.FlapWindow, c.FlapChanges)
	}
	if c.Rise == 0 {
		c.Rise = 1
	}
	if c.Fall == 0 {
		c.Fall = 1
	}
	if c.FlapChanges == 0 {
		c.FlapChanges = DefaultFlapChanges
	}
	if c.FlapWindow > 0 && c.FlapChanges < 2 {
		return c, fmt.Errorf("flap changes must be at least 2 (got %d): one change is not flapping", c.FlapChanges)
	}
	return c, nil
}

// Status is what a Debouncer reports after each observation.
type Status struct {
	// State is the debounced, flap-damped state.
	State State
	// Since is when State last changed (or the start time).
	Since time.Time
	// ConsecutiveOK and ConsecutiveFail count the current run of equal
	// results; one of them is always zero.
	ConsecutiveOK, ConsecutiveFail int
	// Flapping is true while the state is held because the raw state changed
	// too often; it clears once the raw state has been stable for FlapWindow.
	Flapping bool
	// Raw is the rise/fall state before flap damping.
	Raw State
}

// Debouncer turns a stream of pass/fail results into a stable state:
//
//   - the raw state becomes ok after Rise consecutive successes and failing
//     after Fall consecutive failures (it starts unknown);
//   - every change of the raw state between ok and failing is remembered; when
//     FlapChanges of them fall within FlapWindow the probe is flapping and
//     State is held at its value from before, until the raw state has not
//     changed for a whole FlapWindow; then State follows the raw state again.
//
// It is pure: times are passed in, nothing reads a clock. Not safe for
// concurrent use.
type Debouncer struct {
	cfg     DebounceConfig
	st      Status
	changes []time.Time // raw ok<->failing changes within the window, oldest first
}

// NewDebouncer returns a Debouncer in state unknown since start.
func NewDebouncer(cfg DebounceConfig, start time.Time) (*Debouncer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("debounce config: %w", err)
	}
	return &Debouncer{cfg: cfg, st: Status{State: StateUnknown, Raw: StateUnknown, Since: start}}, nil
}

// Status returns the current status.
func (d *Debouncer) Status() Status { return d.st }

// Observe records one result at time at and returns the new status and
// whether State or Flapping changed.
func (d *Debouncer) Observe(ok bool, at time.Time) (Status, bool) {
	before := d.st
	if ok {
		d.st.ConsecutiveOK++
		d.st.ConsecutiveFail = 0
	} else {
		d.st.ConsecutiveFail++
		d.st.ConsecutiveOK = 0
	}

	raw := d.st.Raw
	switch {
	case ok && d.st.ConsecutiveOK >= d.cfg.Rise:
		raw = StateOK
	case !ok && d.st.ConsecutiveFail >= d.cfg.Fall:
		raw = StateFailing
	}
	if raw != d.st.Raw {
		// Leaving unknown is learning the state, not a change worth damping.
		if d.st.Raw != StateUnknown && d.cfg.FlapWindow > 0 {
			d.changes = append(d.changes, at)
		}
		d.st.Raw = raw
	}

	if d.cfg.FlapWindow > 0 {
		d.pruneChanges(at)
		switch {
		case !d.st.Flapping && len(d.changes) >= d.cfg.FlapChanges:
			d.st.Flapping = true
		case d.st.Flapping && len(d.changes) == 0:
			d.st.Flapping = false
		}
	}

	if !d.st.Flapping && d.st.State != d.st.Raw {
		d.st.State = d.st.Raw
		d.st.Since = at
	}
	return d.st, d.st.State != before.State || d.st.Flapping != before.Flapping
}

// pruneChanges forgets changes that are a full window or more before at.
func (d *Debouncer) pruneChanges(at time.Time) {
	keep := 0
	for keep < len(d.changes) && at.Sub(d.changes[keep]) >= d.cfg.FlapWindow {
		keep++
	}
	if keep > 0 {
		d.changes = append(d.changes[:0], d.changes[keep:]...)
	}
}
