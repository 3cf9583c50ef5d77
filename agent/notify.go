package agent

import (
	"context"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/notify"
	"github.com/harules/harules/probes"
)

// notifyCloseTimeout bounds how long a stopping agent keeps delivering the
// notifications still queued (the handover's own events among them).
const notifyCloseTimeout = 3 * time.Second

// notifyHook feeds the agent's records to the policy's notifiers.
type notifyHook struct {
	d *notify.Dispatcher
	// probes is each probe's last state, so only a change is recorded.
	probes map[string]probes.State
}

// startNotify starts delivering notifications; records made before it
// (none that matter: the agent has not decided yet) are not sent.
func (a *Agent) startNotify(incarnation uint64) {
	a.notify.probes = map[string]probes.State{}
	a.notify.d = notify.New(notify.Config{Policy: a.policy, Node: a.cfg.Node, Incarnation: incarnation, Logger: a.log})
}

// stopNotify delivers what is queued, for a bounded time.
func (a *Agent) stopNotify() {
	if a.notify.d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyCloseTimeout)
	defer cancel()
	if err := a.notify.d.Close(ctx); err != nil {
		a.log.Warn("stopping with notifications undelivered", "error", err)
	}
}

// notifyRecord hands a record to the notifiers. It is called from the
// agent loop and from backup goroutines; the dispatcher only queues.
func (a *Agent) notifyRecord(r engine.Record) {
	if d := a.notify.d; d != nil {
		d.Record(r)
	}
}

// notifyPolicy applies a reloaded policy's notifiers.
func (a *Agent) notifyPolicy() {
	if a.notify.d != nil {
		a.notify.d.SetPolicy(a.policy)
	}
}

// notifyStats are the notifiers' counters for the status and metrics.
func (a *Agent) notifyStats() []notify.Stats {
	if a.notify.d == nil {
		return nil
	}
	return a.notify.d.Stats()
}

// recordProbe keeps a record when a probe turns failing or recovers from
// failing; it shows on the timeline and becomes a probe-failed or
// probe-recovered notification.
func (a *Agent) recordProbe(f probes.Fact) {
	prev, seen := a.notify.probes[f.Name]
	a.notify.probes[f.Name] = f.State
	if seen && prev == f.State {
		return
	}
	detail := f.Last.Text
	if f.Last.Err != "" {
		detail = f.Last.Err
	}
	switch {
	case f.State == probes.StateFailing:
		a.record(notify.ProbeRecord(a.now(), a.cfg.Node, f.Name, true, detail))
	case f.State == probes.StateOK && prev == probes.StateFailing:
		a.record(notify.ProbeRecord(a.now(), a.cfg.Node, f.Name, false, detail))
	}
}
