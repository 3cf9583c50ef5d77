package agent

import (
	"time"

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
