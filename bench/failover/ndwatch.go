package main

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/harules/harules/internal/netnstest"
)

// observer records which MACs answer for the VIP (arpWatcher for IPv4,
// ndWatcher for IPv6).
type observer interface {
	macsSince(t time.Time) []string
	reset()
	close()
}

var (
	_ observer = (*arpWatcher)(nil)
	_ observer = (*ndWatcher)(nil)
)

func startObserver(observerNS string, period time.Duration) (observer, error) {
	if ipv6 {
		return startNDWatcher(observerNS, period)
	}
	return startARPWatcher(observerNS, period)
}

// ndWatcher is arpWatcher for IPv6: it sends a neighbour solicitation for
// the VIP (from the observer's link-local address) every period and records
// the MAC of every neighbour advertisement for it.
type ndWatcher struct {
	conn *ndp.Conn
	stop chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex
	answers []arpAnswer
}

func startNDWatcher(observerNS string, period time.Duration) (*ndWatcher, error) {
	var conn *ndp.Conn
	var mac net.HardwareAddr
	err := netnstest.DoIn(observerNS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		// The link-local address appears when the link comes up.
		for deadline := time.Now().Add(5 * time.Second); ; {
			conn, _, err = ndp.Listen(ifi, ndp.LinkLocal)
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("neighbour discovery socket in the observer: %w", err)
	}
	target := netip.MustParseAddr(vipAddr)
	group, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		conn.Close()
		return nil, err
	}
	w := &ndWatcher{conn: conn, stop: make(chan struct{})}
	ns := &ndp.NeighborSolicitation{TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}}
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
				_ = conn.WriteTo(ns, nil, group)
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
			_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			msg, _, _, err := conn.ReadFrom()
			if err != nil {
				continue
			}
			na, ok := msg.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != target {
				continue
			}
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
					w.mu.Lock()
					w.answers = append(w.answers, arpAnswer{at: time.Now(), mac: lla.Addr.String()})
					w.mu.Unlock()
				}
			}
		}
	}()
	return w, nil
}

func (w *ndWatcher) macsSince(t time.Time) []string {
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

func (w *ndWatcher) reset() {
	w.mu.Lock()
	w.answers = w.answers[:0]
	w.mu.Unlock()
}

func (w *ndWatcher) close() {
	close(w.stop)
	w.done.Wait()
	_ = w.conn.Close()
}
