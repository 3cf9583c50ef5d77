package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

const unguardedPolicy = "testdata/faults/unguarded.star"

func loadFile(t testing.TB, file string) *policy.Policy {
	t.Helper()
	p, err := rules.Load(context.Background(), file, rules.Options{})
	if err != nil {
		t.Fatalf("policy %s is invalid:\n%v", file, err)
	}
	return p
}

func runMatrix(t testing.TB, file string, opts simulate.MatrixOptions) *simulate.Matrix {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	m, err := simulate.RunMatrix(ctx, loadFile(t, file), file, opts)
	if err != nil {
		t.Fatalf("fault matrix of %s: %v", file, err)
	}
	return m
}

func fault(t *testing.T, m *simulate.Matrix, name string) simulate.FaultResult {
	t.Helper()
	var names []string
	for _, f := range m.Faults {
		if f.Name == name {
			return f
		}
		names = append(names, f.Name)
	}
	t.Fatalf("%s: no fault %q in the matrix (%s)", m.Policy, name, strings.Join(names, ", "))
	return simulate.FaultResult{}
}

// movedAway reports whether the group went from node to another node.
func movedAway(f simulate.FaultResult, group, node string) bool {
	for _, mv := range f.Moves {
		if mv.Group == group && slices.Equal(mv.From, []string{node}) && len(mv.To) == 1 && mv.To[0] != node {
			return true
		}
	}
	return false
}

func faultNames(m *simulate.Matrix) []string {
	var out []string
	for _, f := range m.Faults {
		out = append(out, f.Name)
	}
	return out
}

// TestMatrixQuorumExamples: the quorum examples (three nodes; two servers
// and a witness) survive every fault of the matrix without a split brain,
// and the crash or isolation of the active node moves its group.
func TestMatrixQuorumExamples(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		names []string
	}{
		{"three-node", []string{"none (baseline)", "crash node1", "isolate node1", "isolate node2", "isolate node3",
			"path lan down", "path backnet down", "cut node1-node2", "cut node1-node3", "cut node2-node3", "crash node1 while node3 down"}},
		{"witness", []string{"none (baseline)", "crash node1", "isolate node1", "isolate node2", "isolate witness",
			"path lan down", "path backnet down", "cut node1-node2", "cut node1-witness", "cut node2-witness", "crash node1 while witness down"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			// 13 heartbeat phases: a guard must not win its race by luck.
			m := runMatrix(t, filepath.Join("../examples", tc.dir, "policy.star"), simulate.MatrixOptions{Seeds: 13})
			if got := faultNames(m); !slices.Equal(got, tc.names) {
				t.Fatalf("faults = %q\nwant     %q", got, tc.names)
			}
			if !slices.Equal(m.Steady["web"], []string{"node1"}) {
				t.Fatalf("steady state: web on %v, want node1", m.Steady["web"])
			}
			for _, f := range m.Faults {
				if len(f.SplitBrain) > 0 || len(f.SplitBrainSeeds) > 0 {
					t.Errorf("%s: split brain %+v with seeds %v", f.Name, f.SplitBrain, f.SplitBrainSeeds)
				}
			}
			if m.SplitBrain() || m.Summary.SplitBrain != 0 || m.Summary.Faults != len(tc.names)-1 {
				t.Errorf("summary = %+v, SplitBrain() = %v", m.Summary, m.SplitBrain())
			}
			for _, name := range []string{"crash node1", "isolate node1"} {
				if f := fault(t, m, name); !movedAway(f, "web", "node1") {
					t.Errorf("%s: web did not move away from node1: moves %+v", name, f.Moves)
				}
			}
			// With a majority left, the survivors must not lose the group
			// for long; with two of three nodes down, quorum keeps it
			// stopped until they come back.
			if o := fault(t, m, "crash node1").LongestOutage(); o <= 0 || o > 5*time.Second {
				t.Errorf("crash node1: outage %s, want (0, 5s]", o)
			}
			last := m.Faults[len(m.Faults)-1]
			if last.Kind != simulate.FaultCrashWhileDown || len(last.Moves) != 0 || last.LongestOutage() < 15*time.Second {
				t.Errorf("%s: moves %+v, outage %s; want no move and the group stopped until the nodes boot", last.Name, last.Moves, last.LongestOutage())
			}
			for _, f := range m.Faults {
				if f.Kind == simulate.FaultPathDown && (len(f.Moves) > 0 || len(f.Outages) > 0) {
					t.Errorf("%s: one path down moved %+v (outages %+v)", f.Name, f.Moves, f.Outages)
				}
			}
		})
	}
}

