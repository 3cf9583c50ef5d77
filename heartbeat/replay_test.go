package heartbeat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	type step struct {
		node, path string
		inc, seq   uint64
		want       error // nil: accepted
	}
	const I = 100
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{"a", "lan", I, 1, nil}, {"a", "lan", I, 2, nil}, {"a", "lan", I, 3, nil}}},
		{"duplicate", []step{{"a", "lan", I, 1, nil}, {"a", "lan", I, 1, ErrReplay}}},
		{"first contact at any seq", []step{{"a", "lan", I, 5000, nil}, {"a", "lan", I, 5001, nil}}},
		{"reordered within window", []step{
			{"a", "lan", I, 10, nil}, {"a", "lan", I, 12, nil}, {"a", "lan", I, 11, nil},
			{"a", "lan", I, 11, ErrReplay}, {"a", "lan", I, 12, ErrReplay}, {"a", "lan", I, 10, ErrReplay}}},
		{"window edge", []step{
			{"a", "lan", I, 100, nil}, {"a", "lan", I, 100 - (ReplayWindow - 1), nil},
			{"a", "lan", I, 100 - ReplayWindow, ErrTooOld}, {"a", "lan", I, 1, ErrTooOld}}},
		{"window slides", []step{
			{"a", "lan", I, 1, nil}, {"a", "lan", I, 3, nil}, {"a", "lan", I, 3 + ReplayWindow - 1, nil},
			{"a", "lan", I, 3, ErrReplay}, {"a", "lan", I, 2, ErrTooOld}, {"a", "lan", I, 4, nil}}},
		{"jump beyond window clears it", []step{
			{"a", "lan", I, 1, nil}, {"a", "lan", I, 1000, nil}, {"a", "lan", I, 999, nil},
			{"a", "lan", I, 1000, ErrReplay}, {"a", "lan", I, 937, nil}, {"a", "lan", I, 937, ErrReplay}, {"a", "lan", I, 936, ErrTooOld}, {"a", "lan", I, 1, ErrTooOld}}},
		{"old incarnation", []step{{"a", "lan", I, 7, nil}, {"a", "lan", I - 1, 8, ErrOldIncarnation}, {"a", "lan", I - 1, 1, ErrOldIncarnation}}},
		{"restart with new incarnation resets window", []step{
			{"a", "lan", I, 500, nil}, {"a", "lan", I + 1, 1, nil}, {"a", "lan", I + 1, 2, nil},
			{"a", "lan", I + 1, 1, ErrReplay}, {"a", "lan", I, 501, ErrOldIncarnation}}},
		{"paths are independent", []step{{"a", "lan", I, 1, nil}, {"a", "backnet", I, 1, nil}, {"a", "backnet", I, 1, ErrReplay}}},
		{"nodes are independent", []step{{"a", "lan", I, 1, nil}, {"b", "lan", I, 1, nil}, {"c", "lan", I - 5, 1, nil}, {"b", "lan", I - 5, 2, ErrOldIncarnation}}},
		{"max seq", []step{{"a", "lan", I, ^uint64(0) - 1, nil}, {"a", "lan", I, ^uint64(0), nil}, {"a", "lan", I, ^uint64(0), ErrReplay}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewReplayGuard()
			for i, s := range tc.steps {
				err := g.Check(s.node, s.path, s.inc, s.seq)
				if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
					t.Fatalf("step %d %+v: got %v, want %v", i, s, err, s.want)
				}
			}
		})
	}
}

