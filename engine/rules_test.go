package engine

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRuleForTimer checks for_: the rule fires only after its condition held
// continuously for 10 s, and the wait starts over when it stops holding.
func TestRuleForTimer(t *testing.T) {
	p := loadPolicy(t, "timers.star")
	type step struct {
		at    time.Duration // since the start of the test
		ok    *bool         // change the app probe first (nil: unchanged)
		fired bool          // app-down fired
		since time.Duration // pending since (when the condition holds)
		holds bool
	}
	yes, no := true, false
	cases := []struct {
		name  string
		steps []step
	}{
		{
			name: "fires once the condition held for the duration",
			steps: []step{
				{at: 0, ok: &no, holds: true},
				{at: 5 * time.Second, holds: true},
				{at: 10*time.Second - time.Millisecond, holds: true},
				{at: 10 * time.Second, holds: true, fired: true},
				{at: 60 * time.Second, holds: true, fired: true},
			},
		},
		{
			name: "resets when the condition stops holding",
			steps: []step{
				{at: 0, ok: &no, holds: true},
				{at: 9 * time.Second, holds: true},
				{at: 9500 * time.Millisecond, ok: &yes},
				{at: 10 * time.Second, ok: &no, holds: true, since: 10 * time.Second},
				{at: 15 * time.Second, holds: true, since: 10 * time.Second},
				{at: 20*time.Second - time.Millisecond, holds: true, since: 10 * time.Second},
				{at: 20 * time.Second, holds: true, fired: true, since: 10 * time.Second},
			},
		},
		{
			name: "stops firing as soon as the condition stops holding",
			steps: []step{
				{at: 0, ok: &no, holds: true},
				{at: 12 * time.Second, holds: true, fired: true},
				{at: 13 * time.Second, ok: &yes},
				{at: 14 * time.Second, ok: &no, holds: true, since: 14 * time.Second},
				{at: 23 * time.Second, holds: true, since: 14 * time.Second},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, p, "n1")
			start := c.now
			for _, st := range tc.steps {
				c.now = start.Add(st.at)
				if st.ok != nil {
					c.selfProbe("app", *st.ok)
				}
				d := c.decide()
				var fired []string
				for _, dec := range d.Fired {
					fired = append(fired, dec.Rule)
				}
				if got := slices.Contains(fired, "app-down"); got != st.fired {
					t.Errorf("+%s: app-down fired=%t, want %t (fired: %v)", st.at, got, st.fired, fired)
				}
				// The rule without for_ fires whenever the condition holds.
				if got := slices.Contains(fired, "instant"); got != st.holds {
					t.Errorf("+%s: instant fired=%t, want %t", st.at, got, st.holds)
				}
				since, pending := d.RulePending["app-down"]
				if pending != st.holds {
					t.Errorf("+%s: app-down pending=%t, want %t", st.at, pending, st.holds)
				}
				if pending && !since.Equal(start.Add(st.since)) {
					t.Errorf("+%s: app-down pending since +%s, want +%s", st.at, since.Sub(start), st.since)
				}
				if st.fired {
					if !slices.Contains(alertNames(d), "app-down") {
						t.Errorf("+%s: alerts %v, want app-down", st.at, alertNames(d))
					}
					for _, dec := range d.Fired {
						if dec.Rule == "app-down" && !dec.Since.Equal(start.Add(st.since)) {
							t.Errorf("+%s: fired decision since %s, want +%s", st.at, dec.Since, st.since)
						}
					}
				}
			}
		})
	}
}

// TestRuleErrors checks that a failing rule raises an alert naming it and
// does not stop the other rules or placement.
func TestRuleErrors(t *testing.T) {
	p := loadSource(t, `
cluster(name = "errors")
node("n1", address = "198.51.100.1")
heartbeat("lan", interval = "100ms", misses = 3)
group("web", resources = [vip("198.51.100.10/24")])
rule("broken", when = lambda f: f.node("nope").alive)
rule("endless", when = lambda f: [x for x in range(100000000)] == [])
rule("wrong-type", when = lambda f: 42)
rule("fine", when = lambda f: True, then = alert("fine", message = "still evaluated"))
`)
	c := newCluster(t, p, "n1")
	d := c.decide()
	errs := map[string]string{}
	for _, a := range d.Alerts {
		if a.Name == "rule-error" {
			errs[a.Rule] = a.Message
			if a.Severity != "critical" {
				t.Errorf("rule-error of %s has severity %s, want critical", a.Rule, a.Severity)
			}
		}
	}
	for rule, sub := range map[string]string{
		"broken":     `no node "nope"`,
		"endless":    "stopped after",
		"wrong-type": "int",
	} {
		if !strings.Contains(errs[rule], sub) {
			t.Errorf("rule-error of %s is %q, want it to mention %q", rule, errs[rule], sub)
		}
	}
	if !slices.Contains(alertNames(d), "fine") {
		t.Errorf("alerts %v: the working rule did not fire", alertNames(d))
	}
	if gp := placement(t, d, "web"); gp.Node != "n1" {
		t.Errorf("web placed on %q, want n1 despite the broken rules", gp.Node)
	}
}
