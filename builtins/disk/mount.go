package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is one disk resource: the params of a policy disk(...) declaration.
type Spec struct {
	Device      string // /dev/..., UUID=... or LABEL=...
	Mountpoint  string
	FSType      string
	Options     string // fstab-style mount options
	Fsck        bool   // run fsck -a after acquiring the lease, before mounting
	LeaseDevice string // where the lease area lives; "" = the end of Device
	// Timing of the lease; zero means the manager's (ManagerConfig.Timing).
	// Every disk sharing a lease device must use the same timing.
	Timing Timing
	// Busy is what the resource's stop does with processes keeping the
	// mount busy (the policy's kill_holders and stop_grace).
	Busy BusyPolicy
}

// SpecFromParams reads a declared disk resource's params (policy.Resource.Params).
func SpecFromParams(p map[string]string) (Spec, error) {
	s := Spec{Device: p["device"], Mountpoint: p["mountpoint"], FSType: p["fstype"], Options: p["options"], LeaseDevice: p["lease_device"]}
	if s.FSType == "" {
		s.FSType = "ext4"
	}
	if v := p["fsck"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Spec{}, fmt.Errorf("disk %s: fsck=%q is not a boolean", s.Mountpoint, v)
		}
		s.Fsck = b
	}
	var err error
	if s.Timing, err = TimingFromParams(p); err != nil {
		return Spec{}, err
	}
	if s.Busy, err = busyFromParams(p); err != nil {
		return Spec{}, err
	}
	if s.Device == "" || !strings.HasPrefix(s.Mountpoint, "/") {
		return Spec{}, fmt.Errorf("disk: need a device and an absolute mountpoint, got device=%q mountpoint=%q", s.Device, s.Mountpoint)
	}
	s.Mountpoint = filepath.Clean(s.Mountpoint)
	return s, nil
}

func (s Spec) readOnly() bool {
	for _, o := range strings.Split(s.Options, ",") {
		if strings.TrimSpace(o) == "ro" {
			return true
		}
	}
	return false
}

// BusyPolicy says what Unmount does with processes that keep the mount busy.
type BusyPolicy struct {
	// Kill ends holders: SIGTERM, then SIGKILL after Grace. Without Kill,
	// Unmount fails with a *BusyError listing them.
	Kill  bool
	Grace time.Duration
}

// BusyError lists the processes that kept a mount busy.
type BusyError struct {
	Mountpoint string
	Holders    []Holder
}

func (e *BusyError) Error() string {
	parts := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		parts[i] = h.String()
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s is busy, but no process in this mount namespace uses it (a submount or another namespace?)", e.Mountpoint)
	}
	return fmt.Sprintf("%s is busy: %s", e.Mountpoint, strings.Join(parts, "; "))
}

// ManagerConfig configures a node's disk manager.
type ManagerConfig struct {
	Node        string
	Nodes       []string // all policy nodes: they fix the lease slots
	Incarnation uint64
	Timing      Timing
	Log         *slog.Logger
	Now         func() time.Time
	// Fence is called when the lease was lost and the disk could not be
	// unmounted (holders stuck in I/O): the node must stop writing some
	// other way, e.g. SysrqReboot. It returns only when it failed (a reset
	// does not return); the manager then keeps retrying the unmount and the
	// fence. nil only logs, which is unsafe.
	Fence func(reason error) error
	// Mountinfo is the mount table to read (default /proc/self/mountinfo).
	Mountinfo string
}

type managedLease struct {
	timing Timing
	lease  *Lease
	area   *Area
	mounts map[string]Spec // by mountpoint
}

// Manager mounts disk resources under on-disk leases for one node.
type Manager struct {
	cfg    ManagerConfig
	ctx    context.Context
	cancel context.CancelFunc

	op     sync.Mutex // serialises Mount/Unmount
	mu     sync.Mutex
	leases map[string]*managedLease // by resolved lease device
	hung   map[string]bool          // mountpoints with a write probe still stuck
}

// NewManager returns a manager; Close stops its lease renewers.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming()
	}
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	if _, err := SlotFor(cfg.Node, cfg.Nodes); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Mountinfo == "" {
		cfg.Mountinfo = "/proc/self/mountinfo"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, ctx: ctx, cancel: cancel, leases: map[string]*managedLease{}, hung: map[string]bool{}}, nil
}

// Close stops renewing. Held leases are not released: they expire.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ml := range m.leases {
		ml.lease.Close()
		ml.area.Close()
	}
	m.leases = map[string]*managedLease{}
}

