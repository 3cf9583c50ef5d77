package simulate

// The fault matrix: a policy is run through a standard set of faults with
// the same simulator as hand-written scenarios, so an operator learns what
// it does under each common failure without writing a scenario first.

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Fault kinds, in the order the matrix lists them.
const (
	FaultBaseline       = "baseline"         // no fault: the policy alone for the whole run
	FaultCrash          = "crash"            // a node that holds something crashes, boots again at recovery
	FaultIsolate        = "isolate"          // every heartbeat path down on one node's side
	FaultPathDown       = "path-down"        // one heartbeat path down on every node
	FaultPairCut        = "pair-cut"         // two nodes lose only their mutual links (3+ nodes)
	FaultCrashWhileDown = "crash-while-down" // the active node crashes while another node is down (3+ nodes)
)

// MatrixOptions tune a fault matrix run. Zero values take the defaults.
type MatrixOptions struct {
	// Duration is the simulated time of each run (default 60s).
	Duration time.Duration
	// FaultAt is when the fault begins (default 10s); the placement at that
	// instant is the steady state.
	FaultAt time.Duration
	// RecoverAt is when crashed nodes boot and cut links come back
	// (default 40s).
	RecoverAt time.Duration
	// Seed seeds heartbeat phases and jitter (default 1). The table shows
	// the runs with this seed.
	Seed int64
	// Seeds runs every fault with Seed, Seed+1, ... Seed+Seeds-1 (default
	// 1): a guard that wins its race for one heartbeat phase only shows up
	// as a split brain under another. Only the split-brain verdict is taken
	// from the other seeds.
	Seeds int
	// Start is the wall-clock time of offset 0 (default 2026-01-01T00:00Z,
	// as for scenarios).
	Start time.Time
	// IsolationProbes fail on an isolated node while it is isolated. The
	// simulator cannot know which probe stands for the gateway; naming it
	// here makes isolation faults closer to a real cut cable.
	IsolationProbes []string
	// OutageLimit: the summary counts faults with an outage longer than
	// this (default 5s).
	OutageLimit time.Duration
	// Parallel bounds the runs in flight (default GOMAXPROCS). Each run is
	// deterministic on its own, so the matrix is the same for any value.
	Parallel int
}

