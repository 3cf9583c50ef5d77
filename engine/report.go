package engine

import "time"

// DBPosition is how far one node's database server has got, as its agent
// last observed it: a PostgreSQL timeline and LSN ("0/5000100"), or a
// MariaDB gtid_current_pos. Peers compare their own with it before their
// server becomes primary (builtins/database.Position has the same fields).
type DBPosition struct {
	Timeline uint32 `json:"timeline,omitempty"`
	LSN      string `json:"lsn,omitempty"`
	GTID     string `json:"gtid,omitempty"`
}

// reportsFailure says whether a failure at t is still recent enough to report.
func (n *Node) reportsFailure(t time.Time) bool {
	return n.Policy.Cluster.FailureTimeout == 0 || (n.last != nil && n.last.Now.Sub(t) < n.Policy.Cluster.FailureTimeout)
}

// reportCurrent reports whether r has the content Report would build now
// (what reflect.DeepEqual of the two used to establish), without allocating.
func (n *Node) reportCurrent(r *Report) bool {
	s := n.State
	if r.Node != n.Name || r.Incarnation != s.Incarnation || r.PolicyHash != n.Policy.Hash ||
		r.Standby != s.Leaving || r.RuleStandby != s.RuleStandby || r.Maintenance != s.Maintenance || len(r.Holds) != len(s.Holds) || len(r.Starting) != len(s.Starting) ||
		r.DB != nil || // the engine never fills DB: the agent adds it to the payload
		!n.View.hearsSame(r.Hears) {
		return false
	}
	// r.Holds is sorted and duplicate-free, so equal length plus membership
	// means the same sorted list.
	for _, g := range r.Holds {
		if _, ok := s.Holds[g]; !ok {
			return false
		}
	}
	for _, g := range r.Starting {
		if !s.Starting[g] {
			return false
		}
	}
	probes := n.View.probes
	if len(r.Probes) != len(probes) {
		return false
	}
	for _, p := range r.Probes {
		cur, ok := probes[p.Probe]
		if !ok || cur != p && *cur != *p {
			return false
		}
	}
	recent := 0
	for g, t := range s.Failed {
		if !n.reportsFailure(t) {
			continue
		}
		recent++
		if old, ok := r.Failed[g]; !ok || old != t {
			return false
		}
	}
	if recent != len(r.Failed) {
		return false
	}
	return sameMap(r.Operator.Moves, s.Operator.Moves) && sameMap(r.Operator.Standby, s.Operator.Standby) &&
		sameMap(r.Operator.Cleanups, s.Operator.Cleanups) &&
		sameMap(r.BackupLast, s.BackupLast) && sameMap(r.BackupOK, s.BackupOK)
}

// sameMap compares like reflect.DeepEqual does for maps of comparable
// values: nil and empty differ.
func sameMap[V comparable](a, b map[string]V) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			return false
		}
	}
	return true
}
