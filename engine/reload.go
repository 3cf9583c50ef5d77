package engine

import (
	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// SetPolicy switches the view to a reloaded policy, keeping what it knows of
// peers and paths that still exist, so a reload does not reset the failure
// detector (which would look like a restart to the rules).
func (v *View) SetPolicy(p *policy.Policy) {
	old := v.peers
	v.policy = p
	v.peers = map[string]*peerView{}
	for _, n := range p.Nodes {
		if n.Name == v.self {
			continue
		}
		pv := old[n.Name]
		if pv == nil {
			pv = &peerView{paths: map[string]*pathView{}, state: facts.Unknown, since: v.boot}
		}
		paths := map[string]*pathView{}
		for _, h := range p.Paths {
			if pp := pv.paths[h.Name]; pp != nil {
				paths[h.Name] = pp
			} else {
				paths[h.Name] = &pathView{since: v.boot}
			}
		}
		pv.paths = paths
		v.peers[n.Name] = pv
	}
	for name := range v.probes {
		if p.Probe(name) == nil {
			delete(v.probes, name)
		}
	}
}

// SetPolicy switches the node to a reloaded policy.
func (n *Node) SetPolicy(p *policy.Policy) {
	n.Policy = p
	n.View.SetPolicy(p)
	n.report = nil
}
