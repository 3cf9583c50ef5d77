package engine

import (
	"strings"
	"testing"
	"time"
)

// TestPlacement drives the placement of testdata/placement.star through
// facts built by View, one situation per case.
func TestPlacement(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	type want struct {
		group, node string
		reason      []string // substrings of the placement reason
	}
	cases := []struct {
		name  string
		self  string
		setup func(c *cluster)
		want  []want
	}{
		{
			name: "preferred node wins when nobody holds the group",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.run(time.Second)
			},
			want: []want{{"manual", "n1", []string{"score 100"}}, {"auto", "n1", []string{"score 100"}}},
		},
		{
			name: "the peer agrees on the preferred node",
			self: "n2",
			setup: func(c *cluster) {
				c.up("n1")
				c.run(time.Second)
			},
			want: []want{{"manual", "n1", []string{"score 100"}}},
		},
		{
			name: "stickiness keeps the holder with manual failback",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2", "manual")
				c.run(10 * time.Minute)
			},
			want: []want{{"manual", "n2", []string{"holds it (score 1000049 with stickiness 1000000)"}}},
		},
		{
			name: "auto failback waits for failback_delay",
			self: "n2",
			setup: func(c *cluster) {
				c.hold("auto")
				c.up("n1")
				c.run(59 * time.Second)
			},
			want: []want{{"auto", "n2", []string{"stays on n2: failback to n1 waits until it has been up for 1m0s (up 59s)"}}},
		},
		{
			name: "auto failback happens once the preferred node has been up for failback_delay",
			self: "n2",
			setup: func(c *cluster) {
				c.hold("auto")
				c.up("n1")
				c.run(time.Minute)
			},
			want: []want{{"auto", "n1", []string{"score 100"}}},
		},
		{
			// A partition healed and both nodes hold auto. n2 sees n1 up for
			// a second only, n1 sees itself up for long: were failback_delay
			// applied, each would keep it for itself for a minute.
			name: "two holders after a heal: no failback_delay, the preferred holder keeps it (n1's view)",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("auto2")
				c.up("n2", "auto2")
				c.run(time.Second)
			},
			want: []want{{"auto2", "n2", []string{"score 100"}}},
		},
		{
			name: "two holders after a heal: no failback_delay, the preferred holder keeps it (n2's view)",
			self: "n2",
			setup: func(c *cluster) {
				c.hold("auto2")
				c.up("n1", "auto2")
				c.run(time.Second)
			},
			want: []want{{"auto2", "n2", []string{"score 100"}}},
		},
		{
			name: "a node in operator standby is excluded",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.state.Operator.Standby["n1"] = OperatorFlag{On: true, At: t0}
				c.run(time.Second)
			},
			want: []want{{"manual", "n2", []string{"score 49", "excluded n1: standby"}}},
		},
		{
			name: "an operator standby switched off again does not exclude",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.state.Operator.Standby["n1"] = OperatorFlag{On: false, At: t0}
				c.run(time.Second)
			},
			want: []want{{"manual", "n1", []string{"score 100"}}},
		},
		{
			name: "a standby decision of a rule excludes the node",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.selfProbe("standby_flag", false)
				c.run(time.Second)
			},
			want: []want{{"manual", "n2", []string{"excluded n1: standby by rule standby-n1: n1 drained"}}},
		},
		{
			name: "a ban from a rule excludes the node",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.selfProbe("ban_flag", false)
				c.run(time.Second)
			},
			want: []want{
				{"manual", "n2", []string{"excluded n1: banned by rule ban-n1: n1 banned by flag"}},
				{"auto", "n1", []string{"score 100"}}, // the ban names one group only
			},
		},
		{
			name: "the peer sees the same ban through the report",
			self: "n2",
			setup: func(c *cluster) {
				c.up("n1")
				c.peerProbe("n1", "ban_flag", false)
				c.run(time.Second)
			},
			want: []want{{"manual", "n2", []string{"banned by rule ban-n1"}}},
		},
		{
			name: "a move to a node outranks the preferred node",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.selfProbe("move_flag", false)
				c.run(time.Second)
			},
			want: []want{{"auto", "n2", []string{"score 10000049; rule move-auto: auto sent to n2"}}},
		},
		{
			name: "a move to a node outranks stickiness",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("auto")
				c.up("n2")
				// An explicit move is not a failback: it does not wait for
				// failback_delay even though n2 has been up for one second only.
				c.selfProbe("move_flag", false)
				c.run(time.Second)
			},
			want: []want{{"auto", "n2", []string{"rule move-auto"}}},
		},
		{
			name: "an operator move does not wait for failback_delay",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("auto")
				c.up("n2")
				c.state.Operator.Moves["auto"] = OperatorMove{Node: "n2", At: t0}
				c.run(time.Second)
			},
			want: []want{{"auto", "n2", []string{"operator moved it here"}}},
		},
		{
			name: "a move away from a node excludes it",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("manual")
				c.up("n2")
				c.peerProbe("n2", "move_flag", false)
				c.run(time.Second)
			},
			want: []want{{"manual", "n2", []string{"excluded n1: moved away by rule move-away: manual sent away from n1"}}},
		},
		{
			name: "a prefer decision adds to the score",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.selfProbe("prefer_flag", false)
				c.run(time.Second)
			},
			want: []want{{"manual", "n2", []string{"score 549; rule prefer-n2: n2 is better today"}}},
		},
		{
			name: "a prefer decision does not beat manual-failback stickiness",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("manual")
				c.up("n2")
				c.selfProbe("prefer_flag", false)
				c.run(time.Second)
			},
			want: []want{{"manual", "n1", []string{"holds it (score 1000100"}}},
		},
		{
			name: "a stop decision stops the group everywhere",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("auto")
				c.up("n2")
				c.selfProbe("stop_flag", false)
				c.run(time.Second)
			},
			want: []want{{"auto", "", []string{"stopped by rule stop-auto: auto not wanted"}}},
		},
		{
			name: "an operator move outranks a rule's move",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.selfProbe("move_flag", false)
				c.state.Operator.Moves["auto"] = OperatorMove{Node: "n1", At: t0}
				c.run(time.Second)
			},
			want: []want{{"auto", "n1", []string{"operator moved it here at 2026-03-01T12:00:00Z"}}},
		},
		{
			name: "failure_timeout excludes a node after a failed start",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.state.Failed["manual"] = t0
				c.run(30*time.Second - 100*time.Millisecond)
			},
			want: []want{
				{"manual", "n2", []string{"excluded n1: failed there 29.9s ago (failure_timeout 30s)"}},
				{"auto", "n1", []string{"score 100"}},
			},
		},
		{
			name: "failure_timeout expires",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2")
				c.state.Failed["manual"] = t0
				c.run(30 * time.Second)
			},
			want: []want{{"manual", "n1", []string{"score 100"}}},
		},
		{
			name: "the peer excludes a node whose report lists a recent failure",
			self: "n2",
			setup: func(c *cluster) {
				c.up("n1")
				r := *c.reports["n1"]
				r.Failed = map[string]time.Time{"manual": t0}
				c.reports["n1"] = &r
				c.run(5 * time.Second)
			},
			want: []want{{"manual", "n2", []string{"excluded n1: failed there 5s ago"}}},
		},
		{
			name: "a dead holder does not keep the group",
			self: "n1",
			setup: func(c *cluster) {
				c.up("n2", "manual")
				c.run(time.Second)
				c.down("n2")
				c.run(300 * time.Millisecond)
			},
			want: []want{{"manual", "n1", []string{"score 100", "excluded n2: dead (no heartbeat on any path)"}}},
		},
		{
			name: "no eligible node lists why each was excluded",
			self: "n1",
			setup: func(c *cluster) {
				c.selfProbe("ban_flag", false)
				c.run(time.Second) // n2 never heard: dead after the startup grace
			},
			want: []want{{"manual", "", []string{"no eligible node (n1: banned by rule ban-n1: n1 banned by flag; n2: dead (no heartbeat on any path))"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, p, tc.self)
			tc.setup(c)
			d := c.decide()
			for _, w := range tc.want {
				gp := placement(t, d, w.group)
				if gp.Node != w.node {
					t.Errorf("%s placed on %q, want %q (reason: %s)", w.group, gp.Node, w.node, gp.Reason)
				}
				for _, sub := range w.reason {
					if !strings.Contains(gp.Reason, sub) {
						t.Errorf("%s reason %q does not contain %q", w.group, gp.Reason, sub)
					}
				}
			}
			for _, a := range d.Alerts {
				t.Errorf("unexpected alert %s: %s", a.Name, a.Message)
			}
		})
	}
}

