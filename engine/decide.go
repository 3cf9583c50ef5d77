// Package engine turns facts into plans. Decide is a pure function of the
// policy, one node's facts, that node's state and the time: it evaluates the
// policy's rules, places every group, and returns an ordered plan of actions
// for every node with the reason for each. Node wraps Decide into the loop
// that the live agent and the simulator share; only the clock, the source of
// facts and the Executor differ between them.
package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/harules/harules/builtins"
	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// Score bonuses that outrank placement scores: an explicit move from a rule
// beats stickiness, an operator's move beats both.
const (
	ruleMoveScore     = 10_000_000
	operatorMoveScore = 100_000_000
)

// Input is everything a decision depends on.
type Input struct {
	Policy *policy.Policy
	Facts  *facts.Facts
	State  *State
}

// Decision is the outcome of one evaluation.
type Decision struct {
	Now time.Time `json:"now"`
	// Placement is the desired owner of each group in policy order ("" = stopped).
	Placement []GroupPlacement `json:"placement"`
	Plan      Plan             `json:"plan"`
	Alerts    []Alert          `json:"alerts,omitempty"`
	// Fired lists the decisions of rules that fired.
	Fired []policy.Decision `json:"fired,omitempty"`
	// RulePending is the rule timer state to keep for the next decision.
	RulePending map[string]time.Time `json:"-"`
	Backups     []BackupRun          `json:"backups,omitempty"`
	// WakeAt is the next instant at which this decision would come out
	// differently with no new fact, because time passed: a rule's
	// comparison of a growing duration (down_for, ok_for, ...) with its
	// threshold flips, a for_ timer ends, a failure_timeout or a
	// failback_delay runs out. The loop decides again then. Zero: none.
	WakeAt time.Time `json:"-"`
}

// wake moves WakeAt earlier to t when t is in the future.
func (d *Decision) wake(t time.Time) {
	if t.After(d.Now) && (d.WakeAt.IsZero() || t.Before(d.WakeAt)) {
		d.WakeAt = t
	}
}

// wakeClock takes the wake-up a rule or score evaluation asked for: the
// next threshold crossing, or one heartbeat interval when a rule used the
// time in a way whose crossing is unknown.
func (d *Decision) wakeClock(p *policy.Policy, c *builtins.Clock) {
	d.wake(c.NextChange())
	if c.Untracked() {
		d.wake(d.Now.Add(shortestInterval(p)))
	}
}

// shortestInterval is the heartbeat interval of the fastest path (the
// re-evaluation period without paths).
func shortestInterval(p *policy.Policy) time.Duration {
	iv := p.Cluster.Reevaluate
	for _, h := range p.Paths {
		if h.Interval > 0 && (iv <= 0 || h.Interval < iv) {
			iv = h.Interval
		}
	}
	return iv
}

