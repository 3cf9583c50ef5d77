package agent

import (
	"math"
	"testing"
	"time"
)

func TestLossMeter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &lossMeter{interval: 100 * time.Millisecond}
	if got := m.loss(t0); got != 0 {
		t.Fatalf("no heartbeat yet: loss %v, want 0 (unknown)", got)
	}
	// Every heartbeat for 30 s: no loss.
	now := t0
	for i := 0; i <= 300; i++ {
		now = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		m.seen(now)
	}
	if got := m.loss(now); got != 0 {
		t.Errorf("all heartbeats arrived: loss %v, want 0", got)
	}
	// Then every other one for 60 s: about half lost over the window.
	for i := 1; i <= 600; i++ {
		now = now.Add(100 * time.Millisecond)
		if i%2 == 0 {
			m.seen(now)
		}
	}
	if got := m.loss(now); math.Abs(got-0.5) > 0.02 {
		t.Errorf("every other heartbeat lost: loss %v, want about 0.5", got)
	}
	// Silence for the whole window: everything lost.
	if got := m.loss(now.Add(2 * time.Minute)); got != 1 {
		t.Errorf("a silent minute: loss %v, want 1", got)
	}
	if len(m.recent) != 0 {
		t.Errorf("old receive times are kept: %d", len(m.recent))
	}
}
