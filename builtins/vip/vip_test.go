package vip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// lan is two HA hosts and a client on one bridge, all in 198.51.100.0/24.
type lan struct {
	lab        *netnstest.Lab
	m1, m2     *Manager
	mac1, mac2 net.HardwareAddr
}

const (
	ha1IP    = "198.51.100.1"
	ha2IP    = "198.51.100.2"
	clientIP = "198.51.100.10"
)

var testVIP = VIP{Address: netip.MustParsePrefix("198.51.100.100/24"), Interface: "eth0"}

func newLAN(tb testing.TB) *lan {
	tb.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		tb.Fatalf("vip tests need `ping`: install the Debian package iputils-ping (apt-get install -y iputils-ping): %v", err)
	}
	lab := netnstest.New(tb)
	lab.Bridge("sw")
	lab.Host("ha1")
	lab.Host("ha2")
	lab.Host("cl")
	lab.Connect("ha1", "sw", "eth0", ha1IP+"/24")
	lab.Connect("ha2", "sw", "eth0", ha2IP+"/24")
	lab.Connect("cl", "sw", "eth0", clientIP+"/24")
	// Keep the client's neighbour entries REACHABLE for 10 minutes, so an
	// entry that changes during a test changed because of our ARP, never
	// because it expired and was resolved again.
	lab.MustExec("cl", "sysctl", "-qw", "net.ipv4.neigh.eth0.base_reachable_time_ms=600000")

	l := &lan{lab: lab, mac1: lab.MAC("ha1", "eth0"), mac2: lab.MAC("ha2", "eth0")}
	l.m1 = newManager(tb, lab.NS("ha1"))
	l.m2 = newManager(tb, lab.NS("ha2"))
	return l
}

