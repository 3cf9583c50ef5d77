package clustertest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ARPReply is one ARP packet in which a host claims the VIP.
type ARPReply struct {
	At    time.Time
	MAC   string
	Node  string // node owning MAC, or "?" for an unknown host
	Round int    // the who-has round it answered (0 for unsolicited)
	// Gratuitous is an unsolicited announcement (a request with the VIP
	// as sender), not a reply to the watcher.
	Gratuitous bool
}

// ARPReport is what an ARPWatcher saw.
type ARPReport struct {
	Rounds  int
	Replies []ARPReply
	// DualRounds are who-has rounds answered by two or more MACs: two
	// hosts held the VIP at the same moment.
	DualRounds []int
}

// Dual reports whether any round was answered by two hosts.
func (r ARPReport) Dual() bool { return len(r.DualRounds) > 0 }

// Answered counts the rounds that got at least one reply.
func (r ARPReport) Answered() int {
	rounds := map[int]bool{}
	for _, x := range r.Replies {
		if x.Round > 0 {
			rounds[x.Round] = true
		}
	}
	return len(rounds)
}

// Claimers counts replies and announcements per node.
func (r ARPReport) Claimers() map[string]int {
	m := map[string]int{}
	for _, x := range r.Replies {
		m[x.Node]++
	}
	return m
}

func (r ARPReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d who-has rounds, claims per node %v, dual rounds %v", r.Rounds, r.Claimers(), r.DualRounds)
	for _, round := range r.DualRounds {
		for _, x := range r.Replies {
			if x.Round == round {
				fmt.Fprintf(&b, "\n  round %d: %s from %s (%s)", round, x.At.Format("15:04:05.000"), x.Node, x.MAC)
			}
		}
	}
	return b.String()
}

// ARPWatcher broadcasts "who-has VIP" on the lan every interval and
// records every host that claims the VIP (replies and gratuitous ARP).
//
// Each round asks from another sender address of a pool (RoundPoolBase +
// round mod 32, all unused in the lab), so a reply names the round it
// answers: two MACs in one round means two hosts held the VIP when that
// request went out, however late the test process reads the replies.
type ARPWatcher struct {
	cl    *arp.Client
	macs  map[string]string
	mu    sync.Mutex
	round int
	rep   ARPReport
	stop  chan struct{}
	done  chan struct{}
}

// RoundPoolBase is the first of the 32 addresses the ARPWatcher asks from
// (198.51.100.200 - .231).
const RoundPoolBase = 200

const roundSlots = 32

func slotAddr(slot int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(RoundPoolBase + slot)})
}

// roundSlot tells whether pkt is a reply to a watcher round, and its slot.
func roundSlot(pkt *arp.Packet) (int, bool) {
	if pkt.Operation != arp.OperationReply || !pkt.TargetIP.Is4() {
		return 0, false
	}
	b := pkt.TargetIP.As4()
	if b[0] != 198 || b[1] != 51 || b[2] != 100 || int(b[3]) < RoundPoolBase || int(b[3]) >= RoundPoolBase+roundSlots {
		return 0, false
	}
	return int(b[3]) - RoundPoolBase, true
}

// StartARPWatcher starts a watcher on the eth0 of host "watch" (on the lan,
// apart from the client).
func (c *Cluster) StartARPWatcher(interval time.Duration) *ARPWatcher {
	c.t.Helper()
	w := &ARPWatcher{macs: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range c.nodes {
		w.macs[c.Lab.MAC(n, "eth0").String()] = n
	}
	err := c.Lab.Do("watch", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		w.cl, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		c.t.Fatalf("clustertest: ARP watcher on the client: %v", err)
	}
	vip := netip.MustParseAddr(VIP)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_ = w.cl.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			pkt, _, err := w.cl.Read()
			select {
			case <-w.stop:
				return
			default:
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				continue
			}
			if pkt.SenderIP != vip {
				continue
			}
			// A reply to the watcher targets the round's sender address;
			// gratuitous ARP (request or reply) targets the VIP itself.
			slot, solicited := roundSlot(pkt)
			mac := pkt.SenderHardwareAddr.String()
			node := w.macs[mac]
			if node == "" {
				node = "?"
			}
			w.mu.Lock()
			r := ARPReply{At: time.Now(), MAC: mac, Node: node}
			if solicited {
				// The latest round sent from this slot's address: replies
				// read late (a busy test process) still count for the round
				// they answer, not for the current one.
				r.Round = w.round - ((w.round-slot)%roundSlots+roundSlots)%roundSlots
			} else {
				r.Gratuitous = true
			}
			w.rep.Replies = append(w.rep.Replies, r)
			w.mu.Unlock()
		}
	}()
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.mu.Lock()
			w.round++
			w.rep.Rounds = w.round
			round := w.round
			w.mu.Unlock()
			if req, err := arp.NewPacket(arp.OperationRequest, w.cl.HardwareAddr(), slotAddr(round%roundSlots), ethernet.Broadcast, vip); err == nil {
				_ = w.cl.WriteTo(req, ethernet.Broadcast)
			}
			select {
			case <-w.stop:
				<-readDone
				_ = w.cl.Close()
				return
			case <-t.C:
			}
		}
	}()
	c.t.Cleanup(func() { w.Stop() })
	return w
}

// Report returns what was seen so far.
func (w *ARPWatcher) Report() ARPReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	rep := w.rep
	rep.Replies = slices.Clone(w.rep.Replies)
	perRound := map[int]map[string]bool{}
	for _, r := range rep.Replies {
		if r.Gratuitous || r.Round == 0 {
			continue
		}
		if perRound[r.Round] == nil {
			perRound[r.Round] = map[string]bool{}
		}
		perRound[r.Round][r.MAC] = true
	}
	rep.DualRounds = nil
	for round, macs := range perRound {
		if len(macs) > 1 {
			rep.DualRounds = append(rep.DualRounds, round)
		}
	}
	slices.Sort(rep.DualRounds)
	return rep
}

