package agent

import "time"

// lossWindow is how far back heartbeat loss is measured.
const lossWindow = time.Minute

// lossMeter counts the heartbeats received from one peer on one path over
// the last minute, so status and the console can show loss (a path that is
// up but drops packets is a path about to fail).
type lossMeter struct {
	interval time.Duration
	first    time.Time   // first heartbeat ever seen (loss before it is unknown)
	recent   []time.Time // receive times inside the window, oldest first
}

func (m *lossMeter) seen(at time.Time) {
	if m.first.IsZero() {
		m.first = at
	}
	m.recent = append(m.recent, at)
	m.trim(at)
}

func (m *lossMeter) trim(now time.Time) {
	cut := 0
	for cut < len(m.recent) && now.Sub(m.recent[cut]) > lossWindow {
		cut++
	}
	if cut > 0 {
		m.recent = append(m.recent[:0], m.recent[cut:]...)
	}
}

// loss returns the share of the heartbeats expected in the last minute
// (or since the first one) that did not arrive, from 0 to 1.
func (m *lossMeter) loss(now time.Time) float64 {
	if m.first.IsZero() || m.interval <= 0 {
		return 0
	}
	m.trim(now)
	span := min(now.Sub(m.first), lossWindow)
	expected := float64(span/m.interval) + 1
	got := float64(len(m.recent))
	if got >= expected {
		return 0
	}
	return 1 - got/expected
}
