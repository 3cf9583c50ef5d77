package heartbeat

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// listenLoopback binds an endpoint on 127.0.0.1 with a random port; peers
// are set later with SetPeers once every port is known.
func listenLoopback(t *testing.T, path string, codec *Codec, clock func() time.Time, got chan Received) *Endpoint {
	t.Helper()
	ep, err := Listen(t.Context(), EndpointConfig{
		Path:    path,
		Listen:  ap("127.0.0.1:0"),
		Codec:   codec,
		Now:     clock,
		Deliver: func(r Received) { got <- r },
	})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

func mustSetPeers(t *testing.T, ep *Endpoint, peers map[string]netip.AddrPort) {
	t.Helper()
	if err := ep.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, ch <-chan Received, what string) Received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("no heartbeat received: %s", what)
		return Received{}
	}
}

func TestUDPExchangeBothWays(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	clock := newFakeClock(time.Unix(1_800_000_000, 0))
	gotA, gotB := make(chan Received, 16), make(chan Received, 16)
	a := listenLoopback(t, "lan", codec, clock.Now, gotA)
	b := listenLoopback(t, "lan", codec, clock.Now, gotB)
	mustSetPeers(t, a, map[string]netip.AddrPort{"b": b.LocalAddr()})
	mustSetPeers(t, b, map[string]netip.AddrPort{"a": a.LocalAddr()})

	payload := []byte(`{"groups":["db"]}`)
	if err := a.Send(t.Context(), Message{From: "a", Incarnation: 1, Seq: 1, Payload: payload}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	r := recv(t, gotB, "a -> b")
	if r.Message.From != "a" || r.Path != "lan" || r.Message.Seq != 1 || !bytes.Equal(r.Message.Payload, payload) ||
		r.From != a.LocalAddr() || !r.At.Equal(clock.Now()) {
		t.Fatalf("b received %+v", r)
	}
	if err := b.Broadcast(t.Context(), Message{From: "b", Incarnation: 1, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, gotA, "b -> a"); r.Message.From != "b" || r.From != b.LocalAddr() {
		t.Fatalf("a received %+v", r)
	}
	if s := b.Stats(); s.Accepted != 1 || s.Path != "lan" {
		t.Fatalf("b stats %+v", s)
	}
}

// TestUDPAttacker runs two genuine nodes on two paths and an attacker that
// sends forged, wrong-key, replayed, cross-path, spoofed and oversize
// datagrams at b's "lan" endpoint. Only genuine heartbeats may be
// delivered; every attack is counted under its reason.
func TestUDPAttacker(t *testing.T) {
	ctx := t.Context()
	codec := mustCodec(t, "prod", testSecret)
	gotA, gotB, gotBBack, tapped := make(chan Received, 64), make(chan Received, 64), make(chan Received, 64), make(chan []byte, 4)
	a := listenLoopback(t, "lan", codec, time.Now, gotA)
	b := listenLoopback(t, "lan", codec, time.Now, gotB)
	aBack := listenLoopback(t, "backnet", codec, time.Now, make(chan Received, 1))
	bBack := listenLoopback(t, "backnet", codec, time.Now, gotBBack)

	// The tap stands for an eavesdropper: a receives nothing from it, but a
	// sends it a copy of every lan heartbeat, exactly as b gets it.
	tap, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := tap.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			tapped <- bytes.Clone(buf[:n])
		}
	}()
	attacker, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()

	mustSetPeers(t, a, map[string]netip.AddrPort{"b": b.LocalAddr(), "tap": tap.LocalAddr().(*net.UDPAddr).AddrPort()})
	mustSetPeers(t, b, map[string]netip.AddrPort{"a": a.LocalAddr()})
	mustSetPeers(t, aBack, map[string]netip.AddrPort{"b": bBack.LocalAddr()})
	mustSetPeers(t, bBack, map[string]netip.AddrPort{"a": aBack.LocalAddr()})

	const inc = 77
	genuine := func(seq uint64) Message { return Message{From: "a", Incarnation: inc, Seq: seq, Payload: []byte("{}")} }
	if err := a.Broadcast(ctx, genuine(10)); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, gotB, "genuine seq 10"); r.Message.Seq != 10 {
		t.Fatalf("got %+v", r)
	}
	var captured []byte
	select {
	case captured = <-tapped:
	case <-time.After(15 * time.Second):
		t.Fatal("tap saw nothing")
	}

	toB := b.LocalAddr()
	fromAttacker := func(data []byte) {
		t.Helper()
		if _, err := attacker.WriteToUDPAddrPort(data, toB); err != nil {
			t.Fatal(err)
		}
	}
	fromA := func(data []byte) { // a's own socket: right source address
		t.Helper()
		if _, err := a.conn.WriteToUDPAddrPort(data, toB); err != nil {
			t.Fatal(err)
		}
	}
	forged := bytes.Clone(captured)
	forged[len(forged)-1] ^= 1
	wrongKey := mustSeal(t, mustCodec(t, "prod", otherSecret), Message{From: "a", Path: "lan", Incarnation: inc, Seq: 11})
	wrongCluster := mustSeal(t, mustCodec(t, "staging", testSecret), Message{From: "a", Path: "lan", Incarnation: inc, Seq: 12})
	crossPath := mustSeal(t, codec, Message{From: "a", Path: "backnet", Incarnation: inc, Seq: 13})
	mallory := mustSeal(t, codec, Message{From: "mallory", Path: "lan", Incarnation: inc, Seq: 14})
	spoofedName := mustSeal(t, codec, Message{From: "a", Path: "lan", Incarnation: inc, Seq: 15})
	oldInc := mustSeal(t, codec, Message{From: "a", Path: "lan", Incarnation: inc - 1, Seq: 16})

	fromAttacker([]byte("hello"))      // malformed
	fromAttacker(forged)               // bad_mac
	fromA(forged)                      // bad_mac
	fromAttacker(wrongKey)             // bad_mac
	fromA(wrongKey)                    // bad_mac
	fromA(wrongCluster)                // wrong_cluster
	fromA(captured)                    // replay
	fromA(captured)                    // replay
	fromAttacker(captured)             // spoofed_source
	fromA(crossPath)                   // wrong_path (backnet datagram on lan)
	fromAttacker(mallory)              // unknown_node
	fromAttacker(spoofedName)          // spoofed_source
	fromA(oldInc)                      // old_incarnation
	fromAttacker(make([]byte, 20_000)) // too_large
	// Mild reordering is fine: 13 before 12 (and both after 10).
	if err := a.Send(ctx, genuine(13), toB); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, genuine(12), toB); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, genuine(13), toB); err != nil { // replay via Send
		t.Fatal(err)
	}

	want := map[string]uint64{
		"malformed": 1, "bad_mac": 4, "wrong_cluster": 1, "replay": 3, "spoofed_source": 2,
		"wrong_path": 1, "unknown_node": 1, "old_incarnation": 1, "too_large": 1,
		"too_old": 0, "stale": 0,
	}
	var total uint64
	for _, n := range want {
		total += n
	}
	waitFor(t, "b to process every datagram", func() bool {
		s := b.Stats()
		var rejected uint64
		for _, n := range s.Rejected {
			rejected += n
		}
		return s.Accepted == 3 && rejected == total
	})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s := b.Stats()
	for reason, n := range want {
		if s.Rejected[reason] != n {
			t.Errorf("rejected[%s] = %d, want %d (all: %v)", reason, s.Rejected[reason], n, s.Rejected)
		}
	}
	if len(s.Rejected) != len(Reasons()) {
		t.Errorf("Stats should list every reason, got %v", s.Rejected)
	}
	// Exactly the genuine heartbeats reached the callback, in order.
	close(gotB)
	var seqs []uint64
	for r := range gotB {
		if r.Message.From != "a" || r.Message.Incarnation != inc || r.From != a.LocalAddr() {
			t.Errorf("delivered a non-genuine heartbeat: %+v", r)
		}
		seqs = append(seqs, r.Message.Seq)
	}
	if len(seqs) != 2 || seqs[0] != 13 || seqs[1] != 12 {
		t.Errorf("delivered seqs after 10: %v, want [13 12]", seqs)
	}
	if g := b.Guard().Stats(); g["replay"] != 3 || g["old_incarnation"] != 1 {
		t.Errorf("guard stats %v", g)
	}
	if n := len(gotBBack); n != 0 {
		t.Errorf("backnet endpoint got %d heartbeats, none were sent to it", n)
	}
}

