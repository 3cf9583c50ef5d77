package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestWireFormatMatchesDoc builds datagrams byte by byte from the layout in
// the package documentation and checks Seal produces exactly that, for the
// current version (with an echo) and for version 1.
func TestWireFormatMatchesDoc(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	m := Message{From: "alpha", Path: "lan", Incarnation: 0x0102030405060708, Seq: 9, SentUnixNano: -2, Payload: []byte("{}"),
		Echoes: []Echo{{Node: "bo", Incarnation: 7, Seq: 0x0a0b, Held: 300}}}
	sealed := func(b []byte) []byte {
		mac := hmac.New(sha256.New, testSecret)
		mac.Write(b)
		return mac.Sum(b)
	}

	var want []byte
	want = append(want, 'H', 'B', 2, 4, 5, 3, 0, 2)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 9)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)
	want = append(want, 0, 27) // echo block: 1 + 2 + 8 + 8 + 8 bytes
	want = append(want, "prodalphalan{}"...)
	want = append(want, 2, 'b', 'o')
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 7)
	want = append(want, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b)
	want = append(want, 0, 0, 0, 0, 0, 0, 0x01, 0x2c)
	want = sealed(want)
	got := mustSeal(t, c, m)
	if !bytes.Equal(got, want) {
		t.Fatalf("Seal:\n got %x\nwant %x", got, want)
	}
	if len(got) != SealedSize(m, "prod") || len(got) != 66+4+5+3+2+27 {
		t.Fatalf("size %d, SealedSize %d", len(got), SealedSize(m, "prod"))
	}

	m.Version = VersionNoEcho
	var v1 []byte
	v1 = append(v1, 'H', 'B', 1, 4, 5, 3, 0, 2)
	v1 = append(v1, 1, 2, 3, 4, 5, 6, 7, 8)
	v1 = append(v1, 0, 0, 0, 0, 0, 0, 0, 9)
	v1 = append(v1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)
	v1 = append(v1, "prodalphalan{}"...)
	v1 = sealed(v1)
	if got := mustSeal(t, c, m); !bytes.Equal(got, v1) {
		t.Fatalf("Seal version 1:\n got %x\nwant %x", got, v1)
	}
	opened, err := c.Open(v1)
	if err != nil || opened.Version != VersionNoEcho || opened.Echoes != nil || opened.Seq != 9 {
		t.Fatalf("Open version 1 = %+v, %v", opened, err)
	}
}

// TestEchoRoundTrip: echoes survive sealing and opening in order.
func TestEchoRoundTrip(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	m := Message{From: "a", Path: "lan", Seq: 3, Echoes: []Echo{
		{Node: "b", Incarnation: 1, Seq: 99, Held: 1500 * time.Microsecond},
		{Node: "nœud-c", Incarnation: 1 << 60, Seq: 1, Held: 0},
	}}
	got, err := c.Open(mustSeal(t, c, m))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Version || len(got.Echoes) != 2 || got.Echoes[0] != m.Echoes[0] || got.Echoes[1] != m.Echoes[1] {
		t.Fatalf("echoes: got %+v, want %+v", got.Echoes, m.Echoes)
	}
	if _, err := c.Seal(Message{From: "a", Path: "lan", Echoes: []Echo{{Node: ""}}}); err == nil {
		t.Fatal("an echo with an empty node name was sealed")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"full", sampleMessage()},
		{"no payload", Message{From: "b", Path: "backnet", Seq: 1}},
		{"unicode names", Message{From: "nœud-1", Path: "réseau", Payload: []byte{0, 1, 2}}},
		{"max payload", Message{From: "a", Path: "p", Payload: bytes.Repeat([]byte{'x'}, MaxPacketSize-66-len("prod")-2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Open(mustSeal(t, c, tc.m))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := tc.m
			want.Cluster = "prod"
			if got.Cluster != want.Cluster || got.From != want.From || got.Path != want.Path ||
				got.Incarnation != want.Incarnation || got.Seq != want.Seq ||
				got.SentUnixNano != want.SentUnixNano || !bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestOpenDoesNotAliasInput(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	data := mustSeal(t, c, sampleMessage())
	m, err := c.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 0
	}
	if string(m.Payload) != string(sampleMessage().Payload) || m.From != "alpha" {
		t.Fatalf("decoded message changed with its input buffer: %+v", m)
	}
}

// withMAC re-authenticates a hand-modified datagram with the real key, to
// reach checks that run after the MAC.
func withMAC(body []byte, key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return mac.Sum(bytes.Clone(body))
}

func TestOpenRejects(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	good := mustSeal(t, c, sampleMessage())
	body := good[:len(good)-macSize]
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	nonUTF8From := bytes.Clone(body)
	nonUTF8From[headerSize+len("prod")] = 0xff
	version3 := bytes.Clone(body)
	version3[2] = 3
	// An echo block whose length field claims one byte more than the
	// echoes it holds (the datagram grows by that byte too).
	badEcho := append(bytes.Clone(body), 0)
	badEcho[33]++
	emptyPath := bytes.Clone(body)
	emptyPath[5] = 0

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"forged MAC", flip(len(good) - 1), ErrBadMAC},
		{"tampered seq", flip(23), ErrBadMAC},
		{"tampered incarnation", flip(8), ErrBadMAC},
		{"tampered payload", flip(len(good) - macSize - 1), ErrBadMAC},
		{"tampered cluster name", flip(headerSize), ErrBadMAC},
		{"wrong key", mustSeal(t, mustCodec(t, "prod", otherSecret), sampleMessage()), ErrBadMAC},
		{"wrong cluster same key", mustSeal(t, mustCodec(t, "staging", testSecret), Message{From: "alpha", Path: "lan"}), ErrWrongCluster},
		{"empty", nil, ErrMalformed},
		{"truncated header", good[:10], ErrMalformed},
		{"truncated by one", good[:len(good)-1], ErrMalformed},
		{"MAC missing", body, ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"bad magic", flip(0), ErrMalformed},
		{"version 3 even with valid MAC", withMAC(version3, testSecret), ErrMalformed},
		{"truncated echo with valid MAC", withMAC(badEcho, testSecret), ErrMalformed},
		{"empty path name", withMAC(emptyPath, testSecret), ErrMalformed},
		{"non-UTF-8 node name with valid MAC", withMAC(nonUTF8From, testSecret), ErrMalformed},
		{"too large", make([]byte, MaxPacketSize+1), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.Open(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %+v, %v; want %v", m, err, tc.want)
			}
			if r, ok := ReasonOf(err); !ok || !errors.Is(tc.want, &RejectError{Reason: r}) {
				t.Fatalf("ReasonOf(%v) = %v, %v", err, r, ok)
			}
			if !strings.HasPrefix(err.Error(), "heartbeat rejected: ") {
				t.Fatalf("error text %q", err)
			}
		})
	}
}