// TestCapacity checks that groups are placed highest priority first and the
// lowest-priority groups are shed, with a reason, when capacity runs out.
func TestCapacity(t *testing.T) {
	p := loadPolicy(t, "capacity.star")
	cases := []struct {
		name    string
		n2Alive bool
		want    map[string]string
		reasons map[string]string
	}{
		{
			name:    "both nodes up: the overflow goes to n2, the heavy group is shed",
			n2Alive: true,
			want:    map[string]string{"high": "n1", "mid": "n1", "low": "n2", "big": ""},
			reasons: map[string]string{
				"low": "excluded n1: no capacity (2 of 2 used, group weighs 1)",
				"big": "no eligible node (n2: no capacity (1 of 2 used, group weighs 2); n1: no capacity (2 of 2 used, group weighs 2))",
			},
		},
		{
			name: "n2 dead: n1 keeps the two highest priorities",
			want: map[string]string{"high": "n1", "mid": "n1", "low": "", "big": ""},
			reasons: map[string]string{
				"low": "no eligible node (n1: no capacity (2 of 2 used, group weighs 1); n2: dead (no heartbeat on any path))",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, p, "n1")
			if tc.n2Alive {
				c.up("n2")
			}
			c.run(time.Second)
			d := c.decide()
			got := map[string]string{}
			for _, gp := range d.Placement {
				got[gp.Group] = gp.Node
			}
			for g, n := range tc.want {
				if got[g] != n {
					t.Errorf("%s placed on %q, want %q (reason: %s)", g, got[g], n, placement(t, d, g).Reason)
				}
			}
			for g, sub := range tc.reasons {
				if r := placement(t, d, g).Reason; !strings.Contains(r, sub) {
					t.Errorf("%s reason %q does not contain %q", g, r, sub)
				}
			}
			// Placement is reported in policy order whatever the priority order.
			var order []string
			for _, gp := range d.Placement {
				order = append(order, gp.Group)
			}
			if strings.Join(order, ",") != "low,high,mid,big" {
				t.Errorf("placement order %v, want policy order low,high,mid,big", order)
			}
		})
	}
}
