package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultNotifyBuffer is the capacity of the change channel when
// Options.NotifyBuffer is zero.
const DefaultNotifyBuffer = 64

// Options configure a Runner.
type Options struct {
	// Now is the clock used for Fact times and the Debouncer (time.Now if nil).
	Now func() time.Time
	// Logger receives state changes and timeouts (slog.Default if nil).
	Logger *slog.Logger
	// NotifyBuffer is the capacity of the Changes channel; when it is full
	// the oldest notification is dropped, so a slow reader never stalls probes.
	NotifyBuffer int
	// NotifyEveryResult sends a Fact after every run, not only when State or
	// Flapping changes (useful when the policy reads Values such as lag).
	NotifyEveryResult bool
	// Observe, when set, is called after every run with the probe's Fact
	// (its Last result and debounced State), from the probe's goroutine, so
	// metrics see every result and not only changes. It must not block.
	Observe func(Fact)
}

// Spec declares one probe: what to run, how often and how to debounce it.
type Spec struct {
	Name  string
	Check Check
	// Every is the interval between the starts of two runs.
	Every time.Duration
	// Timeout bounds one run (0 means Every); it must not exceed Every.
	Timeout time.Duration
	// Rise and Fall are the consecutive successes/failures needed to change
	// state (0 means 1).
	Rise, Fall int
	// FlapWindow and FlapChanges configure flap damping (see Debouncer);
	// a zero FlapWindow disables it.
	FlapWindow  time.Duration
	FlapChanges int
}

// Fact is the runner's view of one probe, as the engine consumes it.
type Fact struct {
	Name  string
	State State
	// Since is when State last changed.
	Since time.Time
	// Last is the latest result; Updated is when it was recorded (zero before
	// the first run finished).
	Last    Result
	Updated time.Time
	// ConsecutiveOK and ConsecutiveFail count the current run of equal results.
	ConsecutiveOK, ConsecutiveFail int
	Flapping                       bool
}

// Runner schedules probes and keeps their Facts. All methods are safe for
// concurrent use.
type Runner struct {
	now    func() time.Time
	log    *slog.Logger
	notify chan Fact
	every  bool

	mu      sync.Mutex
	probes  map[string]*probe
	runCtx  context.Context // non-nil while Run is active
	loops   sync.WaitGroup
	started bool

	notifyMu sync.Mutex // serialises drop-oldest sends
	dropped  atomic.Uint64

	observe func(Fact) // Options.Observe
}

type probe struct {
	spec   Spec
	cancel context.CancelFunc // stops this probe's loop; nil before Run
	// inflight is set while a run's goroutine has not returned, including an
	// abandoned one; a new run is not started while it is set.
	inflight atomic.Bool

	// Guarded by Runner.mu.
	deb  *Debouncer
	fact Fact
}

// NewRunner returns a Runner with no probes.
func NewRunner(opts Options) *Runner {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NotifyBuffer <= 0 {
		opts.NotifyBuffer = DefaultNotifyBuffer
	}
	return &Runner{
		now:    opts.Now,
		log:    opts.Logger,
		notify: make(chan Fact, opts.NotifyBuffer),
		every:  opts.NotifyEveryResult,
		probes: make(map[string]*probe),

		observe: opts.Observe,
	}
}

// Add registers a probe. It may be called before or during Run; during Run
// the probe starts at once.
func (r *Runner) Add(s Spec) error {
	if s.Name == "" {
		return errors.New("probe: name is empty")
	}
	if s.Check == nil {
		return fmt.Errorf("probe %q: no check", s.Name)
	}
	if s.Every <= 0 {
		return fmt.Errorf("probe %q: every must be positive, got %s", s.Name, s.Every)
	}
	if s.Timeout == 0 {
		s.Timeout = s.Every
	}
	if s.Timeout < 0 || s.Timeout > s.Every {
		return fmt.Errorf("probe %q: timeout %s must be positive and at most every (%s)", s.Name, s.Timeout, s.Every)
	}
	now := r.now()
	deb, err := NewDebouncer(DebounceConfig{Rise: s.Rise, Fall: s.Fall, FlapWindow: s.FlapWindow, FlapChanges: s.FlapChanges}, now)
	if err != nil {
		return fmt.Errorf("probe %q: %w", s.Name, err)
	}
	p := &probe{spec: s, deb: deb, fact: Fact{Name: s.Name, State: StateUnknown, Since: now}}

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.probes[s.Name]; dup {
		return fmt.Errorf("probe %q: already added", s.Name)
	}
	r.probes[s.Name] = p
	if r.runCtx != nil {
		r.startLocked(p)
	}
	return nil
}

