package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/harules/harules/builtins/vip"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// What really runs beats bookkeeping. Every monitor tick, and after every
// job that failed, the agent compares the harules-labelled VIPs configured
// on this node with the groups it holds (a start or stop in flight counts
// as held) and removes the ones no held group uses: a VIP left behind by a
// failed start whose rollback could not run, by an operator, or by a run
// whose bookkeeping was lost. A client must never reach a node that does
// not hold the group.

// reconcileTimeout bounds one reconcile pass: it runs on the loop (its
// reads and writes are netlink calls of a millisecond), so the view it
// compares with cannot change under it.
const reconcileTimeout = 500 * time.Millisecond

// reconcile removes the labelled VIPs that no held group uses. In
// maintenance nothing is touched (unmanaged).
func (a *Agent) reconcile(ctx context.Context) {
	if a.real == nil || a.node.State.Maintenance {
		return
	}
	var keep []*policy.Resource
	for _, g := range a.node.State.HeldGroups() {
		if grp := a.policy.Group(g); grp != nil {
			for _, r := range grp.Resources {
				if r.Kind == policy.KindVIP {
					keep = append(keep, r)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	removed, err := a.real.ReconcileVIPs(ctx, keep)
	now := a.now()
	for _, v := range removed {
		a.record(engine.Record{At: now, Node: a.cfg.Node, Kind: engine.RecAction, Op: engine.OpStop, Resource: "vip:" + v.Address.Addr().String(),
			Text:   fmt.Sprintf("stop vip:%s: removed %s from %s", v.Address.Addr(), v.Address, v.Interface),
			Reason: "reconcile: the address carries harules' label but no group held here uses it"})
	}
	if err != nil {
		a.log.Warn("reconcile: could not compare or remove VIPs", "error", err)
	}
}

// ReconcileVIPs removes every harules-labelled address that is not one of
// keep's VIPs and returns those it removed. When a kept VIP cannot be
// resolved (its interface is gone) nothing is removed: better a stale
// address for one more pass than a held one removed.
func (e *Executor) ReconcileVIPs(ctx context.Context, keep []*policy.Resource) ([]vip.VIP, error) {
	var kept []vip.VIP
	for _, r := range keep {
		_, v, err := e.vip(r)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", r.ID(), err)
		}
		kept = append(kept, v)
	}
	m, err := e.manager(3, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	removed, err := m.ReleaseStale(ctx, kept)
	for _, v := range removed {
		e.stopAnnouncing(v)
	}
	return removed, err
}
