package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/builtins/diskhb"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// diskMinTimeout is the least time a mount gets: acquiring the lease waits
// for a settle period and a few I/O timeouts.
const diskMinTimeout = 15 * time.Second

// diskManager returns the node's disk lease manager, created on first use.
func (e *Executor) diskManager() (*disk.Manager, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.disks != nil {
		return e.disks, nil
	}
	var nodes []string
	if e.Policy != nil {
		for _, n := range e.Policy().Nodes {
			nodes = append(nodes, n.Name)
		}
	}
	if len(nodes) == 0 {
		nodes = []string{e.node}
	}
	m, err := disk.NewManager(disk.ManagerConfig{Node: e.node, Nodes: nodes, Incarnation: e.Incarnation, Log: e.log,
		// A node that lost its lease and cannot unmount must stop writing:
		// rebooting is the only way left, as with SBD.
		Fence: disk.SysrqReboot})
	if err != nil {
		return nil, fmt.Errorf("disk lease manager: %w", err)
	}
	e.disks = m
	return m, nil
}

func (e *Executor) executeDisk(ctx context.Context, group string, r *policy.Resource, start bool) error {
	spec, err := disk.SpecFromParams(r.Params)
	if err != nil {
		return fmt.Errorf("disk %s: %w", r.Name, err)
	}
	m, err := e.diskManager()
	if err != nil {
		return err
	}
	if !start {
		e.leases.end(spec.Mountpoint)
		return m.Unmount(ctx, spec, spec.Busy)
	}
	// Acquiring a free lease waits a settle period and a few I/O timeouts;
	// a lease still held is not waited for here (see startDisk).
	t := spec.Timing
	need := max(diskMinTimeout, t.Renew+4*t.IOTimeout+t.Settle)
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < need {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), need)
		defer cancel()
	}
	return e.startDisk(ctx, group, m, spec)
}

// startDisk mounts once no other node's lease claim is live. After a
// crash the holder was declared dead, but its lease is only safe to take
// once its slot has stayed unchanged for the takeover wait (lease +
// margin). Failing for real would mark the group failed here for the
// failure timeout and leave it running nowhere; waiting here would block
// the agent's loop (heartbeats, status, control requests) for up to the
// whole takeover wait. So the start is refused for now (engine.ErrRetry)
// and tried again at the next decision, and Wake fires when the lease is
// due. The wait is remembered across tries: a holder whose slot changes
// while we wait is alive (only the network to it is gone), and the start
// then fails for real with the lease error; nothing is mounted.
func (e *Executor) startDisk(ctx context.Context, group string, m *disk.Manager, spec disk.Spec) error {
	err := m.Mount(ctx, spec)
	var held *disk.HeldError
	if !errors.As(err, &held) {
		e.leases.end(spec.Mountpoint)
		return err
	}
	now := e.now()
	// KeepWaits forgets the waits a decision gave up. A wait not tried for
	// a whole takeover wait (the loop was busy elsewhere) starts over too:
	// that only lengthens it, the lease still refuses a live holder.
	w, waiting := e.leases.get(spec.Mountpoint, now.Add(-spec.Timing.TakeoverWait()))
	if waiting && (held.Holder != w.Holder || !held.Since.Equal(w.slotSince)) {
		e.leases.end(spec.Mountpoint)
		return fmt.Errorf("%w; node %q wrote its lease slot while this node waited for the lease to expire: it is alive, so the disk stays where it is", err, held.Holder)
	}
	if !waiting {
		e.log.Warn("disk start: waiting for the lease of a holder that stopped renewing to expire before mounting",
			"mountpoint", spec.Mountpoint, "holder", held.Holder, "remaining", held.Remaining.Round(time.Millisecond))
		w = LeaseWait{Group: group, Mountpoint: spec.Mountpoint, Holder: held.Holder, Begun: now, slotSince: held.Since}
	}
	w.Due, w.Unchanged, w.lastTry = now.Add(held.Remaining), held.Unchanged, now
	e.leases.put(w)
	// Decide again when the lease is due, and at least every renewal
	// period before: a live holder shows itself by writing its slot.
	e.leases.wakeAt(now, now.Add(min(held.Remaining, spec.Timing.Renew)+time.Millisecond))
	return fmt.Errorf("%s: %w", w.Text(now), engine.ErrRetry)
}

// LeaseWait is a disk start waiting for a silent holder's lease to expire.
type LeaseWait struct {
	Group, Mountpoint, Holder string
	// Begun is the first refusal; Due is when the lease expires if the
	// holder's slot stays unchanged.
	Begun, Due time.Time
	// Unchanged is how long the holder's slot had not changed at the last
	// try.
	Unchanged time.Duration

	slotSince time.Time // disk.HeldError.Since at the first refusal
	lastTry   time.Time
}

// Text says what the start waits for, as status shows it.
func (w LeaseWait) Text(now time.Time) string {
	left := max(w.Due.Sub(now), 0).Round(100 * time.Millisecond)
	unchanged := (w.Unchanged + now.Sub(w.lastTry)).Round(100 * time.Millisecond)
	return fmt.Sprintf("waiting for %s's lease on %s to expire, %s left (its slot has not changed for %s; the start fails if it writes)",
		w.Holder, w.Mountpoint, left, unchanged)
}

