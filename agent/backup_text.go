package agent

import (
	"fmt"
	"strings"
	"time"
)

// Text describes a backup run for people, e.g. "running since 02:00:00
// (1m30s): 1.2 GiB of ~4.0 GiB (30%)" or "last run failed at ..., id ...:
// first line of the error". format renders the times (callers choose UTC
// clock times or RFC 3339).
func (s BackupState) Text(now time.Time, format func(time.Time) string) string {
	if s.Running {
		text := fmt.Sprintf("running since %s (%s): %s", format(s.Started), now.Sub(s.Started).Round(time.Second), SizeText(s.Done))
		if s.Estimate > 0 {
			text += fmt.Sprintf(" of ~%s (%d%%)", SizeText(s.Estimate), min(100, 100*s.Done/s.Estimate))
		}
		return text
	}
	text := fmt.Sprintf("last run %s at %s", s.Outcome, format(s.Finished))
	if s.ID != "" {
		text += ", id " + s.ID
	}
	if s.Error != "" {
		text += ": " + FirstLine(s.Error)
	}
	return text
}

// SizeText renders a byte count in binary units: "512 B", "4.0 MiB".
func SizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// FirstLine keeps the first line of a (possibly long) error, at most 100
// characters, for tables and one-line summaries.
func FirstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}
