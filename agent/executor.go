package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/builtins/service"
	"github.com/harules/harules/builtins/vip"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Executor is the agent's real executor: it moves VIPs with netlink and
// gratuitous ARP and runs services. Disk and database resources come with
// their own issues; until then they fail with a clear error.
type Executor struct {
	node string
	log  *slog.Logger
	// ProbeTimeout bounds the ARP probe for a VIP before a takeover.
	ProbeTimeout time.Duration

	// Policy returns the running policy (backup jobs are read from it).
	Policy func() *policy.Policy

	// Incarnation identifies this run in disk lease slots.
	Incarnation uint64

	// PeerPositions returns the positions peers last reported for a
	// database (by its name), by peer; a database start refuses a server
	// behind one of them. Nil: no comparison.
	PeerPositions func(database string) map[string]engine.DBPosition
	// CarrierSettle is how long after a VIP interface's carrier came back
	// no VIP is taken over on it (link.go); links is the carrier book the
	// agent's link watcher keeps (nil: not watched).
	CarrierSettle time.Duration
	links         *carrierBook

	bk        backups
	disks     *disk.Manager
	leases    leaseWaits       // disk starts waiting for a lease (disk.go)
	now       func() time.Time // the clock of lease waits
	mu        sync.Mutex
	vips      map[string]*vip.Manager
	services  map[string]service.Runner
	announces map[netip.Prefix]context.CancelFunc
	// heldVIPs are the VIPs started or monitored here (link.go).
	heldVIPs map[netip.Prefix]heldVIP
}

var _ engine.Executor = (*Executor)(nil)

// NewExecutor returns an executor for node.
func NewExecutor(node string, log *slog.Logger) *Executor {
	return &Executor{node: node, log: log, ProbeTimeout: 100 * time.Millisecond, now: time.Now,
		vips: map[string]*vip.Manager{}, services: map[string]service.Runner{},
		announces: map[netip.Prefix]context.CancelFunc{},
		bk:        backups{stores: map[string]*backup.Store{}, running: map[string]bool{}}}
}

// ErrConflict is returned when another host already answers for a VIP.
var ErrConflict = errors.New("another host answers for the address")

// Execute performs one start or stop action.
func (e *Executor) Execute(ctx context.Context, a engine.Action) error {
	if a.Op == engine.OpFence {
		if e.Policy == nil {
			return fmt.Errorf("fence %s: no policy", a.FencePeer())
		}
		return fence(ctx, e.Policy(), a.FencePeer())
	}
	r := a.Res()
	if r == nil {
		return nil
	}
	switch r.Kind {
	case policy.KindVIP:
		if a.Op == engine.OpStop {
			m, v, err := e.vip(r)
			if err != nil {
				return err
			}
			e.stopAnnouncing(v)
			e.forgetVIP(v)
			return m.Remove(ctx, v)
		}
		return e.startVIP(ctx, r, a.Takeover, a.Group)
	case policy.KindService:
		run, err := e.service(a.Group, r)
		if err != nil {
			return err
		}
		if a.Op == engine.OpStop {
			return run.Stop(ctx)
		}
		return run.Start(ctx)
	case policy.KindDisk:
		return e.executeDisk(ctx, a.Group, r, a.Op == engine.OpStart)
	case policy.KindDatabase:
		return e.executeDatabase(ctx, r, a)
	}
	return fmt.Errorf("%s resources are not supported by the agent yet; vip, service, disk and database are", r.Kind)
}

// startVIP adds a VIP of group; a takeover first probes for another holder
// and refuses (ErrConflict, to be retried) while one answers.
func (e *Executor) startVIP(ctx context.Context, r *policy.Resource, takeover bool, group string) error {
	m, v, err := e.vip(r)
	if err != nil {
		return err
	}
	if err := e.carrierGate(m, v, takeover, group); err != nil {
		return err
	}
	if takeover {
		// RFC 5227 (IPv4) / RFC 4862 (IPv6): a previous owner that is
		// alive but cut off from us still answers ARP or neighbour
		// solicitations for the address; never add it twice.
		mac, err := m.Probe(ctx, v, e.ProbeTimeout)
		if err != nil {
			return fmt.Errorf("%s probe for %s before takeover: %w", probeKind(v), v.Address, err)
		}
		if mac != nil {
			return fmt.Errorf("%w: %s is held by %s; not taking it over (%w)", ErrConflict, v.Address, mac, engine.ErrRetry)
		}
	}
	if err := m.Add(ctx, v); err != nil {
		return err
	}
	e.noteVIP(v, group, r.ID())
	e.announceLater(r, v)
	return nil
}