// Remove stops and forgets a probe. It reports whether the probe existed.
func (r *Runner) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.probes[name]
	if !ok {
		return false
	}
	if p.cancel != nil {
		p.cancel()
	}
	delete(r.probes, name)
	return true
}

// Run runs all probes until ctx is done. It returns once every probe loop
// has stopped; runs abandoned after their timeout are not waited for.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("probes: runner already started")
	}
	r.started = true
	r.runCtx = ctx
	for _, p := range r.probes {
		r.startLocked(p)
	}
	r.mu.Unlock()

	<-ctx.Done()
	r.mu.Lock()
	r.runCtx = nil
	r.mu.Unlock()
	r.loops.Wait()
	return nil
}

// Snapshot returns the current Facts of all probes, keyed by name.
func (r *Runner) Snapshot() map[string]Fact {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Fact, len(r.probes))
	for name, p := range r.probes {
		out[name] = p.fact
	}
	return out
}

// Changes delivers a Fact whenever a probe's State or Flapping changes (and
// after every run with Options.NotifyEveryResult). The channel is never
// closed; when the reader falls behind the oldest entries are dropped, so
// always treat Snapshot as the truth.
func (r *Runner) Changes() <-chan Fact { return r.notify }

// Dropped reports how many notifications were dropped because the Changes
// channel was full.
func (r *Runner) Dropped() uint64 { return r.dropped.Load() }

func (r *Runner) startLocked(p *probe) {
	ctx, cancel := context.WithCancel(r.runCtx)
	p.cancel = cancel
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		defer cancel()
		r.loop(ctx, p)
	}()
}

func (r *Runner) loop(ctx context.Context, p *probe) {
	ticker := time.NewTicker(p.spec.Every)
	defer ticker.Stop()
	for {
		res := r.runOnce(ctx, p)
		if shuttingDown(ctx) {
			return // a run cut short by shutdown says nothing about health
		}
		r.record(p, res)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// shuttingDown reports whether ctx is done or past its deadline (a socket
// deadline derived from it can expire a moment before ctx.Err is set).
func shuttingDown(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// runOnce runs the check in its own goroutine and waits at most Timeout.
func (r *Runner) runOnce(ctx context.Context, p *probe) Result {
	timeout := p.spec.Timeout
	if !p.inflight.CompareAndSwap(false, true) {
		return Result{Err: fmt.Sprintf("previous run still has not returned (abandoned after its %s timeout)", timeout)}
	}
	start := time.Now()
	runCtx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("probe timeout %s", timeout))
	done := make(chan Result, 1) // buffered: an abandoned run can always deliver and exit
	go func() {
		res := safeRun(runCtx, p.spec.Check, start)
		cancel()
		// Clear inflight before delivering, so the next run never sees a
		// finished run as still going.
		p.inflight.Store(false)
		done <- res
	}()

	select {
	case res := <-done:
		if res.Latency == 0 {
			res.Latency = time.Since(start)
		}
		if !res.OK && res.Err == "" {
			res.Err = "check failed"
		}
		return res
	case <-runCtx.Done():
		// The check may have finished in the same instant; prefer its answer.
		select {
		case res := <-done:
			return res
		default:
		}
		r.log.Warn("probe timed out; abandoning the run", "probe", p.spec.Name, "timeout", timeout)
		return Result{Err: fmt.Sprintf("timeout after %s", timeout), Latency: time.Since(start)}
	}
}

// safeRun runs c, turning a panic into a failed Result.
func safeRun(ctx context.Context, c Check, start time.Time) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			res = Result{Err: fmt.Sprintf("check panicked: %v", v), Latency: time.Since(start)}
		}
	}()
	return c.Run(ctx)
}

func (r *Runner) record(p *probe, res Result) {
	now := r.now()
	r.mu.Lock()
	st, changed := p.deb.Observe(res.OK, now)
	p.fact = Fact{
		Name:            p.spec.Name,
		State:           st.State,
		Since:           st.Since,
		Last:            res,
		Updated:         now,
		ConsecutiveOK:   st.ConsecutiveOK,
		ConsecutiveFail: st.ConsecutiveFail,
		Flapping:        st.Flapping,
	}
	fact := p.fact
	r.mu.Unlock()

	if changed {
		r.log.Info("probe state changed", "probe", fact.Name, "state", fact.State, "flapping", fact.Flapping, "err", res.Err)
	}
	if r.observe != nil {
		r.observe(fact)
	}
	if changed || r.every {
		r.send(fact)
	}
}

// send delivers f without ever blocking: when the channel is full the oldest
// notification is discarded to make room.
func (r *Runner) send(f Fact) {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	for {
		select {
		case r.notify <- f:
			return
		default:
		}
		select {
		case <-r.notify:
			r.dropped.Add(1)
		default:
		}
	}
}