func (o *MatrixOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	if o.FaultAt <= 0 {
		o.FaultAt = 10 * time.Second
	}
	if o.RecoverAt <= 0 {
		o.RecoverAt = 40 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Seeds <= 0 {
		o.Seeds = 1
	}
	if o.OutageLimit <= 0 {
		o.OutageLimit = 5 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.GOMAXPROCS(0)
	}
}

func (o *MatrixOptions) validate(p *policy.Policy) error {
	if !(o.FaultAt < o.RecoverAt && o.RecoverAt < o.Duration) {
		return fmt.Errorf("fault matrix: want fault (%s) < recovery (%s) < duration (%s)", o.FaultAt, o.RecoverAt, o.Duration)
	}
	for _, name := range o.IsolationProbes {
		if p.Probe(name) == nil {
			return fmt.Errorf("fault matrix: isolation probe %q is not a probe of the policy", name)
		}
	}
	return nil
}

// Fault is one entry of the matrix: a named list of scenario events.
type Fault struct {
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Nodes       []string `json:"nodes,omitempty"`
	Path        string   `json:"path,omitempty"`
	Description string   `json:"description"`
	Events      []Event  `json:"-"`
}

// Move is a change of the nodes holding a group after the fault began,
// from the last holders to the next (an outage in between is not a move;
// To is empty only when nobody holds the group at the end).
type Move struct {
	Group string   `json:"group"`
	At    Dur      `json:"at"`
	From  []string `json:"from"`
	To    []string `json:"to"`
}

// GroupOutage is the longest window in which a group that had been running
// was held by nobody.
type GroupOutage struct {
	Group   string `json:"group"`
	Longest Dur    `json:"longest"`
	Start   Dur    `json:"start"`
}

// Alert is an alert raised at or after the fault began.
type Alert struct {
	At   Dur    `json:"at"`
	Node string `json:"node"`
	Name string `json:"name"`
	Text string `json:"text"`
}

// FaultResult is what one fault did.
type FaultResult struct {
	Fault
	// Moves lists every change of holders of each group from the fault on.
	Moves []Move `json:"moves"`
	// Outages holds, per group, its longest outage (groups with none are
	// absent).
	Outages []GroupOutage `json:"outages"`
	// SplitBrain lists the windows in which a group had two holders or
	// more (with the matrix's Seed).
	SplitBrain []Window `json:"split_brain"`
	// SplitBrainSeeds lists the seeds under which this fault split the
	// brain (MatrixOptions.Seeds); the fault counts as a split brain when
	// it is not empty.
	SplitBrainSeeds []int64 `json:"split_brain_seeds"`
	// Stopped lists groups that ran at steady state and nobody holds at the end.
	Stopped        []string            `json:"stopped"`
	Alerts         []Alert             `json:"alerts"`
	FinalPlacement map[string][]string `json:"final_placement"`
	Stats          Stats               `json:"stats"`
	// Result is the full simulation (timeline included), for callers that
	// want to print or draw one fault; not part of the JSON document.
	Result *Result `json:"-"`
}

// LongestOutage is the longest outage of any group in this fault.
func (r FaultResult) LongestOutage() time.Duration {
	var d time.Duration
	for _, o := range r.Outages {
		d = max(d, time.Duration(o.Longest))
	}
	return d
}

// MatrixSummary counts the faults by outcome.
type MatrixSummary struct {
	Faults      int `json:"faults"`
	SplitBrain  int `json:"split_brain"`
	LongOutages int `json:"long_outages"`
	OutageLimit Dur `json:"outage_limit"`
	Stopped     int `json:"stopped"`
}

// Matrix is a policy run through the standard faults.
type Matrix struct {
	Policy          string   `json:"policy"`
	Duration        Dur      `json:"duration"`
	FaultAt         Dur      `json:"fault_at"`
	RecoverAt       Dur      `json:"recover_at"`
	Seed            int64    `json:"seed"`
	Seeds           int      `json:"seeds"`
	IsolationProbes []string `json:"isolation_probes"`
	// Steady maps each group to its holders at FaultAt without any fault.
	Steady map[string][]string `json:"steady"`
	// Faults starts with the baseline (no fault), which the summary does
	// not count as a fault but whose split brain still fails the matrix.
	Faults  []FaultResult `json:"faults"`
	Summary MatrixSummary `json:"summary"`
	Caveats []string      `json:"caveats"`
}

// SplitBrain reports whether any run, baseline included and under any of
// the seeds, had a group held by two nodes at once.
func (m *Matrix) SplitBrain() bool {
	for _, f := range m.Faults {
		if len(f.SplitBrainSeeds) > 0 {
			return true
		}
	}
	return false
}

// RunMatrix runs p through the standard faults (see StandardFaults). It
// first runs the baseline to learn the steady state, then every fault, in
// parallel.
func RunMatrix(ctx context.Context, p *policy.Policy, policyFile string, opts MatrixOptions) (*Matrix, error) {
	opts.defaults()
	if err := opts.validate(p); err != nil {
		return nil, err
	}
	m := &Matrix{Policy: policyFile, Duration: Dur(opts.Duration), FaultAt: Dur(opts.FaultAt), RecoverAt: Dur(opts.RecoverAt),
		Seed: opts.Seed, Seeds: opts.Seeds, IsolationProbes: append([]string{}, opts.IsolationProbes...)}
	base := Fault{Name: "none (baseline)", Kind: FaultBaseline, Description: "no fault: the policy alone for the whole run"}
	baseRes, err := Run(ctx, p, policyFile, faultScenario(base, opts, opts.Seed), Options{})
	if err != nil {
		return nil, fmt.Errorf("fault matrix baseline: %w", err)
	}
	// Every run is identical to the baseline until FaultAt (same seed, no
	// event before), so its placement then is the steady state of all.
	m.Steady = holdersAt(p, baseRes, opts.FaultAt)
	faults := append([]Fault{base}, StandardFaults(p, m.Steady, opts)...)
	results := make([]FaultResult, len(faults))
	results[0] = summarize(p, base, baseRes, m.Steady, opts)
	// extraSplit[i][k] is set when fault i split the brain with seed
	// Seed+1+k (the other seeds only contribute that verdict).
	extraSplit := make([][]bool, len(faults))
	type job struct{ fault, seed int } // seed 0 is opts.Seed
	var jobs []job
	for i := range faults {
		extraSplit[i] = make([]bool, opts.Seeds-1)
		for k := range opts.Seeds {
			if i > 0 || k > 0 {
				jobs = append(jobs, job{i, k})
			}
		}
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for j, jb := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f := faults[jb.fault]
			seed := opts.Seed + int64(jb.seed)
			res, err := Run(ctx, p, policyFile, faultScenario(f, opts, seed), Options{})
			if err != nil {
				errs[j] = fmt.Errorf("fault %s (seed %d): %w", f.Name, seed, err)
				return
			}
			if jb.seed == 0 {
				results[jb.fault] = summarize(p, f, res, m.Steady, opts)
			} else {
				extraSplit[jb.fault][jb.seed-1] = len(res.DualOwners) > 0
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for i := range results {
		results[i].SplitBrainSeeds = []int64{}
		if len(results[i].SplitBrain) > 0 {
			results[i].SplitBrainSeeds = append(results[i].SplitBrainSeeds, opts.Seed)
		}
		for k, split := range extraSplit[i] {
			if split {
				results[i].SplitBrainSeeds = append(results[i].SplitBrainSeeds, opts.Seed+1+int64(k))
			}
		}
	}
	m.Faults = results
	m.Summary = MatrixSummary{Faults: len(faults) - 1, OutageLimit: Dur(opts.OutageLimit)}
	for _, f := range results {
		if len(f.SplitBrainSeeds) > 0 {
			m.Summary.SplitBrain++
		}
		if f.LongestOutage() > opts.OutageLimit {
			m.Summary.LongOutages++
		}
		if len(f.Stopped) > 0 {
			m.Summary.Stopped++
		}
	}
	m.Caveats = caveats(p, opts)
	return m, nil
}

// StandardFaults lists the faults of the matrix for a policy whose groups
// are held as in steady (group -> holders at FaultAt):
//
//   - crash of each node holding a group at steady state (of every node
//     when none holds anything), booted again at RecoverAt;
//   - isolation of each node: all its heartbeat paths down on its side,
//     probes unchanged (except MatrixOptions.IsolationProbes), restored at
//     RecoverAt;
//   - each heartbeat path down on every node, restored at RecoverAt (with
//     two paths or more nothing should move);
//   - with three nodes or more: each pair of nodes losing only their mutual
//     links, restored at RecoverAt;
//   - with three nodes or more: each steady holder crashing a third of the
//     way to RecoverAt while another node (the last in policy order that
//     holds nothing, else the last other) is already down since FaultAt;
//     both boot at RecoverAt.
func StandardFaults(p *policy.Policy, steady map[string][]string, opts MatrixOptions) []Fault {
	opts.defaults()
	at, back := opts.FaultAt, opts.RecoverAt
	nodes := p.NodeNames()
	holding := map[string]bool{}
	for _, hs := range steady {
		for _, n := range hs {
			holding[n] = true
		}
	}
	var holders []string
	for _, n := range nodes {
		if holding[n] {
			holders = append(holders, n)
		}
	}
	crashed := holders
	if len(crashed) == 0 {
		crashed = nodes
	}
	var out []Fault
	for _, n := range crashed {
		out = append(out, Fault{Name: "crash " + n, Kind: FaultCrash, Nodes: []string{n},
			Description: fmt.Sprintf("%s crashes at %s and boots again at %s", n, at, back),
			Events:      []Event{{At: at, Kind: "crash", Node: n}, {At: back, Kind: "boot", Node: n}}})
	}
	for _, n := range nodes {
		f := Fault{Name: "isolate " + n, Kind: FaultIsolate, Nodes: []string{n},
			Description: fmt.Sprintf("every heartbeat path down on %s's side from %s to %s; probes unchanged", n, at, back),
			Events:      []Event{{At: at, Kind: "link_down", Node: n}, {At: back, Kind: "link_up", Node: n}}}
		var failing []string
		for _, name := range opts.IsolationProbes {
			if pr := p.Probe(name); len(pr.Nodes) == 0 || slices.Contains(pr.Nodes, n) {
				failing = append(failing, name)
				// A cut-off node's checks get no answer: each fails at its
				// timeout, the slowest way a probe can notice.
				f.Events = append(f.Events, Event{At: at, Kind: "probe", Node: n, Probe: name, OK: false, Silent: true},
					Event{At: back, Kind: "probe", Node: n, Probe: name, OK: true})
			}
		}
		if len(failing) > 0 {
			f.Description = fmt.Sprintf("every heartbeat path down on %s's side from %s to %s; probe %s fails there meanwhile (checks time out)",
				n, at, back, strings.Join(failing, ", "))
		}
		out = append(out, f)
	}
	for _, h := range p.Paths {
		desc := fmt.Sprintf("heartbeat path %s down on every node from %s to %s", h.Name, at, back)
		if len(p.Paths) == 1 {
			desc += " (the only path: every node is cut off from every other)"
		}
		out = append(out, Fault{Name: "path " + h.Name + " down", Kind: FaultPathDown, Path: h.Name, Description: desc,
			Events: []Event{{At: at, Kind: "link_down", Path: h.Name}, {At: back, Kind: "link_up", Path: h.Name}}})
	}
	if len(nodes) < 3 {
		return out
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			out = append(out, Fault{Name: "cut " + a + "-" + b, Kind: FaultPairCut, Nodes: []string{a, b},
				Description: fmt.Sprintf("%s and %s stop hearing each other (every path) from %s to %s; the others hear both", a, b, at, back),
				Events:      []Event{{At: at, Kind: "link_down", Node: a, Peer: b}, {At: back, Kind: "link_up", Node: a, Peer: b}}})
		}
	}
	second := at + (back-at)/3
	for _, active := range holders {
		// The last node in policy order that holds nothing (else the last
		// other node) goes down first: preferred standbys come first in
		// policy order, so one of them is left to take over.
		down := ""
		for i := len(nodes) - 1; i >= 0 && down == ""; i-- {
			if n := nodes[i]; n != active && !holding[n] {
				down = n
			}
		}
		for i := len(nodes) - 1; i >= 0 && down == ""; i-- {
			if n := nodes[i]; n != active {
				down = n
			}
		}
		out = append(out, Fault{Name: "crash " + active + " while " + down + " down", Kind: FaultCrashWhileDown, Nodes: []string{active, down},
			Description: fmt.Sprintf("%s crashes at %s, then %s at %s; both boot at %s", down, at, active, second, back),
			Events: []Event{{At: at, Kind: "crash", Node: down}, {At: second, Kind: "crash", Node: active},
				{At: back, Kind: "boot", Node: active}, {At: back, Kind: "boot", Node: down}}})
	}
	return out
}

func faultScenario(f Fault, opts MatrixOptions, seed int64) *Scenario {
	return &Scenario{File: "fault matrix: " + f.Name, Name: f.Name, Duration: opts.Duration, Start: opts.Start, Seed: seed,
		Events: slices.Clone(f.Events)}
}

// ownerChanges reads the simulator's owner records of one run.
func ownerChanges(res *Result) map[string][]ownerChange {
	out := map[string][]ownerChange{}
	for _, r := range res.Records {
		if r.Kind != RecOwner || r.Node != "cluster" {
			continue
		}
		who := strings.TrimPrefix(r.Text, r.Group+" held by ")
		var holders []string
		if who != "nobody" {
			holders = strings.Split(who, "+")
		}
		out[r.Group] = append(out[r.Group], ownerChange{at: r.At.Sub(res.Start), holders: holders})
	}
	return out
}

// holdersAt maps every group to its holders at an offset (the state after
// changes at that instant).
func holdersAt(p *policy.Policy, res *Result, at time.Duration) map[string][]string {
	changes := ownerChanges(res)
	out := map[string][]string{}
	for _, g := range p.Groups {
		held := []string{}
		for _, c := range changes[g.Name] {
			if c.at > at {
				break
			}
			held = append([]string{}, c.holders...)
		}
		out[g.Name] = held
	}
	return out
}

func summarize(p *policy.Policy, f Fault, res *Result, steady map[string][]string, opts MatrixOptions) FaultResult {
	fr := FaultResult{Fault: f, Moves: []Move{}, Outages: []GroupOutage{}, SplitBrain: append([]Window{}, res.DualOwners...),
		Stopped: []string{}, Alerts: []Alert{}, FinalPlacement: res.FinalPlacement, Stats: res.Stats, Result: res}
	changes := ownerChanges(res)
	for _, g := range p.Groups {
		// A window held by nobody is the outage column's business: a move
		// goes from the last holders to the next ones, and to nobody only
		// when nobody holds the group at the end.
		prev := steady[g.Name]
		var last ownerChange
		for _, c := range changes[g.Name] {
			if c.at < opts.FaultAt {
				continue
			}
			last = c
			if len(c.holders) > 0 && !slices.Equal(c.holders, prev) {
				fr.Moves = append(fr.Moves, Move{Group: g.Name, At: Dur(c.at), From: orEmpty(prev), To: orEmpty(c.holders)})
			}
			if len(c.holders) > 0 {
				prev = c.holders
			}
		}
		if last.at > 0 && len(last.holders) == 0 && len(prev) > 0 {
			fr.Moves = append(fr.Moves, Move{Group: g.Name, At: Dur(last.at), From: orEmpty(prev), To: []string{}})
		}
		var worst *GroupOutage
		for _, o := range res.Outages {
			if o.Group == g.Name && (worst == nil || o.End-o.Start > worst.Longest) {
				worst = &GroupOutage{Group: g.Name, Longest: o.End - o.Start, Start: o.Start}
			}
		}
		if worst != nil {
			fr.Outages = append(fr.Outages, *worst)
		}
		if len(steady[g.Name]) > 0 && len(res.FinalPlacement[g.Name]) == 0 {
			fr.Stopped = append(fr.Stopped, g.Name)
		}
	}
	sort.SliceStable(fr.Moves, func(i, j int) bool { return fr.Moves[i].At < fr.Moves[j].At })
	for _, r := range res.Records {
		off := r.At.Sub(res.Start)
		if r.Kind != engine.RecAlert || off < opts.FaultAt {
			continue
		}
		name, _, _ := strings.Cut(r.Text, " ")
		fr.Alerts = append(fr.Alerts, Alert{At: Dur(off), Node: r.Node, Name: name, Text: r.Text})
	}
	return fr
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return append([]string{}, s...)
}

func caveats(p *policy.Policy, opts MatrixOptions) []string {
	// Suggest the probe most likely to stand for the gateway: a
	// check.gateway probe, else the first probe.
	probe := "PROBE"
	if len(p.Probes) > 0 {
		probe = p.Probes[0].Name
	}
	for _, pr := range p.Probes {
		if pr.Check.Kind == "gateway" {
			probe = pr.Name
			break
		}
	}
	var out []string
	if len(opts.IsolationProbes) == 0 {
		out = append(out, fmt.Sprintf("probes keep their scenario defaults (ok on every node): the simulator cannot know which probe is "+
			"the gateway, so an isolation where the real gateway probe would fail on the cut-off node may look worse than reality "+
			"(a guard on that probe never fires here). Name such probes with --isolation-probe %s, or model the case in a scenario: "+
			"at(\"10s\", link_down(node = \"N\"), probe(%q, node = \"N\", ok = False, silent = True))", probe, probe))
	} else {
		out = append(out, fmt.Sprintf("isolation faults also fail probe %s on the isolated node (silently: each check times out); every other probe stays ok everywhere",
			strings.Join(opts.IsolationProbes, ", ")))
	}
	if opts.Seeds == 1 {
		out = append(out, fmt.Sprintf("one seed (%d) per fault: the heartbeat and probe phases are fixed, so a race that a guard only sometimes "+
			"wins may not show; add --seeds 13 to try each fault with 13 phases", opts.Seed))
	} else {
		out = append(out, fmt.Sprintf("split brain is checked with seeds %d to %d; moves, outages and alerts are those of seed %d",
			opts.Seed, opts.Seed+int64(opts.Seeds)-1, opts.Seed))
	}
	out = append(out,
		"resources always start and stop at once and fencing always works; application failures, slow stops and failed "+
			"fencing are not in the matrix (resource_fail, fail_starts, fail_fence in a scenario)")
	return out
}

// WriteMatrixText prints the matrix as a table (one row per fault, a cell
// may take several lines), what each fault does, the summary and the
// caveats.
func WriteMatrixText(w io.Writer, m *Matrix) error {
	bw := &errWriter{w: w}
	seeds := fmt.Sprintf("seed %d", m.Seed)
	if m.Seeds > 1 {
		seeds = fmt.Sprintf("seed %d (split brain checked with seeds %d-%d)", m.Seed, m.Seed, m.Seed+int64(m.Seeds)-1)
	}
	fmt.Fprintf(bw, "fault matrix for %s: %s per run, fault at %s, recovery at %s, %s\n",
		m.Policy, time.Duration(m.Duration), time.Duration(m.FaultAt), time.Duration(m.RecoverAt), seeds)
	var steady []string
	for _, g := range sortedKeys(m.Steady) {
		steady = append(steady, g+" on "+orNobody(m.Steady[g]))
	}
	fmt.Fprintf(bw, "steady state at %s: %s\n\n", time.Duration(m.FaultAt), strings.Join(steady, ", "))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tMOVES\tLONGEST OUTAGE\tSPLIT BRAIN\tSTOPPED AT END\tALERTS")
	for _, f := range m.Faults {
		cells := [][]string{{f.Name}, moveLines(f.Moves), outageLines(f.Outages), splitLines(f, m.Seed), f.Stopped, alertLines(f.Alerts)}
		rows := 1
		for _, c := range cells {
			rows = max(rows, len(c))
		}
		for i := range rows {
			line := make([]string, len(cells))
			for j, c := range cells {
				switch {
				case i < len(c):
					line[j] = c[i]
				case i == 0:
					line[j] = "-"
				}
			}
			fmt.Fprintln(tw, strings.Join(line, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(bw, "\nfaults:")
	tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	for _, f := range m.Faults {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := m.Summary
	fmt.Fprintf(bw, "\nsummary: %d faults, %d with split brain, %d with an outage longer than %s, %d leaving a group stopped\n",
		s.Faults, s.SplitBrain, s.LongOutages, time.Duration(s.OutageLimit), s.Stopped)
	if m.SplitBrain() {
		fmt.Fprintln(bw, "SPLIT BRAIN: a group was held by two nodes at once (replay the fault as a scenario with harules simulate to see why)")
	}
	fmt.Fprintln(bw, "caveats:")
	for _, c := range m.Caveats {
		fmt.Fprintf(bw, "  - %s\n", c)
	}
	return bw.err
}

func short(d Dur) string { return time.Duration(d).Round(time.Millisecond).String() }

func moveLines(moves []Move) []string {
	var out []string
	for _, mv := range moves {
		out = append(out, fmt.Sprintf("%s %s->%s at %s", mv.Group, orNobody(mv.From), orNobody(mv.To), short(mv.At)))
	}
	return out
}

func outageLines(outs []GroupOutage) []string {
	var out []string
	for _, o := range outs {
		out = append(out, fmt.Sprintf("%s %s (from %s)", o.Group, short(o.Longest), short(o.Start)))
	}
	return out
}

// splitLines shows the windows of the table's seed, then the other seeds
// under which the fault split the brain.
func splitLines(f FaultResult, seed int64) []string {
	var out []string
	for _, w := range f.SplitBrain {
		out = append(out, fmt.Sprintf("%s on %s %s-%s", w.Group, strings.Join(w.Nodes, "+"), short(w.Start), short(w.End)))
	}
	var others []string
	for _, s := range f.SplitBrainSeeds {
		if s != seed {
			others = append(others, fmt.Sprint(s))
		}
	}
	if len(others) > 0 {
		out = append(out, "with seed "+strings.Join(others, ","))
	}
	return out
}

// alertLines groups alerts by name: "path-down x4 on node2,node3".
func alertLines(alerts []Alert) []string {
	var names []string
	count := map[string]int{}
	nodes := map[string][]string{}
	for _, a := range alerts {
		if count[a.Name] == 0 {
			names = append(names, a.Name)
		}
		count[a.Name]++
		if !slices.Contains(nodes[a.Name], a.Node) {
			nodes[a.Name] = append(nodes[a.Name], a.Node)
		}
	}
	var out []string
	for _, n := range names {
		slices.Sort(nodes[n])
		out = append(out, fmt.Sprintf("%s x%d on %s", n, count[n], strings.Join(nodes[n], ",")))
	}
	return out
}

// errWriter keeps the first write error so the printing code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