func newManager(tb testing.TB, ns string) *Manager {
	tb.Helper()
	m, err := New(Options{
		NetNS:       ns,
		ARPCount:    3,
		ARPInterval: 30 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatalf("vip.New(%s): %v", ns, err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

func ctxFor(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// clientNeighbour returns the MAC the client's `ip neigh` has for ip ("" if none).
func (l *lan) clientNeighbour(tb testing.TB, ip string) string {
	tb.Helper()
	out := l.lab.MustExec("cl", "ip", "neigh", "show", "to", ip, "dev", "eth0")
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

func (l *lan) ping(ip string) error {
	_, err := l.lab.Exec("cl", "ping", "-c1", "-W3", ip)
	return err
}

func addrLines(tb testing.TB, lab *netnstest.Lab, host, ip string) []string {
	tb.Helper()
	var lines []string
	for _, line := range strings.Split(lab.MustExec(host, "ip", "-4", "addr", "show", "dev", "eth0"), "\n") {
		if strings.Contains(line, "inet "+ip+"/") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

// TestMoveVIPRepointsClient moves the VIP from ha1 to ha2 and checks that
// the client's existing neighbour entry follows at once thanks to the
// gratuitous ARP, while without it the client keeps the stale MAC.
func TestMoveVIPRepointsClient(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 45*time.Second)
	vipIP := testVIP.Address.Addr().String()

	if err := l.m1.Add(ctx, testVIP); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}
	if ok, err := l.m1.Present(testVIP); err != nil || !ok {
		t.Fatalf("Present on ha1 = %v, %v; want true", ok, err)
	}
	if err := l.ping(vipIP); err != nil {
		t.Fatalf("client cannot ping the VIP on ha1: %v", err)
	}
	if got := l.clientNeighbour(t, vipIP); got != l.mac1.String() {
		t.Fatalf("client neighbour for VIP = %q, want ha1's %s", got, l.mac1)
	}

	if err := l.m1.Remove(ctx, testVIP); err != nil {
		t.Fatalf("Remove on ha1: %v", err)
	}
	if ok, _ := l.m1.Present(testVIP); ok {
		t.Fatalf("VIP still present on ha1 after Remove")
	}

	// Control: the address on ha2 without any announcement. The client
	// still sends to ha1's MAC and the VIP is unreachable: this is the
	// failure gratuitous ARP exists to prevent.
	l.lab.MustExec("ha2", "ip", "addr", "add", testVIP.Address.String(), "dev", "eth0")
	if err := l.ping(vipIP); err == nil {
		t.Fatalf("control: client reached the VIP on ha2 without an announcement; the test proves nothing")
	}
	if got := l.clientNeighbour(t, vipIP); got != l.mac1.String() {
		t.Fatalf("control: client neighbour changed to %q without an announcement", got)
	}
	l.lab.MustExec("ha2", "ip", "addr", "del", testVIP.Address.String(), "dev", "eth0")

	start := time.Now()
	if err := l.m2.Add(ctx, testVIP); err != nil {
		t.Fatalf("Add on ha2: %v", err)
	}
	var switched time.Duration
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got := l.clientNeighbour(t, vipIP); got == l.mac2.String() {
			switched = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client neighbour for VIP still %q 10s after Add on ha2, want %s", l.clientNeighbour(t, vipIP), l.mac2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("measured: client neighbour entry switched %v after Add on ha2 began (polling `ip neigh`, ~ms resolution)", switched)
	if err := l.ping(vipIP); err != nil {
		t.Fatalf("client cannot ping the VIP on ha2: %v", err)
	}
	if got := l.clientNeighbour(t, vipIP); got != l.mac2.String() {
		t.Fatalf("after ping, client neighbour = %q, want ha2's %s", got, l.mac2)
	}
}

// TestProbe checks RFC 5227 probing: the holder's MAC is reported while
// the VIP is held, nothing once it is free, and a holder finds a second
// holder (split brain) by probing too.
func TestProbe(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 45*time.Second)

	if err := l.m1.Add(ctx, testVIP); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}
	owner, err := l.m2.Probe(ctx, testVIP, 2*time.Second)
	if err != nil {
		t.Fatalf("Probe on ha2: %v", err)
	}
	if !bytes.Equal(owner, l.mac1) {
		t.Fatalf("Probe on ha2 while ha1 holds the VIP = %v, want ha1's %s", owner, l.mac1)
	}

	// A second holder added behind harules' back (as after a partition):
	// the holder's own probe reveals it.
	l.lab.MustExec("ha2", "ip", "addr", "add", testVIP.Address.String(), "dev", "eth0")
	owner, err = l.m1.Probe(ctx, testVIP, 2*time.Second)
	if err != nil {
		t.Fatalf("Probe on ha1: %v", err)
	}
	if !bytes.Equal(owner, l.mac2) {
		t.Fatalf("Probe on ha1 with ha2 also holding = %v, want ha2's %s", owner, l.mac2)
	}
	l.lab.MustExec("ha2", "ip", "addr", "del", testVIP.Address.String(), "dev", "eth0")

	if err := l.m1.Remove(ctx, testVIP); err != nil {
		t.Fatalf("Remove on ha1: %v", err)
	}
	owner, err = l.m2.Probe(ctx, testVIP, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("Probe of a free VIP: %v", err)
	}
	if owner != nil {
		t.Fatalf("Probe of a free VIP reported owner %s", owner)
	}
	// A probe that cannot be sent (link down) is an error, not "free".
	l.lab.SetLink("ha2", "eth0", false)
	if owner, err := l.m2.Probe(ctx, testVIP, 300*time.Millisecond); err == nil {
		t.Fatalf("Probe on a down link returned %v, nil; want an error", owner)
	}
	if err := l.m2.Announce(ctx, testVIP); err == nil {
		t.Fatalf("Announce on a down link succeeded")
	}
	l.lab.SetLink("ha2", "eth0", true)

	// A caller deadline shorter than the window is an error, not "free".
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if owner, err := l.m2.Probe(short, testVIP, 5*time.Second); err == nil {
		t.Fatalf("Probe cut short by its context returned %v, nil; want an error", owner)
	}
}

// TestAddIdempotentRemoveAbsent checks Add twice, Remove twice and the label.
func TestAddIdempotentRemoveAbsent(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 30*time.Second)
	vipIP := testVIP.Address.Addr().String()

	for i := 0; i < 2; i++ {
		if err := l.m1.Add(ctx, testVIP); err != nil {
			t.Fatalf("Add #%d: %v", i+1, err)
		}
	}
	lines := addrLines(t, l.lab, "ha1", vipIP)
	if len(lines) != 1 {
		t.Fatalf("after two Adds, `ip addr` shows %d entries for the VIP: %q", len(lines), lines)
	}
	if !strings.HasSuffix(lines[0], " eth0:hr") {
		t.Fatalf("VIP line %q lacks harules' label eth0:hr", lines[0])
	}
	for i := 0; i < 2; i++ {
		if err := l.m1.Remove(ctx, testVIP); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if lines := addrLines(t, l.lab, "ha1", vipIP); len(lines) != 0 {
		t.Fatalf("VIP still on ha1 after Remove: %q", lines)
	}
	// Asking for /32 removes the /24 the kernel holds (stale prefix).
	if err := l.m1.Add(ctx, testVIP); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := l.m1.Remove(ctx, VIP{Address: netip.MustParsePrefix(vipIP + "/32"), Interface: "eth0"}); err != nil {
		t.Fatalf("Remove /32: %v", err)
	}
	if ok, err := l.m1.Present(testVIP); err != nil || ok {
		t.Fatalf("Present after Remove /32 = %v, %v; want false", ok, err)
	}
	// An interface that does not exist holds no VIP.
	gone := VIP{Address: testVIP.Address, Interface: "nosuch0"}
	if err := l.m1.Remove(ctx, gone); err != nil {
		t.Fatalf("Remove on a missing interface: %v", err)
	}
	if err := l.m1.Add(ctx, gone); err == nil {
		t.Fatalf("Add on a missing interface succeeded")
	}
	if ok, err := l.m1.Present(gone); err != nil || ok {
		t.Fatalf("Present on a missing interface = %v, %v", ok, err)
	}
	// Host addresses were never touched.
	if lines := addrLines(t, l.lab, "ha1", ha1IP); len(lines) != 1 {
		t.Fatalf("ha1's own address disturbed: %q", lines)
	}
	// A cancelled context stops Add before anything changes.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.m1.Add(cancelled, testVIP); err == nil {
		t.Fatalf("Add with a cancelled context succeeded")
	}
	if ok, _ := l.m1.Present(testVIP); ok {
		t.Fatalf("Add with a cancelled context added the address")
	}
}

// TestRemovePrimaryKeepsOtherVIPs removes a VIP that the kernel made the
// primary address of its subnet; a second VIP of that subnet must survive
// (by default Linux deletes the secondaries along with their primary).
func TestRemovePrimaryKeepsOtherVIPs(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 30*time.Second)
	sysctl := "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"
	if got := strings.TrimSpace(l.lab.MustExec("ha1", "cat", sysctl)); got != "0" {
		t.Fatalf("promote_secondaries on a fresh interface = %q, want the kernel default 0 (test premise)", got)
	}
	// ha1's own address is in 198.51.100.0/24, so the first 203.0.113.0/24
	// VIP becomes primary and the second one its secondary.
	first := VIP{Address: netip.MustParsePrefix("203.0.113.10/24"), Interface: "eth0"}
	second := VIP{Address: netip.MustParsePrefix("203.0.113.11/24"), Interface: "eth0"}
	for _, v := range []VIP{first, second} {
		if err := l.m1.Add(ctx, v); err != nil {
			t.Fatalf("Add %v: %v", v, err)
		}
	}
	if lines := addrLines(t, l.lab, "ha1", "203.0.113.11"); len(lines) != 1 || !strings.Contains(lines[0], "secondary") {
		t.Fatalf("second VIP is not a secondary address (test premise): %q", lines)
	}
	if err := l.m1.Remove(ctx, first); err != nil {
		t.Fatalf("Remove first: %v", err)
	}
	if ok, err := l.m1.Present(first); err != nil || ok {
		t.Fatalf("first VIP Present = %v, %v after Remove", ok, err)
	}
	if ok, err := l.m1.Present(second); err != nil || !ok {
		t.Fatalf("second VIP vanished when the first (primary) was removed: Present = %v, %v", ok, err)
	}
	if got := strings.TrimSpace(l.lab.MustExec("ha1", "cat", sysctl)); got != "1" {
		t.Fatalf("promote_secondaries = %q after Remove, want 1", got)
	}
}

// TestReleaseStale checks that only harules-labelled addresses not kept go.
func TestReleaseStale(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 30*time.Second)
	keep := testVIP
	stale := VIP{Address: netip.MustParsePrefix("198.51.100.101/32"), Interface: "eth0", Label: "eth0:hrweb"}
	if err := l.m1.Add(ctx, keep); err != nil {
		t.Fatalf("Add keep: %v", err)
	}
	if err := l.m1.Add(ctx, stale); err != nil {
		t.Fatalf("Add stale: %v", err)
	}
	// Someone else's address, unlabelled: must survive.
	l.lab.MustExec("ha1", "ip", "addr", "add", "198.51.100.102/24", "dev", "eth0")

	owned, err := l.m1.Owned()
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	if len(owned) != 2 {
		t.Fatalf("Owned = %v, want the two harules addresses", owned)
	}
	for _, v := range owned {
		if v.Interface != "eth0" || !IsHarulesLabel("eth0", v.Label) {
			t.Errorf("Owned returned %+v", v)
		}
	}

	removed, err := l.m1.ReleaseStale(ctx, []VIP{keep})
	if err != nil {
		t.Fatalf("ReleaseStale: %v", err)
	}
	if len(removed) != 1 || removed[0].Address != stale.Address || removed[0].Label != "eth0:hrweb" {
		t.Fatalf("ReleaseStale removed %v, want only %v", removed, stale)
	}
	for ip, want := range map[string]int{"198.51.100.100": 1, "198.51.100.101": 0, "198.51.100.102": 1, ha1IP: 1} {
		if got := len(addrLines(t, l.lab, "ha1", ip)); got != want {
			t.Errorf("after ReleaseStale, %s appears %d times on ha1, want %d", ip, got, want)
		}
	}
	if removed, err := l.m1.ReleaseStale(ctx, []VIP{keep}); err != nil || len(removed) != 0 {
		t.Fatalf("second ReleaseStale = %v, %v; want nothing", removed, err)
	}
	// A supervisor after a crash keeps nothing: every harules address goes.
	if removed, err := l.m1.ReleaseStale(ctx, nil); err != nil || len(removed) != 1 || removed[0].Address != keep.Address {
		t.Fatalf("ReleaseStale(nil) = %v, %v; want %v", removed, err, keep)
	}
	if got := len(addrLines(t, l.lab, "ha1", "198.51.100.102")); got != 1 {
		t.Fatalf("unlabelled address removed by ReleaseStale(nil)")
	}
}

// TestWatchConflicts checks that the holder hears another machine
// announcing the VIP, and never reports its own announcements.
func TestWatchConflicts(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 45*time.Second)
	if err := l.m1.Add(ctx, testVIP); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	seen := make(chan net.HardwareAddr, 64)
	done := make(chan error, 1)
	go func() {
		done <- l.m1.WatchConflicts(watchCtx, testVIP, func(mac net.HardwareAddr) {
			select {
			case seen <- mac:
			default:
			}
		})
	}()

	// The watcher's socket opens asynchronously: announce until it hears.
	var first net.HardwareAddr
	for deadline := time.Now().Add(15 * time.Second); first == nil; {
		if err := l.m2.Announce(ctx, testVIP); err != nil {
			t.Fatalf("Announce on ha2: %v", err)
		}
		select {
		case first = <-seen:
		case err := <-done:
			t.Fatalf("WatchConflicts ended early: %v", err)
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("WatchConflicts heard nothing while ha2 announced the VIP")
			}
		}
	}
	if !bytes.Equal(first, l.mac2) {
		t.Fatalf("conflict reported MAC %s, want ha2's %s", first, l.mac2)
	}
	// Drain, then let ha1 announce itself followed by ha2 again: every
	// report must name ha2, never ha1 itself.
	time.Sleep(200 * time.Millisecond)
	for len(seen) > 0 {
		<-seen
	}
	if err := l.m1.Announce(ctx, testVIP); err != nil {
		t.Fatalf("Announce on ha1: %v", err)
	}
	if err := l.m2.Add(ctx, testVIP); err != nil { // split brain: ha2 takes it too
		t.Fatalf("Add on ha2: %v", err)
	}
	select {
	case mac := <-seen:
		if !bytes.Equal(mac, l.mac2) {
			t.Fatalf("conflict reported %s after ha1's own announcement, want ha2's %s", mac, l.mac2)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no conflict reported after ha2 added the VIP too")
	}

	stopWatch()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchConflicts returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("WatchConflicts did not return after its context was cancelled")
	}
}

