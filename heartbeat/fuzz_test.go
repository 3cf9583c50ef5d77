package heartbeat

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary datagrams to Open (which must never panic) and
// to the structural parser: whatever parses must re-encode to the same
// bytes, so the format has exactly one encoding per message.
func FuzzOpen(f *testing.F) {
	c := mustCodec(f, "prod", testSecret)
	good := mustSeal(f, c, sampleMessage())
	f.Add(good)
	f.Add(mustSeal(f, c, Message{From: "b", Path: "backnet"}))
	f.Add(good[:len(good)-1])
	f.Add(good[:headerSize])
	f.Add([]byte{})
	f.Add([]byte("HB\x01\x00\x00\x00\x00\x00"))
	f.Add(mustSeal(f, c, Message{From: "a", Path: "lan", Echoes: []Echo{{Node: "b", Seq: 1, Held: 5}}}))
	f.Add(mustSeal(f, c, Message{From: "a", Path: "lan", Version: VersionNoEcho}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := c.Open(data)
		if err == nil {
			again, serr := c.Seal(m)
			if serr != nil || !bytes.Equal(again, data) {
				t.Fatalf("opened datagram does not reseal identically: %v\n%x\n%x", serr, data, again)
			}
		} else if _, ok := ReasonOf(err); !ok {
			t.Fatalf("Open error is not a RejectError: %v", err)
		}

		lay, err := parse(data)
		if err != nil {
			return
		}
		// Rebuild from the parsed layout with a fresh MAC under a codec for
		// the parsed cluster; it must reproduce the body.
		cluster := string(data[lay.h : lay.h+lay.c])
		pc, err := NewCodec(cluster, testSecret)
		if err != nil {
			return // e.g. non-UTF-8 cluster name: Seal refuses it too
		}
		body := data[:len(data)-macSize]
		resealed := withMAC(body, testSecret)
		m2, err := pc.Open(resealed)
		if err != nil {
			return // names that are not UTF-8
		}
		again, err := pc.Seal(m2)
		if err != nil || !bytes.Equal(again, resealed) {
			t.Fatalf("parsed datagram does not re-encode identically: %v", err)
		}
	})
}
