package database

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// freezableProxy forwards TCP connections to a backend until Freeze, after
// which it behaves like a host that lost power: open connections carry
// nothing more (no FIN, no RST) and new ones are accepted but never
// answered. It counts the connections accepted after the freeze, i.e. who
// still tried to reach the "dead" server.
type freezableProxy struct {
	ln      net.Listener
	backend string
	frozen  atomic.Bool
	// afterFreeze counts connections accepted while frozen.
	afterFreeze atomic.Int64
	done        chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t testing.TB, backend string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &freezableProxy{ln: ln, backend: backend, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *freezableProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Freeze makes the backend look dead.
func (p *freezableProxy) Freeze() { p.frozen.Store(true) }

func (p *freezableProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.frozen.Load() {
			p.afterFreeze.Add(1)
			continue // held open, never answered
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.track(b)
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

func (p *freezableProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// pipe copies src to dst until the proxy freezes; what arrives after is
// dropped and the connection stays open until close.
func (p *freezableProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			<-p.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

func (p *freezableProxy) close() {
	select {
	case <-p.done:
		return
	default:
		close(p.done)
	}
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
