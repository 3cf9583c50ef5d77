package agent

import "time"

// wakeTimer fires at the instant the last decision asked to be made again
// (engine.Decision.WakeAt): a rule such as `p.down_for < 2s` changes its
// answer when time passes, with no new fact, and must take effect then, not
// at the next periodic re-evaluation.
type wakeTimer struct {
	timer *time.Timer
	at    time.Time
}

func newWakeTimer() *wakeTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &wakeTimer{timer: t}
}

// C fires when the loop should decide again.
func (w *wakeTimer) C() <-chan time.Time { return w.timer.C }

// arm sets the timer for at (zero: disarm), now being the agent's clock.
func (w *wakeTimer) arm(now, at time.Time) {
	if at.Equal(w.at) {
		return
	}
	w.timer.Stop()
	w.at = at
	if !at.IsZero() {
		w.timer.Reset(max(at.Sub(now), 0))
	}
}

// fired is called when the timer fired: the armed instant is used up.
func (w *wakeTimer) fired() { w.at = time.Time{} }

func (w *wakeTimer) stop() { w.timer.Stop() }
