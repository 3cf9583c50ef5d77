package simulate

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/harules/harules/engine"
)

// Offset formats a time as an offset from the scenario start: HH:MM:SS.mmm.
func Offset(start, t time.Time) string {
	d := t.Sub(start)
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	h := d / time.Hour
	m := (d % time.Hour) / time.Minute
	sec := (d % time.Minute) / time.Second
	ms := (d % time.Second) / time.Millisecond
	return fmt.Sprintf("%s%02d:%02d:%02d.%03d", neg, h, m, sec, ms)
}

// TextOptions select what the text timeline shows.
type TextOptions struct {
	// Quiet hides placement and wait records, keeping events, paths, peers,
	// actions, alerts and ownership.
	Quiet bool
}

// WriteText prints a readable timeline and summary.
func WriteText(w io.Writer, r *Result, opts TextOptions) {
	fmt.Fprintf(w, "scenario %s (%s) against %s, %s from %s\n\n", r.Name, r.Scenario, r.Policy, time.Duration(r.Duration), r.Start.Format(time.RFC3339))
	fmt.Fprintf(w, "%-12s  %-7s  %-6s  %s\n", "TIME", "NODE", "KIND", "WHAT")
	for _, rec := range r.Records {
		if opts.Quiet && (rec.Kind == engine.RecPolicy || rec.Kind == engine.RecWait) {
			continue
		}
		line := fmt.Sprintf("%-12s  %-7s  %-6s  %s", Offset(r.Start, rec.At), rec.Node, rec.Kind, rec.Text)
		if rec.Error != "" {
			line += "  FAILED: " + rec.Error
		}
		fmt.Fprintln(w, line)
		if rec.Reason != "" && !opts.Quiet {
			fmt.Fprintf(w, "%-12s  %-7s  %-6s    because %s\n", "", "", "", indent(rec.Reason))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "final placement:")
	for _, g := range sortedKeys(r.FinalPlacement) {
		fmt.Fprintf(w, "  %-16s %s\n", g, orNobody(r.FinalPlacement[g]))
	}
	if len(r.Outages) > 0 {
		fmt.Fprintln(w, "service interruptions (no node held the group):")
		for _, o := range r.Outages {
			fmt.Fprintf(w, "  %-16s %s for %s (from %s)\n", o.Group, "down", time.Duration(o.End-o.Start), time.Duration(o.Start))
		}
	}
	if len(r.DualOwners) > 0 {
		fmt.Fprintln(w, "SPLIT BRAIN (a group held by two nodes at once):")
		for _, o := range r.DualOwners {
			fmt.Fprintf(w, "  %-16s on %s from %s to %s\n", o.Group, strings.Join(o.Nodes, "+"), time.Duration(o.Start), time.Duration(o.End))
		}
	}
	fmt.Fprintf(w, "stats: %d heartbeats, %d decisions, %d actions\n", r.Stats.Heartbeats, r.Stats.Decisions, r.Stats.Actions)
	if len(r.Expectations) > 0 {
		fmt.Fprintln(w, "expectations:")
		for _, e := range r.Expectations {
			mark := "ok  "
			if !e.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s %s: %s (%s)\n", mark, e.Pos, e.Expect, e.Detail)
		}
	}
	if r.OK {
		fmt.Fprintln(w, "result: PASS")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

func indent(s string) string {
	return strings.ReplaceAll(s, "\n", "\n                                ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
