package heartbeat

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSenderRoundsAndKick(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	clock := newFakeClock(time.Unix(1_800_000_000, 0))
	gotLan, gotBack := make(chan Received, 16), make(chan Received, 16)
	lanB := listenLoopback(t, "lan", codec, time.Now, gotLan)
	backB := listenLoopback(t, "backnet", codec, time.Now, gotBack)
	lanA := listenLoopback(t, "lan", codec, time.Now, make(chan Received, 1))
	backA := listenLoopback(t, "backnet", codec, time.Now, make(chan Received, 1))
	mustSetPeers(t, lanA, map[string]netip.AddrPort{"b": lanB.LocalAddr()})
	mustSetPeers(t, backA, map[string]netip.AddrPort{"b": backB.LocalAddr()})
	mustSetPeers(t, lanB, map[string]netip.AddrPort{"a": lanA.LocalAddr()})
	mustSetPeers(t, backB, map[string]netip.AddrPort{"a": backA.LocalAddr()})

	var view atomic.Pointer[string]
	setView := func(v string) { view.Store(&v) }
	setView("v1")
	s, err := NewSender(SenderConfig{
		Node: "a", Incarnation: 5, Interval: time.Hour, // ticks never come: only Run's first round and kicks
		Endpoints: []*Endpoint{lanA, backA},
		Payload:   func() []byte { return []byte(*view.Load()) },
		Now:       clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	check := func(seq uint64, payload string) {
		t.Helper()
		for _, ch := range []chan Received{gotLan, gotBack} {
			r := recv(t, ch, "round "+payload)
			m := r.Message
			if m.Seq != seq || m.Incarnation != 5 || m.From != "a" || string(m.Payload) != payload ||
				m.SentUnixNano != clock.Now().UnixNano() || m.Path != r.Path {
				t.Fatalf("got %+v, want seq %d payload %q", m, seq, payload)
			}
		}
	}
	check(1, "v1") // Run sends at once
	// A handover: the view changes and the agent kicks instead of waiting
	// an hour for the next tick.
	setView("v2-handover")
	clock.Advance(time.Second)
	s.Kick()
	check(2, "v2-handover")
	s.Kick()
	check(3, "v2-handover")
	if s.Seq() != 3 || s.Incarnation() != 5 {
		t.Fatalf("Seq %d Incarnation %d", s.Seq(), s.Incarnation())
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
	select {
	case r := <-gotLan:
		t.Fatalf("unexpected extra heartbeat %+v", r)
	default:
	}
}

// A path whose sends fail must not stop the others, and is reported.
func TestSenderKeepsGoingWhenOnePathFails(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	got := make(chan Received, 16)
	lanB := listenLoopback(t, "lan", codec, time.Now, got)
	lanA := listenLoopback(t, "lan", codec, time.Now, make(chan Received, 1))
	// An IPv6 peer on an IPv4 socket: every send fails at once.
	broken := listenLoopback(t, "backnet", codec, time.Now, make(chan Received, 1))
	mustSetPeers(t, broken, map[string]netip.AddrPort{"b": ap("[2001:db8::1]:7946")})
	mustSetPeers(t, lanA, map[string]netip.AddrPort{"b": lanB.LocalAddr()})
	mustSetPeers(t, lanB, map[string]netip.AddrPort{"a": lanA.LocalAddr()})

	s, err := NewSender(SenderConfig{Node: "a", Incarnation: 1, Interval: time.Hour, Endpoints: []*Endpoint{broken, lanA}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendRound(t.Context())
	if err == nil || !strings.Contains(err.Error(), "backnet") || !strings.Contains(err.Error(), "to b") {
		t.Fatalf("SendRound error %v, want the backnet failure", err)
	}
	if r := recv(t, got, "lan despite broken backnet"); r.Message.Seq != 1 {
		t.Fatalf("got %+v", r)
	}
	if n := broken.Stats().SendErrors; n != 1 {
		t.Fatalf("backnet send errors %d, want 1", n)
	}
}

func TestNewSenderErrors(t *testing.T) {
	ep := listenLoopback(t, "lan", mustCodec(t, "prod", testSecret), time.Now, make(chan Received, 1))
	for _, tc := range []struct {
		name string
		cfg  SenderConfig
		want string
	}{
		{"no node", SenderConfig{Interval: time.Second, Endpoints: []*Endpoint{ep}}, "node name is empty"},
		{"no interval", SenderConfig{Node: "a", Endpoints: []*Endpoint{ep}}, "interval"},
		{"no endpoints", SenderConfig{Node: "a", Interval: time.Second}, "no endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSender(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSender: %v, want %q", err, tc.want)
			}
		})
	}
	clock := newFakeClock(time.Unix(0, 1234))
	s, err := NewSender(SenderConfig{Node: "a", Interval: time.Second, Endpoints: []*Endpoint{ep}, Now: clock.Now})
	if err != nil || s.Incarnation() != 1234 {
		t.Fatalf("default incarnation %d, %v; want the clock's 1234", s.Incarnation(), err)
	}
}

// A sender whose Alive gate is closed sends nothing, kicked or not, and
// resumes within an interval once the gate opens: peers must stop hearing
// a node whose decision loop is stuck.
func TestSenderAliveGatePausesAndResumes(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	got := make(chan Received, 64)
	lanB := listenLoopback(t, "lan", codec, time.Now, got)
	lanA := listenLoopback(t, "lan", codec, time.Now, make(chan Received, 1))
	mustSetPeers(t, lanA, map[string]netip.AddrPort{"b": lanB.LocalAddr()})
	mustSetPeers(t, lanB, map[string]netip.AddrPort{"a": lanA.LocalAddr()})
	var alive atomic.Bool
	s, err := NewSender(SenderConfig{Node: "a", Incarnation: 1, Interval: 20 * time.Millisecond,
		Endpoints: []*Endpoint{lanA}, Alive: alive.Load})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	// Closed gate: ten intervals and a kick go by without a heartbeat.
	s.Kick()
	select {
	case r := <-got:
		t.Fatalf("heartbeat %d sent while the gate was closed", r.Message.Seq)
	case <-time.After(200 * time.Millisecond):
	}
	if s.Seq() != 0 {
		t.Fatalf("Seq = %d with the gate closed, want 0", s.Seq())
	}
	alive.Store(true)
	r := recv(t, got, "the first round after the gate opened")
	if r.Message.Seq != 1 {
		t.Fatalf("first round seq %d, want 1", r.Message.Seq)
	}
	recv(t, got, "a second round")
}
