package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/engine/facts"
)

// Operator requests made on this node take effect here at once and reach
// the peers with the next heartbeat. Two requests made on two nodes within
// one heartbeat round trip (a script running `harules online $(hostname)`
// on every node) would then be decided on by each node before it knows the
// other's: each sees the other in standby and both start the group. So a
// node that took an operator request itself starts no group nobody holds
// (a start that is not a takeover) until every alive peer's report shows
// the request: by then the peers know it, and this node knows theirs. Stops
// go on at once (stopping never makes two owners), and a peer that does
// not acknowledge within the detection time does not hold starts back for
// longer (it is being declared dead, or it will never report it).

// pendingOp is an operator request made on this node that some alive peer
// has not reported yet.
type pendingOp struct {
	kind, key string // "move", "standby", "cleanup"; the group or node
	at        time.Time
}

func (n *Node) notePending(kind, key string, at time.Time) {
	n.pending = append(n.pending, pendingOp{kind: kind, key: key, at: at})
}

// acked reports whether report r carries operator request op (or a newer
// one for the same key).
func acked(r *Report, op pendingOp) bool {
	if r == nil {
		return false
	}
	switch op.kind {
	case "move":
		m, ok := r.Operator.Moves[op.key]
		return ok && !m.At.Before(op.at)
	case "standby":
		s, ok := r.Operator.Standby[op.key]
		return ok && !s.At.Before(op.at)
	case "cleanup":
		t, ok := r.Operator.Cleanups[op.key]
		return ok && !t.Before(op.at)
	}
	return true
}

// unacked drops the requests every alive peer has reported (or that are
// older than the detection time) and names the alive peers that have not
// reported one of the rest.
func (n *Node) unacked(f *facts.Facts) []string {
	limit := n.Policy.DetectionTime()
	var waitFor []string
	kept := n.pending[:0]
	for _, op := range n.pending {
		if f.Now.Sub(op.at) > limit {
			continue
		}
		var missing []string
		for _, nf := range f.Nodes {
			if nf.Self || nf.State != facts.Alive {
				continue
			}
			if !acked(n.View.PeerReport(nf.Name), op) {
				missing = append(missing, nf.Name)
			}
		}
		if len(missing) == 0 {
			continue
		}
		kept = append(kept, op)
		for _, m := range missing {
			if !slices.Contains(waitFor, m) {
				waitFor = append(waitFor, m)
			}
		}
	}
	n.pending = kept
	slices.Sort(waitFor)
	return waitFor
}

// holdStartsForAck turns this node's ready starts of groups nobody holds
// into waits while an operator request made here is not yet known to every
// alive peer (see above). Takeovers (from a peer declared dead) are not
// held: the peer cannot acknowledge anything.
func (n *Node) holdStartsForAck(f *facts.Facts, d *Decision) {
	if len(n.pending) == 0 {
		return
	}
	peers := n.unacked(f)
	if len(peers) == 0 {
		return
	}
	wait := fmt.Sprintf("waiting for %s to learn the operator request made on %s", strings.Join(peers, ", "), n.Name)
	for i := range d.Plan {
		a := &d.Plan[i]
		if a.Node != n.Name || a.Op != OpStart || !a.Ready || a.Takeover || len(f.Group(a.Group).Holders) > 0 {
			continue
		}
		a.Ready, a.Wait = false, wait
	}
}
