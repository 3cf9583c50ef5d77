package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/harules/harules/builtins/vip"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/engine/facts"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A VIP on an interface that lost its carrier cannot be reached, yet the
// address stays configured: when the link comes back, this node and the
// peer that took over would both answer ARP for it. So carrier loss on a
// held VIP's interface fails the group here at once (the engine stops it
// and a peer takes over), no VIP is added on an interface without carrier,
// and for a settle time after the carrier comes back this node takes
// nothing over from a peer it believes dead: that peer is most likely
// alive behind the link that was down, and its heartbeats need a moment.

// linkResubscribe spaces attempts to subscribe to link changes again after
// the subscription failed; the 1 s resource monitor covers the gap.
const linkResubscribe = time.Second

// carrierBook remembers, per interface, whether it has a carrier and since
// when; the link watcher writes it and the executor reads it.
type carrierBook struct {
	mu    sync.Mutex
	links map[string]carrierState
	// failed lists, per interface, the groups that failed here because it
	// had no carrier (forgotten when it comes back: forgetCarrierFailures).
	failed map[string]map[string]bool
}

// noteFailed records that group failed here for want of ifname's carrier.
func (b *carrierBook) noteFailed(ifname, group string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil {
		b.failed = map[string]map[string]bool{}
	}
	if b.failed[ifname] == nil {
		b.failed[ifname] = map[string]bool{}
	}
	b.failed[ifname][group] = true
}

// takeFailed returns and forgets the groups noted for ifname.
func (b *carrierBook) takeFailed(ifname string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	groups := slices.Sorted(maps.Keys(b.failed[ifname]))
	delete(b.failed, ifname)
	return groups
}

type carrierState struct {
	up    bool
	since time.Time
	// back: the carrier came back while watched (up after a notified down).
	back bool
	// initial: the state comes from the first look (the kernel may still
	// report a link that just came up as oper "down" for up to a second).
	initial bool
}

// set records ifname's carrier at now and returns the previous state (ok
// false the first time the interface is seen).
func (b *carrierBook) set(ifname string, up bool, now time.Time) (prev carrierState, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.links == nil {
		b.links = map[string]carrierState{}
	}
	prev, ok = b.links[ifname]
	if !ok || prev.up != up {
		b.links[ifname] = carrierState{up: up, since: now, back: ok && up && !prev.initial, initial: !ok}
	}
	return prev, ok
}

// backSince returns when ifname's carrier came back, or false when it was
// not seen going down and up while watched.
func (b *carrierBook) backSince(ifname string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.links[ifname]
	if !ok || !s.back {
		return time.Time{}, false
	}
	return s.since, true
}

// heldVIP is a VIP this executor put on an interface, with the group and
// resource that hold it (for failure reports).
type heldVIP struct {
	group, resource, iface string
}

// noteVIP records that group's resource holds v (started or seen by the
// monitor); forgetVIP drops it when the VIP is stopped.
func (e *Executor) noteVIP(v vip.VIP, group, resource string) {
	if group == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.heldVIPs == nil {
		e.heldVIPs = map[netip.Prefix]heldVIP{}
	}
	e.heldVIPs[v.Address] = heldVIP{group: group, resource: resource, iface: v.Interface}
}

func (e *Executor) forgetVIP(v vip.VIP) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.heldVIPs, v.Address)
}

// vipsOn lists the held VIPs on ifname.
func (e *Executor) vipsOn(ifname string) []heldVIP {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []heldVIP
	for _, h := range e.heldVIPs {
		if h.iface == ifname {
			out = append(out, h)
		}
	}
	return out
}

// carrierGate refuses to add v on an interface without carrier (a failure:
// the group goes elsewhere) and, for CarrierSettle after the carrier came
// back, refuses the start for now (ErrRetry): a peer declared dead while
// the link was down is probably alive and about to be heard again, and
// peers that also lost their carrier (a switch restarted) need a few
// heartbeats to agree again on who runs what.
func (e *Executor) carrierGate(m *vip.Manager, v vip.VIP, takeover bool, group string) error {
	up, state, err := m.Carrier(v.Interface)
	if err != nil {
		return fmt.Errorf("vip %s: %w", v, err)
	}
	if !up {
		if e.links != nil && group != "" {
			e.links.noteFailed(v.Interface, group)
		}
		return fmt.Errorf("interface %s has no carrier (%s): VIP %s is not added there", v.Interface, state, v.Address)
	}
	if e.links == nil || e.CarrierSettle <= 0 {
		return nil
	}
	if back, ok := e.links.backSince(v.Interface); ok {
		if ago := e.now().Sub(back); ago < e.CarrierSettle {
			what := "no VIP is added"
			if takeover {
				what = "no takeover"
			}
			return fmt.Errorf("carrier on %s came back %s ago: %s on it before %s, so peers behind that link are heard first (%w)",
				v.Interface, ago.Round(time.Millisecond), what, e.CarrierSettle, engine.ErrRetry)
		}
	}
	return nil
}

