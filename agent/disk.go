package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/builtins/diskhb"
	"github.com/harules/harules/policy"
)

// diskMinTimeout is the least time a mount gets: acquiring the lease waits
// for a settle period and a few I/O timeouts.
const diskMinTimeout = 15 * time.Second

// diskManager returns the node's disk lease manager, created on first use.
func (e *Executor) diskManager() (*disk.Manager, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.disks != nil {
		return e.disks, nil
	}
	var nodes []string
	if e.Policy != nil {
		for _, n := range e.Policy().Nodes {
			nodes = append(nodes, n.Name)
		}
	}
	if len(nodes) == 0 {
		nodes = []string{e.node}
	}
	m, err := disk.NewManager(disk.ManagerConfig{Node: e.node, Nodes: nodes, Incarnation: e.Incarnation, Log: e.log,
		// A node that lost its lease and cannot unmount must stop writing:
		// rebooting is the only way left, as with SBD.
		Fence: disk.SysrqReboot})
	if err != nil {
		return nil, fmt.Errorf("disk lease manager: %w", err)
	}
	e.disks = m
	return m, nil
}

func (e *Executor) executeDisk(ctx context.Context, r *policy.Resource, start bool) error {
	spec, err := disk.SpecFromParams(r.Params)
	if err != nil {
		return fmt.Errorf("disk %s: %w", r.Name, err)
	}
	m, err := e.diskManager()
	if err != nil {
		return err
	}
	if !start {
		return m.Unmount(ctx, spec, spec.Busy)
	}
	// A takeover may have to wait out the dead holder's lease.
	t := spec.Timing
	need := max(diskMinTimeout, t.TakeoverWait()+t.Renew+4*t.IOTimeout+t.Settle)
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < need {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), need)
		defer cancel()
	}
	return e.mountAfterLease(ctx, m, spec)
}

// mountAfterLease mounts once no other node's lease claim is live. After a
// crash the holder was declared dead, but its lease is only safe to take
// once its slot has stayed unchanged for the takeover wait (lease +
// margin); failing at once would mark the group failed here for the
// failure timeout and leave it running nowhere, so the start waits for the
// lease to expire. A holder whose slot changes while we wait is alive
// (only the network to it is gone): the start fails at once with the lease
// error, and nothing is mounted.
func (e *Executor) mountAfterLease(ctx context.Context, m *disk.Manager, spec disk.Spec) error {
	var prev *disk.HeldError
	var prevSince time.Time // when this node first saw the holder's current slot value
	for {
		err := m.Mount(ctx, spec)
		var held *disk.HeldError
		if err == nil || !errors.As(err, &held) {
			return err
		}
		since := time.Now().Add(-held.Unchanged)
		// The same slot value gives the same instant, up to the time Mount
		// took to return; a new value was first seen after the last try.
		if prev != nil && (held.Holder != prev.Holder || since.Sub(prevSince) > 20*time.Millisecond) {
			return fmt.Errorf("%w; node %q wrote its lease slot while this node waited for the lease to expire: it is alive, so the disk stays where it is", err, held.Holder)
		}
		if prev == nil {
			e.log.Warn("disk start: waiting for the lease of a holder that stopped renewing to expire before mounting",
				"mountpoint", spec.Mountpoint, "holder", held.Holder, "remaining", held.Remaining.Round(time.Millisecond))
			prev, prevSince = held, since
		}
		// Re-read at least every renewal period: a live holder shows itself.
		wait := min(held.Remaining, spec.Timing.Renew) + time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (e *Executor) monitorDisk(ctx context.Context, r *policy.Resource) error {
	spec, err := disk.SpecFromParams(r.Params)
	if err != nil {
		return err
	}
	m, err := e.diskManager()
	if err != nil {
		return err
	}
	return m.Monitor(ctx, spec)
}

// diskBeat is a peer's slot seen advancing on a shared-disk heartbeat path.
type diskBeat struct {
	peer, path string
	at         time.Time
}

// startDiskHeartbeat runs a heartbeat path over a shared disk: each node
// writes its own slot of the device's lease area every interval and reads
// the others'. It plugs into the same failure detector as the UDP paths, so
// "check the second heartbeat before taking over" holds when the network
// between the nodes is cut but the disk is still shared.
func (a *Agent) startDiskHeartbeat(ctx context.Context, h *policy.HeartbeatPath, incarnation uint64) error {
	area, err := disk.OpenArea(ctx, h.Device)
	if err != nil {
		return fmt.Errorf("disk heartbeat path %s on %s: %w (create the lease area first; see builtins/disk)", h.Name, h.Device, err)
	}
	hb, err := diskhb.New(diskhb.Config{Area: area, Node: a.cfg.Node, Nodes: a.policy.NodeNames(), Interval: h.Interval,
		Misses: h.Misses, Incarnation: incarnation, Now: a.now, Log: a.log,
		OnBeat: func(peer string, at time.Time) {
			select {
			case a.diskBeats <- diskBeat{peer: peer, path: h.Name, at: at}:
			default: // the loop is busy; the next beat carries the same news
			}
		}})
	if err != nil {
		return fmt.Errorf("disk heartbeat path %s: %w", h.Name, err)
	}
	go hb.Run(ctx)
	return nil
}