// devices resolves the data device and the lease device of spec.
func devices(spec Spec) (dev, leaseDev string, err error) {
	if dev, err = ResolveDevice(spec.Device); err != nil {
		return "", "", err
	}
	leaseDev = dev
	if spec.LeaseDevice != "" {
		if leaseDev, err = ResolveDevice(spec.LeaseDevice); err != nil {
			return "", "", fmt.Errorf("lease device: %w", err)
		}
	}
	return dev, leaseDev, nil
}

// leaseFor opens (once) the lease of spec's lease device and starts its
// renewer. On a shared device it first proves the filesystem stops before
// the lease area.
func (m *Manager) leaseFor(ctx context.Context, spec Spec) (*managedLease, string, error) {
	dev, leaseDev, err := devices(spec)
	if err != nil {
		return nil, "", err
	}
	timing := m.timing(spec)
	m.mu.Lock()
	ml := m.leases[leaseDev]
	m.mu.Unlock()
	if ml != nil {
		if ml.timing != timing {
			return nil, "", fmt.Errorf("lease device %s is already in use with lease timing %+v; %s asks for %+v: disks sharing a lease device need the same timing", leaseDev, ml.timing, spec.Mountpoint, timing)
		}
		return ml, dev, nil
	}
	area, err := OpenArea(ctx, leaseDev)
	if err != nil {
		return nil, "", err
	}
	if leaseDev == dev {
		end, fstype, err := filesystemEnd(dev)
		if err == nil && end > area.offset {
			err = fmt.Errorf("the %s filesystem on %s ends at byte %d, inside the lease area at %d: refusing to mount it (recreate it with disk.Format or use lease_device)", fstype, dev, end, area.offset)
		}
		if err != nil {
			area.Close()
			return nil, "", err
		}
	}
	ml = &managedLease{timing: timing, area: area, mounts: map[string]Spec{}}
	ml.lease, err = NewLease(ctx, LeaseConfig{Area: area, Node: m.cfg.Node, Nodes: m.cfg.Nodes, Incarnation: m.cfg.Incarnation,
		Timing: timing, Log: m.cfg.Log, Now: m.cfg.Now, OnLost: func(reason error) { m.lost(leaseDev, reason) }})
	if err != nil {
		area.Close()
		return nil, "", err
	}
	m.mu.Lock()
	m.leases[leaseDev] = ml
	m.mu.Unlock()
	go ml.lease.Run(m.ctx)
	return ml, dev, nil
}

// timing is the lease timing of spec: its own, or the manager's.
func (m *Manager) timing(spec Spec) Timing {
	if spec.Timing != (Timing{}) {
		return spec.Timing
	}
	return m.cfg.Timing
}

// Lease returns the lease guarding spec, opening it if needed (for
// status and the operator's override).
func (m *Manager) Lease(ctx context.Context, spec Spec) (*Lease, error) {
	ml, _, err := m.leaseFor(ctx, spec)
	if err != nil {
		return nil, err
	}
	return ml.lease, nil
}

// Mount acquires the lease, runs fsck when asked, and mounts. It refuses
// with a *HeldError (wrapped) when another live node holds the lease.
func (m *Manager) Mount(ctx context.Context, spec Spec) error { return m.mount(ctx, spec, "") }

// ForceMount is Mount with an operator override of the lease (logged with
// reason): only for a holder known to be down.
func (m *Manager) ForceMount(ctx context.Context, spec Spec, reason string) error {
	if reason == "" {
		return errors.New("force mount needs a reason")
	}
	return m.mount(ctx, spec, reason)
}

