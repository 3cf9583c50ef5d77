package builtins_test

import (
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/harules/harules/builtins"
	"github.com/harules/harules/engine/facts"
)

// sampleFacts is node n1's view at evalNow: n2 died 30 s ago (its lan path
// missed 7 heartbeats), n3 was never heard from; n2 still reports holding
// web, which n1 took over; probe x fails on n2.
func sampleFacts() *facts.Facts {
	now := evalNow
	f := &facts.Facts{
		Self: "n1",
		Now:  now,
		Boot: now.Add(-2 * time.Hour),
		Nodes: []*facts.Node{
			{Name: "n1", Self: true, State: facts.Alive, Since: now.Add(-time.Hour), Holds: []string{"web"}},
			{Name: "n2", State: facts.Dead, Since: now.Add(-30 * time.Second), Holds: []string{"web"}, Standby: true,
				Paths: []*facts.Path{
					{Name: "lan", Up: false, Known: true, Missed: 7, LastSeen: now.Add(-1400 * time.Millisecond)},
					{Name: "backnet", Up: false, Known: false},
				}},
			{Name: "n3", State: facts.Unknown, Since: now.Add(-2 * time.Hour), Maintenance: true},
		},
		Groups: []*facts.Group{
			{Name: "web", Holders: []string{"n2", "n1"}, Since: now.Add(-20 * time.Second),
				FailedOn: map[string]time.Time{"n2": now.Add(-31 * time.Second)}},
			{Name: "db", Since: now.Add(-time.Hour)},
		},
		Probes: map[string]map[string]*facts.Probe{
			"x": {
				"n1": {Probe: "x", Node: "n1", State: facts.ProbeOK, Since: now.Add(-10 * time.Minute), Value: 12.5, Text: "200 OK"},
				"n2": {Probe: "x", Node: "n2", State: facts.ProbeFailing, Since: now.Add(-45 * time.Second), Value: 3.5, Text: "timeout"},
			},
		},
	}
	f.Index()
	return f
}

// eval evaluates one Starlark expression with f bound to the facts view.
func eval(fv *builtins.FactsValue, expr string) (starlark.Value, error) {
	env := builtins.Universe()
	env["f"] = fv
	return starlark.EvalOptions(testOptions, &starlark.Thread{Name: "facts"}, "facts_test.star", expr, env)
}

