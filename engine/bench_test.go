package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// bigPolicy generates a policy with groups groups over two nodes and probes
// probes, using top-level loops like an operator templating many services.
func bigPolicy(groups, probes int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `load("@stdlib//placement.star", "active_standby")
load("@stdlib//rules.star", "gateway_guard", "path_down_alert", "move_when_failing")
cluster(name = "big")
node("node1", address = "198.51.100.1", addresses = {"backnet": "203.0.113.1"})
node("node2", address = "198.51.100.2", addresses = {"backnet": "203.0.113.2"})
heartbeat("lan", interval = "200ms", misses = 5)
heartbeat("backnet", interval = "200ms", misses = 5)
probe("gateway", check.gateway("198.51.100.254"))
for i in range(%d):
    probe("p%%d" %% i, check.tcp("127.0.0.1:%%d" %% (10000 + i)))
for j in range(%d):
    group("g%%d" %% j,
        resources = [
            vip("198.51.%%d.%%d/24" %% (100 + j // 250, 1 + j %% 250), interface = "eth0"),
            service("svc%%d" %% j, command = ["/bin/sleep", "infinity"]),
        ],
        placement = active_standby(["node1", "node2"] if j %% 2 == 0 else ["node2", "node1"], priority = j %% 3))
rule("path-alert", when = path_down_alert())
rule("gateway-guard", when = gateway_guard("gateway"))
rule("g0-health", when = move_when_failing("g0", "p0"), for_ = "10s")
def slow_probes(f):
    out = []
    for g in f.groups.values():
        o = g.owner
        if o == None:
            continue
        p = f.probe("p%%s" %% g.name[1:], node = o)
        if p != None and p.value > 0.5:
            out.append(prefer(g.name, o, 10, reason = "probe value high"))
    return out
rule("slow-probes", when = slow_probes)
`, probes-1, groups)
	return b.String()
}

// BenchmarkDecide measures one decision of a node in a 100-group, 2-node,
// 300-probe cluster where both nodes run half the groups.
func BenchmarkDecide(b *testing.B) {
	p := loadSource(b, bigPolicy(100, 300))
	c := newCluster(b, p, "node1")
	var mine, theirs []string
	for i, g := range p.Groups {
		if i%2 == 0 {
			mine = append(mine, g.Name)
		} else {
			theirs = append(theirs, g.Name)
		}
	}
	c.hold(mine...)
	var peerProbes []*facts.Probe
	for i, pr := range p.Probes {
		st := facts.ProbeOK
		if i%50 == 7 {
			st = facts.ProbeFailing
		}
		c.view.SetProbe(facts.Probe{Probe: pr.Name, State: st, Since: t0, Value: float64(i%3) / 2})
		peerProbes = append(peerProbes, &facts.Probe{Probe: pr.Name, Node: "node2", State: facts.ProbeOK, Since: t0})
	}
	c.advance(time.Second)
	c.hearReport(&Report{Node: "node2", Incarnation: 1, PolicyHash: p.Hash, Holds: theirs, Probes: peerProbes})
	c.advance(100 * time.Millisecond)
	f := c.facts()
	in := Input{Policy: p, Facts: f, State: c.state}
	d := Decide(context.Background(), in)
	if len(d.Placement) != 100 || len(d.Plan) != 0 {
		b.Fatalf("want 100 placements and an empty plan (every group where it should be), got %d placements and %d actions (first: %+v)", len(d.Placement), len(d.Plan), d.Plan[:min(1, len(d.Plan))])
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(context.Background(), in)
	}
}

// BenchmarkViewFacts measures building the facts of the same cluster.
func BenchmarkViewFacts(b *testing.B) {
	p := loadSource(b, bigPolicy(100, 300))
	c := newCluster(b, p, "node1")
	for _, pr := range p.Probes {
		c.view.SetProbe(facts.Probe{Probe: pr.Name, State: facts.ProbeOK, Since: t0})
	}
	c.hear("node2")
	b.ReportAllocs()
	for b.Loop() {
		c.view.Update(c.now)
		c.view.Facts(c.now, c.state)
	}
}
