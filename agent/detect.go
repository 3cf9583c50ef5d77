package agent

import (
	"fmt"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Stall handling of the detection timer: a timer that fires more than
// stallSlack after its deadline means this process was not running (CPU
// starved), and heartbeats may be waiting unread in the sockets; the loop
// then gives the receivers confirmWait to read them before it judges.
const (
	stallSlack  = 2 * time.Millisecond
	confirmWait = time.Millisecond
)

// detectionTimer fires when the next heartbeat path of a peer would be
// declared down (its last heartbeat older than interval x misses), so the
// loop notices a dead peer at that moment instead of up to one loop tick
// (a whole heartbeat interval) later.
type detectionTimer struct {
	deadlines map[[2]string]time.Time // {peer, path} -> last heartbeat + detection time
	timer     *time.Timer
	due       time.Time // what the timer is armed for
	// confirmUntil is set while a late firing waits for queued heartbeats.
	confirmUntil time.Time
}

func newDetectionTimer() *detectionTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &detectionTimer{deadlines: map[[2]string]time.Time{}, timer: t}
}

// seen records a heartbeat from peer on path, received at.
func (d *detectionTimer) seen(p *policy.Policy, peer, path string, at time.Time) {
	for _, h := range p.Paths {
		if h.Name == path {
			d.deadlines[[2]string{peer, path}] = at.Add(h.DetectionTime())
			return
		}
	}
}

// arm sets the timer to the earliest deadline not yet judged (at once if it
// has passed), but not before a pending confirmation.
func (d *detectionTimer) arm(now time.Time) {
	var next time.Time
	for _, dl := range d.deadlines {
		if next.IsZero() || dl.Before(next) {
			next = dl
		}
	}
	if !d.confirmUntil.IsZero() && (next.IsZero() || next.Before(d.confirmUntil)) {
		next = d.confirmUntil
	}
	d.timer.Stop()
	d.due = next
	if !next.IsZero() {
		d.timer.Reset(max(next.Sub(now), 0))
	}
}

// fired is called when the timer fires; it reports whether the loop should
// judge the paths now, or first wait confirmWait because it fired late.
func (d *detectionTimer) fired(now time.Time) bool {
	if d.confirmUntil.IsZero() && now.Sub(d.due) > stallSlack {
		d.confirmUntil = now.Add(confirmWait)
		d.arm(now)
		return false
	}
	d.confirmUntil = time.Time{}
	return true
}

// judged forgets the deadlines that have passed (the view has judged those
// paths) and arms the timer for the next one.
func (d *detectionTimer) judged(now time.Time) {
	for k, dl := range d.deadlines {
		if !dl.After(now) {
			delete(d.deadlines, k)
		}
	}
	d.arm(now)
}

func (d *detectionTimer) stop() { d.timer.Stop() }

// deferTo postpones judging until t (the view holds until then).
func (d *detectionTimer) deferTo(t, now time.Time) {
	if t.After(d.confirmUntil) {
		d.confirmUntil = t
	}
	d.arm(now)
}

// pauseGuard notices that the agent itself did not run for a while: its
// loop wakes at least every tick, so a much longer gap between two timed
// wakes means the process was frozen (an overloaded host, a VM paused for a
// snapshot or a live migration, SIGSTOP). Every peer then looks silent for
// that long although the silence was ours; judging at once would declare
// live peers dead and take over beside them. After a pause the view holds
// for two heartbeat intervals, time for a live peer's next heartbeat to
// arrive on every path; a peer that really died is declared dead that much
// later.
type pauseGuard struct {
	threshold time.Duration // a gap between timed wakes above this is a pause
	hold      time.Duration
	last      time.Time
	// A host that keeps stalling must not suppress detection for ever:
	// after a hold, the next pause within `rest` is judged at once.
	rest     time.Duration
	lastHold time.Time
}

func newPauseGuard(p *policy.Policy, tick time.Duration) *pauseGuard {
	var minDetect time.Duration
	for _, h := range p.Paths {
		if d := h.DetectionTime(); minDetect == 0 || d < minDetect {
			minDetect = d
		}
	}
	// Only a pause of about the detection time can fake a death; shorter
	// gaps are scheduling noise.
	hold := engine.PauseHold(p)
	return &pauseGuard{threshold: max(2*tick, minDetect/2), hold: hold, rest: max(2*minDetect, 2*hold)}
}

// wake records a timed wake at now and returns how long the agent was
// paused before it (0 when it was not, or when it held for a pause too
// recently: a host that stalls again and again is judged as it is).
func (g *pauseGuard) wake(now time.Time) time.Duration {
	gap := now.Sub(g.last)
	first := g.last.IsZero()
	g.last = now
	if first || gap <= g.threshold {
		return 0
	}
	if !g.lastHold.IsZero() && now.Sub(g.lastHold) < g.rest+gap {
		return 0
	}
	g.lastHold = now
	return gap
}

// checkPause is called on each timed wake of the loop; after a pause it
// makes the view hold and the detection timer wait, says so, and reports
// true.
func (a *Agent) checkPause(g *pauseGuard, detect *detectionTimer, now time.Time) bool {
	paused := g.wake(now)
	if paused == 0 {
		return false
	}
	until := now.Add(g.hold)
	a.node.View.HoldUntil(until)
	detect.deferTo(until, now)
	a.log.Warn("agent was paused; listening for fresh heartbeats before judging peers",
		"paused", paused.Round(time.Millisecond), "hold", g.hold)
	a.record(engine.Record{At: now, Node: a.cfg.Node, Kind: engine.RecEvent,
		Text: fmt.Sprintf("agent was paused for %s (overloaded host or paused VM?): peers are judged again after %s of fresh heartbeats", paused.Round(time.Millisecond), g.hold)})
	return true
}

// drainInbox feeds every queued heartbeat to the view, then re-arms the
// detection timer; it reports whether any heartbeat changed the view.
func (a *Agent) drainInbox(detect *detectionTimer) bool {
	dirty := false
	for {
		select {
		case r := <-a.inbox:
			dirty = a.heartbeat(r) || dirty
			detect.seen(a.policy, r.Message.From, r.Path, r.At)
		default:
			detect.arm(a.now())
			return dirty
		}
	}
}
