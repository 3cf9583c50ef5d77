package disk

import (
	"fmt"
	"strconv"
	"time"
)

// DefaultBusyGrace is how long processes keeping a disk busy get between
// SIGTERM and SIGKILL when the policy does not say (disk(stop_grace=...)).
const DefaultBusyGrace = 10 * time.Second

// TimingFromParams reads a disk resource's lease timings: "lease",
// "renew", "margin" and "io_timeout" (Go durations). An absent lease keeps
// DefaultTiming; a given lease scales every default with it (the defaults
// are in the proportions L : R : M : T : Settle = 30 : 6 : 10 : 4 : 1), so
// disk(lease="3s") alone is valid. Explicit renew, margin and io_timeout
// override the scaled values. The result must pass Timing.Validate.
func TimingFromParams(p map[string]string) (Timing, error) {
	t := DefaultTiming()
	parse := func(key string) (time.Duration, bool, error) {
		v := p[key]
		if v == "" {
			return 0, false, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, false, fmt.Errorf("disk: %s=%q is not a positive duration like \"15s\"", key, v)
		}
		return d, true, nil
	}
	lease, ok, err := parse("lease")
	if err != nil {
		return Timing{}, err
	}
	if ok {
		def := DefaultTiming()
		scale := func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * float64(lease) / float64(def.Lease))
		}
		t = Timing{Lease: lease, Renew: scale(def.Renew), Margin: scale(def.Margin), IOTimeout: scale(def.IOTimeout), Settle: scale(def.Settle)}
	}
	for _, f := range []struct {
		key string
		dst *time.Duration
	}{{"renew", &t.Renew}, {"margin", &t.Margin}, {"io_timeout", &t.IOTimeout}} {
		d, ok, err := parse(f.key)
		if err != nil {
			return Timing{}, err
		}
		if ok {
			*f.dst = d
		}
	}
	if err := t.Validate(); err != nil {
		return Timing{}, fmt.Errorf("disk: %w", err)
	}
	return t, nil
}

// busyFromParams reads what Unmount does with processes keeping the mount
// busy: "kill_holders" (default true) and "stop_grace" (default
// DefaultBusyGrace) between SIGTERM and SIGKILL.
func busyFromParams(p map[string]string) (BusyPolicy, error) {
	b := BusyPolicy{Kill: true, Grace: DefaultBusyGrace}
	if v := p["kill_holders"]; v != "" {
		k, err := strconv.ParseBool(v)
		if err != nil {
			return BusyPolicy{}, fmt.Errorf("disk: kill_holders=%q is not a boolean", v)
		}
		b.Kill = k
	}
	if v := p["stop_grace"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return BusyPolicy{}, fmt.Errorf("disk: stop_grace=%q is not a duration like \"10s\"", v)
		}
		b.Grace = d
	}
	return b, nil
}
