package engine

import (
	"testing"
	"time"
)

const selfFencePolicy = `
load("@stdlib//rules.star", "gateway_guard", "self_fence", "takeover_delay_guard")
cluster(name = "sf")
node("a", address = "198.51.100.1")
node("b", address = "198.51.100.2")
heartbeat("lan", interval = "200ms", misses = 5)
probe("gateway", check.gateway("198.51.100.254"), every = "1s", fall = 2, rise = 1)
group("web", resources = [vip("198.51.100.10/24", interface = "eth0")], placement = placement(nodes = ["a", "b"]))
rule("gateway-guard", when = gateway_guard("gateway"))
rule("self-fence", when = self_fence("gateway"))
rule("takeover-delay", when = takeover_delay_guard("gateway"))
`

func fenced(d *Decision) bool {
	for _, dec := range d.Fired {
		if dec.Rule == "self-fence" {
			return true
		}
	}
	return false
}

// TestSelfFenceLiftsOnAFreshReport: after a partition heals, the cut-off
// node stays fenced on the peer's first heartbeat when that heartbeat's
// report does not yet hear it (it was built before the peer knew this node
// was back, so it may not show who holds the group now), and the fence
// lifts on the first report that hears it (item 13: the healed node started
// the group on a stale first heartbeat, 26 ms with both MACs answering).
func TestSelfFenceLiftsOnAFreshReport(t *testing.T) {
	p := loadSource(t, selfFencePolicy)
	c := newCluster(t, p, "b")
	c.selfProbe("gateway", true)
	c.up("a")
	c.reports["a"].Hears = []string{"b"}
	c.run(10 * time.Second)
	if d := c.decide(); fenced(d) {
		t.Fatal("fenced while the peer's report hears this node")
	}
	// Cut off: no heartbeat, gateway failing.
	c.down("a")
	c.selfProbe("gateway", false)
	c.advance(5 * time.Second)
	if d := c.decide(); !fenced(d) {
		t.Fatal("not fenced while cut off")
	}
	// Heal: the gateway answers again and the peer's first heartbeat
	// arrives with a report built before it heard this node.
	c.selfProbe("gateway", true)
	c.hearReport(&Report{Node: "a", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"web"}, Hears: []string{}})
	d := c.decide()
	if !fenced(d) {
		t.Fatal("the fence lifted on a report that does not hear this node")
	}
	if placement(t, d, "web").Node == "b" {
		t.Fatal("web placed on the fenced node")
	}
	c.advance(200 * time.Millisecond)
	c.hearReport(&Report{Node: "a", Incarnation: 1, PolicyHash: p.Hash, Holds: []string{"web"}, Hears: []string{"b"}})
	if d := c.decide(); fenced(d) {
		t.Fatal("still fenced after a report that hears this node")
	}
}

// TestSelfFenceAloneAtBoot: a node that starts alone stays in standby until
// its gateway probe has been ok for the heartbeat detection time (5 x 200
// ms), and the decision wakes up exactly then.
func TestSelfFenceAloneAtBoot(t *testing.T) {
	p := loadSource(t, selfFencePolicy)
	c := newCluster(t, p, "b")
	c.selfProbe("gateway", true)
	d := c.decide()
	if !fenced(d) {
		t.Fatal("not fenced at boot with a fresh gateway probe and no peer heard")
	}
	if want := t0.Add(time.Second); !d.WakeAt.Equal(want) {
		t.Errorf("WakeAt = %s, want %s (gateway ok for the detection time)", d.WakeAt, want)
	}
	c.now = t0.Add(time.Second)
	if d := c.decide(); fenced(d) {
		t.Error("still fenced with the gateway ok for the detection time")
	}
}

// TestTakeoverDelayGuardDerivesDelay: fall x every + every + timeout + one
// heartbeat interval = 2 x 1s + 1s + 1s + 200ms.
func TestTakeoverDelayGuardDerivesDelay(t *testing.T) {
	p := loadSource(t, selfFencePolicy)
	c := newCluster(t, p, "b")
	c.selfProbe("gateway", true)
	c.up("a", "web")
	c.reports["a"].Hears = []string{"b"}
	c.run(10 * time.Second)
	c.down("a")
	c.advance(time.Second)
	d := c.decide()
	dead := c.facts().Node("a")
	if dead.State != "dead" {
		t.Fatalf("a is %s", dead.State)
	}
	if want := dead.Since.Add(4200 * time.Millisecond); !d.WakeAt.Equal(want) {
		t.Errorf("WakeAt = +%s after the death, want +4.2s", d.WakeAt.Sub(dead.Since))
	}
	c.now = dead.Since.Add(4200*time.Millisecond - time.Millisecond)
	if hasStart(c.decide()) {
		t.Fatal("took over before the derived delay")
	}
	c.now = dead.Since.Add(4200 * time.Millisecond)
	if !hasStart(c.decide()) {
		t.Fatal("no takeover once the derived delay passed")
	}
}