// TestLabelRules checks label derivation and validation (no root needed).
func TestLabelRules(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.100/32")
	for _, tc := range []struct {
		v    VIP
		want string // "" means an error is expected
	}{
		{VIP{Address: p, Interface: "eth0"}, "eth0:hr"},
		{VIP{Address: p, Interface: "eth0", Label: "eth0:hrdb"}, "eth0:hrdb"},
		{VIP{Address: p, Interface: "eth0", Label: "eth0:web"}, ""},
		{VIP{Address: p, Interface: "eth0", Label: "eth1:hr"}, ""},
		{VIP{Address: p, Interface: "enp0s31f6long"}, ""}, // 13 + 3 > 15
		{VIP{Address: p, Interface: "enp0s31f6ab"}, "enp0s31f6ab:hr"},
	} {
		got, err := tc.v.label()
		if tc.want == "" {
			if err == nil {
				t.Errorf("label(%+v) = %q, want an error", tc.v, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("label(%+v) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
	for _, bad := range []VIP{
		{Address: netip.MustParsePrefix("fe80::1/64"), Interface: "eth0"}, // link-local: no VIP
		{Address: p},
		{Interface: "eth0"},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("validate(%+v) accepted an invalid VIP", bad)
		}
	}
}

// BenchmarkFailoverNeighbourSwitch measures the time from the start of Add
// on the new holder to the client's neighbour entry showing its MAC,
// moving the VIP back and forth. Run with:
//
//	go test -run '^$' -bench FailoverNeighbourSwitch -benchtime 20x ./builtins/vip
func BenchmarkFailoverNeighbourSwitch(b *testing.B) {
	l := newLAN(b)
	ctx := context.Background()
	vipIP := testVIP.Address.Addr()
	if err := l.m1.Add(ctx, testVIP); err != nil {
		b.Fatalf("Add: %v", err)
	}
	if err := l.ping(vipIP.String()); err != nil {
		b.Fatalf("ping VIP: %v", err)
	}
	clientNS, err := netns.GetFromName(l.lab.NS("cl"))
	if err != nil {
		b.Fatalf("client namespace: %v", err)
	}
	defer clientNS.Close()
	nl, err := netlink.NewHandleAt(clientNS)
	if err != nil {
		b.Fatalf("client netlink: %v", err)
	}
	defer nl.Close()
	link, err := nl.LinkByName("eth0")
	if err != nil {
		b.Fatalf("client eth0: %v", err)
	}
	neighbour := func() net.HardwareAddr {
		ns, err := nl.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			b.Fatalf("neigh list: %v", err)
		}
		for _, n := range ns {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == vipIP {
				return n.HardwareAddr
			}
		}
		return nil
	}

	from, to := l.m1, l.m2
	toMAC := l.mac2
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := from.Remove(ctx, testVIP); err != nil {
			b.Fatalf("Remove: %v", err)
		}
		start := time.Now()
		addErr := make(chan error, 1)
		go func() { addErr <- to.Add(ctx, testVIP) }()
		deadline := start.Add(10 * time.Second)
		for !bytes.Equal(neighbour(), toMAC) {
			if time.Now().After(deadline) {
				b.Fatalf("neighbour entry did not switch within 10s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		total += time.Since(start)
		if err := <-addErr; err != nil {
			b.Fatalf("Add: %v", err)
		}
		from, to = to, from
		if bytes.Equal(toMAC, l.mac2) {
			toMAC = l.mac1
		} else {
			toMAC = l.mac2
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/switch")
}

// TestCurrentNamespaceIsCaptured creates a manager with no NetNS from a
// thread inside ha1, then uses it from ordinary goroutines: every action
// must still happen in ha1, never in the namespace of whichever thread runs.
func TestCurrentNamespaceIsCaptured(t *testing.T) {
	l := newLAN(t)
	ctx := ctxFor(t, 30*time.Second)
	var m *Manager
	err := l.lab.Do("ha1", func() error {
		var err error
		m, err = New(Options{ARPCount: 1, ARPInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		return err
	})
	if err != nil {
		t.Fatalf("New inside ha1: %v", err)
	}
	defer m.Close()
	v := VIP{Address: netip.MustParsePrefix("198.51.100.120/32"), Interface: "eth0"}
	errs := make(chan error, 1)
	go func() { errs <- m.Add(ctx, v) }()
	if err := <-errs; err != nil {
		t.Fatalf("Add: %v", err)
	}
	if lines := addrLines(t, l.lab, "ha1", "198.51.100.120"); len(lines) != 1 {
		t.Fatalf("VIP not on ha1's eth0: %q", lines)
	}
	if owner, err := l.m2.Probe(ctx, v, 2*time.Second); err != nil || !bytes.Equal(owner, l.mac1) {
		t.Fatalf("Probe from ha2 = %v, %v; want ha1's %s", owner, err, l.mac1)
	}
	if err := m.Remove(ctx, v); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if lines := addrLines(t, l.lab, "ha1", "198.51.100.120"); len(lines) != 0 {
		t.Fatalf("VIP still on ha1 after Remove: %q", lines)
	}
}