func (m *Manager) mount(ctx context.Context, spec Spec, forceReason string) error {
	m.op.Lock()
	defer m.op.Unlock()
	ml, dev, err := m.leaseFor(ctx, spec)
	if err != nil {
		return fmt.Errorf("mount %s: %w", spec.Mountpoint, err)
	}
	_, mounted, err := mountedAt(m.cfg.Mountinfo, dev, spec.Mountpoint)
	if err != nil {
		return err
	}
	if forceReason != "" {
		err = ml.lease.ForceAcquire(ctx, forceReason)
	} else {
		err = ml.lease.Acquire(ctx)
	}
	if err != nil {
		var held *HeldError
		if mounted && errors.As(err, &held) {
			// Mounted here (an agent restart?) while another node holds the lease.
			m.emergencyUnmount(spec, err)
		}
		return fmt.Errorf("refusing to mount %s on %s: %w", dev, spec.Mountpoint, err)
	}
	m.mu.Lock()
	ml.mounts[spec.Mountpoint] = spec
	m.mu.Unlock()
	if mounted {
		return nil
	}
	fail := func(err error) error {
		m.mu.Lock()
		delete(ml.mounts, spec.Mountpoint)
		others := len(ml.mounts)
		m.mu.Unlock()
		if others == 0 {
			if rerr := ml.lease.Release(context.WithoutCancel(ctx)); rerr != nil {
				m.cfg.Log.Warn("release after failed mount", "err", rerr)
			}
		}
		return err
	}
	if spec.Fsck {
		// Only after the lease: checking a filesystem another node has
		// mounted would corrupt it.
		if err := fsck(ctx, dev, spec.FSType); err != nil {
			return fail(err)
		}
	}
	if err := os.MkdirAll(spec.Mountpoint, 0o755); err != nil {
		return fail(fmt.Errorf("create mountpoint: %w", err))
	}
	flags, data := mountFlags(spec.Options)
	if err := unix.Mount(dev, spec.Mountpoint, spec.FSType, flags, data); err != nil {
		return fail(fmt.Errorf("mount %s on %s (%s, %q): %w", dev, spec.Mountpoint, spec.FSType, spec.Options, err))
	}
	m.cfg.Log.Info("disk mounted", "device", dev, "mountpoint", spec.Mountpoint, "node", m.cfg.Node)
	return nil
}

// Unmount unmounts (ending or reporting busy holders per busy) and then
// releases the lease when no other mount uses it. It is idempotent. The
// lease is kept whenever the filesystem may still be mounted.
func (m *Manager) Unmount(ctx context.Context, spec Spec, busy BusyPolicy) error {
	m.op.Lock()
	defer m.op.Unlock()
	dev, leaseDev, err := devices(spec)
	if err != nil {
		// A device that cannot be found may still be mounted (it vanished).
		if entries, rerr := ReadMountinfo(m.cfg.Mountinfo); rerr == nil {
			for _, e := range entries {
				if e.Mountpoint == filepath.Clean(spec.Mountpoint) {
					return fmt.Errorf("unmount %s: %w (and something is mounted there)", spec.Mountpoint, err)
				}
			}
			return nil // nothing there: nothing to stop
		}
		return err
	}
	_, mounted, err := mountedAt(m.cfg.Mountinfo, dev, spec.Mountpoint)
	if err != nil {
		return err
	}
	if mounted {
		if err := m.umount(ctx, spec.Mountpoint, busy); err != nil {
			return err
		}
		m.cfg.Log.Info("disk unmounted", "device", dev, "mountpoint", spec.Mountpoint, "node", m.cfg.Node)
	}
	m.mu.Lock()
	ml := m.leases[leaseDev]
	m.mu.Unlock()
	if ml == nil {
		// Not mounted by this run of the agent (a restart?): clear a claim
		// an earlier run may have left, so the peer need not wait it out.
		if ml, _, err = m.leaseFor(ctx, spec); err != nil {
			m.cfg.Log.Warn("unmounted, but the lease area cannot be opened; an old claim will expire by itself", "device", leaseDev, "err", err)
			return nil
		}
	}
	m.mu.Lock()
	delete(ml.mounts, spec.Mountpoint)
	others := len(ml.mounts)
	m.mu.Unlock()
	if others > 0 {
		return nil
	}
	return ml.lease.Release(ctx)
}

