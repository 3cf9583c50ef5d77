package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"go.starlark.net/starlark"

	"github.com/harules/harules/policy"
)

// Validate checks what no single declaration can: references between
// declarations and placements that can never be satisfied.
func Validate(p *policy.Policy, mainFile string) Errors {
	var errs Errors
	add := func(pos policy.Pos, format string, args ...any) {
		if pos.File == "" {
			pos = policy.Pos{File: mainFile, Line: 1, Col: 1}
		}
		errs = append(errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	top := policy.Pos{File: mainFile, Line: 1, Col: 1}
	if p.Cluster.Name == "" {
		add(top, "no cluster() declared: add cluster(name = \"...\") at the top of the policy")
	}
	if len(p.Nodes) == 0 {
		add(top, "no node() declared: a cluster needs at least one node")
	}
	if len(p.Nodes) > 1 && len(p.Paths) == 0 {
		add(top, "no heartbeat() declared: nodes of a cluster need at least one heartbeat path to watch each other")
	}
	for _, n := range p.Nodes {
		for path := range n.Addresses {
			if p.Path(path) == nil {
				add(n.Pos, "node %q: addresses names heartbeat path %q, which is not declared", n.Name, path)
			}
		}
		if len(p.Nodes) > 1 {
			for _, h := range p.Paths {
				if h.Kind == "udp" && !n.AddressOn(h.Name).IsValid() {
					add(n.Pos, "node %q has no address for heartbeat path %q: set address= or addresses={%q: \"...\"}", n.Name, h.Name, h.Name)
				}
			}
		}
	}
	// One heartbeat path is one socket family: an IPv4 socket cannot send to
	// an IPv6 peer. Report each node whose family differs from the first.
	if len(p.Nodes) > 1 {
		for _, h := range p.Paths {
			if h.Kind != "udp" {
				continue
			}
			var first *policy.Node
			for _, n := range p.Nodes {
				a := n.AddressOn(h.Name)
				if !a.IsValid() {
					continue
				}
				if first == nil {
					first = n
					continue
				}
				if f := first.AddressOn(h.Name); f.Unmap().Is4() != a.Unmap().Is4() {
					add(n.Pos, "node %q: its address %s on heartbeat path %q is %s, but node %q has %s address %s there; every node of a path needs the same IP version",
						n.Name, a, h.Name, family(a), first.Name, family(f), f)
				}
			}
		}
	}
	for _, pr := range p.Probes {
		for _, n := range pr.Nodes {
			if p.Node(n) == nil {
				add(pr.Pos, "probe %q runs on unknown node %q%s", pr.Name, n, suggest(n, p.NodeNames()))
			}
		}
	}
	vips := map[string]string{}
	disks := map[string]string{}
	for _, g := range p.Groups {
		pl := g.Placement
		pos := pl.Pos
		if pos.File == "" || pos.File == "<builtin>" {
			pos = g.Pos
		}
		for _, n := range pl.Nodes {
			if p.Node(n) == nil {
				add(g.Pos, "group %q: placement names unknown node %q%s", g.Name, n, suggest(n, p.NodeNames()))
			}
		}
		for _, n := range sortedNodes(pl.Scores) {
			if p.Node(n) == nil && !slices.Contains(pl.Nodes, n) { // reported above already
				add(g.Pos, "group %q: placement scores name unknown node %q%s", g.Name, n, suggest(n, p.NodeNames()))
			}
		}
		if pl.Score != nil {
			if fn, ok := pl.Score.(*starlark.Function); ok && fn.NumParams() != 2 {
				add(pos, "group %q: placement score function must take two parameters (facts, group)", g.Name)
			}
		}
		fits := false
		for _, n := range p.CandidateNodes(g) {
			if node := p.Node(n); node != nil && (node.Capacity == 0 || node.Capacity >= pl.Weight) {
				fits = true
			}
		}
		if !fits && len(p.Nodes) > 0 {
			add(g.Pos, "group %q can never run: its weight %d exceeds the capacity of every candidate node", g.Name, pl.Weight)
		}
		for _, r := range g.Resources {
			switch r.Kind {
			case policy.KindVIP:
				if prev, ok := vips[r.Params["address"]]; ok {
					add(r.Pos, "group %q: VIP %s is also used by group %q; one address can only have one owner", g.Name, r.Params["address"], prev)
				}
				vips[r.Params["address"]] = g.Name
			case policy.KindDisk:
				if prev, ok := disks[r.Params["device"]]; ok {
					add(r.Pos, "group %q: disk %s is also used by group %q; a disk can only be mounted by one group", g.Name, r.Params["device"], prev)
				}
				disks[r.Params["device"]] = g.Name
			}
		}
	}
	for _, r := range p.Rules {
		if fn, ok := r.When.(*starlark.Function); ok && fn.NumParams() != 1 {
			add(r.Pos, "rule %q: when must take one parameter, the facts (e.g. when = lambda f: ...)", r.Name)
		}
		if fn, ok := r.Then.(*starlark.Function); ok && fn.NumParams() != 1 {
			add(r.Pos, "rule %q: then must take one parameter, the facts", r.Name)
		}
	}
	for _, b := range p.Backups {
		if b.Group != "" && p.Group(b.Group) == nil {
			add(b.Pos, "backup %q: unknown group %q%s", b.Name, b.Group, suggest(b.Group, p.GroupNames()))
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if a.File != b.File {
			return false
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return errs
}

func sortedNodes(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns " (did you mean X?)" for a close known name, else the
// list of known names.
func suggest(name string, known []string) string {
	if best := policy.Closest(name, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(known) > 0 {
		return fmt.Sprintf(" (known: %v)", known)
	}
	return ""
}

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}
