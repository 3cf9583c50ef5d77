package nemesis

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// FaultResult is what one fault did and what the checker saw from its
// start to the end of its settle.
type FaultResult struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind"`
	Target string `json:"target"`
	// Holder is the node that served the VIP when the fault began.
	Holder string `json:"holder"`
	Detail string `json:"detail,omitempty"`
	// Inside tells whether the fault is inside the documented guarantees;
	// Outside says why not.
	Inside  bool   `json:"inside"`
	Outside string `json:"outside,omitempty"`
	// Operator lists the operator requests sent during the fault.
	Operator []string  `json:"operator,omitempty"`
	Start    time.Time `json:"start"`
	Healed   time.Time `json:"healed"`
	End      time.Time `json:"end"`
	// SplitBrain counts 20 ms samples with the VIP on two nodes with their
	// interface up (both could answer).
	SplitBrain int `json:"split_brain_samples"`
	// DualConfigured counts samples with the VIP configured on two nodes,
	// including on an interface that is down (not counted as a violation).
	DualConfigured int `json:"dual_configured_samples"`
	// DualMAC counts ARP who-has rounds answered by two MACs.
	DualMAC int `json:"dual_mac_rounds"`
	// DualService counts 20 ms samples with the service running on two
	// live nodes.
	DualService int `json:"dual_service_samples"`
	// Outage is the longest time the client got no answer through the VIP.
	Outage time.Duration `json:"outage_ns"`
	// WrongFinal describes a wrong state at the end of the settle time
	// (empty when exactly one node held the VIP and served).
	WrongFinal string `json:"wrong_final,omitempty"`
	// Harness lists errors of the test harness itself during the fault
	// (an agent that did not answer after a restart...).
	Harness []string `json:"harness,omitempty"`
}

// Violations counts the safety violations of a fault inside the
// guarantees (zero for faults outside them).
func (f FaultResult) Violations() int {
	if !f.Inside {
		return 0
	}
	return f.SplitBrain + f.DualMAC + f.DualService
}

// KindSummary aggregates the faults of one kind.
type KindSummary struct {
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
	Inside  int    `json:"inside"`
	Outside int    `json:"outside"`
	// Faults inside the guarantees with any violation, and the totals.
	ViolatingFaults int `json:"violating_faults"`
	SplitBrain      int `json:"split_brain_samples"`
	DualMAC         int `json:"dual_mac_rounds"`
	DualService     int `json:"dual_service_samples"`
	// The same for faults outside the guarantees (not failures).
	OutsideSplitBrain  int           `json:"outside_split_brain_samples"`
	OutsideDualMAC     int           `json:"outside_dual_mac_rounds"`
	OutsideDualService int           `json:"outside_dual_service_samples"`
	WrongFinal         int           `json:"wrong_final"`
	OutageMedian       time.Duration `json:"outage_median_ns"`
	OutageMax          time.Duration `json:"outage_max_ns"`
}

