package main

import (
	"strings"
	"testing"
)

// TestScenarioHolds runs two simulated hours (twelve faults, every kind at
// least once) and requires every generated expectation to hold.
func TestScenarioHolds(t *testing.T) {
	run, err := Load(t.Context(), t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Expectations) < 12 {
		t.Fatalf("only %d expectations generated", len(res.Expectations))
	}
	for _, e := range res.Expectations {
		if !e.OK {
			t.Errorf("%s: %s (%s)", e.Pos, e.Expect, e.Detail)
		}
	}
	if len(res.DualOwners) > 0 {
		t.Errorf("dual owners: %+v", res.DualOwners)
	}
	if res.Stats.Decisions < 2*3600 || res.Stats.Actions == 0 {
		t.Errorf("stats %+v: want a decision per node per second and some actions", res.Stats)
	}
}

func TestScenarioFaultKinds(t *testing.T) {
	src := Scenario(2)
	for _, want := range []string{"crash(", "boot(", "link_down(\"lan\")", "link_down(\"backnet\")", "probe(\"http\"", "probe(\"gateway\""} {
		if !strings.Contains(src, want) {
			t.Errorf("2 h scenario lacks %s:\n%s", want, src)
		}
	}
}

// BenchmarkSimulate24h simulates 24 hours of the two-node cluster per op.
func BenchmarkSimulate24h(b *testing.B) {
	run, err := Load(b.Context(), b.TempDir(), 24)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := run(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if !res.OK {
			b.Fatal("expectations of the generated scenario failed")
		}
		b.ReportMetric(float64(res.Stats.Decisions), "decisions/op")
	}
}
