package heartbeat

import (
	"strconv"
	"sync"
)

// ReplayWindow is how many sequence numbers below the highest one seen are
// still accepted once each, so mild UDP reordering is not mistaken for
// replay.
const ReplayWindow = 64

// ReplayGuard remembers, per sender node, the highest incarnation seen on
// any path, and per (sender node, path) a sliding window of sequence
// numbers, in the manner of the IPsec anti-replay window (RFC 4303 section
// 3.4.3). Once a node's new incarnation arrived on one path, its older
// incarnations are rejected on every path: a late datagram of the previous
// run on a slower path must not speak for the node again (it would bring
// back the old run's report). It is safe for concurrent use; share one
// guard between all endpoints, or the incarnation is only known per path.
//
// Only call Check with authenticated messages: its state must never be
// moved by forged input. Its memory grows with the number of distinct
// (node, path) pairs, which the endpoint bounds to configured peers.
type ReplayGuard struct {
	mu     sync.Mutex
	states map[guardKey]*windowState
	// incarnations is the highest incarnation accepted from each node on
	// any path; it never goes down (Forget aside).
	incarnations map[string]uint64
	counts       reasonCounters
}

type guardKey struct{ node, path string }

type windowState struct {
	incarnation uint64
	highest     uint64 // highest sequence number accepted
	// seen has bit i set when highest-i was accepted (bit 0 is highest).
	seen uint64
}

// NewReplayGuard returns an empty guard.
func NewReplayGuard() *ReplayGuard {
	return &ReplayGuard{states: make(map[guardKey]*windowState), incarnations: make(map[string]uint64)}
}

// Check accepts (and records) or rejects a message's incarnation and
// sequence number for its sender and path. Rejections are *RejectError
// with reason old_incarnation (below the highest incarnation of the node
// seen on any path), replay (seen before) or too_old (below the window).
func (g *ReplayGuard) Check(node, path string, incarnation, seq uint64) error {
	err := g.check(node, path, incarnation, seq)
	if err != nil {
		r, _ := ReasonOf(err)
		g.counts.add(r)
	}
	return err
}

func (g *ReplayGuard) check(node, path string, incarnation, seq uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if current, ok := g.incarnations[node]; ok && incarnation < current {
		return reject(ReasonOldIncarnation, "incarnation "+strconv.FormatUint(incarnation, 10)+
			" < "+strconv.FormatUint(current, 10)+", the newest seen from "+node)
	}
	key := guardKey{node, path}
	st, ok := g.states[key]
	if !ok || incarnation > st.incarnation {
		// First contact or the sender restarted: start a fresh window.
		if !ok {
			st = &windowState{}
			g.states[key] = st
		}
		*st = windowState{incarnation: incarnation, highest: seq, seen: 1}
		g.incarnations[node] = incarnation
		return nil
	}
	if incarnation < st.incarnation {
		return reject(ReasonOldIncarnation, "incarnation "+strconv.FormatUint(incarnation, 10)+
			" < "+strconv.FormatUint(st.incarnation, 10))
	}
	if seq > st.highest {
		shift := seq - st.highest
		if shift >= ReplayWindow {
			st.seen = 1
		} else {
			st.seen = st.seen<<shift | 1
		}
		st.highest = seq
		return nil
	}
	behind := st.highest - seq
	if behind >= ReplayWindow {
		return reject(ReasonTooOld, "seq "+strconv.FormatUint(seq, 10)+" is "+
			strconv.FormatUint(behind, 10)+" behind "+strconv.FormatUint(st.highest, 10))
	}
	bit := uint64(1) << behind
	if st.seen&bit != 0 {
		return reject(ReasonReplay, "seq "+strconv.FormatUint(seq, 10)+" already seen")
	}
	st.seen |= bit
	return nil
}

// Forget drops the state of a node on every path, e.g. when it leaves the
// cluster configuration.
func (g *ReplayGuard) Forget(node string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.states {
		if k.node == node {
			delete(g.states, k)
		}
	}
	delete(g.incarnations, node)
}

// Stats returns how many messages the guard rejected, per reason
// (replay, too_old, old_incarnation).
func (g *ReplayGuard) Stats() map[string]uint64 {
	return g.counts.snapshot(ReasonReplay, ReasonTooOld, ReasonOldIncarnation)
}
