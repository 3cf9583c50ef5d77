package vip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// arpConn is a raw ARP socket bound to one interface of the namespace.
// mdlayher/arp's Client refuses interfaces without an IPv4 address and
// cannot send the 0.0.0.0 sender of an RFC 5227 probe, so frames are built
// here from arp.Packet and ethernet.Frame.
type arpConn struct {
	conn *packet.Conn
	mac  net.HardwareAddr
	name string
}

func (m *Manager) openARP(ifname string) (*arpConn, error) {
	conn, mac, err := m.openPacket(ifname, ethernet.EtherTypeARP)
	if err != nil {
		return nil, err
	}
	return &arpConn{conn: conn, mac: mac, name: ifname}, nil
}

// openPacket opens a raw packet socket for one EtherType on an Ethernet
// interface of the namespace.
func (m *Manager) openPacket(ifname string, et ethernet.EtherType) (*packet.Conn, net.HardwareAddr, error) {
	link, err := m.nl.LinkByName(ifname)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return nil, nil, fmt.Errorf("interface %s has no Ethernet address (%v): ARP and neighbour discovery impossible", ifname, attrs.HardwareAddr)
	}
	ifi := &net.Interface{Index: attrs.Index, MTU: attrs.MTU, Name: attrs.Name, HardwareAddr: attrs.HardwareAddr, Flags: attrs.Flags}
	var conn *packet.Conn
	err = m.inNS(func() error {
		var err error
		conn, err = packet.Listen(ifi, packet.Raw, int(et), nil)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("packet socket (%v) on %s: %w", et, ifname, err)
	}
	return conn, attrs.HardwareAddr, nil
}

func (c *arpConn) Close() error { return c.conn.Close() }

func (c *arpConn) send(op arp.Operation, srcIP netip.Addr, dstHW net.HardwareAddr, dstIP netip.Addr, ethDst net.HardwareAddr) error {
	p, err := arp.NewPacket(op, c.mac, srcIP, dstHW, dstIP)
	if err != nil {
		return fmt.Errorf("build ARP %v: %w", op, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal ARP: %w", err)
	}
	frame, err := (&ethernet.Frame{Destination: ethDst, Source: c.mac, EtherType: ethernet.EtherTypeARP, Payload: payload}).MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal frame: %w", err)
	}
	if _, err := c.conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethDst}); err != nil {
		return fmt.Errorf("send ARP on %s: %w", c.name, err)
	}
	return nil
}

// read returns the next ARP packet not sent by this interface itself
// (packet sockets also see outgoing frames).
func (c *arpConn) read(buf []byte) (*arp.Packet, error) {
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil || f.EtherType != ethernet.EtherTypeARP {
			continue
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			continue
		}
		if bytes.Equal(f.Source, c.mac) || bytes.Equal(p.SenderHardwareAddr, c.mac) {
			continue
		}
		return &p, nil
	}
}

// unblockOnDone makes blocked reads and writes return when ctx ends and
// applies ctx's deadline. The returned stop must be called.
func (c *arpConn) unblockOnDone(ctx context.Context) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
}

// Announce sends gratuitous ARP for v: each round is a request and a reply
// (some devices only honour one kind), ARPCount rounds spaced by
// ARPInterval. Neighbours that already have an entry for the address
// repoint it to this interface's MAC without waiting for it to expire.
//
// For an IPv6 VIP each round is one unsolicited neighbour advertisement
// instead (see announceV6).
func (m *Manager) Announce(ctx context.Context, v VIP) error {
	if err := v.validate(); err != nil {
		return err
	}
	if v.is6() {
		return m.announceV6(ctx, v)
	}
	c, err := m.openARP(v.Interface)
	if err != nil {
		return fmt.Errorf("vip %s: announce: %w", v, err)
	}
	defer c.Close()
	defer c.unblockOnDone(ctx)()

	ip := v.Address.Addr()
	start := m.now()
	for round := 0; round < m.count; round++ {
		if round > 0 {
			if err := sleep(ctx, m.every); err != nil {
				return fmt.Errorf("vip %s: announce round %d: %w", v, round+1, err)
			}
		}
		// Request form: sender and target IP are the VIP, target MAC unknown.
		if err := c.send(arp.OperationRequest, ip, zeroMAC, ip, ethernet.Broadcast); err != nil {
			return fmt.Errorf("vip %s: announce: %w", v, ctxErr(ctx, err))
		}
		// Reply form: Linux only treats a reply as gratuitous (overriding
		// a recently confirmed entry) when its target MAC equals its sender MAC.
		if err := c.send(arp.OperationReply, ip, c.mac, ip, ethernet.Broadcast); err != nil {
			return fmt.Errorf("vip %s: announce: %w", v, ctxErr(ctx, err))
		}
	}
	m.log.Info("vip announced", "vip", ip, "dev", v.Interface, "mac", c.mac.String(), "rounds", m.count, "took", m.now().Sub(start))
	return nil
}

