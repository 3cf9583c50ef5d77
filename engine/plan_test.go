package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// planLines renders a plan compactly for comparison.
func planLines(plan Plan) []string {
	out := make([]string, len(plan))
	for i, a := range plan {
		out[i] = fmt.Sprintf("%d %s %s %s after=%v ready=%t", a.ID, a.Node, a.Op, a.Resource, a.After, a.Ready)
		if a.Wait != "" {
			out[i] += " wait=" + a.Wait
		}
	}
	return out
}

func TestPlanOrder(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	const (
		vipID  = "vip:198.51.100.20"
		diskID = "disk:/srv/db"
		svcID  = "service:postgres"
	)
	cases := []struct {
		name   string
		self   string
		setup  func(c *cluster)
		want   []string
		reason map[int]string // action ID -> substring of its reason
	}{
		{
			name: "stops in reverse resource order before starts in order on the new node",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("db")
				c.selfProbe("gateway", true)
				c.up("n2")
				c.run(time.Second)
				c.state.Operator.Moves["db"] = OperatorMove{Node: "n2", At: c.now}
			},
			want: []string{
				"1 n1 stop " + svcID + " after=[] ready=true",
				"2 n1 stop " + diskID + " after=[1] ready=true",
				"3 n1 stop " + vipID + " after=[2] ready=true",
				"4 n2 start " + vipID + " after=[3] ready=false",
				"5 n2 start " + diskID + " after=[4] ready=false",
				"6 n2 start " + svcID + " after=[5] ready=false",
			},
			reason: map[int]string{1: "db moves to n2: score 100000049", 4: "db placed on n2: score 100000049; operator moved it here"},
		},
		{
			name: "a start waits while an alive peer still holds the group",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", true)
				c.up("n1", "db")
				c.run(time.Second)
				c.state.Operator.Moves["db"] = OperatorMove{Node: "n2", At: c.now}
			},
			want: []string{
				"1 n1 stop " + svcID + " after=[] ready=false",
				"2 n1 stop " + diskID + " after=[1] ready=false",
				"3 n1 stop " + vipID + " after=[2] ready=false",
				"4 n2 start " + vipID + " after=[3] ready=false wait=waiting for n1 to stop db first",
				"5 n2 start " + diskID + " after=[4] ready=false wait=waiting for n1 to stop db first",
				"6 n2 start " + svcID + " after=[5] ready=false wait=waiting for n1 to stop db first",
			},
		},
		{
			name: "takeover from a dead peer releases it and proceeds",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", true)
				c.up("n1", "db")
				c.run(time.Second)
				c.down("n1")
				c.run(time.Second) // the slower path declares it down after 5 x 200 ms
			},
			want: []string{
				"1 n1 release  after=[] ready=false",
				"2 n2 start " + vipID + " after=[] ready=true",
				"3 n2 start " + diskID + " after=[2] ready=true",
				"4 n2 start " + svcID + " after=[3] ready=true",
			},
			reason: map[int]string{
				1: "db moves to n2; proceeding without n1: declared dead at 12:00:02.000, no heartbeat on any path (lan, back)",
				2: "takeover from n1: declared dead over all heartbeat paths and no guard rule objected",
			},
		},
		{
			name: "no_takeover blocks the takeover",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", false)
				c.up("n1", "db")
				c.run(time.Second)
				c.down("n1")
				c.run(time.Second)
			},
			want: []string{
				"1 n1 release  after=[] ready=false",
				"2 n2 start " + vipID + " after=[] ready=false wait=takeover blocked by rule gateway-guard: gateway probe gateway is failing on n2",
				"3 n2 start " + diskID + " after=[2] ready=false wait=takeover blocked by rule gateway-guard: gateway probe gateway is failing on n2",
				"4 n2 start " + svcID + " after=[3] ready=false wait=takeover blocked by rule gateway-guard: gateway probe gateway is failing on n2",
			},
		},
		{
			name: "a holder still alive on one path blocks nothing and moves nothing",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", true)
				c.up("n1", "db")
				c.run(time.Second)
				for i := 0; i < 20; i++ { // 2 s of heartbeats on "back" only
					c.advance(100 * time.Millisecond)
					c.view.Heartbeat("n1", "back", c.now, c.reports["n1"])
					c.view.Update(c.now)
				}
			},
			want: nil,
		},
		{
			name: "unknown peers within the startup grace block starts",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", true)
				c.advance(2*time.Second - time.Millisecond)
			},
			want: []string{
				"1 n2 start " + vipID + " after=[] ready=false wait=waiting to hear from n1 (startup grace 2s) before starting db",
				"2 n2 start " + diskID + " after=[1] ready=false wait=waiting to hear from n1 (startup grace 2s) before starting db",
				"3 n2 start " + svcID + " after=[2] ready=false wait=waiting to hear from n1 (startup grace 2s) before starting db",
			},
		},
		{
			name: "after the startup grace an unheard peer is dead and the start proceeds",
			self: "n2",
			setup: func(c *cluster) {
				c.selfProbe("gateway", true)
				c.advance(2 * time.Second)
			},
			want: []string{
				"1 n2 start " + vipID + " after=[] ready=true",
				"2 n2 start " + diskID + " after=[1] ready=true",
				"3 n2 start " + svcID + " after=[2] ready=true",
			},
		},
		{
			name: "the holder of a group stopped by nobody keeps it: empty plan",
			self: "n1",
			setup: func(c *cluster) {
				c.hold("db")
				c.up("n2")
				c.run(time.Second)
			},
			want: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, p, tc.self)
			tc.setup(c)
			d := c.decide()
			got := planLines(d.Plan)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for id, sub := range tc.reason {
				if id > len(d.Plan) {
					t.Errorf("no action %d", id)
					continue
				}
				if r := d.Plan[id-1].Reason; !strings.Contains(r, sub) {
					t.Errorf("action %d reason %q does not contain %q", id, r, sub)
				}
			}
			for _, a := range d.Plan {
				if a.Op != OpRelease && a.Res() == nil {
					t.Errorf("action %d has no resource", a.ID)
				}
				if a.Node != tc.self && a.Ready {
					t.Errorf("action %d of %s is ready on %s: a node only executes its own actions", a.ID, a.Node, tc.self)
				}
			}
			if mine := d.Plan.For(tc.self); len(mine) > 0 && mine[0].Node != tc.self {
				t.Errorf("Plan.For(%s) returned %+v", tc.self, mine[0])
			}
		})
	}
}
