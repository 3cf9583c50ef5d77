package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/arp"

	"github.com/harules/harules/internal/netnstest"
)

// echoServer answers UDP probes on every address of a node (the VIP
// included) with the probe's sequence number and the node's index: the
// service that runs on both nodes outside HA.
type echoServer struct{ conn *net.UDPConn }

func startEcho(ns string, node byte) (*echoServer, error) {
	var conn *net.UDPConn
	err := netnstest.DoIn(ns, func() error {
		var err error
		conn, err = net.ListenUDP(udpNet(), &net.UDPAddr{Port: echoPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", ns, err)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil || n < 8 {
				continue
			}
			buf[8] = node
			_, _ = conn.WriteToUDPAddrPort(buf[:9], from)
		}
	}()
	return &echoServer{conn: conn}, nil
}

func (e *echoServer) close() { _ = e.conn.Close() }

func udpNet() string {
	if ipv6 {
		return "udp6"
	}
	return "udp4"
}

// reply is one echo answer seen by the client.
type reply struct {
	at   time.Time
	node int // index into nodeNames
}

// prober sends a UDP probe to the VIP every period from the client
// namespace and records who answered when.
type prober struct {
	conn   *net.UDPConn
	period time.Duration
	stop   chan struct{}
	done   sync.WaitGroup

	mu      sync.Mutex
	replies []reply
}

func startProber(clientNS string, period time.Duration) (*prober, error) {
	var conn *net.UDPConn
	err := netnstest.DoIn(clientNS, func() error {
		var err error
		conn, err = net.ListenUDP(udpNet(), &net.UDPAddr{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	p := &prober{conn: conn, period: period, stop: make(chan struct{})}
	dst := netip.AddrPortFrom(netip.MustParseAddr(vipAddr), echoPort)
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		buf := make([]byte, 8)
		for seq := uint64(0); ; seq++ {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			binary.BigEndian.PutUint64(buf, seq)
			_, _ = conn.WriteToUDPAddrPort(buf, dst)
		}
	}()
	go func() {
		defer p.done.Done()
		buf := make([]byte, 64)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil || n < 9 || int(buf[8]) >= len(nodeNames) {
				continue
			}
			now := time.Now()
			p.mu.Lock()
			p.replies = append(p.replies, reply{at: now, node: int(buf[8])})
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// reset forgets the replies recorded so far.
func (p *prober) reset() {
	p.mu.Lock()
	p.replies = p.replies[:0]
	p.mu.Unlock()
}

// snapshot returns a copy of the replies recorded since the last reset.
func (p *prober) snapshot() []reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]reply(nil), p.replies...)
}

func (p *prober) close() {
	close(p.stop)
	_ = p.conn.Close()
	p.done.Wait()
}

// clientGap is the client-visible interruption of a switch from node old to
// node new: the time between the last answer from old before new's first
// answer and that first answer. ok is false when the switch is not in rs.
func clientGap(rs []reply, old, new int) (gap time.Duration, firstNew time.Time, ok bool) {
	var lastOld time.Time
	for _, r := range rs {
		switch r.node {
		case old:
			lastOld = r.at
		case new:
			if lastOld.IsZero() {
				return 0, time.Time{}, false
			}
			return r.at.Sub(lastOld), r.at, true
		}
	}
	return 0, time.Time{}, false
}

// arpWatcher asks "who has the VIP" every period from the observer's
// namespace and records every MAC that answers, to catch two nodes
// answering at once (a VIP left behind by a killed daemon).
type arpWatcher struct {
	client *arp.Client
	stop   chan struct{}
	done   sync.WaitGroup

	mu      sync.Mutex
	answers []arpAnswer
}

type arpAnswer struct {
	at  time.Time
	mac string
}

func startARPWatcher(observerNS string, period time.Duration) (*arpWatcher, error) {
	var c *arp.Client
	err := netnstest.DoIn(observerNS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP socket in the observer: %w", err)
	}
	w := &arpWatcher{client: c, stop: make(chan struct{})}
	target := netip.MustParseAddr(vipAddr)
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				_ = c.Request(target)
			}
		}
	}()
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			pkt, _, err := c.Read()
			if err != nil {
				continue
			}
			if pkt.Operation != arp.OperationReply || pkt.SenderIP != target {
				continue
			}
			w.mu.Lock()
			w.answers = append(w.answers, arpAnswer{at: time.Now(), mac: pkt.SenderHardwareAddr.String()})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// macsSince returns the distinct MACs that answered for the VIP after t.
func (w *arpWatcher) macsSince(t time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	var macs []string
	for _, a := range w.answers {
		if a.at.After(t) && !seen[a.mac] {
			seen[a.mac] = true
			macs = append(macs, a.mac)
		}
	}
	return macs
}

func (w *arpWatcher) reset() {
	w.mu.Lock()
	w.answers = w.answers[:0]
	w.mu.Unlock()
}

func (w *arpWatcher) close() {
	close(w.stop)
	w.done.Wait()
	_ = w.client.Close()
}

// last returns the latest answer recorded since the last reset.
func (p *prober) last() (reply, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.replies) == 0 {
		return reply{}, false
	}
	return p.replies[len(p.replies)-1], true
}