func TestSealRejects(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	for _, tc := range []struct {
		name string
		m    Message
		want string
	}{
		{"no sender", Message{Path: "lan"}, "node name is empty"},
		{"no path", Message{From: "a"}, "path name is empty"},
		{"other cluster", Message{Cluster: "staging", From: "a", Path: "lan"}, `cluster "staging"`},
		{"long name", Message{From: strings.Repeat("n", 256), Path: "lan"}, "at most 255"},
		{"bad UTF-8", Message{From: "a\xff", Path: "lan"}, "not UTF-8"},
		{"payload too large", Message{From: "a", Path: "lan", Payload: make([]byte, MaxPacketSize)}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := c.Seal(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Seal = %d bytes, %v; want error containing %q", len(b), err, tc.want)
			}
		})
	}
	if _, err := c.Seal(Message{From: "a", Path: "lan", Payload: make([]byte, MaxPacketSize)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize Seal error %v is not ErrTooLarge", err)
	}
}

func TestNewCodecRejects(t *testing.T) {
	if _, err := NewCodec("prod", []byte("short")); err == nil {
		t.Fatal("NewCodec accepted a 5-byte secret")
	}
	if _, err := NewCodec("", testSecret); err == nil {
		t.Fatal("NewCodec accepted an empty cluster name")
	}
	// The codec must copy the secret: changing the caller's slice later must
	// not change the key.
	secret := bytes.Clone(testSecret)
	c := mustCodec(t, "prod", secret)
	secret[0] ^= 0xff
	if _, err := c.Open(mustSeal(t, mustCodec(t, "prod", testSecret), Message{From: "a", Path: "lan"})); err != nil {
		t.Fatalf("codec key changed with the caller's slice: %v", err)
	}
}

func TestSealIsConcurrencySafe(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 500 {
				m := Message{From: "a", Path: "lan", Seq: uint64(g*1000 + i)}
				b, err := c.Seal(m)
				if err == nil {
					var got Message
					got, err = c.Open(b)
					if err == nil && got.Seq != m.Seq {
						err = errors.New("seq mismatch")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestHeaderFieldOffsets(t *testing.T) {
	// Guards the documented offsets against accidental reordering.
	c := mustCodec(t, "prod", testSecret)
	m := sampleMessage()
	b := mustSeal(t, c, m)
	if binary.BigEndian.Uint64(b[8:16]) != m.Incarnation || binary.BigEndian.Uint64(b[16:24]) != m.Seq ||
		int64(binary.BigEndian.Uint64(b[24:32])) != m.SentUnixNano {
		t.Fatalf("header fields not at documented offsets: %x", b[:32])
	}
}
