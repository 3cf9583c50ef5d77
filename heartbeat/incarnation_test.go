package heartbeat

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// Once a node's new incarnation arrived on one path, a late datagram of its
// previous run on another path is rejected (old_incarnation), not taken as
// news: it would bring back the old run's report.
func TestReplayGuardIncarnationIsPerNode(t *testing.T) {
	g := NewReplayGuard()
	for i, s := range []struct {
		path     string
		inc, seq uint64
		want     error
	}{
		{"lan", 7, 1, nil}, {"backnet", 7, 1, nil},
		{"lan", 8, 1, nil},                    // the node restarted; lan hears it first
		{"backnet", 7, 2, ErrOldIncarnation},  // a late datagram of the old run
		{"backnet", 7, 90, ErrOldIncarnation}, // whatever its sequence number
		{"backnet", 8, 1, nil},                // the new run reaches backnet too
		{"disk", 7, 1, ErrOldIncarnation},     // a path never heard before
	} {
		if err := g.Check("a", s.path, s.inc, s.seq); s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("step %d %+v: got %v, want %v", i, s, err, s.want)
		}
	}
	if got := g.Stats()["old_incarnation"]; got != 3 {
		t.Errorf("old_incarnation count = %d, want 3", got)
	}
	g.Forget("a")
	if err := g.Check("a", "backnet", 7, 1); err != nil {
		t.Errorf("after Forget every incarnation starts afresh: %v", err)
	}
}

// Two endpoints of one node share the agent's guard: the old-incarnation
// datagram on the second path is dropped and counted under its path with
// reason old_incarnation (harules_heartbeats_rejected_total).
func TestEndpointsRejectOldIncarnationOnEveryPath(t *testing.T) {
	ctx := t.Context()
	codec := mustCodec(t, "prod", testSecret)
	guard := NewReplayGuard()
	listen := func(path string, g *ReplayGuard, got chan Received) *Endpoint {
		ep, err := Listen(ctx, EndpointConfig{Path: path, Listen: ap("127.0.0.1:0"), Codec: codec, Guard: g,
			Deliver: func(r Received) { got <- r }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep
	}
	gotLan, gotBack := make(chan Received, 16), make(chan Received, 16)
	bLan, bBack := listen("lan", guard, gotLan), listen("backnet", guard, gotBack)
	aLan, aBack := listen("lan", nil, make(chan Received, 16)), listen("backnet", nil, make(chan Received, 16))
	mustSetPeers(t, bLan, map[string]netip.AddrPort{"a": aLan.LocalAddr()})
	mustSetPeers(t, bBack, map[string]netip.AddrPort{"a": aBack.LocalAddr()})
	send := func(from *Endpoint, to *Endpoint, inc, seq uint64) {
		t.Helper()
		if err := from.Send(ctx, Message{From: "a", Incarnation: inc, Seq: seq, SentUnixNano: time.Now().UnixNano()}, to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(aLan, bLan, 1, 1)
	recv(t, gotLan, "lan, incarnation 1")
	send(aBack, bBack, 1, 1)
	recv(t, gotBack, "backnet, incarnation 1")
	send(aLan, bLan, 2, 1)
	recv(t, gotLan, "lan, incarnation 2")
	send(aBack, bBack, 1, 2) // late, from the previous run
	waitFor(t, "the old incarnation rejected on backnet", func() bool { return bBack.Stats().Rejected["old_incarnation"] == 1 })
	select {
	case r := <-gotBack:
		t.Fatalf("backnet delivered a datagram of the previous run: %+v", r.Message)
	default:
	}
	send(aBack, bBack, 2, 1)
	if r := recv(t, gotBack, "backnet, incarnation 2"); r.Message.Incarnation != 2 {
		t.Fatalf("backnet delivered incarnation %d, want 2", r.Message.Incarnation)
	}
}