// Probe asks, RFC 5227 style, whether any other machine answers for v: it
// sends ARP probes (sender IP 0.0.0.0, so no neighbour cache is polluted)
// every ARPInterval and listens for timeout. It returns the MAC of the
// first other machine that claims the address (a reply, an announcement,
// or a competing probe for the same address), or nil if none did.
// Use it before taking a VIP over; while holding one, it also finds a
// second holder (which answers the probe).
//
// For an IPv6 VIP the probe is a duplicate address detection neighbour
// solicitation (RFC 4862: from the unspecified address to the VIP's
// solicited-node group), and a claim is a neighbour advertisement for the
// VIP or another node's solicitation of the same kind.
func (m *Manager) Probe(ctx context.Context, v VIP, timeout time.Duration) (net.HardwareAddr, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("vip %s: probe: timeout must be positive", v)
	}
	if v.is6() {
		return m.probeV6(ctx, v, timeout)
	}
	window, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := m.openARP(v.Interface)
	if err != nil {
		return nil, fmt.Errorf("vip %s: probe: %w", v, err)
	}
	// Closing a packet socket can take tens of milliseconds (the kernel
	// waits for an RCU grace period); the takeover must not wait for it.
	defer func() { go c.Close() }()
	defer c.unblockOnDone(window)()

	ip := v.Address.Addr()
	sendErr := make(chan error, 1)
	go func() {
		for {
			if err := c.send(arp.OperationRequest, netip.IPv4Unspecified(), zeroMAC, ip, ethernet.Broadcast); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// Only window sets deadlines: the window is over.
					<-window.Done()
					err = nil
				}
				sendErr <- err
				return
			}
			if sleep(window, m.every) != nil {
				sendErr <- nil
				return
			}
		}
	}()
	defer cancel() // runs before the deferred Close: stops the sender first

	buf := make([]byte, 1500)
	for {
		p, err := c.read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Only window sets deadlines; its timer may lag the socket's.
				<-window.Done()
				break
			}
			return nil, fmt.Errorf("vip %s: probe: read: %w", v, err)
		}
		claims := p.SenderIP == ip
		competingProbe := p.Operation == arp.OperationRequest && p.SenderIP.IsUnspecified() && p.TargetIP == ip
		if claims || competingProbe {
			owner := append(net.HardwareAddr(nil), p.SenderHardwareAddr...)
			m.log.Warn("vip probe: address in use", "vip", ip, "dev", v.Interface, "owner", owner.String(), "competing_probe", competingProbe)
			return owner, nil
		}
	}
	// A probe that could not be sent proves nothing: never call that "free".
	if err := <-sendErr; err != nil {
		return nil, fmt.Errorf("vip %s: probe: %w", v, err)
	}
	// The caller's context ending before the window did means the probe
	// was cut short: that is not a clean "free".
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vip %s: probe cut short: %w", v, err)
	}
	m.log.Debug("vip probe: address free", "vip", ip, "dev", v.Interface)
	return nil, nil
}

// WatchConflicts reports, until ctx ends, every ARP packet from another MAC
// that claims v's address (replies and announcements with v as sender IP).
// onConflict runs on the watching goroutine; keep it short. It returns nil
// when ctx ends, or an error if the socket cannot be opened or read.
//
// Note: replies another holder sends to a third machine are unicast and not
// seen here; announcements (which Add sends) are broadcast and are. To look
// actively, call Probe while holding the VIP: a second holder answers it.
//
// For an IPv6 VIP it reports neighbour advertisements for v's address from
// another MAC.
func (m *Manager) WatchConflicts(ctx context.Context, v VIP, onConflict func(mac net.HardwareAddr)) error {
	if err := v.validate(); err != nil {
		return err
	}
	if v.is6() {
		return m.watchV6(ctx, v, onConflict)
	}
	c, err := m.openARP(v.Interface)
	if err != nil {
		return fmt.Errorf("vip %s: watch: %w", v, err)
	}
	defer c.Close()
	defer c.unblockOnDone(ctx)()

	ip := v.Address.Addr()
	buf := make([]byte, 1500)
	for {
		p, err := c.read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Only ctx sets deadlines; its timer may lag the socket's.
				<-ctx.Done()
				return nil
			}
			return fmt.Errorf("vip %s: watch: read: %w", v, err)
		}
		if p.SenderIP != ip {
			continue
		}
		mac := append(net.HardwareAddr(nil), p.SenderHardwareAddr...)
		m.log.Warn("vip conflict: another machine claims the address", "vip", ip, "dev", v.Interface, "other", mac, "op", p.Operation)
		onConflict(mac)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ctxErr prefers the context's error over the socket timeout it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
