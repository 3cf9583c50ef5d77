package agent

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/harules/harules/heartbeat"
)

// HeartbeatStats counts what one heartbeat path's endpoint accepted and
// rejected (by reason: bad_mac, wrong_cluster, replay, ...) and the
// round-trip times it measured to each peer.
type HeartbeatStats struct {
	Path       string            `json:"path"`
	Accepted   uint64            `json:"accepted"`
	Rejected   map[string]uint64 `json:"rejected"`
	SendErrors uint64            `json:"send_errors"`
	ReadErrors uint64            `json:"read_errors"`
	RTT        []PeerRTT         `json:"rtt,omitempty"`
}

// PeerRTT is the round-trip time to one peer on one path, measured from
// the echoes in its heartbeats (see package heartbeat).
type PeerRTT struct {
	Peer            string    `json:"peer"`
	LastSeconds     float64   `json:"last_seconds"`
	SmoothedSeconds float64   `json:"smoothed_seconds"`
	MinSeconds      float64   `json:"min_seconds"`
	MaxSeconds      float64   `json:"max_seconds"`
	At              time.Time `json:"at"`
	Count           uint64    `json:"count"`
	SumSeconds      float64   `json:"sum_seconds"`
	// Buckets are cumulative counts of samples <= heartbeat.RTTBuckets.
	Buckets []uint64 `json:"buckets"`
}

// HeartbeatStats snapshots the endpoints' counters. a.eps is filled before
// the control API and the console start and never changes afterwards, so
// their goroutines may call it.
func (a *Agent) HeartbeatStats() []HeartbeatStats {
	out := []HeartbeatStats{}
	for _, ep := range a.eps {
		s := ep.Stats()
		hs := HeartbeatStats{Path: s.Path, Accepted: s.Accepted, Rejected: s.Rejected, SendErrors: s.SendErrors, ReadErrors: s.ReadErrors}
		for _, peer := range slices.Sorted(maps.Keys(s.RTT)) {
			hs.RTT = append(hs.RTT, peerRTT(peer, s.RTT[peer]))
		}
		out = append(out, hs)
	}
	return out
}

// FormatRTT prints a round-trip time with a unit that keeps it readable:
// "287 µs" on a LAN, "42.10 ms" across a WAN.
func FormatRTT(secs float64) string {
	switch {
	case secs < 0.001:
		return fmt.Sprintf("%.0f µs", secs*1e6)
	case secs < 1:
		return fmt.Sprintf("%.2f ms", secs*1e3)
	default:
		return fmt.Sprintf("%.2f s", secs)
	}
}

func peerRTT(peer string, r heartbeat.RTTStats) PeerRTT {
	return PeerRTT{Peer: peer, LastSeconds: r.Last.Seconds(), SmoothedSeconds: r.Smoothed.Seconds(),
		MinSeconds: r.Min.Seconds(), MaxSeconds: r.Max.Seconds(), At: r.At, Count: r.Count,
		SumSeconds: r.Sum.Seconds(), Buckets: r.Buckets}
}