// Stop ends the watcher (idempotent) and returns its report.
func (w *ARPWatcher) Stop() ARPReport {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.Report()
}

// VIPState is where a node has the VIP.
type VIPState int

// VIP states, from absent to serving.
const (
	VIPAbsent  VIPState = iota
	VIPOnDown           // configured on an interface that is down
	VIPServing          // configured on an interface that is up
	VIPUnknown          // the namespace could not be read
)

// OwnershipSample is one look at every node's addresses.
type OwnershipSample struct {
	At    time.Time
	State map[string]VIPState
}

// Holders lists the nodes with the VIP configured (up or down link).
func (s OwnershipSample) Holders() []string {
	var out []string
	for n, st := range s.State {
		if st == VIPOnDown || st == VIPServing {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Serving lists the nodes with the VIP on an up interface.
func (s OwnershipSample) Serving() []string {
	var out []string
	for n, st := range s.State {
		if st == VIPServing {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// OwnershipReport is what an OwnershipSampler saw.
type OwnershipReport struct {
	Samples []OwnershipSample
}

// DualPresent returns samples in which two or more live (not crashed) nodes
// had the VIP configured.
func (r OwnershipReport) DualPresent() []OwnershipSample {
	var out []OwnershipSample
	for _, s := range r.Samples {
		if len(s.Holders()) > 1 {
			out = append(out, s)
		}
	}
	return out
}

// DualServing returns samples in which two or more nodes had the VIP on an
// up interface.
func (r OwnershipReport) DualServing() []OwnershipSample {
	var out []OwnershipSample
	for _, s := range r.Samples {
		if len(s.Serving()) > 1 {
			out = append(out, s)
		}
	}
	return out
}

// EverHeld reports whether node had the VIP configured in any sample.
func (r OwnershipReport) EverHeld(node string) bool {
	for _, s := range r.Samples {
		if st := s.State[node]; st == VIPOnDown || st == VIPServing {
			return true
		}
	}
	return false
}

func (r OwnershipReport) String() string {
	dual := r.DualPresent()
	s := fmt.Sprintf("%d samples, %d with the VIP on two nodes", len(r.Samples), len(dual))
	for i, d := range dual {
		if i == 5 {
			s += "\n  ..."
			break
		}
		s += fmt.Sprintf("\n  %s: %v", d.At.Format("15:04:05.000"), d.State)
	}
	return s
}

// OwnershipSampler reads every node's addresses with netlink every interval
// and records where the VIP is. Crashed nodes are skipped (a powered-off
// machine serves nothing).
type OwnershipSampler struct {
	mu   sync.Mutex
	rep  OwnershipReport
	stop chan struct{}
	done chan struct{}
}

type nsHandle struct {
	node string
	h    *netlink.Handle
}

func (c *Cluster) handles() ([]nsHandle, error) {
	var hs []nsHandle
	for _, n := range c.nodes {
		ns, err := netns.GetFromName(c.NS(n))
		if err != nil {
			closeHandles(hs)
			return nil, err
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			closeHandles(hs)
			return nil, err
		}
		hs = append(hs, nsHandle{node: n, h: h})
	}
	return hs, nil
}

func closeHandles(hs []nsHandle) {
	for _, h := range hs {
		h.h.Close()
	}
}

// vipState reads where the VIP (address vipAddr) is in one namespace.
func vipState(h *netlink.Handle, vipAddr string) VIPState {
	vip := net.ParseIP(vipAddr)
	family := netlink.FAMILY_V4
	if vip.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, family)
	if err != nil {
		return VIPUnknown
	}
	for _, a := range addrs {
		if a.IP.Equal(vip) {
			link, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return VIPUnknown
			}
			if link.Attrs().Flags&net.FlagUp != 0 {
				return VIPServing
			}
			return VIPOnDown
		}
	}
	return VIPAbsent
}

// StartSampler starts an ownership sampler.
func (c *Cluster) StartSampler(interval time.Duration) *OwnershipSampler {
	c.t.Helper()
	hs, err := c.handles()
	if err != nil {
		c.t.Fatalf("clustertest: sampler: %v", err)
	}
	s := &OwnershipSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer closeHandles(hs)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			smp := OwnershipSample{At: time.Now(), State: map[string]VIPState{}}
			for _, h := range hs {
				if c.Crashed(h.node) {
					continue
				}
				smp.State[h.node] = vipState(h.h, c.vip)
			}
			s.mu.Lock()
			s.rep.Samples = append(s.rep.Samples, smp)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	c.t.Cleanup(func() { s.Stop() })
	return s
}

// Report returns what was sampled so far.
func (s *OwnershipSampler) Report() OwnershipReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return OwnershipReport{Samples: slices.Clone(s.rep.Samples)}
}

// Stop ends the sampler (idempotent) and returns its report.
func (s *OwnershipSampler) Stop() OwnershipReport {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.Report()
}

// VIPHolders lists the live (not crashed) nodes that have the VIP
// configured right now, read with netlink.
func (c *Cluster) VIPHolders() []string {
	c.t.Helper()
	hs, err := c.handles()
	if err != nil {
		c.t.Fatalf("clustertest: %v", err)
	}
	defer closeHandles(hs)
	var out []string
	for _, h := range hs {
		if c.Crashed(h.node) {
			continue
		}
		if st := vipState(h.h, c.vip); st == VIPServing || st == VIPOnDown {
			out = append(out, h.node)
		}
	}
	return out
}
