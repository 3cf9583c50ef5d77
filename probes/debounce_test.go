package probes

import (
	"strings"
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		ok       bool
		at       int // seconds after t0
		state    State
		flapping bool
		changed  bool
		sinceAt  int // expected Since, seconds after t0
	}
	const (
		okS   = StateOK
		fail  = StateFailing
		unkn  = StateUnknown
		T, F_ = true, false
	)
	tests := []struct {
		name  string
		cfg   DebounceConfig
		steps []step
	}{
		{
			name: "defaults: every result counts",
			cfg:  DebounceConfig{},
			steps: []step{
				{T, 1, okS, F_, T, 1},
				{F_, 2, fail, F_, T, 2},
				{F_, 3, fail, F_, F_, 2},
				{T, 4, okS, F_, T, 4},
			},
		},
		{
			name: "rise 3: unknown until three successes, a failure restarts the count",
			cfg:  DebounceConfig{Rise: 3, Fall: 2},
			steps: []step{
				{T, 1, unkn, F_, F_, 0},
				{T, 2, unkn, F_, F_, 0},
				{F_, 3, unkn, F_, F_, 0},
				{T, 4, unkn, F_, F_, 0},
				{T, 5, unkn, F_, F_, 0},
				{T, 6, okS, F_, T, 6},
			},
		},
		{
			name: "fall 2: a single failure is absorbed",
			cfg:  DebounceConfig{Rise: 1, Fall: 2},
			steps: []step{
				{T, 1, okS, F_, T, 1},
				{F_, 2, okS, F_, F_, 1},
				{T, 3, okS, F_, F_, 1},
				{F_, 4, okS, F_, F_, 1},
				{F_, 5, fail, F_, T, 5},
				{T, 6, okS, F_, T, 6},
			},
		},
		{
			name: "fall first: unknown to failing",
			cfg:  DebounceConfig{Rise: 2, Fall: 2},
			steps: []step{
				{F_, 1, unkn, F_, F_, 0},
				{F_, 2, fail, F_, T, 2},
				{T, 3, fail, F_, F_, 2},
				{T, 4, okS, F_, T, 4},
			},
		},
		{
			name: "flapping holds the state until stable for a window",
			cfg:  DebounceConfig{FlapWindow: 10 * time.Second, FlapChanges: 3},
			steps: []step{
				{T, 0, okS, F_, T, 0},   // learning: not a change
				{F_, 1, fail, F_, T, 1}, // change 1
				{T, 2, okS, F_, T, 2},   // change 2
				{F_, 3, okS, T, T, 2},   // change 3 -> flapping, held at ok
				{T, 4, okS, T, F_, 2},   // change 4, still held
				{F_, 5, okS, T, F_, 2},  // change 5: raw failing, state held
				{F_, 6, okS, T, F_, 2},
				{F_, 14, okS, T, F_, 2},   // change at 5 is 9 s old: still flapping
				{F_, 15, fail, F_, T, 15}, // 10 s stable: release to raw (failing)
				{T, 16, okS, F_, T, 16},   // one change: fine again
			},
		},
		{
			name: "changes spread wider than the window never flap",
			cfg:  DebounceConfig{FlapWindow: 10 * time.Second, FlapChanges: 3},
			steps: []step{
				{T, 0, okS, F_, T, 0},
				{F_, 6, fail, F_, T, 6},
				{T, 12, okS, F_, T, 12},
				{F_, 18, fail, F_, T, 18},
				{T, 24, okS, F_, T, 24},
			},
		},
		{
			name: "flapping with rise/fall counts raw changes only",
			cfg:  DebounceConfig{Rise: 2, Fall: 2, FlapWindow: 60 * time.Second, FlapChanges: 2},
			steps: []step{
				{T, 0, unkn, F_, F_, 0},
				{T, 1, okS, F_, T, 1},
				{F_, 2, okS, F_, F_, 1}, // absorbed by fall=2: no raw change
				{T, 3, okS, F_, F_, 1},
				{F_, 4, okS, F_, F_, 1},
				{F_, 5, fail, F_, T, 5}, // raw change 1
				{T, 6, fail, F_, F_, 5},
				{T, 7, fail, T, T, 5}, // raw change 2 -> flapping, held failing
				{T, 66, fail, T, F_, 5},
				{T, 67, okS, F_, T, 67},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDebouncer(tt.cfg, t0)
			if err != nil {
				t.Fatal(err)
			}
			if st := d.Status(); st.State != StateUnknown || !st.Since.Equal(t0) {
				t.Fatalf("initial status = %+v, want unknown since t0", st)
			}
			for i, s := range tt.steps {
				at := t0.Add(time.Duration(s.at) * time.Second)
				st, changed := d.Observe(s.ok, at)
				if st.State != s.state || st.Flapping != s.flapping || changed != s.changed {
					t.Fatalf("step %d (ok=%v at %ds): got state=%s flapping=%v changed=%v (raw %s), want state=%s flapping=%v changed=%v",
						i, s.ok, s.at, st.State, st.Flapping, changed, st.Raw, s.state, s.flapping, s.changed)
				}
				if want := t0.Add(time.Duration(s.sinceAt) * time.Second); !st.Since.Equal(want) {
					t.Fatalf("step %d: since = %s, want %s", i, st.Since.Sub(t0), want.Sub(t0))
				}
				if s.ok && (st.ConsecutiveOK == 0 || st.ConsecutiveFail != 0) || !s.ok && (st.ConsecutiveFail == 0 || st.ConsecutiveOK != 0) {
					t.Fatalf("step %d: counters ok=%d fail=%d inconsistent with result %v", i, st.ConsecutiveOK, st.ConsecutiveFail, s.ok)
				}
			}
		})
	}
}

func TestDebouncerCounters(t *testing.T) {
	t0 := time.Unix(0, 0)
	d, err := NewDebouncer(DebounceConfig{Rise: 5, Fall: 5}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		st, _ := d.Observe(true, t0.Add(time.Duration(i)*time.Second))
		if st.ConsecutiveOK != i {
			t.Fatalf("after %d successes ConsecutiveOK = %d", i, st.ConsecutiveOK)
		}
	}
	st, _ := d.Observe(false, t0.Add(4*time.Second))
	if st.ConsecutiveOK != 0 || st.ConsecutiveFail != 1 {
		t.Fatalf("after a failure counters = ok %d fail %d, want 0 1", st.ConsecutiveOK, st.ConsecutiveFail)
	}
}

func TestDebounceConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  DebounceConfig
		want string
	}{
		{DebounceConfig{Rise: -1}, "must not be negative"},
		{DebounceConfig{Fall: -2}, "must not be negative"},
		{DebounceConfig{FlapWindow: -time.Second}, "must not be negative"},
		{DebounceConfig{FlapWindow: time.Second, FlapChanges: 1}, "at least 2"},
	} {
		_, err := NewDebouncer(tt.cfg, time.Time{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewDebouncer(%+v) error = %v, want containing %q", tt.cfg, err, tt.want)
		}
	}
}