func (m *Manager) umount(ctx context.Context, mp string, busy BusyPolicy) error {
	termSent, killSent := false, false
	var deadline time.Time
	for {
		err := unix.Unmount(mp, 0)
		if err == nil || errors.Is(err, unix.EINVAL) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("umount %s: %w", mp, err)
		}
		holders, herr := Holders(mp)
		if herr != nil {
			return fmt.Errorf("umount %s: busy, and listing holders failed: %w", mp, herr)
		}
		if !busy.Kill || (killSent && time.Now().After(deadline)) {
			return fmt.Errorf("umount: %w", &BusyError{Mountpoint: mp, Holders: holders})
		}
		switch {
		case !termSent:
			m.signal(holders, syscall.SIGTERM, mp)
			termSent, deadline = true, time.Now().Add(busy.Grace)
		case !killSent && (len(holders) == 0 || time.Now().After(deadline)):
			m.signal(holders, syscall.SIGKILL, mp)
			killSent, deadline = true, time.Now().Add(5*time.Second)
		case killSent:
			m.signal(holders, syscall.SIGKILL, mp)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("umount %s: %w (holders: %v)", mp, ctx.Err(), holders)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *Manager) signal(holders []Holder, sig syscall.Signal, mp string) {
	for _, h := range holders {
		m.cfg.Log.Warn("ending a process that keeps the disk busy", "mountpoint", mp, "holder", h.String(), "signal", sig.String())
		_ = syscall.Kill(h.PID, sig)
	}
}

// lost runs when a held lease ran out or was taken over: every mount under
// it must stop writing now.
func (m *Manager) lost(leaseDev string, reason error) {
	m.mu.Lock()
	var specs []Spec
	ml := m.leases[leaseDev]
	if ml != nil {
		for _, s := range ml.mounts {
			specs = append(specs, s)
		}
	}
	m.mu.Unlock()
	for _, s := range specs {
		m.emergencyUnmount(s, reason)
	}
}

// emergencyUnmount kills every holder at once and unmounts; if that fails
// the node must be fenced. A fence that fails is never taken as done: the
// unmount and the fence are retried every Renew until one works or the
// manager closes, logging UNSAFE each time.
func (m *Manager) emergencyUnmount(spec Spec, reason error) {
	m.cfg.Log.Error("lease lost while mounted: unmounting at once", "mountpoint", spec.Mountpoint, "reason", reason)
	timing := m.timing(spec)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timing.Margin/2)
		err := m.umount(ctx, spec.Mountpoint, BusyPolicy{Kill: true, Grace: 0})
		cancel()
		if err == nil {
			return
		}
		err = fmt.Errorf("lease lost (%v) and %s could not be unmounted: %w", reason, spec.Mountpoint, err)
		if m.cfg.Fence == nil {
			m.cfg.Log.Error("UNSAFE: no Fence configured; this node may still write to a disk it no longer holds", "err", err)
			return
		}
		m.cfg.Log.Error("fencing this node", "err", err)
		ferr := m.cfg.Fence(err)
		m.cfg.Log.Error("UNSAFE: self-fence failed; this node may still write to a disk it no longer holds; retrying",
			"mountpoint", spec.Mountpoint, "err", ferr, "retry_in", timing.Renew)
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(timing.Renew):
		}
	}
}

// Monitor checks that spec is mounted here under a held lease and that a
// real write+fsync completes within the I/O timeout, so a hung device is
// reported instead of waited on.
func (m *Manager) Monitor(ctx context.Context, spec Spec) error {
	dev, leaseDev, err := devices(spec)
	if err != nil {
		return err
	}
	e, mounted, err := mountedAt(m.cfg.Mountinfo, dev, spec.Mountpoint)
	if err != nil {
		return err
	}
	if !mounted {
		return fmt.Errorf("%s is not mounted on %s", dev, spec.Mountpoint)
	}
	m.mu.Lock()
	ml := m.leases[leaseDev]
	m.mu.Unlock()
	if ml == nil || !ml.lease.Held() {
		return fmt.Errorf("%s is mounted on %s but this node does not hold its lease", dev, spec.Mountpoint)
	}
	ro := strings.HasPrefix(e.Options, "ro")
	if ro && !spec.readOnly() {
		return fmt.Errorf("%s on %s is mounted read-only (remounted after I/O errors?)", dev, spec.Mountpoint)
	}
	m.mu.Lock()
	hung := m.hung[spec.Mountpoint]
	m.mu.Unlock()
	if hung {
		return fmt.Errorf("%s: an earlier write probe on %s has still not returned: the device is hung", dev, spec.Mountpoint)
	}
	ioTimeout := m.timing(spec).IOTimeout
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- probe(spec.Mountpoint, m.cfg.Node, ro) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		m.mu.Lock()
		m.hung[spec.Mountpoint] = true
		m.mu.Unlock()
		go func() {
			<-done
			m.mu.Lock()
			delete(m.hung, spec.Mountpoint)
			m.mu.Unlock()
		}()
		return fmt.Errorf("%s: write+fsync on %s did not finish within %s: the device is hung", dev, spec.Mountpoint, ioTimeout)
	}
}

// probe writes and fsyncs a small file on the mount (or, read-only, reads
// the root directory).
func probe(mp, node string, readOnly bool) error {
	if readOnly {
		_, err := os.ReadDir(mp)
		return err
	}
	path := filepath.Join(mp, ".harules-monitor-"+node)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	_, err = f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write probe %s: %w", path, err)
	}
	return nil
}
