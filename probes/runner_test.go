package probes

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startRunner runs r in the background and stops it when the test ends.
func startRunner(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
}

// waitFact polls the snapshot until cond holds for probe name.
func waitFact(t *testing.T, r *Runner, name string, what string, cond func(Fact) bool) Fact {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		f, ok := r.Snapshot()[name]
		if ok && cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe %q: timed out waiting for %s; last fact %+v", name, what, f)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scripted returns results from a list, then repeats the last one.
type scripted struct {
	mu      sync.Mutex
	results []bool
	calls   int
}

func (s *scripted) Run(ctx context.Context) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.results)-1)
	s.calls++
	if s.results[i] {
		return Result{OK: true, Value: float64(i)}
	}
	return Result{Err: fmt.Sprintf("scripted failure %d", i)}
}

func TestRunnerRiseFall(t *testing.T) {
	r := NewRunner(Options{})
	check := &scripted{results: []bool{true, true, false, false, false, true}}
	// A generous interval (and so timeout): on a loaded machine a timeout
	// would slip an extra failure into the scripted sequence.
	if err := r.Add(Spec{Name: "s", Check: check, Every: 100 * time.Millisecond, Rise: 2, Fall: 3}); err != nil {
		t.Fatal(err)
	}
	if f := r.Snapshot()["s"]; f.State != StateUnknown {
		t.Fatalf("before Run state = %s, want unknown", f.State)
	}
	startRunner(t, r)

	var seen []State
	deadline := time.After(15 * time.Second)
	for len(seen) < 2 {
		select {
		case f := <-r.Changes():
			seen = append(seen, f.State)
			if f.State == StateFailing && (f.ConsecutiveFail != 3 || !strings.Contains(f.Last.Err, "scripted failure 4")) {
				t.Fatalf("failing fact = %+v, want it after the third failure", f)
			}
			if f.State == StateOK && f.ConsecutiveOK != 2 {
				t.Fatalf("ok fact after %d successes, want 2 (rise)", f.ConsecutiveOK)
			}
		case <-deadline:
			t.Fatalf("changes seen %v, want [ok failing]", seen)
		}
	}
	if seen[0] != StateOK || seen[1] != StateFailing {
		t.Fatalf("changes = %v, want [ok failing]", seen)
	}
	waitFact(t, r, "s", "ok after the last success", func(f Fact) bool { return f.State == StateOK && f.Last.OK })
}

