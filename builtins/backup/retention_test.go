package backup

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestRetentionSelect(t *testing.T) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) // a Thursday
	at := func(d time.Duration) time.Time { return base.Add(-d) }
	good := func(id string, start time.Time) Record {
		return Record{ID: id, Start: start, Outcome: OutcomeOK}
	}
	hourly := func(n int) []Record {
		var rs []Record
		for i := range n {
			rs = append(rs, good(fmt.Sprintf("h%02d", i), at(time.Duration(i)*time.Hour)))
		}
		return rs
	}
	// Two backups a day (00:30 and 12:00) for 15 days.
	var twiceDaily []Record
	for d := range 15 {
		day := time.Date(2026, 11, 26-d, 0, 0, 0, 0, time.UTC)
		twiceDaily = append(twiceDaily, good(fmt.Sprintf("d%02d-pm", d), day.Add(12*time.Hour)), good(fmt.Sprintf("d%02d-am", d), day.Add(30*time.Minute)))
	}
	berlin := time.FixedZone("UTC+2", 2*3600)

	cases := []struct {
		name    string
		r       Retention
		backups []Record
		keep    []string
	}{
		{"nothing configured keeps only the newest good", Retention{}, hourly(5), []string{"h00"}},
		{"keep last 3", Retention{KeepLast: 3}, hourly(10), []string{"h00", "h01", "h02"}},
		{"minimum count is a floor", Retention{KeepLast: 1, MinKeep: 4}, hourly(10), []string{"h00", "h01", "h02", "h03"}},
		{"keep daily takes the newest of each day", Retention{KeepDaily: 3}, twiceDaily, []string{"d00-pm", "d01-pm", "d02-pm"}},
		{"keep weekly takes the newest of each ISO week", Retention{KeepWeekly: 3}, twiceDaily,
			// ISO weeks end on Sundays: Thu 26 Nov, Sun 22 Nov, Sun 15 Nov.
			[]string{"d00-pm", "d04-pm", "d11-pm"}},
		{"daily and weekly add up", Retention{KeepDaily: 2, KeepWeekly: 2}, twiceDaily, []string{"d00-pm", "d01-pm", "d04-pm"}},
		{"keep within an age", Retention{KeepWithin: 26 * time.Hour}, twiceDaily, []string{"d00-pm", "d00-am", "d01-pm"}},
		{"days follow the configured zone", Retention{KeepDaily: 2, Location: berlin},
			[]Record{good("late", time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC)), good("eve", time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)), good("morning", time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC))},
			// In UTC+2 "late" is on the 26th, "eve" and "morning" on the 25th.
			[]string{"late", "eve"}},
		{"failed runs are neither kept nor counted",
			Retention{KeepLast: 2},
			[]Record{{ID: "f1", Start: at(0), Outcome: OutcomeFailed}, {ID: "f2", Start: at(time.Hour), Outcome: OutcomeRefused}, good("g1", at(2*time.Hour)), good("g2", at(3*time.Hour)), good("g3", at(4*time.Hour))},
			[]string{"g1", "g2"}},
		{"the newest safe backup is kept when newer ones are not safe",
			Retention{KeepLast: 1},
			[]Record{
				{ID: "unsafe1", Start: at(0), Outcome: OutcomeOK, Want: []string{"disk2"}, Copies: []Copy{{Replica: "disk2", Error: "disk full"}}},
				{ID: "unsafe2", Start: at(time.Hour), Outcome: OutcomeOK, Want: []string{"disk2"}},
				{ID: "safe", Start: at(2 * time.Hour), Outcome: OutcomeOK, Want: []string{"disk2"}, Copies: []Copy{{Replica: "disk2", Verified: true}}},
				{ID: "older-safe", Start: at(3 * time.Hour), Outcome: OutcomeOK, Want: []string{"disk2"}, Copies: []Copy{{Replica: "disk2", Verified: true}}},
			},
			[]string{"unsafe1", "safe"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Order of input must not matter.
			in := slices.Clone(c.backups)
			slices.Reverse(in)
			ds := c.r.Select(in, base)
			var kept, pruned []string
			for _, d := range ds {
				if d.Keep {
					kept = append(kept, d.Record.ID)
					if d.Reason == "" {
						t.Errorf("%s kept without a reason", d.Record.ID)
					}
				}
			}
			for _, p := range prunable(ds) {
				pruned = append(pruned, p.ID)
			}
			slices.Sort(kept)
			want := slices.Clone(c.keep)
			slices.Sort(want)
			if !slices.Equal(kept, want) {
				t.Errorf("kept %v, want %v", kept, want)
			}
			nGood := 0
			for _, b := range c.backups {
				if b.Good() {
					nGood++
				}
			}
			if len(kept)+len(pruned) != nGood {
				t.Errorf("kept %d + pruned %d != %d good backups", len(kept), len(pruned), nGood)
			}
			for i := 1; i < len(pruned); i++ { // oldest first
				if p, q := findRec(c.backups, pruned[i-1]), findRec(c.backups, pruned[i]); p.Start.After(q.Start) {
					t.Errorf("prune order not oldest first: %v", pruned)
				}
			}
		})
	}
}

func findRec(rs []Record, id string) Record {
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	return Record{}
}