// TestMatrixWebActiveStandby: the second heartbeat path means one path down
// moves nothing; a crash moves the group; isolation with probes left ok is
// the known split brain, which disappears once the gateway probe fails on
// the isolated node as it would on a real cut cable.
func TestMatrixWebActiveStandby(t *testing.T) {
	const file = "../examples/web-active-standby/policy.star"
	m := runMatrix(t, file, simulate.MatrixOptions{})
	for _, name := range []string{"path lan down", "path backnet down"} {
		f := fault(t, m, name)
		if len(f.Moves) > 0 || len(f.Outages) > 0 || len(f.SplitBrain) > 0 || len(f.Stopped) > 0 {
			t.Errorf("%s: moves %+v outages %+v split %+v stopped %v; want nothing", name, f.Moves, f.Outages, f.SplitBrain, f.Stopped)
		}
		if len(f.Alerts) == 0 || f.Alerts[0].Name != "path-down" {
			t.Errorf("%s: alerts %+v, want path-down", name, f.Alerts)
		}
	}
	crash := fault(t, m, "crash node1")
	if !movedAway(crash, "web", "node1") || !slices.Equal(crash.FinalPlacement["web"], []string{"node2"}) {
		t.Errorf("crash node1: moves %+v, final %v; want web on node2 (manual failback)", crash.Moves, crash.FinalPlacement)
	}
	for _, name := range []string{"isolate node1", "isolate node2"} {
		if f := fault(t, m, name); len(f.SplitBrain) == 0 {
			t.Errorf("%s: no split brain with both gateways answering; the example's known-split-brain scenario says otherwise", name)
		}
	}
	if !strings.Contains(strings.Join(m.Caveats, "\n"), "--isolation-probe gateway") {
		t.Errorf("caveats do not suggest --isolation-probe gateway:\n%s", strings.Join(m.Caveats, "\n"))
	}

	g := runMatrix(t, file, simulate.MatrixOptions{IsolationProbes: []string{"gateway"}, Seeds: 13})
	if g.SplitBrain() {
		t.Errorf("with the gateway failing on the isolated node: split brain %+v", g.Faults)
	}
	if f := fault(t, g, "isolate node1"); !movedAway(f, "web", "node1") {
		t.Errorf("isolate node1 (gateway failing there): moves %+v, want web to node2", f.Moves)
	}
	if f := fault(t, g, "isolate node2"); len(f.Moves) > 0 {
		t.Errorf("isolate node2 (gateway failing there): moves %+v, want none", f.Moves)
	}
}