// Report is the result of one nemesis run.
type Report struct {
	Nodes    int           `json:"nodes"`
	Seed     uint64        `json:"seed"`
	Interval time.Duration `json:"interval_ns"`
	Misses   int           `json:"misses"`
	LossMode string        `json:"loss_mode"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Faults   []FaultResult `json:"faults"`
	Kinds    []KindSummary `json:"kinds"`
	Total    KindSummary   `json:"total"`
	Aborted  string        `json:"aborted,omitempty"`
	Policy   string        `json:"policy"`
}

// summarize fills Kinds and Total from Faults.
func (r *Report) summarize() {
	byKind := map[string]*KindSummary{}
	outages := map[string][]time.Duration{}
	var all []time.Duration
	for _, f := range r.Faults {
		k := byKind[f.Kind]
		if k == nil {
			k = &KindSummary{Kind: f.Kind}
			byKind[f.Kind] = k
		}
		k.Count++
		if f.Inside {
			k.Inside++
			k.SplitBrain += f.SplitBrain
			k.DualMAC += f.DualMAC
			k.DualService += f.DualService
			if f.Violations() > 0 {
				k.ViolatingFaults++
			}
		} else {
			k.Outside++
			k.OutsideSplitBrain += f.SplitBrain
			k.OutsideDualMAC += f.DualMAC
			k.OutsideDualService += f.DualService
		}
		if f.WrongFinal != "" {
			k.WrongFinal++
		}
		outages[f.Kind] = append(outages[f.Kind], f.Outage)
		all = append(all, f.Outage)
	}
	r.Kinds = nil
	r.Total = KindSummary{Kind: "total"}
	for _, k := range byKind {
		k.OutageMedian, k.OutageMax = medianMax(outages[k.Kind])
		r.Kinds = append(r.Kinds, *k)
		t := &r.Total
		t.Count += k.Count
		t.Inside += k.Inside
		t.Outside += k.Outside
		t.ViolatingFaults += k.ViolatingFaults
		t.SplitBrain += k.SplitBrain
		t.DualMAC += k.DualMAC
		t.DualService += k.DualService
		t.OutsideSplitBrain += k.OutsideSplitBrain
		t.OutsideDualMAC += k.OutsideDualMAC
		t.OutsideDualService += k.OutsideDualService
		t.WrongFinal += k.WrongFinal
	}
	r.Total.OutageMedian, r.Total.OutageMax = medianMax(all)
	slices.SortFunc(r.Kinds, func(a, b KindSummary) int { return strings.Compare(a.Kind, b.Kind) })
}

func medianMax(ds []time.Duration) (median, maxD time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		median = s[len(s)/2]
	} else {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, s[len(s)-1]
}

// Violations is the number of violations inside the guarantees plus the
// wrong final states: a passing run has 0.
func (r *Report) Violations() int {
	return r.Total.SplitBrain + r.Total.DualMAC + r.Total.DualService + r.Total.WrongFinal
}

// Table renders the per-kind summary as text.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nemesis: %d nodes, seed %d, heartbeat %s x %d, loss via %s, %d faults in %s\n",
		r.Nodes, r.Seed, r.Interval, r.Misses, r.LossMode, len(r.Faults), r.Duration.Round(time.Second))
	fmt.Fprintf(&b, "%-14s %5s %6s %7s %9s %8s %8s %8s %6s %9s %9s   %s\n",
		"kind", "count", "inside", "outside", "viol.flt", "split20", "dualMAC", "dualSvc", "wrong", "outage.md", "outage.mx", "outside: split20/dualMAC/dualSvc")
	row := func(k KindSummary) {
		fmt.Fprintf(&b, "%-14s %5d %6d %7d %9d %8d %8d %8d %6d %9s %9s   %d/%d/%d\n",
			k.Kind, k.Count, k.Inside, k.Outside, k.ViolatingFaults, k.SplitBrain, k.DualMAC, k.DualService, k.WrongFinal,
			k.OutageMedian.Round(time.Millisecond), k.OutageMax.Round(time.Millisecond),
			k.OutsideSplitBrain, k.OutsideDualMAC, k.OutsideDualService)
	}
	for _, k := range r.Kinds {
		row(k)
	}
	row(r.Total)
	if r.Aborted != "" {
		fmt.Fprintf(&b, "ABORTED: %s\n", r.Aborted)
	}
	return b.String()
}

// Line renders one fault result as a log line.
func (f FaultResult) Line() string {
	where := "inside"
	if !f.Inside {
		where = "outside (" + f.Outside + ")"
	}
	s := fmt.Sprintf("#%d %s on %s (holder %s) %s: split20=%d dualMAC=%d dualSvc=%d dualCfg=%d outage=%s",
		f.Index, f.Kind, f.Target, f.Holder, where, f.SplitBrain, f.DualMAC, f.DualService, f.DualConfigured,
		f.Outage.Round(time.Millisecond))
	if f.Detail != "" {
		s += " [" + f.Detail + "]"
	}
	if len(f.Operator) > 0 {
		s += " operator=" + strings.Join(f.Operator, ",")
	}
	if f.WrongFinal != "" {
		s += " WRONG FINAL STATE: " + f.WrongFinal
	}
	if len(f.Harness) > 0 {
		s += " harness: " + strings.Join(f.Harness, "; ")
	}
	return s
}

// WriteJSON writes reports as one JSON document.
func WriteJSON(path string, reports []*Report) error {
	b, err := json.MarshalIndent(reports, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
