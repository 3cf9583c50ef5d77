package nemesis

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

func TestOutageIsTheLongestSilence(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(ms int) clustertest.Sample { return clustertest.Sample{At: at(ms), Node: "node1"} }
	bad := func(ms int) clustertest.Sample { return clustertest.Sample{At: at(ms), Err: "refused"} }
	samples := []clustertest.Sample{ok(0), ok(10), bad(20), bad(30), ok(340), ok(350), bad(360), ok(400)}
	if got := outage(samples, at(5), at(420)); got != 330*time.Millisecond {
		t.Errorf("outage = %s, want 330ms (last answer 10ms, next 340ms)", got)
	}
	// No answer after the window's start: the outage runs to its end.
	if got := outage(samples[:4], at(5), at(1000)); got != 990*time.Millisecond {
		t.Errorf("outage without a later answer = %s, want 990ms", got)
	}
}

func TestSummaryCountsOnlyInsideFaultsAsViolations(t *testing.T) {
	r := &Report{Faults: []FaultResult{
		{Kind: "isolate", Inside: true, SplitBrain: 3, DualMAC: 2, Outage: 100 * time.Millisecond},
		{Kind: "isolate", Inside: true, Outage: 300 * time.Millisecond},
		{Kind: "isolate-gw", Inside: false, SplitBrain: 50, DualMAC: 40, Outage: 2 * time.Second},
		{Kind: "crash", Inside: true, WrongFinal: "VIP configured on []", Outage: time.Second},
	}}
	r.summarize()
	if got, want := r.Violations(), 3+2+1; got != want {
		t.Errorf("violations = %d, want %d (outside faults do not count)", got, want)
	}
	byKind := map[string]KindSummary{}
	for _, k := range r.Kinds {
		byKind[k.Kind] = k
	}
	iso := byKind["isolate"]
	if iso.Count != 2 || iso.ViolatingFaults != 1 || iso.SplitBrain != 3 || iso.OutageMedian != 200*time.Millisecond || iso.OutageMax != 300*time.Millisecond {
		t.Errorf("isolate summary = %+v", iso)
	}
	gw := byKind["isolate-gw"]
	if gw.Outside != 1 || gw.SplitBrain != 0 || gw.OutsideSplitBrain != 50 || gw.OutsideDualMAC != 40 {
		t.Errorf("isolate-gw summary = %+v", gw)
	}
	if r.Total.WrongFinal != 1 || r.Total.Count != 4 {
		t.Errorf("total = %+v", r.Total)
	}
}

func TestBetweenToleratesAnEmptyRange(t *testing.T) {
	r := &run{rng: rand.New(rand.NewPCG(1, 2))}
	if got := r.between(time.Second, -time.Second); got != time.Second {
		t.Errorf("between(1s, -1s) = %s, want 1s", got)
	}
	for range 100 {
		if got := r.between(time.Second, 2*time.Second); got < time.Second || got > 2*time.Second {
			t.Fatalf("between(1s, 2s) = %s", got)
		}
	}
}