// TestMatrixUnguarded: a two-node policy without guard splits its brain
// when either node is isolated, and the matrix says so.
func TestMatrixUnguarded(t *testing.T) {
	m := runMatrix(t, unguardedPolicy, simulate.MatrixOptions{Seed: 5, Seeds: 3})
	if !m.SplitBrain() || m.Summary.SplitBrain != 2 {
		t.Fatalf("summary %+v, SplitBrain() %v; want split brain in 2 faults", m.Summary, m.SplitBrain())
	}
	for _, f := range m.Faults {
		want := f.Kind == simulate.FaultIsolate
		if got := len(f.SplitBrain) > 0; got != want {
			t.Errorf("%s: split brain %v, want %v", f.Name, got, want)
		}
		if wantSeeds := map[bool][]int64{true: {5, 6, 7}, false: {}}[want]; !slices.Equal(f.SplitBrainSeeds, wantSeeds) {
			t.Errorf("%s: split brain with seeds %v, want %v", f.Name, f.SplitBrainSeeds, wantSeeds)
		}
	}
	w := fault(t, m, "isolate node1").SplitBrain[0]
	if w.Group != "web" || !slices.Equal(w.Nodes, []string{"node1", "node2"}) || time.Duration(w.Start) < 10*time.Second ||
		time.Duration(w.End) < 40*time.Second {
		t.Errorf("split brain window %+v; want web on node1+node2 from after 10s to after the links come back at 40s", w)
	}
	var out bytes.Buffer
	if err := simulate.WriteMatrixText(&out, m); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"seed 5 (split brain checked with seeds 5-7)", "web on node1+node2 ", "with seed 6,7",
		"summary: 5 faults, 2 with split brain", "SPLIT BRAIN:", "split brain is checked with seeds 5 to 7"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("text output lacks %q:\n%s", s, out.String())
		}
	}
}

// TestMatrixExamplesBaseline: every example runs through the matrix, and
// none splits its brain or loses a group without a fault.
func TestMatrixExamplesBaseline(t *testing.T) {
	files, err := filepath.Glob("../examples/*/policy.star")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, file := range files {
		m := runMatrix(t, file, simulate.MatrixOptions{})
		base := m.Faults[0]
		if base.Kind != simulate.FaultBaseline || len(base.SplitBrain) > 0 || len(base.Outages) > 0 || len(base.Moves) > 0 {
			t.Errorf("%s baseline: %+v", file, base)
		}
		for g, holders := range m.Steady {
			if len(holders) != 1 {
				t.Errorf("%s: steady state %s on %v, want one node", file, g, holders)
			}
		}
		// The caveat names the policy's gateway probe when it has one.
		for _, pr := range loadFile(t, file).Probes {
			if pr.Check.Kind == "gateway" && !strings.Contains(strings.Join(m.Caveats, "\n"), "--isolation-probe "+pr.Name) {
				t.Errorf("%s: caveats do not suggest --isolation-probe %s:\n%s", file, pr.Name, strings.Join(m.Caveats, "\n"))
			}
		}
		if m.Summary.Faults != len(m.Faults)-1 || m.Summary.Faults < 5 {
			t.Errorf("%s: summary %+v for %d rows", file, m.Summary, len(m.Faults))
		}
	}
}

