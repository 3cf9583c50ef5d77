package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Timing holds the lease timings; see the package doc for why they are safe.
type Timing struct {
	// Lease is how long a holder may keep writing after the start of its
	// last successful renewal write.
	Lease time.Duration
	// Renew is how often the holder renews (and a non-holder reads).
	Renew time.Duration
	// Margin is how much longer than Lease a taker waits after it first
	// saw a claim unchanged: it covers clock-rate drift and the time the
	// old holder's OnLost needs to stop all writes.
	Margin time.Duration
	// IOTimeout bounds one read or write of the lease area.
	IOTimeout time.Duration
	// Settle is the pause between writing an intent and re-reading.
	Settle time.Duration
}

// DefaultTiming: a crashed holder's disk can be taken over 20 s after the
// taker first saw its slot stop changing; a holder gets four renewal
// attempts before its own lease runs out.
func DefaultTiming() Timing {
	return Timing{Lease: 15 * time.Second, Renew: 3 * time.Second, Margin: 5 * time.Second,
		IOTimeout: 2 * time.Second, Settle: 500 * time.Millisecond}
}

// Validate rejects timings that break the argument in the package doc.
func (t Timing) Validate() error {
	switch {
	case t.Lease <= 0 || t.Renew <= 0 || t.IOTimeout <= 0 || t.Margin <= 0 || t.Settle < 0:
		return fmt.Errorf("lease timings must be positive: %+v", t)
	case 2*(t.Renew+t.IOTimeout) > t.Lease:
		return fmt.Errorf("lease %s is too short: it must fit two renewals (renew %s + I/O timeout %s each)", t.Lease, t.Renew, t.IOTimeout)
	case t.Margin*10 < t.Lease:
		return fmt.Errorf("margin %s must be at least a tenth of the lease %s (clock drift and fencing time)", t.Margin, t.Lease)
	}
	return nil
}

// TakeoverWait is how long a taker must see a crashed holder's slot
// unchanged before it may acquire.
func (t Timing) TakeoverWait() time.Duration { return t.Lease + t.Margin }

// SlotFor is node's slot: 1 + its index among the sorted node names, so
// every node computes the same slots from the policy whatever its order.
func SlotFor(node string, nodes []string) (int, error) {
	sorted := slices.Clone(nodes)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if len(sorted) > MaxSlots {
		return 0, fmt.Errorf("%d nodes: a lease area has room for %d", len(sorted), MaxSlots)
	}
	i := slices.Index(sorted, node)
	if i < 0 {
		return 0, fmt.Errorf("node %q is not among the nodes %v", node, nodes)
	}
	return i + 1, nil
}

// HeldError says another live node holds the lease.
type HeldError struct {
	Device string
	Holder string
	Claim  Claim
	// Unchanged is how long this node has seen the holder's slot unchanged;
	// Remaining is how much longer it must stay unchanged to count as dead.
	Unchanged, Remaining time.Duration
	// Since is when this node first read the holder's current slot value
	// (by this node's clock): it moves exactly when the holder writes, so a
	// caller waiting for the lease to expire can tell a live holder.
	Since time.Time
}

func (e *HeldError) Error() string {
	what := "holds"
	if e.Claim == ClaimIntent {
		what = "is acquiring"
	}
	return fmt.Sprintf("node %q %s the lease on %s (its slot changed %s ago by our clock; if it is dead the lease expires in %s); "+
		"if you know that node is down and cannot write, override with a forced acquire (disk.Manager.ForceMount / Lease.ForceAcquire with a reason; it is logged)",
		e.Holder, what, e.Device, e.Unchanged.Round(time.Millisecond), e.Remaining.Round(time.Millisecond))
}

// ErrNotHeld is returned by Renew when this node does not hold the lease.
var ErrNotHeld = errors.New("lease not held")

// LeaseConfig configures a Lease.
type LeaseConfig struct {
	Area        *Area
	Node        string
	Nodes       []string // every node that may use this area (policy nodes)
	Incarnation uint64   // changes on every agent start; 0 picks one
	Timing      Timing
	Log         *slog.Logger
	Now         func() time.Time
	// OnLost runs (in its own goroutine) when this node stops holding the
	// lease without releasing it: renewal failed until expiry, or an
	// operator forced the lease over. It must stop all writes to the
	// guarded storage within Timing.Margin (unmount, or self-fence).
	OnLost func(reason error)
}

