package clustertest

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Sample is one client request to the VIP: who answered, or the error.
type Sample struct {
	At   time.Time // when the request started
	Node string    // answering node; empty on error
	Err  string
}

// Prober asks the VIP's app port "who are you?" from the client namespace
// every interval (one fresh TCP connection per request, so ARP and routing
// are exercised as a real client would).
type Prober struct {
	mu      sync.Mutex
	samples []Sample
	stop    chan struct{}
	done    chan struct{}
}

// StartProber starts a prober against VIP:AppPort. Stop it (or let cleanup
// do it) to end it.
func (c *Cluster) StartProber(interval time.Duration) *Prober {
	c.t.Helper()
	return c.StartProberTo(c.vip, interval)
}

// StartProberTo is StartProber against another address of the lan.
func (c *Cluster) StartProberTo(addr string, interval time.Duration) *Prober {
	c.t.Helper()
	ns, err := netns.GetFromName(c.NS("client"))
	if err != nil {
		c.t.Fatalf("clustertest: prober: %v", err)
	}
	p := &Prober{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	target := net.JoinHostPort(addr, fmt.Sprint(AppPort))
	go func() {
		defer close(p.done)
		defer ns.Close()
		// This goroutine's thread stays in the client namespace while it
		// probes and returns to its namespace afterwards. It must not end
		// locked: the runtime would then kill the thread, and a child this
		// test process forked from that thread with Pdeathsig (the agents'
		// supervisors) would be killed with it.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ready <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ready <- err
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		ready <- nil
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			p.add(probeOnce(target))
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	if err := <-ready; err != nil {
		c.t.Fatalf("clustertest: prober: enter client namespace: %v", err)
	}
	c.t.Cleanup(func() { p.Stop() })
	return p
}

func probeOnce(target string) Sample {
	s := Sample{At: time.Now()}
	d := net.Dialer{Timeout: 150 * time.Millisecond}
	conn, err := d.Dial("tcp", target) // the family follows the target address
	if err != nil {
		s.Err = err.Error()
		return s
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		s.Err = err.Error()
		return s
	}
	s.Node = strings.TrimSpace(line)
	return s
}

func (p *Prober) add(s Sample) {
	p.mu.Lock()
	p.samples = append(p.samples, s)
	p.mu.Unlock()
}

// Samples returns a copy of what was recorded so far.
func (p *Prober) Samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.samples...)
}

// Stop ends the prober and returns every sample. It is idempotent.
func (p *Prober) Stop() []Sample {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return p.Samples()
}

// Switch describes a change of the answering node seen by the client.
type Switch struct {
	From, To string
	LastFrom time.Time // last answer of From before FirstTo
	FirstTo  time.Time // first answer of To after an answer of From
	// Gap is FirstTo - LastFrom: how long clients got no answer (upper
	// bound, at the prober's resolution).
	Gap time.Duration
	// Errors counts failed requests inside the gap.
	Errors int
	// FromAgain reports that From answered again after FirstTo (the
	// service flapped back, or both answered).
	FromAgain bool
}

func (s Switch) String() string {
	return fmt.Sprintf("%s -> %s: gap %s (%d failed requests), last %s answer %s, first %s answer %s, from-again=%v",
		s.From, s.To, s.Gap.Round(time.Millisecond), s.Errors, s.From, s.LastFrom.Format("15:04:05.000"),
		s.To, s.FirstTo.Format("15:04:05.000"), s.FromAgain)
}

// GapBetween finds the first switch from `from` to `to` in samples.
func GapBetween(samples []Sample, from, to string) (Switch, error) {
	sw := Switch{From: from, To: to}
	seenFrom := false
	for _, s := range samples {
		if s.Node == from {
			sw.LastFrom, seenFrom = s.At, true
			sw.Errors = 0
			continue
		}
		if !seenFrom {
			continue
		}
		if s.Node == to {
			sw.FirstTo = s.At
			sw.Gap = sw.FirstTo.Sub(sw.LastFrom)
			break
		}
		if s.Node == "" {
			sw.Errors++
		}
	}
	if !seenFrom {
		return sw, fmt.Errorf("%s never answered (%s)", from, Summary(samples))
	}
	if sw.FirstTo.IsZero() {
		return sw, fmt.Errorf("%s never answered after %s (%s)", to, from, Summary(samples))
	}
	for _, s := range samples {
		if s.At.After(sw.FirstTo) && s.Node == from {
			sw.FromAgain = true
		}
	}
	return sw, nil
}

// Answerers counts answers per node (and "" for errors) in samples at or
// after since.
func Answerers(samples []Sample, since time.Time) map[string]int {
	m := map[string]int{}
	for _, s := range samples {
		if !s.At.Before(since) {
			m[s.Node]++
		}
	}
	return m
}

// Summary renders samples as runs, e.g. "node1 x120, error x7, node2 x300",
// for failure messages and logs.
func Summary(samples []Sample) string {
	var parts []string
	prev, n := "\x00", 0
	flush := func() {
		if n > 0 {
			name := prev
			if name == "" {
				name = "error"
			}
			parts = append(parts, fmt.Sprintf("%s x%d", name, n))
		}
	}
	for _, s := range samples {
		if s.Node != prev {
			flush()
			prev, n = s.Node, 0
		}
		n++
	}
	flush()
	if len(parts) > 40 {
		parts = append(parts[:20], append([]string{"..."}, parts[len(parts)-20:]...)...)
	}
	return strings.Join(parts, ", ")
}
