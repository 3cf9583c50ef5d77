package heartbeat

import (
	"net/netip"
	"testing"
	"time"
)

func BenchmarkSeal(b *testing.B) {
	c := mustCodec(b, "prod", testSecret)
	m := sampleMessage()
	buf := make([]byte, 0, MaxPacketSize)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = c.AppendSeal(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	c := mustCodec(b, "prod", testSecret)
	data := mustSeal(b, c, sampleMessage())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpen is one heartbeat's codec cost on both sides.
func BenchmarkSealOpen(b *testing.B) {
	c := mustCodec(b, "prod", testSecret)
	m := sampleMessage()
	b.ReportAllocs()
	for b.Loop() {
		data, err := c.Seal(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Open(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the full receive-side check of one genuine datagram.
func BenchmarkVerify(b *testing.B) {
	c := mustCodec(b, "prod", testSecret)
	v, err := NewVerifier("lan", c, nil, map[string]netip.AddrPort{"alpha": ap("198.51.100.2:7946")}, 0)
	if err != nil {
		b.Fatal(err)
	}
	m := sampleMessage()
	m.Seq = 0
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		m.Seq++
		b.StopTimer()
		data := mustSeal(b, c, m)
		b.StartTimer()
		if _, err := v.Verify(data, ap("198.51.100.2:7946"), at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenForged is the cost of rejecting a forged datagram (flood).
func BenchmarkOpenForged(b *testing.B) {
	c := mustCodec(b, "prod", testSecret)
	data := mustSeal(b, c, sampleMessage())
	data[len(data)-1] ^= 1
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(data); err == nil {
			b.Fatal("forged datagram accepted")
		}
	}
}
