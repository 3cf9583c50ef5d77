package agent

// HeartbeatStats counts what one heartbeat path's endpoint accepted and
// rejected (by reason: bad_mac, wrong_cluster, replay, ...).
type HeartbeatStats struct {
	Path       string            `json:"path"`
	Accepted   uint64            `json:"accepted"`
	Rejected   map[string]uint64 `json:"rejected"`
	SendErrors uint64            `json:"send_errors"`
	ReadErrors uint64            `json:"read_errors"`
}

// heartbeatStats snapshots the endpoints' counters for the status. a.eps
// is filled before the control API starts and never changes afterwards,
// so the control goroutines may read it.
func (a *Agent) heartbeatStats() []HeartbeatStats {
	out := []HeartbeatStats{}
	for _, ep := range a.eps {
		s := ep.Stats()
		out = append(out, HeartbeatStats{Path: s.Path, Accepted: s.Accepted, Rejected: s.Rejected, SendErrors: s.SendErrors, ReadErrors: s.ReadErrors})
	}
	return out
}
