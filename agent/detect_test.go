package agent

import (
	"testing"
	"time"

	"github.com/harules/harules/policy"
)

func detectPolicy() *policy.Policy {
	return &policy.Policy{Paths: []*policy.HeartbeatPath{
		{Name: "lan", Interval: 10 * time.Millisecond, Misses: 3},
		{Name: "backnet", Interval: 100 * time.Millisecond, Misses: 3},
	}}
}

func TestDetectionTimerArmsForEarliestPathDeadline(t *testing.T) {
	d := newDetectionTimer()
	defer d.stop()
	p := detectPolicy()
	t0 := time.Now()
	d.seen(p, "node2", "backnet", t0)
	d.seen(p, "node2", "lan", t0)
	d.seen(p, "node2", "unknown-path", t0) // ignored
	d.arm(t0)
	if want := t0.Add(30 * time.Millisecond); !d.due.Equal(want) {
		t.Fatalf("armed for %v after the heartbeat, want the lan deadline %v", d.due.Sub(t0), want.Sub(t0))
	}
	select {
	case <-d.timer.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the detection timer never fired")
	}
	// Judging at the lan deadline forgets it; backnet's is next.
	d.judged(t0.Add(30 * time.Millisecond))
	if want := t0.Add(300 * time.Millisecond); !d.due.Equal(want) {
		t.Fatalf("after judging lan, armed for %v, want the backnet deadline %v", d.due.Sub(t0), want.Sub(t0))
	}
	if len(d.deadlines) != 1 {
		t.Fatalf("deadlines after judging lan: %v, want only backnet", d.deadlines)
	}
}

func TestDetectionTimerWaitsForQueuedHeartbeatsWhenLate(t *testing.T) {
	d := newDetectionTimer()
	defer d.stop()
	p := detectPolicy()
	t0 := time.Now()
	d.seen(p, "node2", "lan", t0)
	d.arm(t0)
	deadline := t0.Add(30 * time.Millisecond)
	if !d.fired(deadline.Add(stallSlack / 2)) {
		t.Fatal("a timer firing on time must judge at once")
	}
	d.arm(t0)
	late := deadline.Add(20 * time.Millisecond) // the process was starved
	if d.fired(late) {
		t.Fatal("a timer firing 20ms late judged at once; it must first let queued heartbeats in")
	}
	if want := late.Add(confirmWait); !d.due.Equal(want) {
		t.Fatalf("confirmation armed for %v, want %v", d.due, want)
	}
	// A heartbeat read meanwhile must not pull the timer before the
	// confirmation ends.
	d.arm(late.Add(confirmWait / 2))
	if want := late.Add(confirmWait); !d.due.Equal(want) {
		t.Fatalf("re-armed during the confirmation for %v, want %v", d.due, want)
	}
	if !d.fired(late.Add(confirmWait)) {
		t.Fatal("the confirmation firing must judge")
	}
	if !d.confirmUntil.IsZero() {
		t.Fatal("confirmation still pending after judging")
	}
}

// TestPauseGuard: a timed wake long after the previous one is a pause of
// this process; ordinary ticks and scheduling noise are not.
func TestPauseGuard(t *testing.T) {
	p := detectPolicy() // lan 10ms x 3 (30 ms), backnet 100ms x 3 (300 ms)
	g := newPauseGuard(p, 10*time.Millisecond)
	if g.threshold != 20*time.Millisecond || g.hold != 200*time.Millisecond {
		t.Fatalf("threshold %v hold %v, want 20ms (2 ticks > half of 30ms) and 200ms (2 x the slowest interval)", g.threshold, g.hold)
	}
	t0 := time.Now()
	if g.wake(t0) != 0 {
		t.Fatal("the first wake is a pause")
	}
	if g.wake(t0.Add(10*time.Millisecond)) != 0 || g.wake(t0.Add(29*time.Millisecond)) != 0 {
		t.Fatal("a tick or a 19 ms gap counted as a pause")
	}
	if got := g.wake(t0.Add(3 * time.Second)); got != 3*time.Second-29*time.Millisecond {
		t.Fatalf("a 2.971 s gap reported as %v", got)
	}
	// Stalling again right after a hold: judged at once, so a host that
	// keeps stalling cannot keep a dead peer alive for ever.
	if got := g.wake(t0.Add(3*time.Second + 500*time.Millisecond)); got != 0 {
		t.Fatalf("a second pause right after a hold held again (%v)", got)
	}
	// Once it ran normally for a while, a new pause holds again.
	now := t0.Add(3500 * time.Millisecond)
	for i := 0; i < 100; i++ {
		now = now.Add(10 * time.Millisecond)
		if got := g.wake(now); got != 0 {
			t.Fatalf("a 10 ms tick reported as a pause of %v", got)
		}
	}
	if got := g.wake(now.Add(time.Second)); got != time.Second {
		t.Fatalf("a pause after a second of normal running reported as %v, want 1s", got)
	}
	// A slow policy tolerates longer gaps: half its shortest detection.
	slow := newPauseGuard(&policy.Policy{Paths: []*policy.HeartbeatPath{{Name: "lan", Interval: time.Second, Misses: 3}}}, time.Second)
	if slow.threshold != 2*time.Second {
		t.Fatalf("slow policy threshold %v, want 2s (2 ticks)", slow.threshold)
	}
}