// RetryWaiter is an executor whose starts can be refused for now
// (engine.ErrRetry) until a known instant: the agent's loop decides again
// when Wake fires, status shows StartWaits by group, and after each
// decision KeepWaits says which groups the decision still starts here.
type RetryWaiter interface {
	Wake() <-chan struct{}
	StartWaits(now time.Time) map[string]string
	KeepWaits(starting map[string]bool)
}

var _ RetryWaiter = (*Executor)(nil)

// Wake receives when a start refused for now should be tried again.
func (e *Executor) Wake() <-chan struct{} { return e.leases.wakeChan() }

// StartWaits says, by group, what the group's start waits for on this
// node (only what was tried within a takeover wait: a wait given up is
// not shown; status shows it only while the plan still starts the group).
func (e *Executor) StartWaits(now time.Time) map[string]string {
	return e.leases.texts(now)
}

// KeepWaits forgets the waits of groups not in starting: a wait that was
// given up (the holder came back, the group went elsewhere) must not
// judge a later takeover, where the holder's slot has moved on.
func (e *Executor) KeepWaits(starting map[string]bool) {
	e.leases.keep(starting)
}

// keepRetryWaits tells the executor which groups decision d still starts
// on this node, so waits given up are forgotten.
func (a *Agent) keepRetryWaits(d *engine.Decision) {
	w, ok := a.exec.(RetryWaiter)
	if !ok {
		return
	}
	starting := map[string]bool{}
	for _, g := range a.node.Starting() {
		starting[g] = true // its start job is still running
	}
	for _, act := range d.Plan {
		if act.Node == a.cfg.Node && act.Op == engine.OpStart && act.Ready {
			starting[act.Group] = true
		}
	}
	w.KeepWaits(starting)
}

// leaseWaits keeps the disk starts waiting for a lease, by mountpoint,
// across decisions, and the timer that wakes the loop when one is due.
type leaseWaits struct {
	mu      sync.Mutex
	waits   map[string]LeaseWait
	wake    chan struct{}
	timer   *time.Timer
	timerAt time.Time
}

func (l *leaseWaits) get(mp string, notBefore time.Time) (LeaseWait, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.waits[mp]
	if ok && w.lastTry.Before(notBefore) {
		delete(l.waits, mp)
		return LeaseWait{}, false
	}
	return w, ok
}

func (l *leaseWaits) put(w LeaseWait) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waits == nil {
		l.waits = map[string]LeaseWait{}
	}
	l.waits[w.Mountpoint] = w
}

func (l *leaseWaits) end(mp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waits, mp)
}

func (l *leaseWaits) keep(groups map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for mp, w := range l.waits {
		if !groups[w.Group] {
			delete(l.waits, mp)
		}
	}
}

func (l *leaseWaits) texts(now time.Time) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for _, mp := range slices.Sorted(maps.Keys(l.waits)) {
		if w := l.waits[mp]; w.Group != "" && out[w.Group] == "" {
			out[w.Group] = w.Text(now)
		}
	}
	return out
}

func (l *leaseWaits) wakeChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	return l.wake
}

// wakeAt makes Wake fire at at, unless an earlier wake is pending.
func (l *leaseWaits) wakeAt(now, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	if l.timer != nil && l.timerAt.After(now) && !l.timerAt.After(at) {
		return
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	wake := l.wake
	l.timerAt = at
	l.timer = time.AfterFunc(at.Sub(now), func() {
		select {
		case wake <- struct{}{}:
		default: // a wake is pending already
		}
	})
}

func (l *leaseWaits) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
}

func (e *Executor) monitorDisk(ctx context.Context, r *policy.Resource) error {
	spec, err := disk.SpecFromParams(r.Params)
	if err != nil {
		return err
	}
	m, err := e.diskManager()
	if err != nil {
		return err
	}
	return m.Monitor(ctx, spec)
}

// diskBeat is a peer's slot seen advancing on a shared-disk heartbeat path.
type diskBeat struct {
	peer, path string
	at         time.Time
}

// startDiskHeartbeat runs a heartbeat path over a shared disk: each node
// writes its own slot of the device's lease area every interval and reads
// the others'. It plugs into the same failure detector as the UDP paths, so
// "check the second heartbeat before taking over" holds when the network
// between the nodes is cut but the disk is still shared.
func (a *Agent) startDiskHeartbeat(ctx context.Context, h *policy.HeartbeatPath, incarnation uint64) error {
	area, err := disk.OpenArea(ctx, h.Device)
	if err != nil {
		return fmt.Errorf("disk heartbeat path %s on %s: %w (create the lease area first; see builtins/disk)", h.Name, h.Device, err)
	}
	hb, err := diskhb.New(diskhb.Config{Area: area, Node: a.cfg.Node, Nodes: a.policy.NodeNames(), Interval: h.Interval,
		Misses: h.Misses, Incarnation: incarnation, Now: a.now, Log: a.log,
		OnBeat: func(peer string, at time.Time) {
			select {
			case a.diskBeats <- diskBeat{peer: peer, path: h.Name, at: at}:
			default: // the loop is busy; the next beat carries the same news
			}
		}})
	if err != nil {
		return fmt.Errorf("disk heartbeat path %s: %w", h.Name, err)
	}
	go hb.Run(ctx)
	return nil
}
