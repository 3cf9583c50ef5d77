// Package vip moves a virtual IPv4 or IPv6 address between machines: it adds
// and removes the address with netlink, announces it (gratuitous ARP for
// IPv4, unsolicited neighbour advertisements for IPv6) so neighbours repoint
// their caches at once, and detects other machines that answer for the same
// address (the Linux kernel does not detect duplicate IPv4 addresses, and
// IPv6 VIPs are added without duplicate address detection, so two nodes
// could otherwise both hold a VIP silently).
//
// Every IPv4 address harules adds carries a label "<ifname>:hr..." and every
// IPv6 address the address protocol AddrProto (IPv6 addresses have no
// labels), so that after a crash the agent (or its supervisor) can find and
// release addresses it left behind with Owned and ReleaseStale.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LabelTag follows "<ifname>:" in every label harules puts on an address.
const LabelTag = "hr"

// maxLabel is the longest address label Linux accepts (IFNAMSIZ - 1).
const maxLabel = 15

// Defaults for gratuitous ARP announcements.
const (
	DefaultARPCount    = 3
	DefaultARPInterval = 200 * time.Millisecond
)

// netlinkTimeout bounds each netlink request, so a wedged kernel call
// cannot hang the agent.
const netlinkTimeout = 10 * time.Second

// VIP is a virtual IPv4 or IPv6 address on one interface.
type VIP struct {
	// Address is the address with the prefix length it is added with
	// (e.g. 198.51.100.100/24, /32, or 2001:db8::10/64).
	Address netip.Prefix
	// Interface is the interface name inside the manager's namespace.
	Interface string
	// Label is the IPv4 address label; it must start with Interface+":hr".
	// Empty means DefaultLabel(Interface). IPv6 addresses have none.
	Label string
}

func (v VIP) String() string { return v.Address.String() + " dev " + v.Interface }

// DefaultLabel is the label used when a VIP names none: "<ifname>:hr".
func DefaultLabel(ifname string) string { return ifname + ":" + LabelTag }

// IsHarulesLabel reports whether label marks an address added by harules on
// interface ifname.
func IsHarulesLabel(ifname, label string) bool {
	return strings.HasPrefix(label, DefaultLabel(ifname))
}

// label returns the label to put on v, checking the kernel's rules.
func (v VIP) label() (string, error) {
	l := v.Label
	if l == "" {
		l = DefaultLabel(v.Interface)
	}
	if !IsHarulesLabel(v.Interface, l) {
		return "", fmt.Errorf("label %q must start with %q (interface name, then harules' tag)", l, DefaultLabel(v.Interface))
	}
	if len(l) > maxLabel {
		return "", fmt.Errorf("label %q is longer than %d characters (interface %q is too long to label; rename it or use a shorter interface)", l, maxLabel, v.Interface)
	}
	return l, nil
}

func (v VIP) validate() error {
	if v.Interface == "" {
		return fmt.Errorf("vip %s: no interface", v.Address)
	}
	a := v.Address.Addr()
	if !v.Address.IsValid() || a.Is4In6() || a.Zone() != "" {
		return fmt.Errorf("vip %q: not an IPv4 or IPv6 address with a prefix length", v.Address)
	}
	if a.IsUnspecified() {
		return fmt.Errorf("vip %s: unspecified address", v.Address)
	}
	if a.Is6() && (a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLoopback()) {
		return fmt.Errorf("vip %s: an IPv6 VIP must be a global (or unique local) unicast address", v.Address)
	}
	return nil
}

// is6 reports whether v is an IPv6 VIP.
func (v VIP) is6() bool { return v.Address.Addr().Is6() }

func (v VIP) ipNet() *net.IPNet { return prefixNet(v.Address.Addr(), v.Address.Bits()) }

// Holder is what failover needs to place a VIP on this node.
type Holder interface {
	Add(ctx context.Context, v VIP) error
	Remove(ctx context.Context, v VIP) error
	Present(v VIP) (bool, error)
}

// ConflictDetector finds other machines answering for a VIP.
type ConflictDetector interface {
	Probe(ctx context.Context, v VIP, timeout time.Duration) (net.HardwareAddr, error)
	WatchConflicts(ctx context.Context, v VIP, onConflict func(mac net.HardwareAddr)) error
}

var (
	_ Holder           = (*Manager)(nil)
	_ ConflictDetector = (*Manager)(nil)
)

// Options configure a Manager.
type Options struct {
	// NetNS is the name of a network namespace (as in `ip netns`); empty
	// means the namespace of the thread calling New.
	NetNS string
	// ARPCount is how many gratuitous ARP rounds Announce sends (default 3).
	ARPCount int
	// ARPInterval spaces those rounds and the probes of Probe (default 200ms).
	ARPInterval time.Duration
	// Logger receives what the manager does (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used to measure and log durations (default time.Now).
	Now func() time.Time
}

