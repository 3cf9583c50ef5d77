package probes

import (
	"context"
	"time"
)

// Check is one kind of health check. Run must honour ctx (return promptly
// once it is done); the Runner also enforces the deadline itself, so a check
// that cannot be interrupted is merely abandoned, never waited for.
type Check interface {
	Run(ctx context.Context) Result
}

// Result is the outcome of one run of a Check.
type Result struct {
	// OK tells whether the check passed.
	OK bool
	// Value is the check's main number: latency in ms for network checks,
	// free percent for disks, load per CPU, the parsed stdout of an exec...
	Value float64
	// Values holds extra named numbers, e.g. lag_bytes, lag_seconds,
	// in_recovery (0/1). Nil when the check has none.
	Values map[string]float64
	// Text is a short human-readable summary (trimmed stdout, MAC address,
	// HTTP status line...).
	Text string
	// Err says why the check failed; empty when OK.
	Err string
	// Latency is how long the run took.
	Latency time.Duration
}

// CheckFunc adapts a plain function to the Check interface.
type CheckFunc func(ctx context.Context) Result

// Run calls f.
func (f CheckFunc) Run(ctx context.Context) Result { return f(ctx) }

var _ Check = CheckFunc(nil)

// failure builds a failed Result from an error, keeping the elapsed time.
func failure(start time.Time, format string, err error) Result {
	r := Result{Latency: time.Since(start)}
	if err != nil {
		r.Err = format + ": " + err.Error()
	} else {
		r.Err = format
	}
	return r
}

// ms converts a duration to float milliseconds, the unit of latency Values.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ctxErr returns a failed Result if ctx is already done, so checks whose work
// cannot be interrupted still report the deadline rather than a late success.
func ctxErr(ctx context.Context, start time.Time) (Result, bool) {
	if err := ctx.Err(); err != nil {
		return failure(start, "cancelled", context.Cause(ctx)), true
	}
	return Result{}, false
}
