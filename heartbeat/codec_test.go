package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestWireFormatMatchesDoc builds a datagram byte by byte from the layout in
// the package documentation and checks Seal produces exactly that.
func TestWireFormatMatchesDoc(t *testing.T) {
	c := mustCodec(t, "prod", testSecret)
	m := Message{From: "alpha", Path: "lan", Incarnation: 0x0102030405060708, Seq: 9, SentUnixNano: -2, Payload: []byte("{}")}

	var want []byte
	want = append(want, 'H', 'B', 1, 4, 5, 3, 0, 2)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 9)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)
	want = append(want, "prodalphalan{}"...)
	mac := hmac.New(sha256.New, testSecret)
	mac.Write(want)
	want = mac.Sum(want)

	got := mustSeal(t, c, m)
	if !bytes.Equal(got, want) {
		t.Fatalf("Seal:\n got %x\nwant %x", got, want)
	}
	if len(got) != SealedSize(m, "prod") || len(got) != 64+4+5+3+2 {
		t.Fatalf("size %d, SealedSize %d", len(got), SealedSize(m, "prod"))
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
		{"max payload", Message{From: "a", Path: "p", Payload: bytes.Repeat([]byte{'x'}, MaxPacketSize-64-len("prod")-2)}},
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
	version2 := bytes.Clone(body)
	version2[2] = 2
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
		{"version 2 even with valid MAC", withMAC(version2, testSecret), ErrMalformed},
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