func TestReplayGuardStatsAndForget(t *testing.T) {
	g := NewReplayGuard()
	g.Check("a", "lan", 2, 100)
	g.Check("a", "lan", 2, 100) // replay
	g.Check("a", "lan", 2, 100) // replay
	g.Check("a", "lan", 2, 1)   // too old
	g.Check("a", "lan", 1, 500) // old incarnation
	got := g.Stats()
	want := map[string]uint64{"replay": 2, "too_old": 1, "old_incarnation": 1}
	if len(got) != len(want) {
		t.Fatalf("Stats = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Stats = %v, want %v", got, want)
		}
	}
	g.Forget("a")
	if err := g.Check("a", "lan", 1, 1); err != nil {
		t.Fatalf("after Forget, an old incarnation should start afresh: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	peers := map[string]netip.AddrPort{
		"b": ap("198.51.100.2:7946"),
		"c": ap("198.51.100.3:0"), // any source port
	}
	now := time.Unix(1_800_000_000, 0)
	msg := func(from, path string, seq uint64, sent time.Time) []byte {
		return mustSeal(t, codec, Message{From: from, Path: path, Incarnation: 9, Seq: seq, SentUnixNano: sent.UnixNano()})
	}
	for _, tc := range []struct {
		name    string
		maxSkew time.Duration
		data    []byte
		src     netip.AddrPort
		want    error
	}{
		{"good", 0, msg("b", "lan", 1, now), ap("198.51.100.2:7946"), nil},
		{"IPv4-mapped source", 0, msg("b", "lan", 1, now), ap("[::ffff:198.51.100.2]:7946"), nil},
		{"any port peer", 0, msg("c", "lan", 1, now), ap("198.51.100.3:40000"), nil},
		{"unknown node", 0, msg("mallory", "lan", 1, now), ap("198.51.100.9:7946"), ErrUnknownNode},
		{"own name reflected", 0, msg("a", "lan", 1, now), ap("198.51.100.1:7946"), ErrUnknownNode},
		{"spoofed source address", 0, msg("b", "lan", 1, now), ap("198.51.100.66:7946"), ErrSpoofedSource},
		{"spoofed source port", 0, msg("b", "lan", 1, now), ap("198.51.100.2:7947"), ErrSpoofedSource},
		{"wrong path", 0, msg("b", "backnet", 1, now), ap("198.51.100.2:7946"), ErrWrongPath},
		{"stale", 30 * time.Second, msg("b", "lan", 1, now.Add(-31*time.Second)), ap("198.51.100.2:7946"), ErrStale},
		{"from the future", 30 * time.Second, msg("b", "lan", 1, now.Add(31*time.Second)), ap("198.51.100.2:7946"), ErrStale},
		{"within skew", 30 * time.Second, msg("b", "lan", 1, now.Add(-29*time.Second)), ap("198.51.100.2:7946"), nil},
		{"wrong key", 0, mustSeal(t, mustCodec(t, "prod", otherSecret), Message{From: "b", Path: "lan"}), ap("198.51.100.2:7946"), ErrBadMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier("lan", codec, nil, peers, tc.maxSkew)
			if err != nil {
				t.Fatal(err)
			}
			r, err := v.Verify(tc.data, tc.src, now)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Verify = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if r.Path != "lan" || r.Message.Path != "lan" || !r.At.Equal(now) || r.From.Addr().Is4In6() {
				t.Fatalf("Received = %+v", r)
			}
		})
	}
}

// A rejected datagram must not move the replay window: an attacker who
// replays a genuine datagram from the wrong address must not make the
// genuine one look replayed.
func TestVerifierRejectionsDoNotTouchReplayState(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	v, err := NewVerifier("lan", codec, nil, map[string]netip.AddrPort{"b": ap("198.51.100.2:7946")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := mustSeal(t, codec, Message{From: "b", Path: "lan", Incarnation: 1, Seq: 5})
	if _, err := v.Verify(data, ap("198.51.100.99:7946"), time.Now()); !errors.Is(err, ErrSpoofedSource) {
		t.Fatalf("spoofed: %v", err)
	}
	if _, err := v.Verify(data, ap("198.51.100.2:7946"), time.Now()); err != nil {
		t.Fatalf("genuine after spoofed copy: %v", err)
	}
	if _, err := v.Verify(data, ap("198.51.100.2:7946"), time.Now()); !errors.Is(err, ErrReplay) {
		t.Fatalf("second genuine copy: %v, want replay", err)
	}
}

func TestVerifierConfigErrors(t *testing.T) {
	codec := mustCodec(t, "prod", testSecret)
	for _, tc := range []struct {
		name  string
		path  string
		codec *Codec
		peers map[string]netip.AddrPort
		want  string
	}{
		{"no path", "", codec, nil, "path name is empty"},
		{"no codec", "lan", nil, nil, "nil codec"},
		{"peer without address", "lan", codec, map[string]netip.AddrPort{"b": {}}, "no address"},
		{"peer without name", "lan", codec, map[string]netip.AddrPort{"": ap("198.51.100.2:1")}, "peer name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.path, tc.codec, nil, tc.peers, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewVerifier: %v, want %q", err, tc.want)
			}
		})
	}
}
