package nemesis

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// markerRunning tells whether node's service marker exists (the service
// "runs" there).
func markerRunning(ctl, node string) bool {
	_, err := os.Stat(filepath.Join(ctl, node, "running"))
	return err == nil
}

// startApps starts, in every node's namespace, a TCP server on
// 0.0.0.0:AppPort that answers the node's name while the node's service
// marker exists and closes the connection unanswered otherwise: an answer
// through the VIP proves the service runs where the VIP is. The servers run
// in the test process, so they do not stop with a paused node by
// themselves: a node for which frozen reports true does not answer.
func startApps(c *clustertest.Cluster, ctl string, frozen func(node string) bool) ([]net.Listener, error) {
	var lns []net.Listener
	for _, n := range c.Nodes() {
		var ln net.Listener
		err := c.Lab.Do(n, func() error {
			var err error
			ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", clustertest.AppPort))
			return err
		})
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("app server on %s: %w", n, err)
		}
		lns = append(lns, ln)
		go serveIfRunning(ln, ctl, n, frozen)
	}
	return lns, nil
}

func serveIfRunning(ln net.Listener, ctl, node string, frozen func(string) bool) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if !frozen(node) && markerRunning(ctl, node) {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(conn, node+"\n")
		}
		_ = conn.Close()
	}
}

// serviceSample is one look at which nodes run the service.
type serviceSample struct {
	At      time.Time
	Running []string
}

// serviceSampler reads every live node's service marker every interval.
type serviceSampler struct {
	mu      sync.Mutex
	samples []serviceSample
	stop    chan struct{}
	done    chan struct{}
}

func startServiceSampler(c *clustertest.Cluster, ctl string, interval time.Duration) *serviceSampler {
	s := &serviceSampler{stop: make(chan struct{}), done: make(chan struct{})}
	nodes := c.Nodes()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			smp := serviceSample{At: time.Now()}
			for _, n := range nodes {
				// A crashed machine runs nothing, whatever its disk says.
				if !c.Crashed(n) && markerRunning(ctl, n) {
					smp.Running = append(smp.Running, n)
				}
			}
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// between returns the samples taken in [from, to].
func (s *serviceSampler) between(from, to time.Time) []serviceSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.samples, from, func(x serviceSample, t time.Time) int { return x.At.Compare(t) })
	var out []serviceSample
	for ; i < len(s.samples) && !s.samples[i].At.After(to); i++ {
		out = append(out, s.samples[i])
	}
	return out
}

func (s *serviceSampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}
