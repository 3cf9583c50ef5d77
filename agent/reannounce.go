package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
	"github.com/vishvananda/netlink"
)

// After a partition heals, both sides may hold a group for a moment: the
// one that gives it up (it hears the other and releases) and the keeper.
// Clients learnt the MAC of whichever announced last, so:
//   - the keeper announces the VIP again after every release by the other
//     side, and also when a peer is heard again after a silence (the peer
//     may have taken the group over and released it again before this node
//     ever saw it holding it);
//   - a node that gives the group up never announces it: announcements are
//     queued while heartbeats are read and sent only after the next
//     decision, for the groups this node still holds then (a release in
//     that decision drops them; stopping a VIP cancels announcements
//     already under way).
//   - a peer heard again after a silence gets this node's heartbeat at once,
//     even when the neighbour entry for the peer failed during the
//     partition (refreshNeighbours), so the keeper learns of the release
//     in milliseconds instead of after the kernel's next ARP retry (up to
//     a second).

// reannounces are the VIP announcements waiting for the next decision.
type reannounces struct {
	// pending maps a group to why its VIPs are announced again.
	pending map[string]string
	// send announces a VIP again (Executor.Reannounce; tests record it).
	send func(r *policy.Resource)
}

// queueAnnounce asks for group's VIPs to be announced after the next
// decision if this node still holds the group then.
func (a *Agent) queueAnnounce(group, why string) {
	if a.reannounce.pending == nil {
		a.reannounce.pending = map[string]string{}
	}
	a.reannounce.pending[group] = why
}

// announceHeld sends the queued announcements of groups still held after
// the decision that just ran; step calls it right after engine.Node.Step.
func (a *Agent) announceHeld() {
	if len(a.reannounce.pending) == 0 {
		return
	}
	send := a.reannounce.send
	if send == nil && a.real != nil {
		send = a.real.Reannounce
	}
	for _, g := range slices.Sorted(maps.Keys(a.reannounce.pending)) {
		why := a.reannounce.pending[g]
		delete(a.reannounce.pending, g)
		if !a.node.Settled(g) || send == nil {
			// Given up (or never held): never announce it. A start still
			// running announces when it adds the VIP; a stop never does.
			continue
		}
		grp := a.policy.Group(g)
		if grp == nil {
			continue
		}
		for _, r := range grp.Resources {
			if r.Kind == policy.KindVIP {
				a.log.Info(why+"; announcing its VIP again", "group", g, "vip", r.Params["address"])
				send(r)
			}
		}
	}
}

// reannounceReleased queues the VIPs of groups this node holds that a peer
// has just stopped holding. After a split brain heals (both held a group,
// the peer gave it up), clients and routers may still have the peer's MAC
// cached for the VIP; nothing else would tell them, since this node never
// re-added the address.
func (a *Agent) reannounceReleased(old, fresh *engine.Report) {
	if old == nil || fresh == nil {
		return
	}
	for _, g := range old.Holds {
		if slices.Contains(fresh.Holds, g) {
			continue
		}
		if _, held := a.node.State.Holds[g]; held {
			a.queueAnnounce(g, "peer "+fresh.Node+" released a group held here too")
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
// were cut apart), the VIPs of groups held here are queued for announcing
// (sent after the next decision if still held: see announceHeld): while
// apart, the peer may have taken a group over and announced its own MAC,
// and it may give the group up before this node ever sees it holding it
// (so reannounceReleased alone would miss it). The peer also gets this
// node's heartbeat at once (refreshNeighbours).
func (a *Agent) peerBack(peer string, at time.Time) {
	if a.lastHeard == nil {
		a.lastHeard = map[string]time.Time{}
	}
	last, heard := a.lastHeard[peer]
	a.lastHeard[peer] = at
	if !heard || at.Sub(last) <= a.deadAfter() {
		return
	}
	for _, g := range a.node.State.HeldGroups() {
		a.queueAnnounce(g, fmt.Sprintf("peer %s heard again after %s of silence", peer, at.Sub(last).Round(time.Millisecond)))
	}
	if a.real != nil {
		a.refreshNeighbours(peer)
	}
}

// refreshNeighbours makes this node's next heartbeat reach peer at once.
// While the two were cut apart the kernel kept failing to resolve the
// peer's addresses; an entry left INCOMPLETE or FAILED holds the next
// heartbeat until its next ARP retry, up to a second later. The peer was
// just heard, so such entries are deleted (a fresh one resolves
// immediately) and a heartbeat is sent.
func (a *Agent) refreshNeighbours(peer string) {
	node := a.policy.Node(peer)
	if node == nil {
		return
	}
	var addrs []netip.Addr
	for _, h := range a.policy.Paths {
		if h.Kind != "disk" {
			addrs = append(addrs, node.AddressOn(h.Name))
		}
	}
	go func() {
		for _, addr := range addrs {
			if err := dropUnresolved(addr); err != nil {
				a.log.Debug("cannot refresh the neighbour entry of a peer", "peer", peer, "address", addr, "error", err)
			}
		}
		a.kick()
	}()
}

// dropUnresolved deletes the neighbour entry of addr if it is INCOMPLETE
// or FAILED.
func dropUnresolved(addr netip.Addr) error {
	if !addr.IsValid() {
		return nil
	}
	routes, err := netlink.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("route to %s: %w", addr, err)
	}
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(routes[0].LinkIndex, family)
	if err != nil {
		return fmt.Errorf("neighbours: %w", err)
	}
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			if err := netlink.NeighDel(&n); err != nil {
				return fmt.Errorf("delete neighbour %s: %w", addr, err)
			}
		}
	}
	return nil
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
