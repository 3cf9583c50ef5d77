package vip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// IPv6 neighbour discovery for VIPs, the counterpart of arp.go. Frames are
// built whole (Ethernet, IPv6 header, ICMPv6) on a packet socket rather
// than sent through an ICMPv6 socket, because a duplicate address probe
// must come from the unspecified address "::", which the kernel never
// picks as a source, and because the socket needs no address on the
// interface (an ICMPv6 socket wants a usable link-local one).

// allNodes is ff02::1, where unsolicited advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

const (
	ipv6HeaderLen = 40
	protoICMPv6   = 58
	// ndHopLimit: receivers drop neighbour discovery packets with any
	// other hop limit (RFC 4861 section 7.1), proof they were not routed.
	ndHopLimit = 255
)

type ndpConn struct {
	conn *packet.Conn
	mac  net.HardwareAddr
	name string
}

// ndpPacket is a received neighbour solicitation or advertisement.
type ndpPacket struct {
	src    netip.Addr
	ethSrc net.HardwareAddr
	msg    ndp.Message
}

func (m *Manager) openNDP(ifname string) (*ndpConn, error) {
	conn, mac, err := m.openPacket(ifname, ethernet.EtherTypeIPv6)
	if err != nil {
		return nil, err
	}
	return &ndpConn{conn: conn, mac: mac, name: ifname}, nil
}

func (c *ndpConn) Close() error { return c.conn.Close() }

func (c *ndpConn) unblockOnDone(ctx context.Context) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
}

// multicastMAC is the Ethernet group address of an IPv6 multicast address
// (RFC 2464: 33:33 and its last four bytes).
func multicastMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// solicitedNode is the solicited-node multicast group of ip (ff02::1:ffXX:XXXX).
func solicitedNode(ip netip.Addr) netip.Addr {
	b := ip.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

func (c *ndpConn) send(msg ndp.Message, src, dst netip.Addr) error {
	body, err := ndp.MarshalMessageChecksum(msg, src, dst)
	if err != nil {
		return fmt.Errorf("build %v: %w", msg.Type(), err)
	}
	pkt := make([]byte, ipv6HeaderLen+len(body))
	pkt[0] = 6 << 4
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(body)))
	pkt[6] = protoICMPv6
	pkt[7] = ndHopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	copy(pkt[40:], body)
	ethDst := multicastMAC(dst)
	frame, err := (&ethernet.Frame{Destination: ethDst, Source: c.mac, EtherType: ethernet.EtherTypeIPv6, Payload: pkt}).MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal frame: %w", err)
	}
	if _, err := c.conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethDst}); err != nil {
		return fmt.Errorf("send %v on %s: %w", msg.Type(), c.name, err)
	}
	return nil
}

// read returns the next neighbour solicitation or advertisement not sent
// by this interface itself.
func (c *ndpConn) read(buf []byte) (*ndpPacket, error) {
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil || f.EtherType != ethernet.EtherTypeIPv6 || bytes.Equal(f.Source, c.mac) {
			continue
		}
		p := f.Payload
		if len(p) < ipv6HeaderLen || p[0]>>4 != 6 || p[6] != protoICMPv6 || p[7] != ndHopLimit {
			continue
		}
		plen := int(binary.BigEndian.Uint16(p[4:6]))
		if plen < 1 || ipv6HeaderLen+plen > len(p) {
			continue
		}
		icmp := p[ipv6HeaderLen : ipv6HeaderLen+plen]
		if icmp[0] != 135 && icmp[0] != 136 { // solicitation, advertisement
			continue
		}
		msg, err := ndp.ParseMessage(icmp)
		if err != nil {
			continue
		}
		src, _ := netip.AddrFromSlice(p[8:24])
		return &ndpPacket{src: src, ethSrc: append(net.HardwareAddr(nil), f.Source...), msg: msg}, nil
	}
}

