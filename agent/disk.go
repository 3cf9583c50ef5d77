package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/builtins/diskhb"
	"github.com/harules/harules/policy"
)

// diskBusyGrace is how long processes holding a mount get between SIGTERM
// and SIGKILL when the disk must be released.
const diskBusyGrace = 10 * time.Second

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
		return m.Unmount(ctx, spec, disk.BusyPolicy{Kill: true, Grace: diskBusyGrace})
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < diskMinTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), diskMinTimeout)
		defer cancel()
	}
	return m.Mount(ctx, spec)
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