// GroupPlacement is where a group should run and why.
type GroupPlacement struct {
	Group  string `json:"group"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Alert is an active alert.
type Alert struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Node     string `json:"node"`
	Rule     string `json:"rule,omitempty"`
}

// Key identifies an alert for raise/clear tracking.
func (a Alert) Key() string { return a.Name + "\x00" + a.Message }

// BackupRun is a backup job that is due on this node.
type BackupRun struct {
	Job       string    `json:"job"`
	Node      string    `json:"node"`
	Scheduled time.Time `json:"scheduled"`
	Skip      bool      `json:"skip,omitempty"`
	Reason    string    `json:"reason"`
}

// Decide evaluates rules and placement for the evaluating node.
func Decide(ctx context.Context, in Input) *Decision {
	p, f, s := in.Policy, in.Facts, in.State
	d := &Decision{Now: f.Now, RulePending: map[string]time.Time{}}
	fired := evalRules(ctx, p, f, s, d)
	d.Fired = fired
	constraints := collect(fired)
	placeGroups(ctx, p, f, s, constraints, d)
	// Groups of an unreachable node in maintenance stay put (maintenance.go).
	d.Alerts = append(d.Alerts, maintenanceAlerts(p, f, s)...)
	d.Plan = buildPlan(p, f, s, constraints, d)
	d.Backups = dueBackups(p, f, s, d)
	placementTimers(p, f, d)
	for _, g := range slices.Sorted(maps.Keys(s.StopFailed)) {
		sf := s.StopFailed[g]
		d.Alerts = append(d.Alerts, Alert{Name: "stop-failed", Severity: "critical", Node: f.Self,
			Message: fmt.Sprintf("stopping %s on %s failed (%s): it may still run there, so no other node starts it until a stop succeeds (retried at every decision)",
				g, f.Self, sf.Error)})
	}
	for _, n := range f.Nodes {
		if !n.Self && n.Alive() && n.PolicyHash != "" && n.PolicyHash != p.Hash {
			d.Alerts = append(d.Alerts, Alert{Name: "policy-mismatch", Severity: "warning", Node: f.Self,
				Message: fmt.Sprintf("%s runs policy %s, this node runs %s: reload the same policy on every node", n.Name, n.PolicyHash, p.Hash)})
		}
	}
	sort.SliceStable(d.Alerts, func(i, j int) bool { return d.Alerts[i].Key() < d.Alerts[j].Key() })
	return d
}

// evalRules runs every rule, applies for_ timers and returns the decisions
// of the rules that fire. A failing rule raises an alert and is skipped: one
// broken rule must not stop failover.
func evalRules(ctx context.Context, p *policy.Policy, f *facts.Facts, s *State, d *Decision) []policy.Decision {
	if len(p.Rules) == 0 {
		return nil
	}
	fv := builtins.NewFactsValue(f)
	var fired []policy.Decision
	for _, r := range p.Rules {
		res, err := builtins.EvalRule(ctx, r, fv, f.Now)
		if err != nil {
			d.Alerts = append(d.Alerts, Alert{Name: "rule-error", Severity: "critical", Node: f.Self, Rule: r.Name, Message: err.Error()})
			continue
		}
		if !res.Holds {
			continue
		}
		since, ok := s.RulePending[r.Name]
		if !ok {
			since = f.Now
		}
		d.RulePending[r.Name] = since
		if f.Now.Sub(since) < r.For {
			d.wake(since.Add(r.For))
			continue
		}
		for _, dec := range res.Decisions {
			dec.Rule, dec.Since = r.Name, since
			if dec.Kind == policy.Alert {
				d.Alerts = append(d.Alerts, Alert{Name: dec.Name, Severity: dec.Severity, Message: dec.Message, Node: f.Self, Rule: r.Name})
			}
			fired = append(fired, dec)
		}
	}
	d.wakeClock(p, fv.Clock())
	return fired
}

type constraints struct {
	decisions []policy.Decision
	// byKind holds the decisions of each kind in firing order, so that
	// looking up one kind for every group and candidate stays cheap when
	// rules return many decisions.
	byKind map[policy.DecisionKind][]policy.Decision
}

func collect(ds []policy.Decision) constraints {
	c := constraints{decisions: ds}
	if len(ds) > 0 {
		c.byKind = map[policy.DecisionKind][]policy.Decision{}
		for _, d := range ds {
			c.byKind[d.Kind] = append(c.byKind[d.Kind], d)
		}
	}
	return c
}

func (c constraints) of(kind policy.DecisionKind, group string) []policy.Decision {
	var out []policy.Decision
	ds := c.byKind[kind]
	for i := range ds {
		if ds[i].AppliesTo(group) {
			out = append(out, ds[i])
		}
	}
	return out
}

func (c constraints) standby(node string) *policy.Decision {
	for i, d := range c.decisions {
		if d.Kind == policy.Standby && d.Node == node {
			return &c.decisions[i]
		}
	}
	return nil
}

func ruleReason(d policy.Decision) string {
	if d.Message != "" {
		return fmt.Sprintf("rule %s: %s", d.Rule, d.Message)
	}
	return "rule " + d.Rule
}

// placeGroups picks the desired owner of every group: highest priority
// first, so that when capacity is short the lowest-priority groups are shed.
func placeGroups(ctx context.Context, p *policy.Policy, f *facts.Facts, s *State, c constraints, d *Decision) {
	order := make([]int, len(p.Groups))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return p.Groups[order[a]].Placement.Priority > p.Groups[order[b]].Placement.Priority
	})
	used := map[string]int{}
	result := make([]GroupPlacement, len(p.Groups))
	var fv *builtins.FactsValue
	for _, gi := range order {
		g := p.Groups[gi]
		gp := GroupPlacement{Group: g.Name}
		var extra map[string]int
		if g.Placement.Score != nil {
			if fv == nil {
				fv = builtins.NewFactsValue(f)
			}
			var err error
			if extra, err = builtins.EvalScore(ctx, g.Placement.Score, fv, g.Name, f.Now); err != nil {
				d.Alerts = append(d.Alerts, Alert{Name: "score-error", Severity: "critical", Node: f.Self, Message: err.Error()})
			}
		}
		gp.Node, gp.Reason = placeOne(p, f, s, c, g, used, extra)
		if gp.Node != "" {
			used[gp.Node] += g.Placement.Weight
		}
		result[gi] = gp
	}
	d.Placement = result
	if fv != nil {
		d.wakeClock(p, fv.Clock())
	}
}

// placementTimers wakes the loop when a placement delay runs out: a node's
// failure_timeout for a group, or failback_delay of a node that came up.
// Waking when nothing changes costs one decision; waking late would leave a
// group where it should not be until the next re-evaluation.
func placementTimers(p *policy.Policy, f *facts.Facts, d *Decision) {
	for _, g := range p.Groups {
		if p.Cluster.FailureTimeout > 0 {
			for _, t := range f.Group(g.Name).FailedOn {
				d.wake(t.Add(p.Cluster.FailureTimeout))
			}
		}
		if g.Placement.FailbackDelay > 0 {
			for _, name := range p.CandidateNodes(g) {
				if n := f.Node(name); n != nil && n.Alive() {
					d.wake(n.Since.Add(g.Placement.FailbackDelay))
				}
			}
		}
	}
}

type candidate struct {
	node  string
	score int
	why   []string
	// moved is set when a rule or an operator asked for this node: an
	// explicit move is not a failback and does not wait for failback_delay.
	moved bool
}

func placeOne(p *policy.Policy, f *facts.Facts, s *State, c constraints, g *policy.Group, used map[string]int, extra map[string]int) (string, string) {
	// Before anything else: a group held by an unreachable node in
	// maintenance is unmanaged, nothing may move it (maintenance.go).
	if h, why := unmanagedHolder(f, s, g.Name); h != "" {
		return h, why
	}
	for _, st := range c.of(policy.Stop, g.Name) {
		return "", "stopped by " + ruleReason(st)
	}
	holder := f.Owner(g.Name)
	var excluded []string
	var cands []candidate
	prefers, moves := c.of(policy.Prefer, g.Name), c.of(policy.Move, g.Name)
	for _, name := range p.CandidateNodes(g) {
		n := f.Node(name)
		node := p.Node(name)
		if n == nil || node == nil {
			continue
		}
		if why := ineligible(p, f, s, c, g, n, node, used); why != "" {
			excluded = append(excluded, name+": "+why)
			continue
		}
		cd := candidate{node: name, score: g.Placement.Scores[name] + extra[name]}
		if name == holder && g.Placement.Stickiness != 0 {
			cd.score += g.Placement.Stickiness
		}
		for _, pr := range prefers {
			if pr.Node == name {
				cd.score += pr.Score
				cd.why = append(cd.why, ruleReason(pr))
			}
		}
		for _, mv := range moves {
			if mv.Node == name {
				cd.score += ruleMoveScore
				cd.moved = true
				cd.why = append(cd.why, ruleReason(mv))
			}
		}
		if mv, ok := s.Operator.Moves[g.Name]; ok && mv.Node == name {
			cd.score += operatorMoveScore
			cd.moved = true
			cd.why = append(cd.why, "operator moved it here at "+mv.At.UTC().Format(time.RFC3339))
		}
		cands = append(cands, cd)
	}
	if len(cands) == 0 {
		if len(excluded) == 0 {
			return "", "no candidate node"
		}
		return "", "no eligible node (" + strings.Join(excluded, "; ") + ")"
	}
	best := cands[0]
	for _, cd := range cands[1:] {
		if cd.score > best.score {
			best = cd
		}
	}
	// Failback waits until the better node has been up long enough, unless
	// the better node already runs the group (two holders after a partition
	// healed): then there is nothing to fail back, and each side judging
	// "up long enough" from its own view (the peer just came back, itself
	// has been up for hours) would keep both holding it for the delay.
	if holder != "" && best.node != holder && !best.moved && g.Placement.FailbackDelay > 0 && !f.Holds(best.node, g.Name) {
		for _, cd := range cands {
			if cd.node != holder {
				continue
			}
			up := f.Now.Sub(f.Node(best.node).Since)
			if up < g.Placement.FailbackDelay {
				return holder, fmt.Sprintf("stays on %s: failback to %s waits until it has been up for %s (up %s)",
					holder, best.node, g.Placement.FailbackDelay, up.Round(time.Millisecond))
			}
		}
	}
	// A handover never stops the source before the target may start: a
	// target whose own rules keep it in standby for now (a quorum still
	// settling after it rejoined) would leave the group stopped until they
	// lift. The holder keeps it meanwhile, if it still may.
	if holder != "" && best.node != holder {
		if bn := f.Node(best.node); bn != nil && !bn.Self && bn.RuleStandby {
			for _, cd := range cands {
				if cd.node == holder {
					return holder, fmt.Sprintf("stays on %s until %s may start it (a rule of %s keeps it in standby for now)", holder, best.node, best.node)
				}
			}
		}
	}
	reason := fmt.Sprintf("score %d", best.score)
	if best.node == holder {
		reason = fmt.Sprintf("holds it (score %d with stickiness %d)", best.score, g.Placement.Stickiness)
	}
	if len(best.why) > 0 {
		reason += "; " + strings.Join(best.why, "; ")
	}
	if len(excluded) > 0 {
		reason += "; excluded " + strings.Join(excluded, "; ")
	}
	return best.node, reason
}

// ineligible says why a node may not run a group, or "".
func ineligible(p *policy.Policy, f *facts.Facts, s *State, c constraints, g *policy.Group, n *facts.Node, node *policy.Node, used map[string]int) string {
	switch {
	case n.State == facts.Dead:
		return "dead (no heartbeat on any path)"
	case n.State == facts.Unknown:
		return "not heard from yet"
	case n.Standby:
		return "standby"
	}
	if why := maintenanceIneligible(n, g.Name); why != "" {
		return why
	}
	if sd := c.standby(n.Name); sd != nil {
		return "standby by " + ruleReason(*sd)
	}
	for _, b := range c.of(policy.Ban, g.Name) {
		if b.Node == n.Name {
			return "banned by " + ruleReason(b)
		}
	}
	for _, mv := range c.of(policy.Move, g.Name) {
		if mv.AwayFrom == n.Name {
			return "moved away by " + ruleReason(mv)
		}
	}
	if t, ok := f.Group(g.Name).FailedOn[n.Name]; ok {
		// failure_timeout 0: a failure never expires (only an operator
		// cleanup forgets it), as the node's report keeps it for ever.
		if timeout := p.Cluster.FailureTimeout; timeout == 0 {
			return fmt.Sprintf("failed there %s ago (failure_timeout 0: until an operator cleanup)", f.Now.Sub(t).Round(time.Millisecond))
		} else if f.Now.Sub(t) < timeout {
			return fmt.Sprintf("failed there %s ago (failure_timeout %s)", f.Now.Sub(t).Round(time.Millisecond), timeout)
		}
	}
	if node.Capacity > 0 && used[n.Name]+g.Placement.Weight > node.Capacity {
		return fmt.Sprintf("no capacity (%d of %d used, group weighs %d)", used[n.Name], node.Capacity, g.Placement.Weight)
	}
	return ""
}

// dueBackups returns the backup jobs this node must run now.
func dueBackups(p *policy.Policy, f *facts.Facts, s *State, d *Decision) []BackupRun {
	var runs []BackupRun
	for _, b := range p.Backups {
		if b.Group != "" {
			if _, held := s.Holds[b.Group]; !held || placementOf(d, b.Group) != f.Self {
				continue
			}
		}
		// The last run is gossiped between nodes, so a job that ran on the
		// old owner before a failover does not run again on the new one.
		last, ok := s.BackupLast[b.Name]
		if !ok {
			last = f.Boot
		}
		due, missed := latestDue(b, last, f.Now)
		if due.IsZero() {
			continue
		}
		run := BackupRun{Job: b.Name, Node: f.Self, Scheduled: due}
		late := f.Now.Sub(due)
		switch {
		case late <= 2*p.Cluster.Reevaluate+time.Second:
			run.Reason = fmt.Sprintf("scheduled %s (%s)", due.In(b.Location).Format(time.RFC3339), b.Schedule)
		case b.CatchUp:
			run.Reason = fmt.Sprintf("catching up the run scheduled %s, missed by %s (%d missed runs, run once)", due.In(b.Location).Format(time.RFC3339), late.Round(time.Second), missed)
		default:
			run.Skip = true
			run.Reason = fmt.Sprintf("skipping the run scheduled %s: missed by %s and catch_up is off", due.In(b.Location).Format(time.RFC3339), late.Round(time.Second))
		}
		if b.Group != "" {
			run.Reason += "; runs where group " + b.Group + " is"
		}
		runs = append(runs, run)
	}
	return runs
}

// latestDue returns the latest scheduled time in (last, now] and how many
// scheduled times fell in that window.
func latestDue(b *policy.Backup, last, now time.Time) (time.Time, int) {
	var due time.Time
	n := 0
	t := last.In(b.Location)
	for i := 0; i < 100000; i++ {
		next := b.Sched.Next(t)
		if next.IsZero() || next.After(now) {
			break
		}
		due, t = next, next
		n++
	}
	return due, n
}

func placementOf(d *Decision, group string) string {
	i := slices.IndexFunc(d.Placement, func(gp GroupPlacement) bool { return gp.Group == group })
	if i < 0 {
		return ""
	}
	return d.Placement[i].Node
}
