package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addresses of the benchmark's namespace network: the same layout for both
// daemons. lan carries the clients and the first heartbeat path, backnet the
// second path. useIPv6 (-ipv6) switches them all to 2001:db8::/32.
var (
	vipAddr      = "198.51.100.100"
	vipCIDR      = vipAddr + "/24"
	clientAddr   = "198.51.100.50"
	observerAddr = "198.51.100.51"
	lanBits      = "/24"
	ipv6         bool
)

const echoPort = 7007

var nodeNames = []string{"node1", "node2"}

var lanAddr = map[string]string{"node1": "198.51.100.1", "node2": "198.51.100.2"}
var backAddr = map[string]string{"node1": "203.0.113.1", "node2": "203.0.113.2"}

// useIPv6 makes the whole benchmark IPv6: the lan is 2001:db8::/64, the
// backnet 2001:db8:1::/64, the VIP 2001:db8::100/64; heartbeats, the
// client's probes and the observer's neighbour solicitations are IPv6.
func useIPv6() {
	ipv6 = true
	vipAddr, vipCIDR = "2001:db8::100", "2001:db8::100/64"
	clientAddr, observerAddr, lanBits = "2001:db8::50", "2001:db8::51", "/64"
	lanAddr = map[string]string{"node1": "2001:db8::1", "node2": "2001:db8::2"}
	backAddr = map[string]string{"node1": "2001:db8:1::1", "node2": "2001:db8:1::2"}
}

// topology is two HA nodes, a client and an ARP observer on a "lan" bridge,
// the two nodes also on a "backnet" bridge. Every namespace carries a random
// suffix; close deletes them all.
type topology struct {
	suffix string
	ns     map[string]string // host or bridge -> namespace name
	order  []string
	// handles are netlink sockets in the node namespaces (setLinks).
	handles map[string]*netlink.Handle
}

func newTopology(ctx context.Context) (t *topology, err error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random suffix: %w", err)
	}
	t = &topology{suffix: hex.EncodeToString(b), ns: map[string]string{}, handles: map[string]*netlink.Handle{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, name := range []string{"lan", "back", "node1", "node2", "client", "observer"} {
		ns := "hrbf-" + t.suffix + "-" + name
		if err := ipCmd(ctx, "netns", "add", ns); err != nil {
			return t, err
		}
		t.ns[name] = ns
		t.order = append(t.order, ns)
		if err := ipCmd(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return t, err
		}
		// No duplicate address detection: the lab's IPv6 addresses are
		// usable at once (harules adds its VIP with nodad anyway). And
		// IPv6 addresses stay on a link that goes down (a crash), as IPv4
		// ones do; Linux flushes them otherwise.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1").CombinedOutput(); err != nil {
			return t, fmt.Errorf("disable DAD in %s: %v: %s", ns, err, out)
		}
	}
	for _, br := range []string{"lan", "back"} {
		if err := ipCmd(ctx, "-n", t.ns[br], "link", "add", "br0", "type", "bridge"); err != nil {
			return t, err
		}
		if err := ipCmd(ctx, "-n", t.ns[br], "link", "set", "br0", "up"); err != nil {
			return t, err
		}
	}
	links := []struct{ host, bridge, ifname, cidr string }{
		{"node1", "lan", "eth0", lanAddr["node1"] + lanBits},
		{"node2", "lan", "eth0", lanAddr["node2"] + lanBits},
		{"client", "lan", "eth0", clientAddr + lanBits},
		{"observer", "lan", "eth0", observerAddr + lanBits},
		{"node1", "back", "eth1", backAddr["node1"] + lanBits},
		{"node2", "back", "eth1", backAddr["node2"] + lanBits},
	}
	for _, l := range links {
		peer := l.host + "-" + l.ifname
		if err := ipCmd(ctx, "-n", t.ns[l.host], "link", "add", l.ifname, "type", "veth", "peer", "name", peer, "netns", t.ns[l.bridge]); err != nil {
			return t, err
		}
		for _, args := range [][]string{
			{"-n", t.ns[l.bridge], "link", "set", peer, "master", "br0"},
			{"-n", t.ns[l.bridge], "link", "set", peer, "up"},
			{"-n", t.ns[l.host], "addr", "add", l.cidr, "dev", l.ifname},
			{"-n", t.ns[l.host], "link", "set", l.ifname, "up"},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return t, err
			}
		}
	}
	return t, nil
}

// setLinks brings both of a node's interfaces up or down with netlink, a
// few microseconds apart: a node crash cuts them both at once, like a power
// loss seen from the network.
func (t *topology) setLinks(_ context.Context, node string, up bool) error {
	h, ok := t.handles[node]
	if !ok {
		nsh, err := netns.GetFromName(t.ns[node])
		if err != nil {
			return fmt.Errorf("namespace of %s: %w", node, err)
		}
		defer nsh.Close()
		if h, err = netlink.NewHandleAt(nsh); err != nil {
			return fmt.Errorf("netlink in %s: %w", node, err)
		}
		t.handles[node] = h
	}
	for _, ifname := range []string{"eth0", "eth1"} {
		link, err := h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s %s: %w", node, ifname, err)
		}
		if up {
			err = h.LinkSetUp(link)
		} else {
			err = h.LinkSetDown(link)
		}
		if err != nil {
			return fmt.Errorf("%s %s up=%v: %w", node, ifname, up, err)
		}
	}
	return nil
}

// hasVIP reports whether the VIP is configured on node's eth0.
func (t *topology) hasVIP(ctx context.Context, node string) (bool, error) {
	family := "-4"
	if ipv6 {
		family = "-6"
	}
	out, err := exec.CommandContext(ctx, "ip", "-n", t.ns[node], family, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip addr show in %s: %v: %s", node, err, out)
	}
	return strings.Contains(string(out), " "+vipCIDR+" "), nil
}

// vipHolders lists the nodes that have the VIP configured.
func (t *topology) vipHolders(ctx context.Context) ([]string, error) {
	var holders []string
	for _, n := range nodeNames {
		ok, err := t.hasVIP(ctx, n)
		if err != nil {
			return nil, err
		}
		if ok {
			holders = append(holders, n)
		}
	}
	return holders, nil
}

// dropVIP removes the VIP from node, as a reboot would.
func (t *topology) dropVIP(ctx context.Context, node string) error {
	ok, err := t.hasVIP(ctx, node)
	if err != nil || !ok {
		return err
	}
	return ipCmd(ctx, "-n", t.ns[node], "addr", "del", vipCIDR, "dev", "eth0")
}

func (t *topology) close() {
	for _, h := range t.handles {
		h.Close()
	}
	for i := len(t.order) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = ipCmd(ctx, "netns", "del", t.order[i])
		cancel()
	}
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
