package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EndpointConfig configures one path's socket.
type EndpointConfig struct {
	// Path is the heartbeat path name; only messages for it are accepted.
	Path string
	// Listen is the local address to bind (e.g. 198.51.100.1:7946). To use
	// a network namespace, run the process (or the binding thread) in it.
	Listen netip.AddrPort
	// Peers maps node name to its address on this path. Datagrams must come
	// from exactly that address (any port if the port is 0). The sender
	// helpers send to these addresses.
	Peers map[string]netip.AddrPort
	Codec *Codec
	// Guard is the replay guard; nil gives the endpoint its own.
	Guard *ReplayGuard
	// Deliver receives every accepted heartbeat, on the receive goroutine,
	// in arrival order. It should return quickly: the socket is not read
	// meanwhile. Required.
	Deliver func(Received)
	// MaxSkew > 0 rejects messages sent further than this from the local
	// clock (see Verifier).
	MaxSkew time.Duration
	// Now is the clock for Received.At and log rate limiting; default
	// time.Now.
	Now func() time.Time
	// Logger gets rejections at debug level; default slog.Default().
	Logger *slog.Logger
	// LogEvery is the least time between two rejection logs of the same
	// reason; default 10s. Suppressed rejections are counted in the next.
	LogEvery time.Duration
	// Self is this node's name: peers' echoes addressed to it measure the
	// round-trip time (see RTTStats). Empty: echoes are still sent, so
	// peers can measure, but nothing is measured here.
	Self string
}

// Endpoint is one path's UDP socket with its receive loop.
type Endpoint struct {
	*Verifier
	conn     *net.UDPConn
	local    netip.AddrPort
	deliver  func(Received)
	now      func() time.Time
	log      *slog.Logger
	limiter  logLimiter
	stopCtx  func() bool
	echo     *echoes
	done     chan struct{}
	closeErr error
	once     sync.Once

	accepted   atomic.Uint64
	sendErrors atomic.Uint64
	readErrors atomic.Uint64
	rejected   reasonCounters
}

// EndpointStats is a snapshot of an endpoint's counters.
type EndpointStats struct {
	Path       string
	Accepted   uint64
	Rejected   map[string]uint64 // every Reason, zeros included
	SendErrors uint64
	ReadErrors uint64
	// RTT holds the round-trip times measured per peer (peers with at
	// least one sample).
	RTT map[string]RTTStats
}

// Listen binds the endpoint and starts its receive loop, which runs until
// Close or until ctx is done.
func Listen(ctx context.Context, cfg EndpointConfig) (*Endpoint, error) {
	if cfg.Deliver == nil {
		return nil, errors.New("heartbeat: listen: Deliver is required")
	}
	if !cfg.Listen.Addr().IsValid() {
		return nil, fmt.Errorf("heartbeat: listen on path %s: no listen address", cfg.Path)
	}
	v, err := NewVerifier(cfg.Path, cfg.Codec, cfg.Guard, cfg.Peers, cfg.MaxSkew)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 10 * time.Second
	}
	network := "udp"
	if a := cfg.Listen.Addr(); a.Is4() || a.Is4In6() {
		network = "udp4"
	} else if !a.IsUnspecified() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(cfg.Listen))
	if err != nil {
		return nil, fmt.Errorf("heartbeat: listen on path %s at %s: %w", cfg.Path, cfg.Listen, err)
	}
	e := &Endpoint{
		Verifier: v,
		conn:     conn,
		local:    conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		deliver:  cfg.Deliver,
		now:      cfg.Now,
		log:      cfg.Logger.With("path", cfg.Path),
		limiter:  logLimiter{every: cfg.LogEvery},
		echo:     newEchoes(cfg.Self),
		done:     make(chan struct{}),
	}
	e.stopCtx = context.AfterFunc(ctx, func() { e.Close() })
	go e.readLoop()
	return e, nil
}

// LocalAddr returns the bound address (with the real port when 0 was asked).
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// Close stops the receive loop, closes the socket and waits for the loop to
// exit, so Deliver is never called after Close returns. Do not call it
// from Deliver (cancel the Listen context instead). It is safe to call
// more than once.
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		e.stopCtx()
		e.closeErr = e.conn.Close()
	})
	<-e.done
	return e.closeErr
}