// captureHandler records slog records for assertions.
type captureHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }
func (h *captureHandler) rejections() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if r.Message == "heartbeat rejected" {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

func TestRejectionLogIsRateLimited(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	clock := newFakeClock(time.Unix(1_800_000_000, 0))
	logs := &captureHandler{}
	b, err := Listen(t.Context(), EndpointConfig{
		Path: "lan", Listen: ap("127.0.0.1:0"), Codec: codec, Now: clock.Now,
		Logger: slog.New(logs), LogEvery: time.Minute,
		Deliver: func(Received) { t.Error("garbage delivered") },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	attacker, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	send := func(n int) {
		for range n {
			if _, err := attacker.WriteToUDPAddrPort([]byte("junk"), b.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	malformed := func() uint64 { return b.Stats().Rejected["malformed"] }

	send(5)
	waitFor(t, "5 rejections", func() bool { return malformed() == 5 })
	if got := logs.rejections(); len(got) != 1 {
		t.Fatalf("%d rejection logs for 5 junk datagrams within a minute, want 1", len(got))
	}
	clock.Advance(time.Minute)
	send(1)
	// The counter goes up before the log line is written: wait for both.
	waitFor(t, "6 rejections and a second log", func() bool { return malformed() == 6 && len(logs.rejections()) >= 2 })
	got := logs.rejections()
	if len(got) != 2 {
		t.Fatalf("%d rejection logs after a minute, want 2", len(got))
	}
	if r := got[1]; r.Level != slog.LevelDebug || attr(r, "reason").String() != "malformed" ||
		attr(r, "suppressed_since_last").Uint64() != 4 || !strings.Contains(attr(r, "err").String(), "short datagram") {
		t.Fatalf("second log record: %v %v", r.Level, r.Message)
	}
}

func TestEndpointCloseAndContext(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	ep := listenLoopback(t, "lan", codec, time.Now, make(chan Received, 1))
	if err := ep.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-ep.Done():
	default:
		t.Fatal("receive loop still running after Close returned")
	}
	if err := ep.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ep.Send(t.Context(), Message{From: "a", Seq: 1}, ap("127.0.0.1:9")); err == nil {
		t.Fatal("Send on a closed endpoint succeeded")
	}

	// Cancelling the Listen context stops the endpoint too.
	ctx, cancel := context.WithCancel(t.Context())
	ep2, err := Listen(ctx, EndpointConfig{Path: "lan", Listen: ap("127.0.0.1:0"), Codec: codec, Deliver: func(Received) {}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-ep2.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("endpoint still running after its context was cancelled")
	}
	// The port is free again.
	again, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ep2.LocalAddr()))
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	again.Close()

	if err := ep.Send(ctx, Message{From: "a"}, ap("127.0.0.1:9")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with cancelled context: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	held := listenLoopback(t, "lan", codec, time.Now, make(chan Received, 1))
	for _, tc := range []struct {
		name string
		cfg  EndpointConfig
		want string
	}{
		{"no deliver", EndpointConfig{Path: "lan", Listen: ap("127.0.0.1:0"), Codec: codec}, "Deliver is required"},
		{"no address", EndpointConfig{Path: "lan", Codec: codec, Deliver: func(Received) {}}, "no listen address"},
		{"port in use", EndpointConfig{Path: "lan", Listen: held.LocalAddr(), Codec: codec, Deliver: func(Received) {}}, "address already in use"},
		{"no path", EndpointConfig{Listen: ap("127.0.0.1:0"), Codec: codec, Deliver: func(Received) {}}, "path name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := Listen(t.Context(), tc.cfg)
			if err == nil {
				ep.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Listen: %v, want %q", err, tc.want)
			}
		})
	}
	if err := held.Send(t.Context(), Message{From: "a", Path: "backnet"}, ap("127.0.0.1:9")); err == nil ||
		!strings.Contains(err.Error(), `path "backnet"`) {
		t.Fatalf("Send of a backnet message on a lan endpoint: %v", err)
	}
}

func TestUDPOverIPv6Loopback(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	got := make(chan Received, 4)
	listen := func(deliver func(Received)) *Endpoint {
		ep, err := Listen(t.Context(), EndpointConfig{Path: "lan", Listen: ap("[::1]:0"), Codec: codec, Deliver: deliver})
		if err != nil {
			t.Fatalf("Listen on [::1] (is IPv6 loopback configured? `ip -6 addr show dev lo`): %v", err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep
	}
	a := listen(func(Received) {})
	b := listen(func(r Received) { got <- r })
	mustSetPeers(t, b, map[string]netip.AddrPort{"a": a.LocalAddr()})
	if err := a.Send(t.Context(), Message{From: "a", Seq: 1}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "over ::1"); r.From != a.LocalAddr() || !r.From.Addr().Is6() {
		t.Fatalf("got %+v", r)
	}
}
