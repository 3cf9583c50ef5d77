package main

import (
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
)

// TestPrintStatusShowsRTT: `harules status` prints each path's state with
// the round-trip time measured on it, and a down path with its misses.
func TestPrintStatusShowsRTT(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	st := &agent.Status{Node: "node1", Cluster: "web", Now: now,
		Nodes: []agent.NodeStatus{
			{Name: "node1", State: "alive", Since: now, Maintenance: true},
			{Name: "node2", State: "alive", Since: now, Paths: []agent.PathStatus{
				{Name: "lan", Up: true}, {Name: "backnet", Up: false, Missed: 7}, {Name: "wan", Up: true}}},
		},
		Heartbeats: []agent.HeartbeatStats{
			{Path: "lan", RTT: []agent.PeerRTT{{Peer: "node2", SmoothedSeconds: 0.000287}}},
			{Path: "backnet", RTT: []agent.PeerRTT{{Peer: "node2", SmoothedSeconds: 0.0004}}},
			{Path: "wan", RTT: []agent.PeerRTT{{Peer: "node2", SmoothedSeconds: 0.0421}}},
		},
	}
	var b strings.Builder
	printStatus(&b, st)
	for _, want := range []string{"MODE", "maintenance", "lan=up(rtt 287 µs)", "backnet=DOWN(7 missed)", "wan=up(rtt 42.10 ms)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}
