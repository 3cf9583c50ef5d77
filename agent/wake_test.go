package agent

import (
	"testing"
	"time"
)

// TestWakeTimer: the timer fires for the instant it was armed with, a
// re-arm for the same instant keeps it, a new instant replaces it, and zero
// disarms it.
func TestWakeTimer(t *testing.T) {
	w := newWakeTimer()
	defer w.stop()
	now := time.Now()
	w.arm(now, now.Add(time.Hour))
	w.arm(now, now.Add(5*time.Millisecond)) // replaces the hour
	select {
	case <-w.C():
		w.fired()
	case <-time.After(10 * time.Second):
		t.Fatal("the wake timer did not fire")
	}
	if !w.at.IsZero() {
		t.Errorf("armed instant kept after firing: %s", w.at)
	}
	w.arm(time.Now(), time.Now().Add(5*time.Millisecond))
	w.arm(time.Now(), time.Time{}) // disarm
	select {
	case <-w.C():
		t.Fatal("a disarmed wake timer fired")
	case <-time.After(50 * time.Millisecond):
	}
}
