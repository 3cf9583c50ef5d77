package probes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// ARPConfig configures an ARP reachability check.
type ARPConfig struct {
	// Target is the IPv4 address to resolve; it must be on a subnet directly
	// attached to Interface.
	Target string
	// Interface to send on; empty means the interface with an IPv4 subnet
	// containing Target (looked up at every run, so it may appear later).
	Interface string
	// Interval between retransmitted requests (DefaultICMPInterval if zero).
	Interval time.Duration
}

// ARPCheck passes when Target answers an ARP request: proof that a
// same-subnet gateway is alive at layer 2 even if it drops ICMP. Value is
// the response time in ms, Text the MAC address.
type ARPCheck struct {
	target   netip.Addr
	ifname   string
	interval time.Duration
}

var _ Check = (*ARPCheck)(nil)

// NewARP validates cfg and returns the check.
func NewARP(cfg ARPConfig) (*ARPCheck, error) {
	addr, err := netip.ParseAddr(cfg.Target)
	if err != nil || !addr.Is4() {
		return nil, fmt.Errorf("arp check: target %q must be an IPv4 address", cfg.Target)
	}
	if len(cfg.Interface) > 15 {
		return nil, fmt.Errorf("arp check: interface name %q is longer than 15 characters", cfg.Interface)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("arp check: interval %s must not be negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultICMPInterval
	}
	return &ARPCheck{target: addr, ifname: cfg.Interface, interval: cfg.Interval}, nil
}

// route finds the interface and the source address to use for the request.
func (c *ARPCheck) route() (*net.Interface, netip.Addr, error) {
	var ifaces []net.Interface
	if c.ifname != "" {
		ifi, err := net.InterfaceByName(c.ifname)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("interface %s: %w", c.ifname, err)
		}
		ifaces = []net.Interface{*ifi}
	} else {
		var err error
		if ifaces, err = net.Interfaces(); err != nil {
			return nil, netip.Addr{}, fmt.Errorf("listing interfaces: %w", err)
		}
	}
	for i := range ifaces {
		ifi := &ifaces[i]
		if ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().Is4() {
				continue
			}
			if p.Contains(c.target) {
				if ifi.Flags&net.FlagUp == 0 {
					return nil, netip.Addr{}, fmt.Errorf("interface %s for %s is down", ifi.Name, c.target)
				}
				return ifi, p.Addr(), nil
			}
		}
	}
	if c.ifname != "" {
		return nil, netip.Addr{}, fmt.Errorf("interface %s has no IPv4 subnet containing %s", c.ifname, c.target)
	}
	return nil, netip.Addr{}, fmt.Errorf("no interface has an IPv4 subnet containing %s (ARP only reaches the local subnet)", c.target)
}

// Run broadcasts ARP requests until Target answers or ctx is done.
func (c *ARPCheck) Run(ctx context.Context) Result {
	start := time.Now()
	ifi, src, err := c.route()
	if err != nil {
		return failure(start, "arp", err)
	}
	client, err := arp.Dial(ifi)
	if err != nil {
		return failure(start, "arp socket on "+ifi.Name+" (needs root or CAP_NET_RAW)", err)
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { _ = client.SetReadDeadline(time.Now()) })
	defer stop()

	// Build the request ourselves: arp.Client would use the interface's
	// first IPv4 address as sender, which may be on another subnet.
	req, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, src, ethernet.Broadcast, c.target)
	if err != nil {
		return failure(start, "arp packet", err)
	}
	for sent := 0; ; sent++ {
		if r, done := ctxErr(ctx, start); done {
			r.Err = fmt.Sprintf("no ARP reply from %s on %s after %d requests: %s", c.target, ifi.Name, sent, r.Err)
			return r
		}
		if err := client.WriteTo(req, ethernet.Broadcast); err != nil {
			return failure(start, "arp send on "+ifi.Name, err)
		}
		resend := time.Now().Add(c.interval)
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		if err := client.SetReadDeadline(resend); err != nil {
			return failure(start, "arp deadline", err)
		}
		if ctx.Err() != nil {
			continue
		}
		for {
			pkt, _, err := client.Read()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				var oe *net.OpError
				if errors.As(err, &oe) || errors.Is(err, net.ErrClosed) {
					return failure(start, "arp receive on "+ifi.Name, err)
				}
				continue // a malformed frame on the wire is not our failure
			}
			if pkt.Operation != arp.OperationReply || pkt.SenderIP != c.target {
				continue
			}
			lat := time.Since(start)
			return Result{OK: true, Value: ms(lat), Latency: lat,
				Text: fmt.Sprintf("%s is at %s on %s", c.target, pkt.SenderHardwareAddr, ifi.Name)}
		}
	}
}
