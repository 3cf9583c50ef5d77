package web

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/statesvg"
)

// overview is what the overview page shows, derived from one status.
type overview struct {
	Cluster     string
	Node        string
	PolicyHash  string
	Incarnation uint64
	Maintenance bool
	At          string
	Nodes       []nodeRow
	Paths       []pathRow
	Groups      []groupRow
	Alerts      []engine.Alert
	Pending     []engine.Action
	CanOperate  bool
	// Picture is the cluster state drawn as inline SVG (package statesvg,
	// the same picture as `harules status --svg`); set by withPicture.
	Picture template.HTML
}

type nodeRow struct {
	Name, State, Since string
	Standby            bool
	Maintenance        bool
	Holds              string
	PolicyHash         string
	HashDiffers        bool
	Self               bool
}

type pathRow struct {
	Peer, Path string
	Up         bool
	Missed     int
	LastSeen   string
	Loss       string
	RTT        string // smoothed round-trip time; empty when not measured
}

type groupRow struct {
	Name, Target, Holders, Reason, Wait string
	MoveTo                              []string
}

func newOverview(st *agent.Status, canOperate bool) overview {
	v := overview{Cluster: st.Cluster, Node: st.Node, PolicyHash: st.PolicyHash, Incarnation: st.Incarnation,
		Maintenance: st.Maintenance, At: st.Now.UTC().Format("2006-01-02 15:04:05.000 UTC"), Alerts: st.Alerts, CanOperate: canOperate}
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
		v.Nodes = append(v.Nodes, nodeRow{Name: n.Name, State: n.State, Since: ago(st.Now, n.Since), Standby: n.Standby, Maintenance: n.Maintenance,
			Holds: strings.Join(n.Holds, ", "), PolicyHash: n.PolicyHash,
			HashDiffers: n.PolicyHash != "" && n.PolicyHash != st.PolicyHash, Self: n.Name == st.Node})
		for _, p := range n.Paths {
			v.Paths = append(v.Paths, pathRow{Peer: n.Name, Path: p.Name, Up: p.Up, Missed: p.Missed, LastSeen: ago(st.Now, p.LastSeen),
				Loss: fmt.Sprintf("%.1f%%", 100*p.Loss)})
		}
	}
	for _, g := range st.Groups {
		row := groupRow{Name: g.Name, Target: g.Target, Holders: strings.Join(g.Holders, ", "), Reason: g.Reason, Wait: g.Wait}
		for _, n := range names {
			if !slices.Contains(g.Holders, n) {
				row.MoveTo = append(row.MoveTo, n)
			}
		}
		v.Groups = append(v.Groups, row)
	}
	for _, a := range st.Plan {
		if !a.Ready || a.Wait != "" {
			v.Pending = append(v.Pending, a)
		}
	}
	return v
}

// withPicture draws st into v.Picture, with the RTTs of this node's
// heartbeat endpoints when the status does not carry them (the agent's
// in-memory status does not; the control socket's does).
func (v *overview) withPicture(st *agent.Status, heartbeats []agent.HeartbeatStats) {
	if len(st.Heartbeats) == 0 && len(heartbeats) > 0 {
		cp := *st // the status is shared: never write to it
		cp.Heartbeats = heartbeats
		st = &cp
	}
	// Render escapes every text and attribute it writes.
	v.Picture = template.HTML(statesvg.Render(st, statesvg.Options{ID: "cluster-state", Class: "cluster-state", NoAlerts: true}))
}

// ago renders t relative to now for people: "1.2s ago", "3m ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// recordFilter selects records by node, kind and group ("" matches all).
type recordFilter struct {
	Node, Kind, Group string
	Limit             int
}

func (f recordFilter) apply(recs []engine.Record) []engine.Record {
	var out []engine.Record
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		r := recs[i]
		if (f.Node == "" || r.Node == f.Node) && (f.Kind == "" || r.Kind == f.Kind) && (f.Group == "" || r.Group == f.Group) {
			out = append(out, r)
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
	}
	if out == nil {
		out = []engine.Record{}
	}
	return out
}

// recordKinds are the kinds the timeline filter offers.
var recordKinds = []string{engine.RecEvent, engine.RecPath, engine.RecPeer, engine.RecAction, engine.RecWait,
	engine.RecAlert, engine.RecClear, engine.RecBackup, engine.RecPolicy}

// operation is a validated operator request and what it will do.
type operation struct {
	Op, Group, Node string
	On              bool
	// Job is the backup job of op "backup".
	Job string
	// Title and Effects tell the operator what confirming will do.
	Title   string
	Effects []string
}

// requestError is an operator request that cannot be applied as given.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(code int, format string, args ...any) error {
	return &requestError{code: code, msg: fmt.Sprintf(format, args...)}
}

