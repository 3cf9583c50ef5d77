package heartbeat

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Round-trip time measurement.
//
// Every heartbeat an endpoint sends carries, for each peer it has heard
// from on the path, an Echo: the newest sequence number accepted from that
// peer and how long the sender held it before sending. When the peer
// receives that heartbeat it looks up when it sent the echoed sequence
// number and computes
//
//	RTT = (receive time - send time of the echoed heartbeat) - held time
//
// which is the time the two datagrams spent on the wire and in the two
// receive paths. Both instants of the subtraction are on the peer's own
// (monotonic) clock and the held time is a duration on the echoing node's
// clock, so no clock synchronisation is involved (the same idea as RTCP's
// LSR/DLSR fields). It costs no extra packet.

// RTTBuckets are the upper bounds, in seconds, of the RTT histogram: from
// 100 µs (a quiet LAN) to 1 s (a path about to be declared down).
var RTTBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// RTTStats is what one endpoint measured of one peer's round-trip time.
type RTTStats struct {
	// Last is the newest sample, measured At.
	Last time.Duration
	At   time.Time
	// Smoothed is an exponentially weighted mean (weight 1/8 per sample, as
	// TCP's SRTT).
	Smoothed time.Duration
	Min, Max time.Duration
	// Count and Sum are the number and total of samples; Buckets holds the
	// cumulative count of samples <= each of RTTBuckets.
	Count   uint64
	Sum     time.Duration
	Buckets []uint64
}

func (s *RTTStats) add(rtt time.Duration, at time.Time) {
	if s.Count == 0 {
		s.Smoothed, s.Min, s.Max = rtt, rtt, rtt
		s.Buckets = make([]uint64, len(RTTBuckets))
	} else {
		s.Smoothed += (rtt - s.Smoothed) / 8
		s.Min, s.Max = min(s.Min, rtt), max(s.Max, rtt)
	}
	s.Last, s.At = rtt, at
	s.Count++
	s.Sum += rtt
	secs := rtt.Seconds()
	for i, le := range RTTBuckets {
		if secs <= le {
			s.Buckets[i]++
		}
	}
}

// sentRing remembers when the newest heartbeats were sent, by sequence
// number. Echoes older than the ring are not measured: the peer is that far
// behind, and the path's loss counters say more than an RTT would.
const sentRing = 64

type sentBeat struct {
	seq uint64
	at  time.Time
}

// echoes is an endpoint's RTT bookkeeping.
type echoes struct {
	self string // this node's name; echoes addressed to it are measured

	mu          sync.Mutex
	incarnation uint64
	sent        [sentRing]sentBeat
	peers       map[string]*peerEcho
}

type peerEcho struct {
	incarnation, seq uint64
	heardAt          time.Time
	// legacy: the peer's newest heartbeat was version 1, so it cannot read
	// echoes; it is sent version 1 until it speaks version 2.
	legacy   bool
	measured uint64 // newest of our sequence numbers measured from its echoes
	rtt      RTTStats
}

func newEchoes(self string) *echoes {
	return &echoes{self: self, peers: map[string]*peerEcho{}}
}

// sending notes that our heartbeat (incarnation, seq) leaves now and
// returns the echoes it carries, in peer name order.
func (e *echoes) sending(incarnation, seq uint64, now time.Time) []Echo {
	e.mu.Lock()
	defer e.mu.Unlock()
	if incarnation != e.incarnation {
		e.incarnation, e.sent = incarnation, [sentRing]sentBeat{}
	}
	e.sent[seq%sentRing] = sentBeat{seq: seq, at: now}
	var out []Echo
	for _, name := range slices.Sorted(maps.Keys(e.peers)) {
		p := e.peers[name]
		out = append(out, Echo{Node: name, Incarnation: p.incarnation, Seq: p.seq, Held: max(now.Sub(p.heardAt), 0)})
	}
	return out
}

// legacy reports whether peer last spoke version 1.
func (e *echoes) legacy(peer string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.peers[peer]
	return p != nil && p.legacy
}

// received notes an accepted heartbeat and measures the RTT from the echo
// addressed to this node, if any.
func (e *echoes) received(m Message, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.peers[m.From]
	if p == nil {
		p = &peerEcho{}
		e.peers[m.From] = p
	}
	p.incarnation, p.seq, p.heardAt, p.legacy = m.Incarnation, m.Seq, at, m.Version == VersionNoEcho
	for _, echo := range m.Echoes {
		if echo.Node != e.self || echo.Incarnation != e.incarnation || echo.Seq <= p.measured {
			continue
		}
		sent := e.sent[echo.Seq%sentRing]
		if sent.seq != echo.Seq || sent.at.IsZero() {
			continue
		}
		p.measured = echo.Seq
		// Clock rates differ by parts per million: a negative result is
		// a sub-microsecond RTT, not an error.
		p.rtt.add(max(at.Sub(sent.at)-echo.Held, 0), at)
	}
}

// stats copies the measurements of every peer with at least one sample.
func (e *echoes) stats() map[string]RTTStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]RTTStats{}
	for name, p := range e.peers {
		if p.rtt.Count > 0 {
			s := p.rtt
			s.Buckets = slices.Clone(s.Buckets)
			out[name] = s
		}
	}
	return out
}