type observation struct {
	slot  Slot
	since time.Time // when this node first read this exact value
}

// Lease is a node's view of, and claim on, the lease of one area.
type Lease struct {
	cfg  LeaseConfig
	slot int
	n    int

	op sync.Mutex // serialises Acquire/Renew/Release/observe I/O

	mu         sync.Mutex
	seq        uint64
	held       bool
	validUntil time.Time
	gen        uint64
	timer      *time.Timer
	obs        map[int]observation
}

// NewLease prepares a lease on cfg.Area. It reads but does not write: an
// agent restarting with the disk still mounted must not drop a claim it
// may still need.
func NewLease(ctx context.Context, cfg LeaseConfig) (*Lease, error) {
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	if cfg.Area == nil || cfg.Node == "" {
		return nil, errors.New("lease: an area and a node name are required")
	}
	slot, err := SlotFor(cfg.Node, cfg.Nodes)
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(time.Now().UnixNano())
	}
	l := &Lease{cfg: cfg, slot: slot, n: len(slices.Compact(slices.Sorted(slices.Values(cfg.Nodes)))), obs: map[int]observation{}}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timing.IOTimeout)
	defer cancel()
	if _, err := l.read(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// read reads all node slots and updates the observations.
func (l *Lease) read(ctx context.Context) ([]Slot, error) {
	slots, err := l.cfg.Area.ReadSlots(ctx, RegionLease, 1, l.n)
	if err != nil {
		return nil, err
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range slots {
		if s.Index == l.slot {
			l.seq = max(l.seq, s.Seq)
			continue
		}
		o, seen := l.obs[s.Index]
		if !seen || o.slot != s {
			l.obs[s.Index] = observation{slot: s, since: now}
		}
	}
	return slots, nil
}

// liveClaim returns the first other node whose claim has not been seen
// unchanged for the takeover wait. Must hold l.mu.
func (l *Lease) liveClaim(now time.Time) *HeldError {
	wait := l.cfg.Timing.TakeoverWait()
	var found *HeldError
	for i := 1; i <= l.n; i++ {
		o, ok := l.obs[i]
		if !ok || i == l.slot || o.slot.Claim == ClaimNone {
			continue
		}
		age := now.Sub(o.since)
		if age >= wait {
			continue // dead: unchanged for longer than any live holder may go without renewing
		}
		e := &HeldError{Device: l.cfg.Area.Device, Holder: o.slot.Node, Claim: o.slot.Claim, Unchanged: age, Remaining: wait - age, Since: o.since}
		if found == nil || (e.Claim == ClaimHeld && found.Claim != ClaimHeld) {
			found = e
		}
	}
	return found
}

func (l *Lease) write(ctx context.Context, c Claim, forced bool) (started time.Time, err error) {
	l.mu.Lock()
	l.seq++
	s := Slot{Index: l.slot, Node: l.cfg.Node, Incarnation: l.cfg.Incarnation, Seq: l.seq,
		WallTime: time.Now(), Claim: c, Forced: forced, LeaseLength: l.cfg.Timing.Lease}
	l.mu.Unlock()
	started = l.cfg.Now()
	return started, l.cfg.Area.WriteSlot(ctx, RegionLease, s)
}

func (l *Lease) ioCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.Timing.IOTimeout)
}