// checkOperation validates an operator request against the current status
// and describes its consequences.
func checkOperation(st *agent.Status, op, group, node string, on bool) (*operation, error) {
	if st == nil {
		return nil, badRequest(503, "the agent has not decided yet; try again in a second")
	}
	o := &operation{Op: op, Group: group, Node: node, On: on}
	var nodeNames, groupNames []string
	var ns *agent.NodeStatus
	for i := range st.Nodes {
		nodeNames = append(nodeNames, st.Nodes[i].Name)
		if st.Nodes[i].Name == node {
			ns = &st.Nodes[i]
		}
	}
	var gs *agent.GroupStatus
	for i := range st.Groups {
		groupNames = append(groupNames, st.Groups[i].Name)
		if st.Groups[i].Name == group {
			gs = &st.Groups[i]
		}
	}
	needNode := func() error {
		if node == "" {
			return badRequest(400, "node is required (nodes: %s)", strings.Join(nodeNames, ", "))
		}
		if ns == nil {
			return badRequest(404, "unknown node %q (nodes: %s)", node, strings.Join(nodeNames, ", "))
		}
		return nil
	}
	switch op {
	case "move":
		if group == "" {
			return nil, badRequest(400, "group is required (groups: %s)", strings.Join(groupNames, ", "))
		}
		if gs == nil {
			return nil, badRequest(404, "unknown group %q (groups: %s)", group, strings.Join(groupNames, ", "))
		}
		if err := needNode(); err != nil {
			return nil, err
		}
		o.Title = fmt.Sprintf("Move group %s to %s", group, node)
		from := strings.Join(gs.Holders, " and ")
		switch {
		case slices.Contains(gs.Holders, node):
			o.Effects = append(o.Effects, fmt.Sprintf("%s already holds %s: nothing moves now, but %s stays pinned there until the pin is cleared.", node, group, group))
		case from == "":
			o.Effects = append(o.Effects, fmt.Sprintf("No node holds %s now; %s starts it.", group, node))
		default:
			o.Effects = append(o.Effects,
				fmt.Sprintf("%s stops %s (its resources in reverse order), then %s starts it.", from, group, node),
				fmt.Sprintf("Clients of %s see an interruption while it moves.", group))
		}
		o.Effects = append(o.Effects,
			fmt.Sprintf("Today %s should run on %s because: %s.", group, orNobody(gs.Target), orDash(gs.Reason)),
			fmt.Sprintf("The move is an operator pin: the policy's placement for %s is overridden until it is cleared; rules (guards, health) still apply.", group))
		if ns.State != "alive" && !ns.Standby && node != st.Node {
			o.Effects = append(o.Effects, fmt.Sprintf("Warning: %s is %s; the group cannot start there until it is alive.", node, ns.State))
		}
		if ns.Standby {
			o.Effects = append(o.Effects, fmt.Sprintf("Warning: %s is in standby and will not start groups until it is online.", node))
		}
	case "cleanup":
		if group == "" {
			return nil, badRequest(400, "group is required (groups: %s, or \"*\" for every group)", strings.Join(groupNames, ", "))
		}
		if gs == nil && group != "*" {
			return nil, badRequest(404, "unknown group %q (groups: %s, or \"*\" for every group)", group, strings.Join(groupNames, ", "))
		}
		what := "group " + group
		if group == "*" {
			what = "every group"
		}
		o.Title = "Clean up the failures of " + what
		o.Effects = append(o.Effects,
			fmt.Sprintf("Every node forgets the failures of %s recorded until now (the request spreads with the heartbeats), so failure_timeout no longer keeps it away from the nodes where it failed.", what),
			"Placement may then start it on such a node at once (for example where an operator move pins it); fix what made it fail first.")
		if gs != nil {
			o.Effects = append(o.Effects, fmt.Sprintf("Today %s should run on %s because: %s.", group, orNobody(gs.Target), orDash(gs.Reason)))
		}
	case "standby", "online":
		if err := needNode(); err != nil {
			return nil, err
		}
		if op == "standby" {
			o.Title = fmt.Sprintf("Put node %s in standby", node)
			if len(ns.Holds) == 0 {
				o.Effects = append(o.Effects, fmt.Sprintf("%s holds no group: nothing stops now.", node))
			} else {
				o.Effects = append(o.Effects, fmt.Sprintf("%s stops %s; the policy's placement starts them on other nodes.", node, strings.Join(ns.Holds, ", ")))
			}
			o.Effects = append(o.Effects, fmt.Sprintf("%s starts no group until you put it online again.", node))
		} else {
			o.Title = fmt.Sprintf("Put node %s online", node)
			if !ns.Standby {
				o.Effects = append(o.Effects, fmt.Sprintf("%s is not in standby: nothing changes.", node))
			} else {
				o.Effects = append(o.Effects, fmt.Sprintf("%s may hold groups again; groups whose placement prefers it may move back (depending on their failback setting).", node))
			}
		}
	case "maintenance":
		if on {
			o.Title = "Put node " + st.Node + " in maintenance mode"
			o.Effects = append(o.Effects, fmt.Sprintf("%s keeps deciding but executes no action: it only records what it would do.", st.Node))
			if st.Maintenance {
				o.Effects = append(o.Effects, fmt.Sprintf("%s is in maintenance mode already: nothing changes.", st.Node))
			} else if len(heldBy(st, st.Node)) > 0 {
				o.Effects = append(o.Effects, fmt.Sprintf("The groups %s holds (%s) stay where they are, unwatched by its actions: a failure there is not repaired until maintenance ends.",
					st.Node, strings.Join(heldBy(st, st.Node), ", ")))
			}
		} else {
			o.Title = "Take node " + st.Node + " out of maintenance mode"
			if !st.Maintenance {
				o.Effects = append(o.Effects, fmt.Sprintf("%s is not in maintenance mode: nothing changes.", st.Node))
			} else {
				o.Effects = append(o.Effects, fmt.Sprintf("%s executes its decisions again: what it only recorded during maintenance is done from its next decision on, if the policy still wants it.", st.Node))
			}
		}
	default:
		return nil, badRequest(404, "unknown operation %q (move, standby, online, maintenance)", op)
	}
	return o, nil
}

// heldBy lists the groups node holds.
func heldBy(st *agent.Status, node string) []string {
	for _, n := range st.Nodes {
		if n.Name == node {
			return n.Holds
		}
	}
	return nil
}

func orNobody(s string) string {
	if s == "" {
		return "no node"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
