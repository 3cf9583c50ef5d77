package heartbeat

import (
	"errors"
	"sync/atomic"
)

// Reason says why a datagram was rejected. Its String form is stable and
// meant for metric labels and logs.
type Reason uint8

// Rejection reasons; see the package documentation for the order in which
// the checks run.
const (
	ReasonMalformed Reason = iota
	ReasonTooLarge
	ReasonBadMAC
	ReasonWrongCluster
	ReasonWrongPath
	ReasonUnknownNode
	ReasonSpoofedSource
	ReasonStale
	ReasonReplay
	ReasonTooOld
	ReasonOldIncarnation
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonMalformed:      "malformed",
	ReasonTooLarge:       "too_large",
	ReasonBadMAC:         "bad_mac",
	ReasonWrongCluster:   "wrong_cluster",
	ReasonWrongPath:      "wrong_path",
	ReasonUnknownNode:    "unknown_node",
	ReasonSpoofedSource:  "spoofed_source",
	ReasonStale:          "stale",
	ReasonReplay:         "replay",
	ReasonTooOld:         "too_old",
	ReasonOldIncarnation: "old_incarnation",
}

// Reasons lists every reason, for pre-declaring metric label values.
func Reasons() []Reason {
	all := make([]Reason, numReasons)
	for i := range all {
		all[i] = Reason(i)
	}
	return all
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown_reason"
}

// RejectError is returned by [Codec.Open], [ReplayGuard.Check] and the
// receive checks. errors.Is(err, ErrBadMAC) and friends match on Reason
// regardless of Detail.
type RejectError struct {
	Reason Reason
	Detail string
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return "heartbeat rejected: " + e.Reason.String()
	}
	return "heartbeat rejected: " + e.Reason.String() + ": " + e.Detail
}

// Is makes errors.Is match any RejectError with the same Reason.
func (e *RejectError) Is(target error) bool {
	t, ok := target.(*RejectError)
	return ok && t.Reason == e.Reason
}

var _ error = (*RejectError)(nil)

func reject(r Reason, detail string) error { return &RejectError{Reason: r, Detail: detail} }

// Sentinel errors, one per Reason, for errors.Is.
var (
	ErrMalformed      error = &RejectError{Reason: ReasonMalformed}
	ErrTooLarge       error = &RejectError{Reason: ReasonTooLarge}
	ErrBadMAC         error = &RejectError{Reason: ReasonBadMAC}
	ErrWrongCluster   error = &RejectError{Reason: ReasonWrongCluster}
	ErrWrongPath      error = &RejectError{Reason: ReasonWrongPath}
	ErrUnknownNode    error = &RejectError{Reason: ReasonUnknownNode}
	ErrSpoofedSource  error = &RejectError{Reason: ReasonSpoofedSource}
	ErrStale          error = &RejectError{Reason: ReasonStale}
	ErrReplay         error = &RejectError{Reason: ReasonReplay}
	ErrTooOld         error = &RejectError{Reason: ReasonTooOld}
	ErrOldIncarnation error = &RejectError{Reason: ReasonOldIncarnation}
)

// ReasonOf extracts the rejection reason from err.
func ReasonOf(err error) (Reason, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	return 0, false
}

// reasonCounters counts rejections per reason without locking.
type reasonCounters struct {
	n [numReasons]atomic.Uint64
}

func (c *reasonCounters) add(r Reason) {
	if r < numReasons {
		c.n[r].Add(1)
	}
}

// snapshot returns every reason (zeros included, so metric series exist
// from the start) mapped to its count.
func (c *reasonCounters) snapshot(only ...Reason) map[string]uint64 {
	if len(only) == 0 {
		only = Reasons()
	}
	out := make(map[string]uint64, len(only))
	for _, r := range only {
		out[r.String()] = c.n[r].Load()
	}
	return out
}
