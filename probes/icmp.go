package probes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ICMP socket modes.
const (
	// ICMPAuto tries the unprivileged ping socket first and falls back to a
	// raw socket.
	ICMPAuto = ""
	// ICMPUnprivileged uses a "udp4" ping socket; the kernel allows it when
	// the process's group is within net.ipv4.ping_group_range.
	ICMPUnprivileged = "udp"
	// ICMPRaw uses a raw "ip4:icmp" socket, which needs root or CAP_NET_RAW.
	ICMPRaw = "raw"
)

// DefaultICMPInterval is how often an unanswered echo request is repeated
// within one run.
const DefaultICMPInterval = 200 * time.Millisecond

// ICMPConfig configures an ICMP echo check.
type ICMPConfig struct {
	// Target is the IPv4 address to ping, typically the default gateway.
	Target string
	// Mode is ICMPAuto, ICMPUnprivileged or ICMPRaw.
	Mode string
	// Interval between retransmissions within one run (DefaultICMPInterval
	// if zero); the run lasts until a reply or the context's deadline.
	Interval time.Duration
}

// ICMPCheck pings a host without external tools. Value is the round-trip
// time in ms; Text names the socket mode used.
type ICMPCheck struct {
	target   netip.Addr
	mode     string
	interval time.Duration
}

var _ Check = (*ICMPCheck)(nil)

// NewICMP validates cfg and returns the check.
func NewICMP(cfg ICMPConfig) (*ICMPCheck, error) {
	addr, err := netip.ParseAddr(cfg.Target)
	if err != nil || !addr.Is4() {
		return nil, fmt.Errorf("icmp check: target %q must be an IPv4 address", cfg.Target)
	}
	switch cfg.Mode {
	case ICMPAuto, ICMPUnprivileged, ICMPRaw:
	default:
		return nil, fmt.Errorf("icmp check: mode %q must be %q, %q or empty (auto)", cfg.Mode, ICMPUnprivileged, ICMPRaw)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("icmp check: interval %s must not be negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultICMPInterval
	}
	return &ICMPCheck{target: addr, mode: cfg.Mode, interval: cfg.Interval}, nil
}

// listenICMP opens the socket for mode and reports which mode it used.
func listenICMP(mode string) (*icmp.PacketConn, string, error) {
	var udpErr error
	if mode != ICMPRaw {
		conn, err := icmp.ListenPacket("udp4", "0.0.0.0")
		if err == nil {
			return conn, ICMPUnprivileged, nil
		}
		if mode == ICMPUnprivileged {
			return nil, "", fmt.Errorf("unprivileged ping socket (is the group in net.ipv4.ping_group_range?): %w", err)
		}
		udpErr = err
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		if udpErr != nil {
			return nil, "", fmt.Errorf("no ICMP socket: unprivileged ping socket: %v (widen net.ipv4.ping_group_range); raw socket: %w (needs root or CAP_NET_RAW)", udpErr, err)
		}
		return nil, "", fmt.Errorf("raw ICMP socket (needs root or CAP_NET_RAW): %w", err)
	}
	return conn, ICMPRaw, nil
}

// Run sends echo requests until one is answered or ctx is done.
func (c *ICMPCheck) Run(ctx context.Context) Result {
	start := time.Now()
	conn, mode, err := listenICMP(c.mode)
	if err != nil {
		return failure(start, "icmp", err)
	}
	defer conn.Close()
	// Unblock a pending read as soon as the context ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	var dst net.Addr = &net.IPAddr{IP: c.target.AsSlice()}
	if mode == ICMPUnprivileged {
		dst = &net.UDPAddr{IP: c.target.AsSlice()}
	}
	// The payload carries a random token so that, on a raw socket that sees
	// every ICMP packet of the host, only replies to this run match. (On a
	// ping socket the kernel replaces the ID with its own and filters.)
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	id := int(binary.BigEndian.Uint16(token))
	sent := map[int]time.Time{}
	buf := make([]byte, 1500)

	for seq := 1; ; seq++ {
		if r, done := ctxErr(ctx, start); done {
			r.Err = fmt.Sprintf("no echo reply from %s after %d requests (%s socket): %s", c.target, seq-1, mode, r.Err)
			return r
		}
		payload := binary.BigEndian.AppendUint16(append([]byte(nil), token...), uint16(seq))
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		wire, err := msg.Marshal(nil)
		if err != nil {
			return failure(start, "icmp marshal", err)
		}
		sent[seq] = time.Now()
		if _, err := conn.WriteTo(wire, dst); err != nil {
			return failure(start, fmt.Sprintf("icmp send to %s (%s socket)", c.target, mode), err)
		}
		resend := time.Now().Add(c.interval)
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		if err := conn.SetReadDeadline(resend); err != nil {
			return failure(start, "icmp deadline", err)
		}
		if ctx.Err() != nil { // AfterFunc may have fired before we set the deadline
			continue
		}
		for {
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend, or give up at the top of the loop
				}
				return failure(start, "icmp receive", err)
			}
			if !c.fromTarget(peer) {
				continue
			}
			reply, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || reply.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			echo, ok := reply.Body.(*icmp.Echo)
			if !ok || len(echo.Data) != len(payload) || !bytes.Equal(echo.Data[:len(token)], token) {
				continue
			}
			if mode == ICMPRaw && echo.ID != id {
				continue
			}
			at, ok := sent[int(binary.BigEndian.Uint16(echo.Data[len(token):]))]
			if !ok {
				continue
			}
			rtt := time.Since(at)
			return Result{OK: true, Value: ms(rtt), Latency: time.Since(start),
				Values: map[string]float64{"requests": float64(seq)},
				Text:   fmt.Sprintf("echo reply from %s in %s (%s socket)", c.target, rtt.Round(time.Microsecond), mode)}
		}
	}
}

func (c *ICMPCheck) fromTarget(peer net.Addr) bool {
	var ip net.IP
	switch a := peer.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return false
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == c.target
}
