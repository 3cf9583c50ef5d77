package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Node is this node's name, sent as Message.From.
	Node string
	// Incarnation identifies this run; it must grow across restarts. Use
	// NextIncarnation. Zero means the clock's Unix nanoseconds.
	Incarnation uint64
	// Interval between rounds. Required.
	Interval time.Duration
	// Endpoints are the paths to send on; each sends to its own peers.
	Endpoints []*Endpoint
	// Payload returns the current view of this node for each round (called
	// once per round, shared by all paths). Nil sends an empty payload.
	Payload func() []byte
	// Now is the clock for Message.SentUnixNano; default time.Now.
	Now func() time.Time
	// Logger gets send failures (once when a path starts failing and once
	// when it recovers, not every round); default slog.Default().
	Logger *slog.Logger
	// Alive gates the rounds Run sends: while it returns false no
	// heartbeat goes out, so peers stop trusting a node whose decision
	// loop no longer acts (the agent's liveness gate). Nil sends always.
	// It is called once per round and must be cheap.
	Alive func() bool
}

// Sender sends one heartbeat round (every path, every peer, one shared
// sequence number) every interval, and at once when kicked.
type Sender struct {
	cfg     SenderConfig
	seq     atomic.Uint64
	kick    chan struct{}
	mu      sync.Mutex // serialises rounds and guards failing
	failing map[string]bool
	// paused is set while Alive holds rounds back (logged once per pause).
	paused bool
}

// NewSender validates cfg and returns a sender; call Run to start it.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := checkName("node", cfg.Node); err != nil {
		return nil, fmt.Errorf("heartbeat: sender: %w", err)
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("heartbeat: sender: interval must be positive")
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("heartbeat: sender: no endpoints")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(max(cfg.Now().UnixNano(), 1))
	}
	return &Sender{cfg: cfg, kick: make(chan struct{}, 1), failing: make(map[string]bool)}, nil
}

// Incarnation returns the incarnation the sender uses.
func (s *Sender) Incarnation() uint64 { return s.cfg.Incarnation }

// Seq returns the sequence number of the last round sent (0 before any).
func (s *Sender) Seq() uint64 { return s.seq.Load() }

// Kick asks Run to send a round now instead of waiting for the next tick,
// e.g. to announce a handover. It never blocks; kicks made while a round
// is pending merge into it.
func (s *Sender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sends a round at once, then every interval and on every Kick, until
// ctx is done. After a kick the next tick is a full interval later. Rounds
// (kicked or not) are skipped while SenderConfig.Alive returns false.
func (s *Sender) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-s.kick:
		}
		if s.gated() {
			// Checked again next interval: a loop that passes again
			// resumes the heartbeats within one interval.
			timer.Reset(s.cfg.Interval)
			continue
		}
		s.SendRound(ctx)
		timer.Reset(s.cfg.Interval)
	}
}

// gated reports whether Alive holds this round back, logging when a pause
// starts and ends.
func (s *Sender) gated() bool {
	if s.cfg.Alive == nil {
		return false
	}
	alive := s.cfg.Alive()
	switch {
	case !alive && !s.paused:
		s.paused = true
		s.cfg.Logger.Error("heartbeats paused: the decision loop is not making progress; peers will see this node dead")
	case alive && s.paused:
		s.paused = false
		s.cfg.Logger.Warn("heartbeats resumed: the decision loop makes progress again")
	}
	return !alive
}

// SendRound sends one heartbeat with the next sequence number on every
// path to every peer and returns the send errors joined. Failures on one
// path do not stop the others.
func (s *Sender) SendRound(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var payload []byte
	if s.cfg.Payload != nil {
		payload = s.cfg.Payload()
	}
	m := Message{
		From:         s.cfg.Node,
		Incarnation:  s.cfg.Incarnation,
		Seq:          s.seq.Add(1),
		SentUnixNano: s.cfg.Now().UnixNano(),
		Payload:      payload,
	}
	var errs []error
	for _, ep := range s.cfg.Endpoints {
		m.Path = ep.Path()
		err := ep.Broadcast(ctx, m)
		if ctx.Err() == nil { // shutting down is not a path failure
			s.noteResult(ep.Path(), err)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Sender) noteResult(path string, err error) {
	switch {
	case err != nil && !s.failing[path]:
		s.failing[path] = true
		s.cfg.Logger.Warn("heartbeat send failing", "path", path, "err", err)
	case err == nil && s.failing[path]:
		delete(s.failing, path)
		s.cfg.Logger.Info("heartbeat send recovered", "path", path)
	}
}
