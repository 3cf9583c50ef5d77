package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// Maintenance means unmanaged (as Pacemaker's maintenance mode, Patroni's
// pause): a node in maintenance decides but does not act, keeps what it
// holds, takes nothing new, and may be restarted (harules upgraded) without
// its resources being stopped. The rules below are what the other nodes and
// a restarting node need for that contract to hold.

// AlertMaintenanceUnreachable names the alert raised while a node that last
// reported maintenance is unreachable: its groups are not taken over.
const AlertMaintenanceUnreachable = "maintenance-unreachable"

// unmanagedHolder returns the holder of group that is dead but last reported
// maintenance, and the placement reason: such a node is most likely only
// restarting its agent (an upgrade) with its resources still running, so a
// takeover would run them twice. An operator's move of the group made after
// that node was declared dead lifts this (it is down for good and fenced).
func unmanagedHolder(f *facts.Facts, s *State, group string) (string, string) {
	gf := f.Group(group)
	if gf == nil {
		return "", ""
	}
	for _, h := range gf.Holders {
		n := f.Node(h)
		if n == nil || n.State != facts.Dead || !n.Maintenance || liftedByOperator(s, group, n) {
			continue
		}
		return h, fmt.Sprintf("unmanaged: %s holds it in maintenance and is unreachable (since %s): not taken over; leave maintenance on %s, or fence it and run `harules move %s NODE`",
			h, n.Since.UTC().Format("15:04:05.000"), h, group)
	}
	return "", ""
}

// liftedByOperator reports whether an operator moved group away from the
// unreachable maintenance node n after n was declared dead.
func liftedByOperator(s *State, group string, n *facts.Node) bool {
	mv, ok := s.Operator.Moves[group]
	return ok && mv.Node != "" && mv.Node != n.Name && mv.At.After(n.Since)
}

// maintenanceAlerts raises one alert per unreachable maintenance node whose
// groups are kept where they are.
func maintenanceAlerts(p *policy.Policy, f *facts.Facts, s *State) []Alert {
	var out []Alert
	for _, n := range f.Nodes {
		if n.Self || n.State != facts.Dead || !n.Maintenance {
			continue
		}
		var frozen []string
		for _, g := range n.Holds {
			if p.Group(g) != nil && !liftedByOperator(s, g, n) {
				frozen = append(frozen, g)
			}
		}
		if len(frozen) == 0 {
			continue
		}
		slices.Sort(frozen)
		out = append(out, Alert{Name: AlertMaintenanceUnreachable, Severity: "critical", Node: f.Self,
			Message: fmt.Sprintf("node %s is in maintenance and unreachable: its groups are not taken over (%s); leave maintenance or fence it",
				n.Name, strings.Join(frozen, ", "))})
	}
	return out
}

// maintenanceIneligible says why a node in maintenance may not run group:
// it takes no new group (it would not start it); the groups it holds stay.
func maintenanceIneligible(n *facts.Node, group string) string {
	if n.Maintenance && !slices.Contains(n.Holds, group) {
		return "in maintenance (takes no new group)"
	}
	return ""
}

// AdoptCheck is what a monitor found, when a node restarted in maintenance,
// for one resource of a group its saved state held: Err nil means it runs.
type AdoptCheck struct {
	Resource string
	Err      error
}

// Adopt applies the restart rules of maintenance mode to s. A node that
// restarts in maintenance releases nothing; it looks at what actually runs
// (checks, per group of the saved holds, one entry per resource) and:
//
//   - keeps holding a group whose resources all run (since its saved time);
//   - drops a group none of whose resources run (peers may place it);
//   - keeps holding a group that only partly runs, and marks it failed
//     here: no peer starts it while parts of it run here, and leaving
//     maintenance stops it here and places it again (normal recovery);
//   - keeps holding a group it could not check (no checks given): dropping
//     it could let a peer start it a second time;
//   - drops a group the policy no longer declares, touching nothing.
//
// It returns one record per group saying what it found.
func Adopt(p *policy.Policy, node string, s *State, saved map[string]time.Time, checks map[string][]AdoptCheck, now time.Time) []Record {
	if s.Holds == nil {
		s.Holds = map[string]time.Time{}
	}
	if s.Failed == nil {
		s.Failed = map[string]time.Time{}
	}
	var recs []Record
	rec := func(group, text string, err error) {
		r := Record{At: now, Node: node, Kind: RecEvent, Group: group, Text: text, Reason: "restart in maintenance"}
		if err != nil {
			r.Error = err.Error()
		}
		recs = append(recs, r)
	}
	for _, g := range slices.Sorted(maps.Keys(saved)) {
		since := saved[g]
		if p.Group(g) == nil {
			delete(s.Holds, g)
			rec(g, fmt.Sprintf("maintenance: %s is no longer in the policy; not held, left as it is", g), nil)
			continue
		}
		cs, checked := checks[g]
		if !checked {
			s.Holds[g] = since
			rec(g, fmt.Sprintf("maintenance: %s kept held without a check (this executor cannot monitor)", g), nil)
			continue
		}
		var running, stopped []string
		var errs []string
		for _, c := range cs {
			if c.Err == nil {
				running = append(running, c.Resource)
			} else {
				stopped = append(stopped, c.Resource)
				errs = append(errs, c.Resource+": "+c.Err.Error())
			}
		}
		var detail error
		if len(errs) > 0 {
			detail = fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		switch {
		case len(stopped) == 0:
			s.Holds[g] = since
			rec(g, fmt.Sprintf("maintenance: adopted %s, all its resources run here (%s)", g, strings.Join(running, ", ")), nil)
		case len(running) == 0:
			delete(s.Holds, g)
			rec(g, fmt.Sprintf("maintenance: %s no longer runs here; dropped from what this node holds", g), detail)
		default:
			s.Holds[g] = since
			s.Failed[g] = now
			rec(g, fmt.Sprintf("maintenance: %s only partly runs here (%s run; %s do not); kept held and marked failed, so leaving maintenance stops it here and places it again",
				g, strings.Join(running, ", "), strings.Join(stopped, ", ")), detail)
		}
	}
	return recs
}

// Remember gives the view a report that a peer sent before this node
// started (the agent keeps the last report of every peer in maintenance
// across its own restarts). It changes no state: the peer stays unknown
// until heard or the startup grace ends, and a heartbeat's report replaces
// it. Without it, a node restarting while a peer in maintenance is
// unreachable would know nothing of that peer's groups and take them over.
func (v *View) Remember(r *Report) {
	if r == nil {
		return
	}
	if pv := v.peers[r.Node]; pv != nil && pv.report == nil {
		pv.report = r
	}
}