// Done is closed when the receive loop has exited.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Send seals m and sends it to one address. m.Path defaults to the
// endpoint's path. UDP sends do not block for long, so ctx is only checked
// before sending.
func (e *Endpoint) Send(ctx context.Context, m Message, to netip.AddrPort) error {
	m.Echoes = e.echo.sending(m.Incarnation, m.Seq, e.now())
	b, err := e.seal(ctx, m)
	if err != nil {
		return err
	}
	return e.sendTo(b, to)
}

// Broadcast seals m once, with the echoes of this path's peers, and sends
// it to every configured peer of this path, in name order; a peer that
// still speaks wire version 1 gets a version 1 copy. It returns every send
// error joined.
func (e *Endpoint) Broadcast(ctx context.Context, m Message) error {
	m.Echoes = e.echo.sending(m.Incarnation, m.Seq, e.now())
	b, err := e.seal(ctx, m)
	if err != nil {
		return err
	}
	var v1 []byte
	peers := *e.peers.Load() // read-only; SetPeers swaps in a new map

	var errs []error
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		out := b
		if e.echo.legacy(name) {
			if v1 == nil {
				old := m
				old.Version = VersionNoEcho
				if v1, err = e.seal(ctx, old); err != nil {
					return err
				}
			}
			out = v1
		}
		if err := e.sendTo(out, peers[name]); err != nil {
			errs = append(errs, fmt.Errorf("to %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Endpoint) seal(ctx context.Context, m Message) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("heartbeat: send on path %s: %w", e.path, err)
	}
	if m.Path == "" {
		m.Path = e.path
	} else if m.Path != e.path {
		return nil, fmt.Errorf("heartbeat: send: message for path %q on endpoint of path %q", m.Path, e.path)
	}
	return e.codec.Seal(m)
}

func (e *Endpoint) sendTo(b []byte, to netip.AddrPort) error {
	if _, err := e.conn.WriteToUDPAddrPort(b, to); err != nil {
		e.sendErrors.Add(1)
		return fmt.Errorf("heartbeat: send on path %s to %s: %w", e.path, to, err)
	}
	return nil
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() EndpointStats {
	return EndpointStats{
		Path:       e.path,
		Accepted:   e.accepted.Load(),
		Rejected:   e.rejected.snapshot(),
		SendErrors: e.sendErrors.Load(),
		ReadErrors: e.readErrors.Load(),
		RTT:        e.echo.stats(),
	}
}

func (e *Endpoint) readLoop() {
	defer close(e.done)
	buf := make([]byte, MaxPacketSize+1) // one spare byte reveals oversize datagrams
	for {
		n, src, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.readErrors.Add(1)
			e.log.Warn("heartbeat read failed", "err", err)
			time.Sleep(50 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		at := e.now()
		r, err := e.Verify(buf[:n], src, at)
		if err != nil {
			e.noteReject(err, src, at)
			continue
		}
		e.accepted.Add(1)
		e.echo.received(r.Message, r.At)
		e.deliver(r)
	}
}

func (e *Endpoint) noteReject(err error, src netip.AddrPort, at time.Time) {
	reason, ok := ReasonOf(err)
	if !ok {
		reason = ReasonMalformed
	}
	e.rejected.add(reason)
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if suppressed, ok := e.limiter.allow(reason, at); ok {
		e.log.Debug("heartbeat rejected", "reason", reason.String(), "src", src.String(),
			"err", err, "suppressed_since_last", suppressed)
	}
}

// logLimiter lets one log per reason through every `every`; it is used
// only by the receive goroutine.
type logLimiter struct {
	every      time.Duration
	last       [numReasons]time.Time
	suppressed [numReasons]uint64
}

func (l *logLimiter) allow(r Reason, now time.Time) (suppressed uint64, ok bool) {
	if !l.last[r].IsZero() && now.Sub(l.last[r]) < l.every {
		l.suppressed[r]++
		return 0, false
	}
	suppressed = l.suppressed[r]
	l.last[r], l.suppressed[r] = now, 0
	return suppressed, true
}
