package agent

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/vip"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/netnstest"
)

// TestCarrierGate: no VIP is added on an interface without carrier (a
// failure, so the group goes elsewhere), and right after the carrier came
// back every start on it waits (ErrRetry) for the settle time.
func TestCarrierGate(t *testing.T) {
	lab := netnstest.New(t)
	lab.Bridge("sw")
	lab.Host("n1")
	lab.Connect("n1", "sw", "eth0", "198.51.100.1/24")
	port := strings.SplitN(strings.Fields(lab.MustExec("sw", "ip", "-o", "link", "show", "master", "br0"))[1], "@", 2)[0]
	m, err := vip.New(vip.Options{NetNS: lab.NS("n1"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v := vip.VIP{Address: netip.MustParsePrefix("198.51.100.100/24"), Interface: "eth0"}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := NewExecutor("n1", slog.New(slog.DiscardHandler))
	e.now = func() time.Time { return now }
	e.links = &carrierBook{}
	e.CarrierSettle = 1500 * time.Millisecond
	e.links.set("eth0", true, now)
	if err := e.carrierGate(m, v, true, "web"); err != nil {
		t.Fatalf("carrier up since the agent started: takeover refused: %v", err)
	}

	lab.SetLink("sw", port, false)
	e.links.set("eth0", false, now)
	err = e.carrierGate(m, v, false, "web")
	if err == nil || errors.Is(err, engine.ErrRetry) || !strings.Contains(err.Error(), "no carrier") {
		t.Fatalf("no carrier: got %v, want a plain failure saying there is no carrier", err)
	}

	lab.SetLink("sw", port, true)
	now = now.Add(10 * time.Second)
	e.links.set("eth0", true, now)
	now = now.Add(time.Second)
	if err := e.carrierGate(m, v, true, "web"); !errors.Is(err, engine.ErrRetry) {
		t.Errorf("takeover 1s after the carrier came back (settle 1.5s): got %v, want ErrRetry", err)
	}
	if err := e.carrierGate(m, v, false, "web"); !errors.Is(err, engine.ErrRetry) {
		t.Errorf("plain start 1s after the carrier came back (settle 1.5s): got %v, want ErrRetry", err)
	}
	now = now.Add(time.Second)
	if err := e.carrierGate(m, v, true, "web"); err != nil {
		t.Errorf("takeover 2s after the carrier came back: %v, want it allowed", err)
	}
}

// TestCarrierBookCountsOnlyNotifiedReturns: a link first seen without
// carrier (the kernel reports oper "down" for a moment after a link comes
// up) is not "back" when it comes up; one that went down while watched is.
func TestCarrierBookCountsOnlyNotifiedReturns(t *testing.T) {
	var b carrierBook
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.set("eth1", false, at)
	b.set("eth1", true, at.Add(time.Second))
	if _, ok := b.backSince("eth1"); ok {
		t.Errorf("eth1 first seen down, then up: counted as a carrier that came back")
	}
	b.set("eth0", true, at)
	b.set("eth0", false, at.Add(time.Second))
	b.set("eth0", true, at.Add(2*time.Second))
	if since, ok := b.backSince("eth0"); !ok || !since.Equal(at.Add(2*time.Second)) {
		t.Errorf("eth0 up, down, up: backSince = %v, %v; want %v, true", since, ok, at.Add(2*time.Second))
	}
	b.set("eth0", true, at.Add(3*time.Second)) // no change: since stays
	if since, _ := b.backSince("eth0"); !since.Equal(at.Add(2 * time.Second)) {
		t.Errorf("a repeated up moved backSince to %v", since)
	}
}
