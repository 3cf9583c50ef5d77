package heartbeat

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	testSecret  = []byte("0123456789abcdef-cluster-secret")
	otherSecret = []byte("fedcba9876543210-wrong-secret!!")
)

func mustCodec(t testing.TB, cluster string, secret []byte) *Codec {
	t.Helper()
	c, err := NewCodec(cluster, secret)
	if err != nil {
		t.Fatalf("NewCodec(%q): %v", cluster, err)
	}
	return c
}

func mustSeal(t testing.TB, c *Codec, m Message) []byte {
	t.Helper()
	b, err := c.Seal(m)
	if err != nil {
		t.Fatalf("Seal(%+v): %v", m, err)
	}
	return b
}

func sampleMessage() Message {
	return Message{
		Cluster:      "prod",
		From:         "alpha",
		Path:         "lan",
		Incarnation:  1_700_000_000_000_000_000,
		Seq:          42,
		SentUnixNano: 1_700_000_123_456_789_000,
		Payload:      []byte(`{"groups":["web"],"probes":{"ok":3},"policy":"sha256:ab12"}`),
	}
}

// fakeClock is a settable clock safe for use from several goroutines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// waitFor polls cond until it holds or the generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