// TestMatrixDeterministic: running the faults in parallel gives the same
// document as running them one by one.
func TestMatrixDeterministic(t *testing.T) {
	const file = "../examples/three-node/policy.star"
	serial, err := json.Marshal(runMatrix(t, file, simulate.MatrixOptions{Parallel: 1}))
	if err != nil {
		t.Fatal(err)
	}
	parallel, err := json.Marshal(runMatrix(t, file, simulate.MatrixOptions{Parallel: 8}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(serial, parallel) {
		t.Errorf("parallel run differs:\n%s\n%s", serial, parallel)
	}
	if other, _ := json.Marshal(runMatrix(t, file, simulate.MatrixOptions{Seed: 7})); bytes.Equal(serial, other) {
		t.Errorf("seed 7 gives the same document as seed 1: the seed is not used")
	}
}

// TestStandardFaultsSinglePath: with one heartbeat path, losing it is a
// full partition and the fault says so; two nodes get no pair cuts.
func TestStandardFaultsSinglePath(t *testing.T) {
	src := strings.NewReplacer(`heartbeat("b", interval = "200ms", misses = 5)`, "", `, addresses = {"b": "203.0.113.1"}`, "",
		`, addresses = {"b": "203.0.113.2"}`, "", "%RULES%", "").Replace(twoNodes)
	pf, _ := writeFiles(t, src, "")
	p := loadFile(t, pf)
	fs := simulate.StandardFaults(p, map[string][]string{"web": {"node1"}}, simulate.MatrixOptions{})
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	if want := []string{"crash node1", "isolate node1", "isolate node2", "path a down"}; !slices.Equal(names, want) {
		t.Fatalf("faults %q, want %q", names, want)
	}
	if d := fs[3].Description; !strings.Contains(d, "the only path") {
		t.Errorf("single path fault description %q does not warn that it is the only path", d)
	}
	// Nobody holds anything: every node is crashed in turn.
	fs = simulate.StandardFaults(p, map[string][]string{"web": {}}, simulate.MatrixOptions{})
	if fs[0].Name != "crash node1" || fs[1].Name != "crash node2" {
		t.Errorf("with no holder: %s, %s; want a crash of each node", fs[0].Name, fs[1].Name)
	}
}

func TestMatrixOptionErrors(t *testing.T) {
	p := loadFile(t, unguardedPolicy)
	for _, tc := range []struct {
		opts simulate.MatrixOptions
		want string
	}{
		{simulate.MatrixOptions{IsolationProbes: []string{"gateway"}}, `isolation probe "gateway" is not a probe`},
		{simulate.MatrixOptions{FaultAt: 50 * time.Second}, "want fault (50s) < recovery (40s)"},
		{simulate.MatrixOptions{Duration: 30 * time.Second}, "< duration (30s)"},
	} {
		_, err := simulate.RunMatrix(context.Background(), p, unguardedPolicy, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := simulate.RunMatrix(ctx, p, unguardedPolicy, simulate.MatrixOptions{}); err == nil {
		t.Errorf("a cancelled context did not stop the matrix")
	}
}

// BenchmarkMatrix measures one whole matrix per example (go test -bench Matrix ./simulate).
func BenchmarkMatrix(b *testing.B) {
	files, _ := filepath.Glob("../examples/*/policy.star")
	for _, file := range files {
		p := loadFile(b, file)
		b.Run(filepath.Base(filepath.Dir(file)), func(b *testing.B) {
			for b.Loop() {
				if _, err := simulate.RunMatrix(context.Background(), p, file, simulate.MatrixOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMatrixHandWrittenTakeoverDelay: the takeover delay computed by hand
// as the gateway probe's fall x every (plus nothing for the checks' phase
// and the probe's timeout) ends before a cut-off holder's gateway probe can
// flip, and the survivor starts the group while the holder still runs it.
// The matrix finds it now that it varies probe phases with the seed and an
// isolated node's gateway checks time out; the stdlib guard
// (takeover_delay_guard, self_fence) derives the delay and passes. Before
// probe phases were simulated, --seeds 13 found nothing (item 13).
func TestMatrixHandWrittenTakeoverDelay(t *testing.T) {
	opts := simulate.MatrixOptions{IsolationProbes: []string{"gateway"}, Seeds: 13}
	old := runMatrix(t, "testdata/faults/hand-written-delay.star", opts)
	if !old.SplitBrain() {
		t.Fatalf("the hand-written 2 s takeover delay shows no split brain over 13 seeds:\n%v", faultNames(old))
	}
	if f := fault(t, old, "isolate node1"); len(f.SplitBrainSeeds) == 0 {
		t.Errorf("the split brain should come from isolating the holder node1, seeds: %v", f.SplitBrainSeeds)
	}
	opts.Seeds = 40
	guarded := runMatrix(t, "../examples/web-active-standby/policy.star", opts)
	for _, f := range guarded.Faults {
		if len(f.SplitBrainSeeds) > 0 {
			t.Errorf("with takeover_delay_guard: %s splits the brain with seeds %v", f.Name, f.SplitBrainSeeds)
		}
	}
}
