package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// Action operations.
const (
	OpStart = "start"
	OpStop  = "stop"
	// OpRelease marks a dead node's hold on a group that the plan proceeds
	// without; nothing is executed for it.
	OpRelease = "release"
	// OpFence runs the cluster's fencing command against a peer declared
	// dead, before the starts of a takeover.
	OpFence = "fence"
)

// Action is one step of a plan.
type Action struct {
	ID       int    `json:"id"`
	Node     string `json:"node"`
	Group    string `json:"group"`
	Op       string `json:"op"`
	Resource string `json:"resource,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Reason   string `json:"reason"`
	// After lists the actions that must complete first.
	After []int `json:"after,omitempty"`
	// Ready is true when the evaluating node may execute the action now.
	Ready bool `json:"ready"`
	// Wait says why an action of the evaluating node is not ready.
	Wait string `json:"wait,omitempty"`
	// Takeover marks starts that proceed without a previous holder that was
	// declared dead: executors check harder there (e.g. an ARP probe for the
	// VIP before adding it).
	Takeover bool `json:"takeover,omitempty"`
	// From lists the peers declared dead that a takeover proceeds without.
	From []string `json:"from,omitempty"`

	res *policy.Resource
	// fencePeer and fenceSince name the peer an OpFence action fences and
	// when it was declared dead.
	fencePeer  string
	fenceSince time.Time
}

// Res returns the policy resource the action acts on (nil for OpRelease
// and OpFence).
func (a Action) Res() *policy.Resource { return a.res }

// FencePeer returns the node an OpFence action fences.
func (a Action) FencePeer() string { return a.fencePeer }

// Plan is an ordered list of actions: stops before starts, resources of a
// group started in order and stopped in reverse order.
type Plan []Action

// For returns the actions of one node.
func (p Plan) For(node string) Plan {
	var out Plan
	for _, a := range p {
		if a.Node == node {
			out = append(out, a)
		}
	}
	return out
}

func buildPlan(p *policy.Policy, f *facts.Facts, s *State, c constraints, d *Decision) Plan {
	var plan Plan
	add := func(a Action) int {
		a.ID = len(plan) + 1
		plan = append(plan, a)
		return a.ID
	}
	var unknown, dead []string
	for _, n := range f.Nodes {
		switch n.State {
		case facts.Unknown:
			unknown = append(unknown, n.Name)
		case facts.Dead:
			dead = append(dead, n.Name)
		}
	}
	for i, g := range p.Groups {
		target := d.Placement[i].Node
		gf := f.Group(g.Name)
		why := d.Placement[i].Reason
		var blockers, released []string
		var stopIDs []int
		for _, h := range gf.Holders {
			if h == target {
				continue
			}
			hn := f.Node(h)
			verb := "moves to " + target
			if target == "" {
				verb = "stops"
			}
			switch hn.State {
			case facts.Dead:
				released = append(released, h)
				add(Action{Node: h, Group: g.Name, Op: OpRelease,
					Reason: fmt.Sprintf("%s %s; proceeding without %s: %s", g.Name, verb, h, deadReason(p, hn))})
			default:
				if !hn.Self {
					blockers = append(blockers, h)
				}
				prev := 0
				for j := len(g.Resources) - 1; j >= 0; j-- {
					r := g.Resources[j]
					a := Action{Node: h, Group: g.Name, Op: OpStop, Resource: r.ID(), Kind: r.Kind, Detail: describe(r, OpStop),
						Reason: fmt.Sprintf("%s %s: %s", g.Name, verb, why), Ready: hn.Self, res: r}
					if prev != 0 {
						a.After = []int{prev}
					}
					prev = add(a)
					stopIDs = append(stopIDs, prev)
				}
			}
		}
		if target == "" || slices.Contains(gf.Holders, target) {
			continue
		}
		wait := ""
		reason := fmt.Sprintf("%s placed on %s: %s", g.Name, target, why)
		switch {
		case len(blockers) > 0:
			wait = fmt.Sprintf("waiting for %s to stop %s first", strings.Join(blockers, ", "), g.Name)
		case len(unknown) > 0:
			wait = fmt.Sprintf("waiting to hear from %s (startup grace %s) before starting %s", strings.Join(unknown, ", "), p.StartupGrace(), g.Name)
		case len(released) > 0 || len(dead) > 0:
			// A dead peer's holdings are unknown: it may have taken the group
			// since its last report. Starting anything while a peer is dead is
			// a takeover, and the guard rules get their say.
			if len(released) == 0 {
				released = dead
			}
			if target == f.Self {
				if guards := c.of(policy.NoTakeover, g.Name); len(guards) > 0 {
					var rs []string
					for _, gd := range guards {
						rs = append(rs, ruleReason(gd))
					}
					wait = "takeover blocked by " + strings.Join(rs, "; ")
				}
			}
			if wait == "" {
				reason += fmt.Sprintf("; takeover from %s: declared dead over all heartbeat paths and no guard rule objected", strings.Join(released, ", "))
			}
		}
		prev := 0
		if wait == "" && len(released) > 0 && len(p.Cluster.Fence) > 0 {
			// Fencing: a peer declared dead may only be unreachable; power it
			// off (or cut it off) before taking over what it may still run.
			for _, peer := range released {
				pn := f.Node(peer)
				if pn == nil || pn.State != facts.Dead || s.Fenced[peer].Equal(pn.Since) {
					continue
				}
				a := Action{Node: target, Group: g.Name, Op: OpFence, Resource: "fence:" + peer, Kind: "fence", Takeover: true, From: []string{peer},
					Detail: fmt.Sprintf("fence %s: %s %s", peer, strings.Join(p.Cluster.Fence, " "), peer),
					Reason: fmt.Sprintf("%s is declared dead; it is fenced before %s is taken over", peer, g.Name),
					Ready:  target == f.Self, fencePeer: peer, fenceSince: pn.Since}
				if prev != 0 {
					a.After = []int{prev}
				} else if len(stopIDs) > 0 {
					a.After = []int{stopIDs[len(stopIDs)-1]}
				}
				prev = add(a)
			}
		}
		for _, r := range g.Resources {
			a := Action{Node: target, Group: g.Name, Op: OpStart, Resource: r.ID(), Kind: r.Kind, Detail: describe(r, OpStart),
				Reason: reason, Ready: target == f.Self && wait == "", Wait: wait, Takeover: len(released) > 0, res: r}
			if a.Takeover {
				a.From = released
			}
			switch {
			case prev != 0:
				a.After = []int{prev}
			case len(stopIDs) > 0:
				a.After = []int{stopIDs[len(stopIDs)-1]}
			}
			prev = add(a)
		}
	}
	return plan
}

func deadReason(p *policy.Policy, n *facts.Node) string {
	var paths []string
	for _, path := range n.Paths {
		paths = append(paths, path.Name)
	}
	return fmt.Sprintf("declared dead at %s, no heartbeat on any path (%s)", n.Since.UTC().Format("15:04:05.000"), strings.Join(paths, ", "))
}

// describe is the human form of what an action does to a resource.
func describe(r *policy.Resource, op string) string {
	pr := r.Params
	switch r.Kind {
	case policy.KindVIP:
		if op == OpStart {
			announcement := "gratuitous ARP"
			if strings.Contains(pr["address"], ":") { // IPv6
				announcement = "unsolicited neighbour advertisements"
			}
			return fmt.Sprintf("add %s on %s, announce with %s %s", pr["address"], orDefault(pr["interface"], "the matching interface"), pr["arp_count"], announcement)
		}
		return fmt.Sprintf("remove %s", pr["address"])
	case policy.KindDisk:
		if op == OpStart {
			return fmt.Sprintf("mount %s on %s (%s)", pr["device"], pr["mountpoint"], pr["fstype"])
		}
		return fmt.Sprintf("unmount %s", pr["mountpoint"])
	case policy.KindService:
		return fmt.Sprintf("%s service %s (%s)", op, r.Name, pr["kind"])
	case policy.KindDatabase:
		if op == OpStart {
			return fmt.Sprintf("promote %s database %s to primary", pr["engine"], r.Name)
		}
		return fmt.Sprintf("demote %s database %s (stop or fence the primary)", pr["engine"], r.Name)
	}
	return op + " " + r.ID()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
