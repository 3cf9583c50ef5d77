package vip

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/netnstest"
)

// The IPv6 lab: two HA hosts and a client on one bridge in 2001:db8::/64.
const (
	ha1IP6    = "2001:db8::1"
	ha2IP6    = "2001:db8::2"
	clientIP6 = "2001:db8::50"
)

var testVIP6 = VIP{Address: netip.MustParsePrefix("2001:db8::100/64"), Interface: "eth0"}

func newLAN6(tb testing.TB) *lan {
	tb.Helper()
	lab := netnstest.New(tb)
	lab.Bridge("sw")
	lab.Host("ha1")
	lab.Host("ha2")
	lab.Host("cl")
	lab.Connect("ha1", "sw", "eth0", ha1IP6+"/64")
	lab.Connect("ha2", "sw", "eth0", ha2IP6+"/64")
	lab.Connect("cl", "sw", "eth0", clientIP6+"/64")
	// As in newLAN: a neighbour entry that changes during a test changed
	// because of our advertisement, never because it expired.
	lab.MustExec("cl", "sysctl", "-qw", "net.ipv6.neigh.eth0.base_reachable_time_ms=600000")
	l := &lan{lab: lab, mac1: lab.MAC("ha1", "eth0"), mac2: lab.MAC("ha2", "eth0")}
	l.m1 = newManager(tb, lab.NS("ha1"))
	l.m2 = newManager(tb, lab.NS("ha2"))
	return l
}

