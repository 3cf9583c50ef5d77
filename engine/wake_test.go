package engine

import (
	"strings"
	"testing"
	"time"
)

// wakePolicy: two nodes at 100 ms x 3, a takeover delay written by hand
// with a threshold that is no multiple of anything the loop ticks at, and a
// periodic re-evaluation much longer than the heartbeat interval.
const wakePolicy = `
cluster(name = "w", reevaluate = "1s")
node("a", address = "198.51.100.1")
node("b", address = "198.51.100.2")
heartbeat("lan", interval = "100ms", misses = 3)
probe("gateway", check.gateway("198.51.100.254"), every = "1s", fall = 2, rise = 1)
group("web", resources = [vip("198.51.100.10/24", interface = "eth0")], placement = placement(nodes = ["a", "b"]))
rule("takeover-delay", when = lambda f: [
    no_takeover(reason = "%s was just declared dead" % p.name)
    for p in f.peers if p.state == "dead" and p.down_for < duration("700ms")])
`

// TestWakeAtThresholdOfGrowingDuration: a decision whose rule compares a
// growing duration (down_for) with a threshold reports the instant the
// comparison flips, so the loop decides again right then instead of at the
// next re-evaluation (item 11: the guard acted 320 ms late).
func TestWakeAtThresholdOfGrowingDuration(t *testing.T) {
	p := loadSource(t, wakePolicy)
	c := newCluster(t, p, "b")
	c.up("a", "web")
	c.run(time.Second)
	c.down("a")
	c.advance(350 * time.Millisecond)
	d := c.decide()
	dead := c.facts().Node("a")
	if dead.State != "dead" {
		t.Fatalf("a is %s, want dead", dead.State)
	}
	if want := dead.Since.Add(700 * time.Millisecond); !d.WakeAt.Equal(want) {
		t.Fatalf("WakeAt = %s, want the threshold crossing %s (a dead since %s)", d.WakeAt, want, dead.Since)
	}
	if hasStart(d) {
		t.Fatalf("started during the takeover delay: %+v", d.Plan)
	}
	// Just before the crossing: still blocked; at it: the takeover starts.
	c.now = d.WakeAt.Add(-time.Millisecond)
	if d2 := c.decide(); hasStart(d2) {
		t.Fatalf("started 1 ms before the threshold: %+v", d2.Plan)
	}
	c.now = d.WakeAt
	d3 := c.decide()
	if !hasStart(d3) {
		t.Fatalf("no takeover at the threshold (%s): %+v", c.now, d3.Placement)
	}
	if !d3.WakeAt.IsZero() {
		t.Errorf("WakeAt after the crossing = %s, want none", d3.WakeAt)
	}
}

func hasStart(d *Decision) bool {
	for _, a := range d.Plan {
		if a.Op == OpStart && a.Node == "b" && a.Ready {
			return true
		}
	}
	return false
}

// TestWakeAtForms covers the ways a rule can use time: each comparison
// operator, the constant on either side, arithmetic (untracked: wake within
// one heartbeat interval), for_ timers and a condition that does not depend
// on time at all.
func TestWakeAtForms(t *testing.T) {
	cases := []struct {
		name string
		rule string
		// want is the wake-up relative to b's death; 0: none.
		want time.Duration
	}{
		{"less", `when = lambda f: f.node("a").down_for < duration("700ms")`, 700 * time.Millisecond},
		{"greater-equal", `when = lambda f: f.node("a").down_for >= duration("2s")`, 2 * time.Second},
		{"greater", `when = lambda f: f.node("a").down_for > duration("2s")`, 2*time.Second + 1},
		{"constant on the left", `when = lambda f: duration("2s") > f.node("a").down_for`, -1},
		{"arithmetic", `when = lambda f: f.node("a").down_for + duration("1s") < duration("5s")`, -1},
		{"seconds attribute", `when = lambda f: f.node("a").down_for.seconds < 5`, -1},
		{"f.now", `when = lambda f: f.now > f.node("a").since`, -1},
		{"for_ timer", `when = lambda f: not f.node("a").alive, for_ = "3s"`, 3 * time.Second},
		{"no time", `when = lambda f: not f.node("a").alive`, 0},
		{"two growing durations", `when = lambda f: f.node("a").down_for < f.node("b").up_for`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(wakePolicy, `rule("takeover-delay"`, `rule("x", `+tc.rule+", then = lambda f: alert(\"x\"))\nrule(\"takeover-delay\"", 1)
			p := loadSource(t, src)
			c := newCluster(t, p, "b")
			c.up("a")
			c.run(time.Second)
			c.down("a")
			c.advance(300 * time.Millisecond)
			since := c.facts().Node("a").Since
			c.decide() // starts for_ timers
			c.advance(10 * time.Millisecond)
			d := c.decide()
			for _, a := range d.Alerts {
				if a.Name == "rule-error" {
					t.Fatalf("rule error: %s", a.Message)
				}
			}
			// The takeover-delay rule crosses at +700 ms; ignore it by
			// comparing with the earlier of the two.
			want := since.Add(700 * time.Millisecond)
			switch {
			case tc.want == -1:
				want = c.now.Add(100 * time.Millisecond) // one heartbeat interval
			case tc.want > 0 && since.Add(tc.want).Before(want):
				want = since.Add(tc.want)
			}
			if !d.WakeAt.Equal(want) {
				t.Errorf("WakeAt = +%s after the death, want +%s", d.WakeAt.Sub(since), want.Sub(since))
			}
		})
	}
}