// claimant returns the MAC of the machine that pkt shows answering for ip:
// an advertisement for ip (its target link-layer address, else the frame's
// source), or, when probes count, another node's duplicate address probe.
func claimant(pkt *ndpPacket, ip netip.Addr, probes bool) (mac net.HardwareAddr, competingProbe bool) {
	switch msg := pkt.msg.(type) {
	case *ndp.NeighborAdvertisement:
		if msg.TargetAddress != ip {
			return nil, false
		}
		for _, o := range msg.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && len(lla.Addr) == 6 {
				return append(net.HardwareAddr(nil), lla.Addr...), false
			}
		}
		return pkt.ethSrc, false
	case *ndp.NeighborSolicitation:
		if probes && msg.TargetAddress == ip && pkt.src.IsUnspecified() {
			return pkt.ethSrc, true
		}
	}
	return nil, false
}

// announceV6 sends ARPCount unsolicited neighbour advertisements for v to
// all nodes (ff02::1), spaced by ARPInterval, with the override flag set
// and this interface's MAC as target link-layer address: neighbours that
// have an entry for the address repoint it at once (RFC 4861 section 7.2.6).
func (m *Manager) announceV6(ctx context.Context, v VIP) error {
	c, err := m.openNDP(v.Interface)
	if err != nil {
		return fmt.Errorf("vip %s: announce: %w", v, err)
	}
	defer c.Close()
	defer c.unblockOnDone(ctx)()

	ip := v.Address.Addr()
	na := &ndp.NeighborAdvertisement{Override: true, TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: c.mac}}}
	start := m.now()
	for round := 0; round < m.count; round++ {
		if round > 0 {
			if err := sleep(ctx, m.every); err != nil {
				return fmt.Errorf("vip %s: announce round %d: %w", v, round+1, err)
			}
		}
		if err := c.send(na, ip, allNodes); err != nil {
			return fmt.Errorf("vip %s: announce: %w", v, ctxErr(ctx, err))
		}
	}
	m.log.Info("vip announced", "vip", ip, "dev", v.Interface, "mac", c.mac.String(), "rounds", m.count, "kind", "neighbour advertisement", "took", m.now().Sub(start))
	return nil
}

// probeV6 is Probe for an IPv6 VIP (see Probe).
func (m *Manager) probeV6(ctx context.Context, v VIP, timeout time.Duration) (net.HardwareAddr, error) {
	window, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := m.openNDP(v.Interface)
	if err != nil {
		return nil, fmt.Errorf("vip %s: probe: %w", v, err)
	}
	// As in Probe: closing a packet socket can take tens of milliseconds.
	defer func() { go c.Close() }()
	defer c.unblockOnDone(window)()

	ip := v.Address.Addr()
	ns := &ndp.NeighborSolicitation{TargetAddress: ip} // no source link-layer option from "::"
	sendErr := make(chan error, 1)
	go func() {
		for {
			if err := c.send(ns, netip.IPv6Unspecified(), solicitedNode(ip)); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
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
	defer cancel() // stops the sender before the deferred Close

	buf := make([]byte, 1500)
	for {
		pkt, err := c.read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				<-window.Done()
				break
			}
			return nil, fmt.Errorf("vip %s: probe: read: %w", v, err)
		}
		if owner, competing := claimant(pkt, ip, true); owner != nil {
			m.log.Warn("vip probe: address in use", "vip", ip, "dev", v.Interface, "owner", owner.String(), "competing_probe", competing)
			return owner, nil
		}
	}
	if err := <-sendErr; err != nil {
		return nil, fmt.Errorf("vip %s: probe: %w", v, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vip %s: probe cut short: %w", v, err)
	}
	m.log.Debug("vip probe: address free", "vip", ip, "dev", v.Interface)
	return nil, nil
}

// watchV6 is WatchConflicts for an IPv6 VIP.
func (m *Manager) watchV6(ctx context.Context, v VIP, onConflict func(mac net.HardwareAddr)) error {
	c, err := m.openNDP(v.Interface)
	if err != nil {
		return fmt.Errorf("vip %s: watch: %w", v, err)
	}
	defer c.Close()
	defer c.unblockOnDone(ctx)()

	ip := v.Address.Addr()
	buf := make([]byte, 1500)
	for {
		pkt, err := c.read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				<-ctx.Done()
				return nil
			}
			return fmt.Errorf("vip %s: watch: read: %w", v, err)
		}
		if mac, _ := claimant(pkt, ip, false); mac != nil {
			m.log.Warn("vip conflict: another machine advertises the address", "vip", ip, "dev", v.Interface, "other", mac)
			onConflict(mac)
		}
	}
}