func addr6Lines(tb testing.TB, lab *netnstest.Lab, host, ip string) []string {
	tb.Helper()
	var lines []string
	for _, line := range strings.Split(lab.MustExec(host, "ip", "-6", "addr", "show", "dev", "eth0"), "\n") {
		if strings.Contains(line, "inet6 "+ip+"/") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

// TestIPv6AddRemoveOwned checks the IPv6 VIP life cycle: added usable at
// once (nodad, never tentative even where DAD is on), marked with
// AddrProto, idempotent, found by Owned, released by ReleaseStale, while
// an address added by someone else survives.
func TestIPv6AddRemoveOwned(t *testing.T) {
	l := newLAN6(t)
	ctx := ctxFor(t, 30*time.Second)
	vipIP := testVIP6.Address.Addr().String()
	// DAD on, as on a real host: the VIP must still not be tentative.
	l.lab.MustExec("ha1", "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1")

	for i := 0; i < 2; i++ {
		if err := l.m1.Add(ctx, testVIP6); err != nil {
			t.Fatalf("Add #%d: %v", i+1, err)
		}
	}
	lines := addr6Lines(t, l.lab, "ha1", vipIP)
	if len(lines) != 1 || !strings.Contains(lines[0], "nodad") || strings.Contains(lines[0], "tentative") {
		t.Fatalf("ha1 address lines for the VIP = %q; want one, nodad, not tentative", lines)
	}
	if ok, err := l.m1.Present(testVIP6); err != nil || !ok {
		t.Fatalf("Present = %v, %v; want true", ok, err)
	}
	if _, err := l.lab.Exec("cl", "ping", "-6", "-c1", "-W3", vipIP); err != nil {
		t.Fatalf("client cannot reach the IPv6 VIP: %v", err)
	}
	a, found, err := l.m1.findV6(0, testVIP6.Address.Addr())
	if err != nil || !found || a.proto != AddrProto || a.bits != 64 {
		t.Fatalf("kernel view of the VIP = %+v, found=%v, err=%v; want proto %#x, /64", a, found, err, AddrProto)
	}

	stale := VIP{Address: netip.MustParsePrefix("2001:db8::101/128"), Interface: "eth0"}
	if err := l.m1.Add(ctx, stale); err != nil {
		t.Fatalf("Add stale: %v", err)
	}
	// Someone else's addresses, one of them nodad as keepalived adds its
	// IPv6 VIPs: neither is harules', both must survive.
	l.lab.MustExec("ha1", "ip", "-6", "addr", "add", "2001:db8::102/64", "dev", "eth0")
	l.lab.MustExec("ha1", "ip", "-6", "addr", "add", "2001:db8::103/64", "dev", "eth0", "nodad")

	owned, err := l.m1.Owned()
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	got := map[netip.Prefix]bool{}
	for _, v := range owned {
		if v.Interface != "eth0" {
			t.Errorf("Owned returned %+v", v)
		}
		got[v.Address] = true
	}
	if len(owned) != 2 || !got[testVIP6.Address] || !got[stale.Address] {
		t.Fatalf("Owned = %v, want exactly %s and %s", owned, testVIP6.Address, stale.Address)
	}

	removed, err := l.m1.ReleaseStale(ctx, []VIP{testVIP6})
	if err != nil || len(removed) != 1 || removed[0].Address != stale.Address {
		t.Fatalf("ReleaseStale = %v, %v; want only %s", removed, err, stale.Address)
	}
	for ip, want := range map[string]int{vipIP: 1, "2001:db8::101": 0, "2001:db8::102": 1, "2001:db8::103": 1, ha1IP6: 1} {
		if got := len(addr6Lines(t, l.lab, "ha1", ip)); got != want {
			t.Errorf("after ReleaseStale, %s appears %d times on ha1, want %d", ip, got, want)
		}
	}
	if removed, err := l.m1.ReleaseStale(ctx, nil); err != nil || len(removed) != 1 || removed[0].Address != testVIP6.Address {
		t.Fatalf("ReleaseStale(nil) = %v, %v; want %s", removed, err, testVIP6.Address)
	}
	for i := 0; i < 2; i++ {
		if err := l.m1.Remove(ctx, testVIP6); err != nil {
			t.Fatalf("Remove of an absent VIP #%d: %v", i+1, err)
		}
	}
	if ok, _ := l.m1.Present(testVIP6); ok {
		t.Fatalf("VIP present after ReleaseStale and Remove")
	}
	if got := len(addr6Lines(t, l.lab, "ha1", "2001:db8::103")); got != 1 {
		t.Fatalf("someone else's nodad address removed")
	}
}

// TestIPv6MoveRepointsClient moves the IPv6 VIP from ha1 to ha2: the
// client's neighbour entry follows at once thanks to the unsolicited
// neighbour advertisement, while without it the client keeps ha1's MAC.
func TestIPv6MoveRepointsClient(t *testing.T) {
	l := newLAN6(t)
	ctx := ctxFor(t, 45*time.Second)
	vipIP := testVIP6.Address.Addr().String()
	ping := func() error { _, err := l.lab.Exec("cl", "ping", "-6", "-c1", "-W3", vipIP); return err }

	if err := l.m1.Add(ctx, testVIP6); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}
	if err := ping(); err != nil {
		t.Fatalf("client cannot ping the VIP on ha1: %v", err)
	}
	if got := l.clientNeighbour(t, vipIP); got != l.mac1.String() {
		t.Fatalf("client neighbour for VIP = %q, want ha1's %s", got, l.mac1)
	}
	if err := l.m1.Remove(ctx, testVIP6); err != nil {
		t.Fatalf("Remove on ha1: %v", err)
	}

	// Control: the address on ha2 without an announcement (the kernel sends
	// none for a nodad address): the client still sends to ha1's MAC.
	l.lab.MustExec("ha2", "ip", "-6", "addr", "add", testVIP6.Address.String(), "dev", "eth0", "nodad")
	if err := ping(); err == nil {
		t.Fatalf("control: client reached the VIP on ha2 without an announcement; the test proves nothing")
	}
	if got := l.clientNeighbour(t, vipIP); got != l.mac1.String() {
		t.Fatalf("control: client neighbour changed to %q without an announcement", got)
	}
	l.lab.MustExec("ha2", "ip", "-6", "addr", "del", testVIP6.Address.String(), "dev", "eth0")

	start := time.Now()
	if err := l.m2.Add(ctx, testVIP6); err != nil {
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
	t.Logf("measured: client IPv6 neighbour entry switched %v after Add on ha2 began", switched)
	if err := ping(); err != nil {
		t.Fatalf("client cannot ping the VIP on ha2: %v", err)
	}
}

// TestIPv6Probe checks the duplicate address probe: the holder's MAC while
// the VIP is held, a second holder found by the holder's own probe,
// nothing once free, and an error (never "free") on a down link.
func TestIPv6Probe(t *testing.T) {
	l := newLAN6(t)
	ctx := ctxFor(t, 45*time.Second)

	if err := l.m1.Add(ctx, testVIP6); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}
	owner, err := l.m2.Probe(ctx, testVIP6, 2*time.Second)
	if err != nil || !bytes.Equal(owner, l.mac1) {
		t.Fatalf("Probe on ha2 while ha1 holds the VIP = %v, %v; want ha1's %s", owner, err, l.mac1)
	}
	l.lab.MustExec("ha2", "ip", "-6", "addr", "add", testVIP6.Address.String(), "dev", "eth0", "nodad")
	owner, err = l.m1.Probe(ctx, testVIP6, 2*time.Second)
	if err != nil || !bytes.Equal(owner, l.mac2) {
		t.Fatalf("Probe on ha1 with ha2 also holding = %v, %v; want ha2's %s", owner, err, l.mac2)
	}
	l.lab.MustExec("ha2", "ip", "-6", "addr", "del", testVIP6.Address.String(), "dev", "eth0")

	if err := l.m1.Remove(ctx, testVIP6); err != nil {
		t.Fatalf("Remove on ha1: %v", err)
	}
	owner, err = l.m2.Probe(ctx, testVIP6, 500*time.Millisecond)
	if err != nil || owner != nil {
		t.Fatalf("Probe of a free VIP = %v, %v; want nil, nil", owner, err)
	}
	l.lab.SetLink("ha2", "eth0", false)
	if owner, err := l.m2.Probe(ctx, testVIP6, 300*time.Millisecond); err == nil {
		t.Fatalf("Probe on a down link returned %v, nil; want an error", owner)
	}
	if err := l.m2.Announce(ctx, testVIP6); err == nil {
		t.Fatalf("Announce on a down link succeeded")
	}
}

// TestIPv6WatchConflicts checks that the holder hears another machine
// advertising the VIP, and never reports its own advertisements.
func TestIPv6WatchConflicts(t *testing.T) {
	l := newLAN6(t)
	ctx := ctxFor(t, 45*time.Second)
	if err := l.m1.Add(ctx, testVIP6); err != nil {
		t.Fatalf("Add on ha1: %v", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	seen := make(chan net.HardwareAddr, 64)
	done := make(chan error, 1)
	go func() {
		done <- l.m1.WatchConflicts(watchCtx, testVIP6, func(mac net.HardwareAddr) {
			select {
			case seen <- mac:
			default:
			}
		})
	}()
	var first net.HardwareAddr
	for deadline := time.Now().Add(15 * time.Second); first == nil; {
		if err := l.m1.Announce(ctx, testVIP6); err != nil { // its own: never reported
			t.Fatalf("Announce on ha1: %v", err)
		}
		if err := l.m2.Announce(ctx, testVIP6); err != nil {
			t.Fatalf("Announce on ha2: %v", err)
		}
		select {
		case first = <-seen:
		case err := <-done:
			t.Fatalf("WatchConflicts ended early: %v", err)
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("WatchConflicts heard nothing while ha2 advertised the VIP")
			}
		}
	}
	if !bytes.Equal(first, l.mac2) {
		t.Fatalf("conflict reported MAC %s, want ha2's %s", first, l.mac2)
	}
	stopWatch()
	if err := <-done; err != nil {
		t.Fatalf("WatchConflicts returned %v after cancel, want nil", err)
	}
}

// TestIPv6Validate checks which IPv6 VIPs are accepted (no root needed).
func TestIPv6Validate(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"2001:db8::10/64", true},
		{"2001:db8::10/128", true},
		{"fd00::10/64", true},
		{"fe80::10/64", false},
		{"ff02::1/128", false},
		{"::/0", false},
		{"::1/128", false},
		{"::ffff:198.51.100.1/120", false},
	} {
		v := VIP{Address: netip.MustParsePrefix(tc.addr), Interface: "eth0"}
		if err := v.validate(); (err == nil) != tc.ok {
			t.Errorf("validate(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
	if sn := solicitedNode(netip.MustParseAddr("2001:db8::1:2:3")); sn != netip.MustParseAddr("ff02::1:ff02:3") {
		t.Errorf("solicitedNode = %s", sn)
	}
	if mac := multicastMAC(netip.MustParseAddr("ff02::1:ff02:3")); mac.String() != "33:33:ff:02:00:03" {
		t.Errorf("multicastMAC = %s", mac)
	}
}

// TestIPv6AddAdoptsExistingAddress: adding a VIP that is already configured
// (by hand, or by a previous holder's tool) makes it harules' (the kernel
// replaces the address protocol), so a crash afterwards cannot leave it
// behind: ReleaseStale removes it. (IPv4 keeps a foreign label instead.)
func TestIPv6AddAdoptsExistingAddress(t *testing.T) {
	l := newLAN6(t)
	ctx := ctxFor(t, 10*time.Second)
	l.lab.MustExec("ha1", "ip", "-6", "addr", "add", testVIP6.Address.String(), "dev", "eth0")
	if owned, err := l.m1.Owned(); err != nil || len(owned) != 0 {
		t.Fatalf("Owned before Add = %v, %v; want nothing (the address is not harules')", owned, err)
	}
	if err := l.m1.Add(ctx, testVIP6); err != nil {
		t.Fatalf("Add over an existing address: %v", err)
	}
	if a, found, err := l.m1.findV6(0, testVIP6.Address.Addr()); err != nil || !found || a.proto != AddrProto {
		t.Fatalf("after Add: %+v found=%v err=%v; want proto %#x", a, found, err, AddrProto)
	}
	if removed, err := l.m1.ReleaseStale(ctx, nil); err != nil || len(removed) != 1 {
		t.Fatalf("ReleaseStale(nil) = %v, %v; want the adopted VIP removed", removed, err)
	}
	if got := len(addr6Lines(t, l.lab, "ha1", testVIP6.Address.Addr().String())); got != 0 {
		t.Fatalf("adopted VIP still configured after ReleaseStale")
	}
}
