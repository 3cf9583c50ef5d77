package heartbeat

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestEchoMeasuresRTTWithoutSynchronisedClocks: the RTT is the time on the
// wire, not the time the peer held our heartbeat, and the peer's clock
// offset does not enter it.
func TestEchoMeasuresRTTWithoutSynchronisedClocks(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a, b := newEchoes("a"), newEchoes("b")
	bClock := t0.Add(17 * time.Hour) // b's wall clock is far off; only durations matter

	a.sending(1, 1, t0)
	b.received(Message{From: "a", Incarnation: 1, Seq: 1, Version: Version}, bClock.Add(time.Millisecond))
	echoes := b.sending(5, 1, bClock.Add(3*time.Millisecond)) // held 2 ms
	if len(echoes) != 1 || echoes[0] != (Echo{Node: "a", Incarnation: 1, Seq: 1, Held: 2 * time.Millisecond}) {
		t.Fatalf("b echoes %+v", echoes)
	}
	a.received(Message{From: "b", Incarnation: 5, Seq: 1, Version: Version, Echoes: echoes}, t0.Add(5*time.Millisecond))
	st := a.stats()["b"]
	if st.Count != 1 || st.Last != 3*time.Millisecond || st.Smoothed != st.Last || st.Min != st.Last || st.Max != st.Last {
		t.Fatalf("a measured %+v, want one sample of 3ms", st)
	}
	// 3 ms falls in the 5 ms bucket and above; not in the 2.5 ms one.
	for i, le := range RTTBuckets {
		want := uint64(0)
		if le >= 0.003 {
			want = 1
		}
		if st.Buckets[i] != want {
			t.Fatalf("bucket le=%g holds %d, want %d (%v)", le, st.Buckets[i], want, st.Buckets)
		}
	}

	// The same echo again (the peer sent twice without hearing from us)
	// is not a second sample.
	a.received(Message{From: "b", Incarnation: 5, Seq: 2, Version: Version, Echoes: echoes}, t0.Add(9*time.Millisecond))
	// An echo of another incarnation of ours (from before a restart) and
	// of a sequence number never sent are ignored.
	a.received(Message{From: "b", Incarnation: 5, Seq: 3, Version: Version, Echoes: []Echo{
		{Node: "a", Incarnation: 0, Seq: 1}, {Node: "a", Incarnation: 1, Seq: 40}, {Node: "c", Incarnation: 1, Seq: 1}}}, t0.Add(10*time.Millisecond))
	if st := a.stats()["b"]; st.Count != 1 {
		t.Fatalf("stray echoes counted: %+v", st)
	}
	// A sequence number that left the ring is not measured either.
	for seq := uint64(2); seq <= 2+sentRing; seq++ {
		a.sending(1, seq, t0.Add(time.Second))
	}
	a.received(Message{From: "b", Incarnation: 5, Seq: 4, Version: Version, Echoes: []Echo{{Node: "a", Incarnation: 1, Seq: 2}}}, t0.Add(2*time.Second))
	if st := a.stats()["b"]; st.Count != 1 {
		t.Fatalf("echo older than the ring counted: %+v", st)
	}
	// The smoothed value moves an eighth of the way to a new sample.
	a.received(Message{From: "b", Incarnation: 5, Seq: 5, Version: Version, Echoes: []Echo{{Node: "a", Incarnation: 1, Seq: 2 + sentRing, Held: 0}}},
		t0.Add(time.Second+11*time.Millisecond))
	st = a.stats()["b"]
	if st.Count != 2 || st.Last != 11*time.Millisecond || st.Smoothed != 4*time.Millisecond || st.Max != 11*time.Millisecond || st.Sum != 14*time.Millisecond {
		t.Fatalf("after a second sample: %+v", st)
	}
}

// TestUDPEchoRTT: two endpoints on loopback measure each other through real
// datagrams, on a clock the test steps.
func TestUDPEchoRTT(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	clock := newFakeClock(time.Unix(1_800_000_000, 0))
	gotA, gotB := make(chan Received, 16), make(chan Received, 16)
	listen := func(self string, got chan Received) *Endpoint {
		ep, err := Listen(t.Context(), EndpointConfig{Path: "lan", Listen: ap("127.0.0.1:0"), Codec: codec, Now: clock.Now, Self: self,
			Deliver: func(r Received) { got <- r }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep
	}
	a, b := listen("a", gotA), listen("b", gotB)
	mustSetPeers(t, a, map[string]netip.AddrPort{"b": b.LocalAddr()})
	mustSetPeers(t, b, map[string]netip.AddrPort{"a": a.LocalAddr()})

	// The clock steps while datagrams are in flight, so a receiver may
	// stamp one before or after a step: the expected RTT is computed from
	// the stamps the receivers actually used.
	sentA := clock.Now()
	if err := a.Broadcast(t.Context(), Message{From: "a", Incarnation: 1, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Millisecond)
	rB := recv(t, gotB, "a -> b")
	clock.Advance(2 * time.Millisecond) // b holds a's heartbeat a while
	sentB := clock.Now()
	if err := b.Broadcast(t.Context(), Message{From: "b", Incarnation: 7, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Millisecond)
	r := recv(t, gotA, "b -> a")
	held := sentB.Sub(rB.At)
	if len(r.Message.Echoes) != 1 || r.Message.Echoes[0].Held != held {
		t.Fatalf("b's heartbeat carries echoes %+v, want one holding %v", r.Message.Echoes, held)
	}
	want := r.At.Sub(sentA) - held
	st := a.Stats().RTT["b"]
	if st.Count != 1 || st.Last != want {
		t.Fatalf("a measured %+v, want %v (%v since sending minus %v held)", st, want, r.At.Sub(sentA), held)
	}
	if len(b.Stats().RTT) != 0 {
		t.Fatalf("b measured an RTT without an echo: %+v", b.Stats().RTT)
	}
}

// TestLegacyPeerGetsVersion1: a peer that sends wire version 1 (an agent
// from before echoes, during a rolling upgrade) is answered in version 1,
// which it can read; others get version 2.
func TestLegacyPeerGetsVersion1(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	old, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldAddr := old.LocalAddr().(*net.UDPAddr).AddrPort()
	got := make(chan Received, 4)
	a := listenLoopback(t, "lan", codec, time.Now, got)
	mustSetPeers(t, a, map[string]netip.AddrPort{"old": oldAddr})

	read := func() []byte {
		t.Helper()
		buf := make([]byte, MaxPacketSize)
		_ = old.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := old.Read(buf)
		if err != nil {
			t.Fatalf("old peer read: %v", err)
		}
		return buf[:n]
	}
	if err := a.Broadcast(t.Context(), Message{From: "a", Incarnation: 1, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if d := read(); d[2] != Version {
		t.Fatalf("first heartbeat to an unknown peer has version %d, want %d", d[2], Version)
	}
	v1 := mustSeal(t, codec, Message{From: "old", Path: "lan", Incarnation: 1, Seq: 1, Version: VersionNoEcho})
	if _, err := old.WriteToUDPAddrPort(v1, a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "old -> a"); r.Message.Version != VersionNoEcho {
		t.Fatalf("received %+v", r.Message)
	}
	if err := a.Broadcast(t.Context(), Message{From: "a", Incarnation: 1, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	d := read()
	m, err := codec.Open(d)
	if err != nil || d[2] != VersionNoEcho || m.Seq != 2 || m.Echoes != nil {
		t.Fatalf("heartbeat to a version 1 peer: version %d, %+v, %v", d[2], m, err)
	}
}
