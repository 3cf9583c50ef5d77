package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// keepalivedDaemon drives keepalived (VRRPv3, unicast over lan) on both
// nodes with settings equivalent to the harules policy.
type keepalivedDaemon struct {
	topo *topology
	dir  string
	proc map[string]*proc
}

var _ daemon = (*keepalivedDaemon)(nil)

func newKeepalived(root string, topo *topology) *keepalivedDaemon {
	return &keepalivedDaemon{topo: topo, dir: root, proc: map[string]*proc{}}
}

func (k *keepalivedDaemon) Name() string { return "keepalived" }

// Home is node1: priority 150 with preemption (keepalived's default) takes
// the VIP back once node1 is up again.
func (k *keepalivedDaemon) Home() string { return "node1" }

var keepalivedPriority = map[string]int{"node1": 150, "node2": 100}

// keepalivedConfig is one node's configuration: both nodes start as BACKUP
// and elect by priority; 3 gratuitous ARPs 50 ms apart and no delayed second
// burst, as the harules VIP; unicast adverts to the peer over lan.
func keepalivedConfig(node string, interval time.Duration) string {
	peer := "node2"
	if node == "node2" {
		peer = "node1"
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version 3
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 3
    vrrp_garp_interval 0.05
    vrrp_garp_lower_prio_repeat 3
}

vrrp_instance bench {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    unicast_src_ip %s
    unicast_peer {
        %s
    }
    virtual_ipaddress {
        %s dev eth0
    }
}
`, node, keepalivedPriority[node], strconv.FormatFloat(interval.Seconds(), 'f', -1, 64), lanAddr[node], lanAddr[peer], vipCIDR)
}

func (k *keepalivedDaemon) Configure(interval time.Duration) error {
	k.dir = filepath.Join(filepath.Dir(k.dir), "keepalived-"+interval.String())
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return err
	}
	for _, node := range nodeNames {
		if err := os.WriteFile(filepath.Join(k.dir, node+".conf"), []byte(keepalivedConfig(node, interval)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (k *keepalivedDaemon) Start(_ context.Context, node string) error {
	if k.proc[node].alive() {
		return fmt.Errorf("keepalived already runs on %s", node)
	}
	base := filepath.Join(k.dir, node)
	// A killed keepalived leaves its pid files; a stale one makes the next
	// start refuse with "daemon is already running".
	for _, f := range []string{base + ".pid", base + "-vrrp.pid"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	p, err := startProc(k.topo.ns[node], base+".log", nil, "keepalived", "--dont-fork", "--log-console", "--log-detail",
		"--no-syslog", "--vrrp", "--use-file", base+".conf", "--pid", base+".pid", "--vrrp_pid", base+"-vrrp.pid")
	if err != nil {
		return err
	}
	k.proc[node] = p
	return nil
}

func (k *keepalivedDaemon) Running(node string) bool { return k.proc[node].alive() }

// KillAgent kills every keepalived process of the node with SIGKILL at once:
// keepalived has no supervisor that could clean up after it.
func (k *keepalivedDaemon) KillAgent(ctx context.Context, node string) error {
	return k.KillAll(ctx, node)
}

func (k *keepalivedDaemon) KillAll(_ context.Context, node string) error {
	p := k.proc[node]
	if !p.alive() {
		return fmt.Errorf("keepalived does not run on %s", node)
	}
	p.killGroup()
	<-p.done
	return nil
}

// Switchover stops the master gracefully (SIGTERM): it sends a priority 0
// advert and the backup takes over; keepalived has no move command.
func (k *keepalivedDaemon) Switchover(ctx context.Context, from, _ string) error {
	return k.Stop(ctx, from)
}

func (k *keepalivedDaemon) Stop(ctx context.Context, node string) error {
	p := k.proc[node]
	if !p.alive() {
		return nil
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	return p.wait(ctx, 30*time.Second)
}

// Steady needs both daemons up with their VRRP child; the VIP placement is
// checked by the caller.
func (k *keepalivedDaemon) Steady(_ context.Context, _ string) error {
	for _, node := range nodeNames {
		p := k.proc[node]
		if !p.alive() {
			return fmt.Errorf("%w: keepalived does not run on %s", errNotSteady, node)
		}
		if len(childPIDs(p.pid())) == 0 {
			return fmt.Errorf("%w: keepalived on %s has no VRRP child yet", errNotSteady, node)
		}
	}
	return nil
}

func (k *keepalivedDaemon) PIDs(node string) []int { return k.proc[node].groupPIDs() }