// Acquire claims the lease. It succeeds only when no other node's claim is
// live, and returns a *HeldError naming the holder otherwise. Two nodes
// acquiring at once both see each other's intent (each re-reads after its
// own durable write) and back off; a node seeing another's intent before
// writing its own yields at once (it does not wait: the caller, e.g. an
// agent's decision loop, tries again later).
func (l *Lease) Acquire(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	if l.Held() {
		return nil
	}
	for attempt := 0; ; attempt++ {
		contended, err := l.tryAcquire(ctx)
		var held *HeldError
		if err == nil || !contended || !errors.As(err, &held) || held.Claim == ClaimHeld || attempt >= 5 {
			return err
		}
		// Contention on intents: back off, lower slots first, with jitter.
		backoff := time.Duration(l.slot)*l.cfg.Timing.Settle + rand.N(l.cfg.Timing.Settle+time.Millisecond)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

// tryAcquire makes one attempt; contended says another claim showed up
// after this node wrote its intent.
func (l *Lease) tryAcquire(ctx context.Context) (contended bool, err error) {
	check := func() error {
		rctx, cancel := l.ioCtx(ctx)
		defer cancel()
		if _, err := l.read(rctx); err != nil {
			return fmt.Errorf("acquire lease on %s: %w", l.cfg.Area.Device, err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if e := l.liveClaim(l.cfg.Now()); e != nil {
			return e
		}
		return nil
	}
	if err := check(); err != nil {
		return false, err
	}
	wctx, cancel := l.ioCtx(ctx)
	_, err = l.write(wctx, ClaimIntent, false)
	cancel()
	if err != nil {
		return false, fmt.Errorf("acquire lease on %s: write intent: %w", l.cfg.Area.Device, err)
	}
	select {
	case <-ctx.Done():
		l.withdraw(ctx)
		return false, ctx.Err()
	case <-time.After(l.cfg.Timing.Settle):
	}
	if err := check(); err != nil {
		l.withdraw(ctx)
		return true, err
	}
	return false, l.claimHeld(ctx, false)
}

func (l *Lease) claimHeld(ctx context.Context, forced bool) error {
	wctx, cancel := l.ioCtx(ctx)
	started, err := l.write(wctx, ClaimHeld, forced)
	cancel()
	if err != nil {
		l.withdraw(ctx)
		return fmt.Errorf("acquire lease on %s: write claim: %w", l.cfg.Area.Device, err)
	}
	l.extend(started)
	l.cfg.Log.Info("lease acquired", "device", l.cfg.Area.Device, "node", l.cfg.Node, "slot", l.slot, "forced", forced)
	return nil
}

// withdraw clears this node's claim, best effort: if the write fails the
// claim is simply never renewed and dies after the takeover wait.
func (l *Lease) withdraw(ctx context.Context) {
	wctx, cancel := l.ioCtx(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := l.write(wctx, ClaimNone, false); err != nil {
		l.cfg.Log.Warn("could not withdraw lease claim; it will expire", "device", l.cfg.Area.Device, "err", err)
	}
}

// extend makes the lease valid until started+Lease and arms the expiry.
func (l *Lease) extend(started time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held, l.validUntil = true, started.Add(l.cfg.Timing.Lease)
	l.gen++
	gen := l.gen
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(l.validUntil.Sub(l.cfg.Now()), func() {
		l.lose(gen, fmt.Errorf("lease on %s expired: not renewed within %s", l.cfg.Area.Device, l.cfg.Timing.Lease))
	})
}

// lose drops the lease if gen is still current and tells OnLost.
func (l *Lease) lose(gen uint64, reason error) {
	l.mu.Lock()
	if !l.held || l.gen != gen {
		l.mu.Unlock()
		return
	}
	l.held = false
	l.gen++
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.cfg.Log.Error("lease lost: stop writing now", "device", l.cfg.Area.Device, "node", l.cfg.Node, "reason", reason)
	if l.cfg.OnLost != nil {
		go l.cfg.OnLost(reason)
	}
}

// Held reports whether this node holds a valid lease now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held && l.cfg.Now().Before(l.validUntil)
}

// ValidUntil is when this node's lease runs out unless renewed.
func (l *Lease) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// Renew extends a held lease. It fails with ErrNotHeld when the lease is
// not held, and drops the lease (OnLost) when another node forced it over.
func (l *Lease) Renew(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	held, gen, until := l.held, l.gen, l.validUntil
	l.mu.Unlock()
	if !held {
		return ErrNotHeld
	}
	// Never let a renewal outlive the lease it renews.
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	started, err := l.write(ctx, ClaimHeld, false)
	if err != nil {
		return fmt.Errorf("renew lease on %s: %w", l.cfg.Area.Device, err)
	}
	l.mu.Lock()
	current := l.held && l.gen == gen
	l.mu.Unlock()
	if current {
		l.extend(started)
	}
	// Then look for an operator's forced claim: the only way another
	// node's claim can be live while this node holds the lease.
	if _, err := l.read(ctx); err != nil {
		l.cfg.Log.Warn("lease renewed, but reading the other slots failed", "device", l.cfg.Area.Device, "err", err)
		return nil
	}
	l.mu.Lock()
	var usurper *observation
	for i, o := range l.obs {
		if i != l.slot && o.slot.Claim == ClaimHeld && l.cfg.Now().Sub(o.since) < l.cfg.Timing.TakeoverWait() {
			usurper = &o
			break
		}
	}
	gen = l.gen
	l.mu.Unlock()
	if usurper != nil {
		err := fmt.Errorf("node %q claimed the lease on %s (forced=%v)", usurper.slot.Node, l.cfg.Area.Device, usurper.slot.Forced)
		l.lose(gen, err)
		return err
	}
	return nil
}

// Release gives the lease up. The local lease ends even if the write fails
// (the claim then dies unrenewed after the takeover wait).
func (l *Lease) Release(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	l.held = false
	l.gen++
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	wctx, cancel := l.ioCtx(ctx)
	defer cancel()
	if _, err := l.write(wctx, ClaimNone, false); err != nil {
		return fmt.Errorf("release lease on %s: %w", l.cfg.Area.Device, err)
	}
	l.cfg.Log.Info("lease released", "device", l.cfg.Area.Device, "node", l.cfg.Node)
	return nil
}

// ForceAcquire takes the lease whatever other slots say: the operator's
// override for a holder known to be dead whose claim has not expired yet
// (or that cannot be reached). It is logged with reason. After writing its
// forced claim it waits Renew+IOTimeout+Margin, so a holder that is in
// fact alive sees the claim at its next renewal and fences itself first.
func (l *Lease) ForceAcquire(ctx context.Context, reason string) error {
	if reason == "" {
		return errors.New("force acquire needs a reason (it is logged)")
	}
	l.op.Lock()
	defer l.op.Unlock()
	rctx, cancel := l.ioCtx(ctx)
	_, err := l.read(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("force acquire lease on %s: %w", l.cfg.Area.Device, err)
	}
	l.mu.Lock()
	prev := l.liveClaim(l.cfg.Now())
	l.mu.Unlock()
	holder := ""
	if prev != nil {
		holder = prev.Holder
	}
	l.cfg.Log.Warn("OPERATOR OVERRIDE: force-acquiring disk lease", "device", l.cfg.Area.Device, "node", l.cfg.Node,
		"overridden_holder", holder, "reason", reason)
	wctx, cancel := l.ioCtx(ctx)
	_, err = l.write(wctx, ClaimHeld, true)
	cancel()
	if err != nil {
		return fmt.Errorf("force acquire lease on %s: %w", l.cfg.Area.Device, err)
	}
	if holder != "" {
		t := l.cfg.Timing
		select {
		case <-ctx.Done():
			l.withdraw(ctx)
			return ctx.Err()
		case <-time.After(t.Renew + t.IOTimeout + t.Margin):
		}
	}
	return l.claimHeld(ctx, true)
}

// Holder names the node that holds the lease as far as this node knows:
// itself, another node whose claim is live, or "" for nobody.
func (l *Lease) Holder() string {
	if l.Held() {
		return l.cfg.Node
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.liveClaim(l.cfg.Now()); e != nil && e.Claim == ClaimHeld {
		return e.Holder
	}
	return ""
}

// Refresh reads the area once (observations only).
func (l *Lease) Refresh(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	rctx, cancel := l.ioCtx(ctx)
	defer cancel()
	_, err := l.read(rctx)
	return err
}

// observeSplit is how many times per renewal period a node that does not
// hold the lease reads the area. A holder's slot counts as unchanged from
// the first read that saw its value, so reading more often than the holder
// writes ends a takeover wait closer to lease + margin after the holder's
// last write (the wait still never starts before that write).
const observeSplit = 4

// Run renews the lease every Timing.Renew while it is held and otherwise
// reads the area every Timing.Renew/observeSplit, so that a later Acquire
// knows for how long other claims have been unchanged. It returns when ctx
// ends.
func (l *Lease) Run(ctx context.Context) {
	renew := time.NewTicker(l.cfg.Timing.Renew)
	defer renew.Stop()
	observe := time.NewTicker(max(l.cfg.Timing.Renew/observeSplit, time.Millisecond))
	defer observe.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			if !l.Held() {
				continue
			}
			rctx, cancel := l.ioCtx(ctx)
			err = l.Renew(rctx)
			cancel()
		case <-observe.C:
			if l.Held() {
				continue
			}
			err = l.Refresh(ctx)
		}
		if err != nil && ctx.Err() == nil {
			l.cfg.Log.Warn("lease I/O failed", "device", l.cfg.Area.Device, "node", l.cfg.Node, "err", err)
		}
	}
}

// Close stops the expiry timer (the lease stays as it is on disk).
func (l *Lease) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
}
