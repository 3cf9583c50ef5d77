package backup

import (
	"fmt"
	"slices"
	"time"
)

// Retention says which good backups of a job to keep; the rest are pruned.
// A backup is kept when any rule keeps it (the rules add up, as in restic's
// forget --keep-last/--keep-daily/--keep-weekly/--keep-within).
type Retention struct {
	// KeepLast keeps the newest N backups.
	KeepLast int
	// KeepDaily keeps the newest backup of each of the last N days that have one.
	KeepDaily int
	// KeepWeekly keeps the newest backup of each of the last N ISO weeks that have one.
	KeepWeekly int
	// KeepWithin keeps every backup younger than this.
	KeepWithin time.Duration
	// MinKeep is a floor: the newest N backups are never pruned, whatever
	// else says, including the headroom.
	MinKeep int
	// Location defines day and week boundaries; nil means UTC.
	Location *time.Location
}

// Decision is the outcome of Retention.Select for one backup.
type Decision struct {
	Record Record
	Keep   bool
	Reason string // why it is kept, e.g. "last", "daily 2006-01-02", "newest good"
}

// Select decides, for the job's good backups, which to keep at time now.
// Whatever the rules, it always keeps the newest good backup, the newest
// safe backup (every copy verified) and the newest MinKeep. Decisions come
// back newest first.
func (r Retention) Select(backups []Record, now time.Time) []Decision {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	good := slices.DeleteFunc(slices.Clone(backups), func(b Record) bool { return !b.Good() })
	slices.SortStableFunc(good, func(a, b Record) int { return b.Start.Compare(a.Start) }) // newest first
	out := make([]Decision, len(good))
	keep := func(i int, reason string) {
		if !out[i].Keep {
			out[i].Keep, out[i].Reason = true, reason
		}
	}
	safeSeen := false
	days, weeks := map[string]bool{}, map[string]bool{}
	for i, b := range good {
		out[i].Record = b
		if i == 0 {
			keep(i, "newest good")
		}
		if b.Safe() && !safeSeen {
			safeSeen = true
			keep(i, "newest safe")
		}
		if i < r.MinKeep {
			keep(i, "minimum")
		}
		if i < r.KeepLast {
			keep(i, "last")
		}
		if r.KeepWithin > 0 && now.Sub(b.Start) < r.KeepWithin {
			keep(i, "within "+r.KeepWithin.String())
		}
		t := b.Start.In(loc)
		if day := t.Format(time.DateOnly); !days[day] && len(days) < r.KeepDaily {
			days[day] = true
			keep(i, "daily "+day)
		}
		y, w := t.ISOWeek()
		if week := fmt.Sprintf("%04d-W%02d", y, w); !weeks[week] && len(weeks) < r.KeepWeekly {
			weeks[week] = true
			keep(i, "weekly "+week)
		}
	}
	return out
}

// prunable returns the backups Select did not keep, oldest first. Nothing
// else is ever pruned, not even to make room.
func prunable(ds []Decision) []Record {
	var out []Record
	for i := len(ds) - 1; i >= 0; i-- { // oldest first
		if !ds[i].Keep {
			out = append(out, ds[i].Record)
		}
	}
	return out
}