// TestFactsView checks each attribute rules read, as a Starlark expression
// that must be True.
func TestFactsView(t *testing.T) {
	fv := builtins.NewFactsValue(sampleFacts())
	exprs := []string{
		`f.self == "n1"`,
		`f.now == time.time(year = 2026, month = 6, day = 1, hour = 10)`,
		`type(f) == "facts"`,
		`[n for n in f.nodes] == ["n1", "n2", "n3"]`,
		`[p.name for p in f.peers] == ["n2", "n3"]`,
		`f.node("n2").name == "n2" and f.node(f.nodes["n3"]).name == "n3"`,

		// nodes
		`f.nodes["n1"].self and f.nodes["n1"].alive and f.nodes["n1"].state == "alive"`,
		`f.nodes["n1"].up_for == duration("1h") and f.nodes["n1"].down_for == duration("0s")`,
		`not f.nodes["n2"].alive and f.nodes["n2"].state == "dead" and f.nodes["n2"].down_for == duration("30s")`,
		`f.nodes["n2"].up_for == duration("0s") and f.nodes["n2"].standby and not f.nodes["n2"].maintenance`,
		`f.nodes["n2"].since == f.now - duration("30s")`,
		`f.nodes["n2"].holds == ["web"]`,
		`f.nodes["n3"].state == "unknown" and not f.nodes["n3"].alive and f.nodes["n3"].down_for == duration("0s") and f.nodes["n3"].maintenance`,

		// paths
		`f.nodes["n2"].paths["lan"].missed == 7`,
		`f.nodes["n2"].paths["lan"].known and not f.nodes["n2"].paths["lan"].up`,
		`f.nodes["n2"].paths["lan"].last_seen_ago == duration("1.4s")`,
		`f.nodes["n2"].paths["backnet"].last_seen_ago == duration("0s") and not f.nodes["n2"].paths["backnet"].known`,
		`sorted(f.nodes["n2"].paths.keys()) == ["backnet", "lan"] and f.nodes["n3"].paths == {}`,

		// groups and owner: n2 is dead, so the first holder that counts is n1
		`f.owner("web") == "n1" and f.groups["web"].owner == "n1"`,
		`f.owner(f.groups["db"]) == None and f.groups["db"].owner == None`,
		`f.groups["web"].holders == ["n2", "n1"] and f.groups["web"].failed_on == ["n2"]`,
		`f.groups["web"].held_for == duration("20s") and f.groups["db"].held_for == duration("0s")`,
		`f.groups["web"].since == f.now - duration("20s")`,

		// probes
		`f.probe("x", node = "n2").failing_for == duration("45s")`,
		`f.probe("x", node = "n2").state == "failing" and not f.probe("x", node = "n2").ok`,
		`f.probe("x", node = "n2").ok_for == duration("0s") and f.probe("x", node = "n2").duration == duration("45s")`,
		`f.probe("x", node = "n2").value == 3.5 and f.probe("x", node = "n2").text == "timeout"`,
		`f.probe("x").ok and f.probe("x").node == "n1" and f.probe("x").ok_for == duration("10m")`,
		`f.probe("x", node = f.nodes["n2"]).name == "x"`,
		`f.probe("x", node = "n3") == None`,
	}
	for _, expr := range exprs {
		v, err := eval(fv, expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if v != starlark.True {
			t.Errorf("%s = %s, want True", expr, v)
		}
	}
}

// TestFactsViewErrors: wrong names and attempts to change facts fail with
// messages a policy author can act on.
func TestFactsViewErrors(t *testing.T) {
	fv := builtins.NewFactsValue(sampleFacts())
	tests := []struct{ expr, err string }{
		{`f.probe("nope")`, `f.probe: no probe "nope" in the policy`},
		{`f.owner("nope")`, `f.owner: no group "nope" in the policy`},
		{`f.node("n9")`, `f.node: no node "n9" in the policy`},
		{`f.probe("x", node = 3)`, "f.probe: node: want a node name (string), got int"},
		{`f.peerz`, "facts has no .peerz field or method (did you mean .peers?)"},
		{`f.nodes["n1"].up_fro`, "node_facts has no .up_fro field or method (did you mean .up_for?)"},
		{`f.nodes.clear()`, "frozen"},
		{`f.nodes["n1"].holds.append("db")`, "frozen"},
		{`f.peers.append(1)`, "frozen"},
		{`f.nodes["n2"].paths.pop("lan")`, "frozen"},
		{`{f: 1}`, "unhashable"},
	}
	for _, tc := range tests {
		_, err := eval(fv, tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.expr, err, tc.err)
		}
	}
	// Whatever a rule tried, the facts are unchanged.
	if v, err := eval(fv, `f.nodes["n1"].holds == ["web"] and len(f.nodes) == 3`); err != nil || v != starlark.True {
		t.Errorf("facts changed after the failed mutations: %v %v", v, err)
	}
}

func TestFactsViewAttrNames(t *testing.T) {
	fv := builtins.NewFactsValue(sampleFacts())
	v, err := eval(fv, `[dir(f), dir(f.nodes["n2"]), dir(f.nodes["n2"].paths["lan"]), dir(f.groups["web"]), dir(f.probe("x"))]`)
	if err != nil {
		t.Fatal(err)
	}
	// Every listed attribute must resolve (no name promised that Attr lacks).
	list := v.(*starlark.List)
	for i := 0; i < list.Len(); i++ {
		names := list.Index(i).(*starlark.List)
		if names.Len() == 0 {
			t.Errorf("dir #%d is empty", i)
		}
	}
	for _, obj := range []string{`f`, `f.nodes["n2"]`, `f.nodes["n2"].paths["lan"]`, `f.groups["web"]`, `f.probe("x")`} {
		expr := "[getattr(" + obj + ", a) for a in dir(" + obj + ")]"
		if _, err := eval(fv, expr); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
	if s := fv.String(); !strings.Contains(s, "n1") || !strings.Contains(s, "2026-06-01T10:00:00Z") {
		t.Errorf("String() = %q", s)
	}
}