func (e *Executor) policyBackup(name string) *policy.Backup {
	if e.Policy == nil {
		return nil
	}
	for _, b := range e.Policy().Backups {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Release stops a resource whatever its state (idempotent).
func (e *Executor) Release(ctx context.Context, r *policy.Resource) error {
	switch r.Kind {
	case policy.KindVIP:
		m, v, err := e.vip(r)
		if err != nil {
			return err
		}
		e.stopAnnouncing(v)
		e.forgetVIP(v)
		return m.Remove(ctx, v)
	case policy.KindService:
		run, err := e.service("", r)
		if err != nil {
			return err
		}
		return run.Stop(ctx)
	case policy.KindDisk:
		return e.executeDisk(ctx, "", r, false)
	case policy.KindDatabase:
		return e.executeDatabase(ctx, r, engine.Action{Op: engine.OpStop})
	}
	return nil
}

// ReleaseStaleVIPs removes every address carrying harules' label (IPv4)
// or address protocol (IPv6).
func (e *Executor) ReleaseStaleVIPs(ctx context.Context) error {
	m, err := e.manager(3, 200*time.Millisecond)
	if err != nil {
		return err
	}
	removed, err := m.ReleaseStale(ctx, nil)
	for _, v := range removed {
		e.log.Info("released a VIP left by a previous run", "vip", v.String())
	}
	return err
}

// Monitor checks that a held resource still works.
func (e *Executor) Monitor(ctx context.Context, group string, r *policy.Resource) error {
	switch r.Kind {
	case policy.KindVIP:
		m, v, err := e.vip(r)
		if err != nil {
			return err
		}
		ok, err := m.Present(v)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("VIP %s is no longer configured on %s", v.Address, v.Interface)
		}
		e.noteVIP(v, group, r.ID())
		// An address on an interface without carrier is configured but
		// unreachable (link.go reports the loss at once; this catches what
		// a missed notification would leave).
		up, state, err := m.Carrier(v.Interface)
		if err != nil {
			return err
		}
		if !up {
			return fmt.Errorf("interface %s has no carrier (%s): VIP %s cannot be reached there", v.Interface, state, v.Address)
		}
	case policy.KindService:
		run, err := e.service(group, r)
		if err != nil {
			return err
		}
		st, err := run.Monitor(ctx)
		if err != nil {
			return err
		}
		if st.State != service.StateRunning && st.State != service.StatePromoted {
			return fmt.Errorf("service %s is %s: %s", r.Name, st, st.Message)
		}
	case policy.KindDisk:
		return e.monitorDisk(ctx, r)
	case policy.KindDatabase:
		return e.monitorDatabase(ctx, r)
	}
	return nil
}

// Close releases sockets.
func (e *Executor) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, cancel := range e.announces {
		cancel()
	}
	for _, m := range e.vips {
		_ = m.Close()
	}
	if e.disks != nil {
		e.disks.Close()
	}
	e.leases.stop()
}

func (e *Executor) manager(count int, interval time.Duration) (*vip.Manager, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := fmt.Sprintf("%d/%s", count, interval)
	if m := e.vips[key]; m != nil {
		return m, nil
	}
	m, err := vip.New(vip.Options{ARPCount: count, ARPInterval: interval, Logger: e.log})
	if err != nil {
		return nil, err
	}
	e.vips[key] = m
	return m, nil
}

// probeKind names the duplicate-address probe used for v.
func probeKind(v vip.VIP) string {
	if v.Address.Addr().Is6() {
		return "duplicate address (neighbour solicitation)"
	}
	return "ARP"
}

// arpSettings reads a VIP's announcement count and spacing (gratuitous ARP
// rounds for IPv4, unsolicited neighbour advertisements for IPv6).
func arpSettings(r *policy.Resource) (int, time.Duration) {
	count, _ := strconv.Atoi(r.Params["arp_count"])
	interval, _ := time.ParseDuration(r.Params["arp_interval"])
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	return count, interval
}

// announceLater sends the remaining gratuitous ARP rounds in the background:
// Add already sent the first one, and waiting for the others would only
// delay the rest of the group's start.
func (e *Executor) announceLater(r *policy.Resource, v vip.VIP) {
	count, interval := arpSettings(r)
	if count <= 1 {
		return
	}
	m, err := e.manager(count-1, interval)
	if err != nil {
		e.log.Warn("cannot repeat the VIP's announcement", "vip", v.String(), "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.mu.Lock()
	if old := e.announces[v.Address]; old != nil {
		old()
	}
	e.announces[v.Address] = cancel
	e.mu.Unlock()
	go func() {
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return
		}
		if err := m.Announce(ctx, v); err != nil && ctx.Err() == nil {
			e.log.Warn("repeating the VIP's announcement failed", "vip", v.String(), "error", err)
		}
	}()
}

func (e *Executor) stopAnnouncing(v vip.VIP) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cancel := e.announces[v.Address]; cancel != nil {
		cancel()
		delete(e.announces, v.Address)
	}
}

func (e *Executor) vip(r *policy.Resource) (*vip.Manager, vip.VIP, error) {
	pfx, err := netip.ParsePrefix(r.Params["address"])
	if err != nil {
		return nil, vip.VIP{}, fmt.Errorf("vip %s: %w", r.Name, err)
	}
	// Add announces once at once; announceLater repeats.
	_, interval := arpSettings(r)
	m, err := e.manager(1, interval)
	if err != nil {
		return nil, vip.VIP{}, err
	}
	iface := r.Params["interface"]
	if iface == "" {
		if iface, err = interfaceFor(pfx); err != nil {
			return nil, vip.VIP{}, fmt.Errorf("vip %s: %w", r.Name, err)
		}
	}
	return m, vip.VIP{Address: pfx, Interface: iface}, nil
}

// interfaceFor finds the interface with an address in the VIP's subnet.
func interfaceFor(pfx netip.Prefix) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, err := netip.ParsePrefix(ipn.String())
			if err == nil && p.Masked().Contains(pfx.Addr()) && p.Addr() != pfx.Addr() {
				return ifc.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no interface has an address in %s; set vip(interface=...)", pfx.Masked())
}

func (e *Executor) service(group string, r *policy.Resource) (service.Runner, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := r.Name
	if run := e.services[key]; run != nil {
		return run, nil
	}
	spec, err := service.SpecFromParams(r.Name, r.Params)
	if err != nil {
		return nil, err
	}
	// The owner marker names cluster and node, so two clusters sharing a
	// machine (tests, labs) never take each other's processes for leftovers.
	owner := e.node
	if e.Policy != nil {
		owner = e.Policy().Cluster.Name + "." + e.node
	}
	run, err := service.New(spec, service.Options{Logger: e.log, Owner: owner})
	if err != nil {
		return nil, err
	}
	e.services[key] = run
	return run, nil
}
