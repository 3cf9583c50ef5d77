package agent

import (
	"context"
	"slices"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// reannounceReleased announces again the VIPs of groups this node holds
// that a peer has just stopped holding. After a split brain heals (both
// held a group, the peer gave it up), clients and routers may still have
// the peer's MAC cached for the VIP; nothing else would tell them, since
// this node never re-added the address.
func (a *Agent) reannounceReleased(old, fresh *engine.Report) {
	if a.real == nil || old == nil || fresh == nil {
		return
	}
	for _, g := range old.Holds {
		if slices.Contains(fresh.Holds, g) {
			continue
		}
		if !a.node.Settled(g) {
			continue // not held, or its start or stop is still running
		}
		grp := a.policy.Group(g)
		if grp == nil {
			continue
		}
		for _, r := range grp.Resources {
			if r.Kind == policy.KindVIP {
				a.log.Info("peer released a group held here too; announcing its VIP again", "peer", fresh.Node, "group", g, "vip", r.Params["address"])
				a.real.Reannounce(r)
			}
		}
	}
}

// reannounceDelay spaces the second burst of Reannounce. Linux ignores
// gratuitous ARP for an entry updated less than neigh locktime ago (1 s by
// default), and the peer announced the VIP itself moments before: only a
// burst after that still moves the clients (keepalived's
// garp_master_delay serves the same purpose).
const reannounceDelay = 1500 * time.Millisecond

// peerBack notes a heartbeat from peer at `at`. When the peer had been
// silent longer than it takes to declare it dead (it crashed, or the two
// were cut apart), the VIPs of groups held here are announced again: while
// apart, the peer may have taken a group over and announced its own MAC,
// and it may give the group up before this node ever sees it holding it
// (so reannounceReleased alone would miss it).
func (a *Agent) peerBack(peer string, at time.Time) {
	if a.lastHeard == nil {
		a.lastHeard = map[string]time.Time{}
	}
	last, heard := a.lastHeard[peer]
	a.lastHeard[peer] = at
	if !heard || at.Sub(last) <= a.deadAfter() || a.real == nil {
		return
	}
	for _, g := range a.node.State.HeldGroups() {
		grp := a.policy.Group(g)
		if grp == nil || !a.node.Settled(g) {
			continue
		}
		for _, r := range grp.Resources {
			if r.Kind == policy.KindVIP {
				a.log.Info("peer heard again after a silence; announcing held VIP again", "peer", peer, "silent", at.Sub(last).String(), "group", g, "vip", r.Params["address"])
				a.real.Reannounce(r)
			}
		}
	}
}

// deadAfter is the longest detection time of the heartbeat paths: a peer
// silent that long on every path is dead.
func (a *Agent) deadAfter() time.Duration {
	var d time.Duration
	for _, h := range a.policy.Paths {
		d = max(d, h.DetectionTime())
	}
	return d
}

// Reannounce sends the VIP's gratuitous ARP rounds again, now and once more
// after reannounceDelay, in the background; stopping the VIP cancels it.
func (e *Executor) Reannounce(r *policy.Resource) {
	_, v, err := e.vip(r)
	if err != nil {
		e.log.Warn("cannot announce VIP again", "vip", r.Params["address"], "error", err)
		return
	}
	count, interval := arpSettings(r)
	m, err := e.manager(max(count, 1), interval)
	if err != nil {
		e.log.Warn("cannot announce VIP again", "vip", v.String(), "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reannounceDelay+2*time.Duration(max(count, 1))*interval+5*time.Second)
	e.mu.Lock()
	if old := e.announces[v.Address]; old != nil {
		old()
	}
	e.announces[v.Address] = cancel
	e.mu.Unlock()
	go func() {
		defer cancel()
		for burst := 0; burst < 2; burst++ {
			if burst > 0 {
				select {
				case <-time.After(reannounceDelay):
				case <-ctx.Done():
					return
				}
			}
			if err := m.Announce(ctx, v); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("announcing VIP again failed", "vip", v.String(), "error", err)
				}
				return
			}
		}
	}()
}