func TestRunnerAbandonsHungCheck(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var started atomic.Int32
	hung := CheckFunc(func(ctx context.Context) Result {
		started.Add(1)
		<-release // ignores ctx on purpose, like a D-state syscall
		return Result{OK: true}
	})
	r := NewRunner(Options{})
	if err := r.Add(Spec{Name: "hung", Check: hung, Every: 50 * time.Millisecond, Timeout: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	startRunner(t, r)

	f := waitFact(t, r, "hung", "failing by timeout", func(f Fact) bool { return f.State == StateFailing })
	if !strings.Contains(f.Last.Err, "timeout after 20ms") {
		t.Fatalf("first failure = %q, want a timeout", f.Last.Err)
	}
	f = waitFact(t, r, "hung", "a later run refused", func(f Fact) bool { return f.ConsecutiveFail >= 4 })
	if !strings.Contains(f.Last.Err, "previous run still has not returned") {
		t.Fatalf("later failure = %q, want the still-running refusal", f.Last.Err)
	}
	if n := started.Load(); n != 1 {
		t.Fatalf("hung check was started %d times, want exactly 1 (no pile-up)", n)
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Fatalf("goroutines grew from %d to %d with one hung probe", before, after)
	}
}

func TestRunnerRecoversAfterHangEnds(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	check := CheckFunc(func(ctx context.Context) Result {
		if hang.Load() {
			<-release
			return Result{OK: true, Text: "late"}
		}
		return Result{OK: true, Text: "fresh"}
	})
	r := NewRunner(Options{})
	if err := r.Add(Spec{Name: "h", Check: check, Every: 30 * time.Millisecond, Timeout: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	waitFact(t, r, "h", "failing", func(f Fact) bool { return f.State == StateFailing })
	hang.Store(false)
	close(release)
	f := waitFact(t, r, "h", "ok again", func(f Fact) bool { return f.State == StateOK })
	if f.Last.Text != "fresh" {
		t.Fatalf("recovered with %q, want a fresh run, not the abandoned one's late result", f.Last.Text)
	}
}

func TestRunnerPanickingCheck(t *testing.T) {
	r := NewRunner(Options{})
	if err := r.Add(Spec{Name: "p", Check: CheckFunc(func(context.Context) Result { panic("boom") }), Every: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	f := waitFact(t, r, "p", "failing", func(f Fact) bool { return f.State == StateFailing })
	if !strings.Contains(f.Last.Err, "panicked: boom") {
		t.Fatalf("err = %q", f.Last.Err)
	}
}

func TestRunnerNotificationsNeverBlock(t *testing.T) {
	var n atomic.Int64
	flip := CheckFunc(func(context.Context) Result {
		return Result{OK: n.Add(1)%2 == 0}
	})
	r := NewRunner(Options{NotifyBuffer: 2})
	for i := range 3 {
		if err := r.Add(Spec{Name: fmt.Sprintf("flip%d", i), Check: flip, Every: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	startRunner(t, r)
	// Nobody reads Changes; the probes must keep running anyway.
	waitFact(t, r, "flip0", "many runs", func(Fact) bool { return n.Load() > 60 })
	if r.Dropped() == 0 {
		t.Fatalf("no notification dropped with an unread buffer of 2 and %d state changes", n.Load())
	}
	if got := len(r.Changes()); got != 2 {
		t.Fatalf("channel holds %d facts, want it full (2)", got)
	}
}

func TestRunnerNotifyEveryResult(t *testing.T) {
	r := NewRunner(Options{NotifyEveryResult: true})
	var n atomic.Int64
	if err := r.Add(Spec{Name: "v", Check: CheckFunc(func(context.Context) Result {
		return Result{OK: true, Value: float64(n.Add(1))}
	}), Every: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	var values []float64
	timeout := time.After(15 * time.Second)
	for len(values) < 3 {
		select {
		case f := <-r.Changes():
			values = append(values, f.Last.Value)
		case <-timeout:
			t.Fatalf("got %v, want three notifications without state changes", values)
		}
	}
	if values[0] != 1 || values[1] != 2 || values[2] != 3 {
		t.Fatalf("values = %v, want 1 2 3", values)
	}
}

func TestRunnerAddRemoveWhileRunning(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := NewRunner(Options{Now: func() time.Time { return now }})
	startRunner(t, r)
	ok := CheckFunc(func(context.Context) Result { return Result{OK: true} })
	if err := r.Add(Spec{Name: "late", Check: ok, Every: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	f := waitFact(t, r, "late", "ok", func(f Fact) bool { return f.State == StateOK })
	if !f.Since.Equal(now) || !f.Updated.Equal(now) {
		t.Fatalf("times %v %v do not come from the injected clock", f.Since, f.Updated)
	}
	if !r.Remove("late") || r.Remove("late") {
		t.Fatal("Remove should report true once, then false")
	}
	if _, ok := r.Snapshot()["late"]; ok {
		t.Fatal("removed probe still in snapshot")
	}
}

func TestRunnerAddErrors(t *testing.T) {
	ok := CheckFunc(func(context.Context) Result { return Result{OK: true} })
	r := NewRunner(Options{})
	if err := r.Add(Spec{Name: "a", Check: ok, Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Check: ok, Every: time.Second}, "name is empty"},
		{Spec{Name: "x", Every: time.Second}, "no check"},
		{Spec{Name: "x", Check: ok}, "every must be positive"},
		{Spec{Name: "x", Check: ok, Every: time.Second, Timeout: 2 * time.Second}, "at most every"},
		{Spec{Name: "x", Check: ok, Every: time.Second, Rise: -1}, "must not be negative"},
		{Spec{Name: "a", Check: ok, Every: time.Second}, "already added"},
	} {
		if err := r.Add(tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Add(%+v) = %v, want error containing %q", tt.spec, err, tt.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err == nil {
		t.Fatal("second Run should fail")
	}
}

func TestRunnerFlapDamping(t *testing.T) {
	var n atomic.Int64
	flip := CheckFunc(func(context.Context) Result { return Result{OK: n.Add(1)%2 == 1} })
	r := NewRunner(Options{NotifyBuffer: 100})
	if err := r.Add(Spec{Name: "f", Check: flip, Every: 50 * time.Millisecond, FlapWindow: time.Hour, FlapChanges: 3}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	f := waitFact(t, r, "f", "flapping", func(f Fact) bool { return f.Flapping })
	held := f.State
	since := f.Since
	// Keep flipping: the state stays held and the fact keeps saying so.
	waitFact(t, r, "f", "more runs", func(Fact) bool { return n.Load() > 12 })
	f = r.Snapshot()["f"]
	if !f.Flapping || f.State != held || !f.Since.Equal(since) {
		t.Fatalf("flapping probe moved: %+v (held %s since %v)", f, held, since)
	}
	// Notifications: ok, failing, ok, then the one that marks flapping; no more.
	var got []string
	for len(r.Changes()) > 0 {
		c := <-r.Changes()
		got = append(got, fmt.Sprintf("%s/%v", c.State, c.Flapping))
	}
	want := "[ok/false failing/false ok/false ok/true]"
	if fmt.Sprint(got) != want {
		t.Fatalf("notifications %v, want %s", got, want)
	}
}