// Manager adds, removes, announces and guards VIPs in one network namespace.
// It is safe for concurrent use.
type Manager struct {
	ns     netns.NsHandle
	nl     *netlink.Handle
	count  int
	every  time.Duration
	log    *slog.Logger
	now    func() time.Time
	nsName string

	mu sync.Mutex // serialises address changes
}

// New opens a manager for the namespace named in opts. Close releases it.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		count:  opts.ARPCount,
		every:  opts.ARPInterval,
		log:    opts.Logger,
		now:    opts.Now,
		nsName: opts.NetNS,
	}
	if m.count <= 0 {
		m.count = DefaultARPCount
	}
	if m.every <= 0 {
		m.every = DefaultARPInterval
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.nsName == "" {
		m.nsName = "(current)"
	}
	m.log = m.log.With("netns", m.nsName)

	var err error
	if opts.NetNS == "" {
		m.ns, err = netns.Get()
	} else {
		m.ns, err = netns.GetFromName(opts.NetNS)
	}
	if err != nil {
		return nil, fmt.Errorf("vip: open network namespace %s: %w", m.nsName, err)
	}
	m.nl, err = netlink.NewHandleAt(m.ns, syscall.NETLINK_ROUTE)
	if err != nil {
		m.ns.Close()
		return nil, fmt.Errorf("vip: netlink in namespace %s: %w", m.nsName, err)
	}
	if err := m.nl.SetSocketTimeout(netlinkTimeout); err != nil {
		m.Close()
		return nil, fmt.Errorf("vip: netlink timeout: %w", err)
	}
	return m, nil
}

// Close releases the manager's netlink socket and namespace handle. It
// does not remove any address.
func (m *Manager) Close() error {
	m.nl.Close()
	return m.ns.Close()
}

// Add puts v on its interface (idempotently, with harules' label, or for
// IPv6 with AddrProto and nodad) and then announces it with gratuitous ARP
// or an unsolicited neighbour advertisement. Adding an address that is
// already there keeps it (its label is not changed by the kernel) and
// announces again.
func (m *Manager) Add(ctx context.Context, v VIP) error {
	if err := v.validate(); err != nil {
		return err
	}
	var label string
	if !v.is6() {
		var err error
		if label, err = v.label(); err != nil {
			return fmt.Errorf("vip %s: %w", v, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip %s: add: %w", v, err)
	}
	start := m.now()
	m.mu.Lock()
	link, err := m.nl.LinkByName(v.Interface)
	if err == nil {
		if v.is6() {
			err = m.addV6(link, v)
		} else {
			err = m.nl.AddrReplace(link, &netlink.Addr{IPNet: v.ipNet(), Label: label})
		}
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("vip %s: add address: %w", v, err)
	}
	if v.is6() {
		m.log.Info("vip added", "vip", v.Address, "dev", v.Interface, "proto", AddrProto, "nodad", true)
	} else {
		m.log.Info("vip added", "vip", v.Address, "dev", v.Interface, "label", label)
	}
	if err := m.Announce(ctx, v); err != nil {
		return fmt.Errorf("vip %s: added but not announced: %w", v, err)
	}
	m.log.Debug("vip add finished", "vip", v.Address, "took", m.now().Sub(start))
	return nil
}

// Remove takes v off its interface. Removing an address that is not there
// (or whose interface no longer exists) is not an error.
func (m *Manager) Remove(ctx context.Context, v VIP) error {
	if err := v.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip %s: remove: %w", v, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	link, err := m.nl.LinkByName(v.Interface)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			m.log.Warn("vip remove: interface does not exist, nothing to remove", "vip", v.Address, "dev", v.Interface)
			return nil
		}
		return fmt.Errorf("vip %s: remove: %w", v, err)
	}
	addr, found, err := m.find(link, v.Address.Addr())
	if err != nil {
		return fmt.Errorf("vip %s: remove: %w", v, err)
	}
	if !found {
		return nil
	}
	if v.is6() {
		// IPv6 has no primary/secondary addresses: nothing else goes with it.
		if err := m.nl.AddrDel(link, &netlink.Addr{IPNet: addr.IPNet}); err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				return nil
			}
			return fmt.Errorf("vip %s: remove address: %w", v, err)
		}
		m.log.Info("vip removed", "vip", v.Address, "dev", v.Interface)
		return nil
	}
	if err := m.protectSecondaries(link, addr); err != nil {
		return fmt.Errorf("vip %s: remove: %w", v, err)
	}
	// Delete the address exactly as the kernel has it (its prefix length
	// may differ from v's), so a stale /24 goes even when asked for a /32.
	if err := m.nl.AddrDel(link, &netlink.Addr{IPNet: addr.IPNet, Label: addr.Label}); err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil
		}
		return fmt.Errorf("vip %s: remove address: %w", v, err)
	}
	m.log.Info("vip removed", "vip", v.Address, "dev", v.Interface, "label", addr.Label)
	return nil
}

