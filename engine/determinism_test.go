package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// TestDecideDeterministic rebuilds the same situation from scratch many
// times (fresh views and states, so Go's map order differs between runs)
// and requires the JSON of the decision to be identical byte for byte.
func TestDecideDeterministic(t *testing.T) {
	big := loadSource(t, bigPolicy(40, 120))
	cases := []struct {
		name string
		p    *policy.Policy
		self string
		run  func(c *cluster)
	}{
		{
			name: "takeover blocked by a guard, with alerts",
			p:    loadPolicy(t, "plan.star"), self: "n2",
			run: func(c *cluster) {
				c.selfProbe("gateway", false)
				c.up("n1", "db")
				c.run(time.Second)
				c.down("n1")
				c.run(2 * time.Second)
			},
		},
		{
			name: "many rules and placements",
			p:    loadPolicy(t, "placement.star"), self: "n1",
			run: func(c *cluster) {
				c.hold("manual")
				c.up("n2", "auto")
				for _, fl := range []string{"ban_flag", "move_flag", "prefer_flag"} {
					c.selfProbe(fl, false)
					c.peerProbe("n2", fl, false)
				}
				c.state.Failed["auto"] = c.now
				c.run(3 * time.Second)
			},
		},
		{
			name: "capacity shedding",
			p:    loadPolicy(t, "capacity.star"), self: "n2",
			run: func(c *cluster) { c.run(time.Second) },
		},
		{
			name: "40 groups, 120 probes, a dead peer holding half the groups",
			p:    big, self: "node1",
			run: func(c *cluster) {
				var theirs []string
				for i, g := range c.p.Groups {
					if i%2 == 1 {
						theirs = append(theirs, g.Name)
					} else {
						c.hold(g.Name)
					}
				}
				for i, pr := range c.p.Probes {
					c.view.SetProbe(facts.Probe{Probe: pr.Name, State: probeState(i%7 != 3), Since: c.now, Value: float64(i%3) / 2})
				}
				c.up("node2", theirs...)
				c.run(time.Second)
				c.down("node2")
				c.run(2 * time.Second)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var first []byte
			for i := 0; i < 50; i++ {
				c := newCluster(t, tc.p, tc.self)
				tc.run(c)
				c.view.Merge(c.state)
				d := Decide(context.Background(), Input{Policy: tc.p, Facts: c.facts(), State: c.state})
				got, err := json.Marshal(d)
				if err != nil {
					t.Fatalf("marshal decision: %v", err)
				}
				if first == nil {
					first = got
					if len(d.Placement) == 0 {
						t.Fatal("empty decision")
					}
					continue
				}
				if !bytes.Equal(got, first) {
					t.Fatalf("run %d decided differently:\n%s\nfirst run:\n%s", i, got, first)
				}
			}
		})
	}
}

// TestNodeDeterministic runs the same sequence of Node steps twice and
// compares the timelines record by record.
func TestNodeDeterministic(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	timeline := func() []byte {
		var recs []Record
		n := NewNode(p, "n1", t0, NewState(1), &countingExec{}, func(r Record) { recs = append(recs, r) })
		peer := &Report{Node: "n2", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"auto"}}
		now := t0
		for i := 0; i < 300; i++ {
			now = now.Add(100 * time.Millisecond)
			if i < 200 {
				n.View.Heartbeat("n2", "lan", now, peer)
			}
			if i == 50 {
				n.View.SetProbe(facts.Probe{Probe: "prefer_flag", State: facts.ProbeFailing, Since: now})
			}
			n.Step(context.Background(), now)
		}
		b, err := json.Marshal(recs)
		if err != nil {
			t.Fatalf("marshal records: %v", err)
		}
		return b
	}
	a, b := timeline(), timeline()
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs of the same steps differ:\n%s\n%s", a, b)
	}
	if !bytes.Contains(a, []byte(`"kind":"peer"`)) || !bytes.Contains(a, []byte(`"kind":"action"`)) {
		t.Errorf("timeline lacks peer or action records: %s", a)
	}
}