// watchLinks follows the carrier of every interface of the agent's network
// namespace (netlink link notifications) until ctx ends; see the comment at
// the top of this file.
func (a *Agent) watchLinks(ctx context.Context) {
	if a.real == nil {
		return
	}
	a.real.links = &carrierBook{}
	a.real.CarrierSettle = a.deadAfter()
	ns, err := netns.Get()
	if err != nil {
		a.log.Error("cannot watch link carriers; the resource monitor still checks them every second", "error", err)
		return
	}
	go func() {
		defer ns.Close()
		for ctx.Err() == nil {
			a.followLinks(ctx, ns)
			select {
			case <-ctx.Done():
			case <-time.After(linkResubscribe):
			}
		}
	}()
}

// followLinks subscribes once and handles updates until ctx ends or the
// subscription fails.
func (a *Agent) followLinks(ctx context.Context, ns netns.NsHandle) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{Namespace: &ns, ListExisting: true,
		ErrorCallback: func(err error) { a.log.Warn("link notifications", "error", err) }})
	if err != nil {
		a.log.Error("cannot subscribe to link changes; retrying", "error", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				a.log.Warn("link notifications ended; subscribing again")
				return
			}
			a.linkChanged(ctx, u)
		}
	}
}

// linkChanged acts on one link notification.
func (a *Agent) linkChanged(ctx context.Context, u netlink.LinkUpdate) {
	attrs := u.Attrs()
	if attrs == nil || attrs.Name == "" {
		return
	}
	up := u.Header.Type != unix.RTM_DELLINK && vip.HasCarrier(attrs)
	state := vip.LinkState(attrs)
	if u.Header.Type == unix.RTM_DELLINK {
		state = "deleted"
	}
	prev, seen := a.real.links.set(attrs.Name, up, a.now())
	switch {
	case !up && (!seen || prev.up):
		held := a.real.vipsOn(attrs.Name)
		if len(held) == 0 {
			if seen {
				a.log.Info("interface lost its carrier", "dev", attrs.Name, "state", state)
			}
			return
		}
		for _, h := range held {
			a.real.links.noteFailed(attrs.Name, h.group)
			err := fmt.Errorf("interface %s lost its carrier (%s): the VIP cannot be reached there", attrs.Name, state)
			a.log.Warn("carrier lost under a held VIP; failing its group here", "dev", attrs.Name, "state", state, "group", h.group, "resource", h.resource)
			select {
			case a.monitors <- monitorResult{group: h.group, resource: h.resource, err: err}:
			case <-ctx.Done():
				return
			}
		}
	case up && seen && !prev.up && !prev.initial:
		// Tell peers at once that this node is back on that link; a group
		// that moved away stays where it is (failure_timeout), and starts
		// on that interface wait CarrierSettle (carrierGate).
		a.log.Info("carrier back", "dev", attrs.Name, "state", state, "down_for", a.now().Sub(prev.since).Round(time.Millisecond).String(),
			"starts_wait", a.real.CarrierSettle.String())
		a.kick()
		if groups := a.real.links.takeFailed(attrs.Name); len(groups) > 0 {
			req := controlRequest{op: opCarrierBack, node: attrs.Name, groups: groups, reply: make(chan error, 1)}
			select {
			case a.control <- req:
			case <-ctx.Done():
			}
		}
	}
}

// opCarrierBack is the loop's internal request (never reachable through
// the control API) to forget the failures of groups that failed here only
// because an interface had no carrier (request.node is the interface).
const opCarrierBack = "carrier-back"

// forgetCarrierFailures runs on the loop goroutine when ifname's carrier
// is back: a group that failed here for want of it and runs on no live
// node now may run here again (after CarrierSettle: carrierGate), instead
// of staying down until failure_timeout ends (every node lost its carrier:
// a switch restarted). A group a live node holds stays there
// (failure_timeout, stickiness).
func (a *Agent) forgetCarrierFailures(now time.Time, ifname string, groups []string) {
	f := a.node.View.Facts(now, a.node.State)
	for _, g := range groups {
		failedAt, failed := a.node.State.Failed[g]
		if !failed {
			continue
		}
		runs := false
		if gf := f.Group(g); gf != nil {
			for _, h := range gf.Holders {
				if n := f.Node(h); n != nil && (n.Self || n.State == facts.Alive) {
					runs = true
				}
			}
		}
		if runs {
			continue
		}
		delete(a.node.State.Failed, g)
		a.record(engine.Record{At: now, Node: a.cfg.Node, Kind: engine.RecEvent, Group: g,
			Text: fmt.Sprintf("carrier back on %s: the failure of %s on %s at %s is forgotten (it runs on no live node)", ifname, g, a.cfg.Node, failedAt.UTC().Format(time.RFC3339))})
	}
}