// Present reports whether v's address is on its interface (with any label).
func (m *Manager) Present(v VIP) (bool, error) {
	if err := v.validate(); err != nil {
		return false, err
	}
	link, err := m.nl.LinkByName(v.Interface)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return false, nil
		}
		return false, fmt.Errorf("vip %s: present: %w", v, err)
	}
	_, found, err := m.find(link, v.Address.Addr())
	if err != nil {
		return false, fmt.Errorf("vip %s: present: %w", v, err)
	}
	return found, nil
}

// protectSecondaries makes sure deleting victim does not take other
// addresses with it: when a primary address is deleted, Linux also deletes
// every secondary address of the same subnet unless promote_secondaries is
// set on the interface (a /24 VIP that became primary would take a second
// /24 VIP down with it). If victim is such a primary, turn the setting on
// for this interface, as NetworkManager does by default.
func (m *Manager) protectSecondaries(link netlink.Link, victim netlink.Addr) error {
	if victim.Flags&unix.IFA_F_SECONDARY != 0 {
		return nil
	}
	addrs, err := m.addrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	var secondaries []string
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_SECONDARY != 0 && victim.IPNet.Contains(a.IP) {
			secondaries = append(secondaries, a.IPNet.String())
		}
	}
	if len(secondaries) == 0 {
		return nil
	}
	name := link.Attrs().Name
	path := "/proc/sys/net/ipv4/conf/" + name + "/promote_secondaries"
	err = m.inNS(func() error {
		// /proc/sys/net resolves against the opening thread's namespace.
		cur, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == "1" {
			return nil
		}
		m.log.Warn("enabling promote_secondaries so removing a primary VIP keeps the other addresses of its subnet",
			"dev", name, "removing", victim.IPNet, "secondaries", secondaries)
		return os.WriteFile(path, []byte("1\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("enable promote_secondaries on %s: %w", name, err)
	}
	return nil
}

func (m *Manager) find(link netlink.Link, ip netip.Addr) (netlink.Addr, bool, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := m.addrList(link, family)
	if err != nil {
		return netlink.Addr{}, false, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return a, true, nil
		}
	}
	return netlink.Addr{}, false, nil
}

// Owned lists the addresses in the namespace that harules added: IPv4 ones
// with harules' label, IPv6 ones with address protocol AddrProto.
func (m *Manager) Owned() ([]VIP, error) {
	links, err := m.linkList()
	if err != nil {
		return nil, fmt.Errorf("vip: list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := m.addrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses: %w", err)
	}
	var owned []VIP
	for _, a := range addrs {
		ifname, ok := names[a.LinkIndex]
		if !ok || !IsHarulesLabel(ifname, a.Label) {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		owned = append(owned, VIP{Address: netip.PrefixFrom(ip.Unmap(), bits), Interface: ifname, Label: a.Label})
	}
	addrs6, err := m.listV6(0)
	if err != nil {
		return nil, fmt.Errorf("vip: list IPv6 addresses: %w", err)
	}
	for _, a := range addrs6 {
		ifname, ok := names[a.linkIndex]
		if !ok || a.proto != AddrProto {
			continue
		}
		owned = append(owned, VIP{Address: netip.PrefixFrom(a.ip, a.bits), Interface: ifname})
	}
	return owned, nil
}

// ReleaseStale removes every address harules added (see Owned) that is not in keep
// (matched by address and interface) and returns those it removed. The
// agent calls it at start-up, and a supervisor after the agent crashed.
func (m *Manager) ReleaseStale(ctx context.Context, keep []VIP) ([]VIP, error) {
	owned, err := m.Owned()
	if err != nil {
		return nil, err
	}
	kept := make(map[string]bool, len(keep))
	for _, k := range keep {
		kept[k.Address.Addr().String()+"%"+k.Interface] = true
	}
	var removed []VIP
	var errs []error
	for _, v := range owned {
		if kept[v.Address.Addr().String()+"%"+v.Interface] {
			continue
		}
		if err := m.Remove(ctx, v); err != nil {
			errs = append(errs, err)
			continue
		}
		m.log.Warn("released stale vip", "vip", v.Address, "dev", v.Interface, "label", v.Label)
		removed = append(removed, v)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("vip: release stale: %w", err)
	}
	return removed, nil
}

// inNS runs fn on a thread inside the manager's namespace; sockets created
// by fn stay bound to that namespace afterwards.
func (m *Manager) inNS(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(m.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", m.nsName, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Keep the thread locked so the runtime discards it rather than
		// reuse a thread stuck in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("leave namespace %s: %w", m.nsName, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// dumpRetries bounds retries of netlink dumps that a concurrent change
// interrupted (the kernel then flags the dump as inconsistent).
const dumpRetries = 5

func (m *Manager) addrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	for i := 0; ; i++ {
		addrs, err := m.nl.AddrList(link, family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return addrs, err
		}
	}
}

func (m *Manager) linkList() ([]netlink.Link, error) {
	for i := 0; ; i++ {
		links, err := m.nl.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return links, err
		}
	}
}
