package agent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/vip"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/netnstest"
	"github.com/harules/harules/policy"
)

// TestIPv6TakeoverProbe: a takeover of an IPv6 VIP that another machine
// still holds is refused (ErrConflict, retried) after the duplicate address
// probe, and nothing is added; once the address is free it is taken, and
// reconcile finds it again by its address protocol and removes it when no
// held group uses it.
func TestIPv6TakeoverProbe(t *testing.T) {
	lab := netnstest.New(t)
	lab.Bridge("sw")
	lab.Host("n1")
	lab.Host("n2")
	lab.Connect("n1", "sw", "eth0", "2001:db8::1/64")
	lab.Connect("n2", "sw", "eth0", "2001:db8::2/64")

	e := NewExecutor("n1", slog.New(slog.DiscardHandler))
	defer e.Close()
	e.ProbeTimeout = 300 * time.Millisecond
	// The executor's managers work in the namespace of the agent; here
	// that is n1's, so open them there under the keys the executor uses.
	for key, o := range map[string]vip.Options{
		"1/50ms":  {ARPCount: 1, ARPInterval: 50 * time.Millisecond},
		"3/200ms": {ARPCount: 3, ARPInterval: 200 * time.Millisecond},
	} {
		o.NetNS, o.Logger = lab.NS("n1"), slog.New(slog.DiscardHandler)
		m, err := vip.New(o)
		if err != nil {
			t.Fatal(err)
		}
		e.vips[key] = m
	}
	r := &policy.Resource{Kind: policy.KindVIP, Name: "2001:db8::100",
		Params: map[string]string{"address": "2001:db8::100/64", "interface": "eth0", "arp_count": "1", "arp_interval": "50ms"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	onN1 := func() bool {
		return strings.Contains(lab.MustExec("n1", "ip", "-6", "addr", "show", "dev", "eth0"), "inet6 2001:db8::100/64")
	}

	// The old holder is cut off from the cluster but alive on the LAN.
	lab.MustExec("n2", "ip", "-6", "addr", "add", "2001:db8::100/64", "dev", "eth0", "nodad")
	err := e.startVIP(ctx, r, true, "web")
	if !errors.Is(err, ErrConflict) || !errors.Is(err, engine.ErrRetry) {
		t.Fatalf("takeover while n2 holds the VIP: got %v, want ErrConflict and ErrRetry", err)
	}
	if !strings.Contains(err.Error(), lab.MAC("n2", "eth0").String()) {
		t.Errorf("refusal does not name the holder's MAC %s: %v", lab.MAC("n2", "eth0"), err)
	}
	if onN1() {
		t.Fatalf("the VIP was added on n1 although n2 holds it")
	}

	lab.MustExec("n2", "ip", "-6", "addr", "del", "2001:db8::100/64", "dev", "eth0")
	if err := e.startVIP(ctx, r, true, "web"); err != nil {
		t.Fatalf("takeover of a free VIP: %v", err)
	}
	if !onN1() {
		t.Fatalf("the VIP is not on n1 after the takeover")
	}
	if err := e.Monitor(ctx, "web", r); err != nil {
		t.Fatalf("monitor of the held IPv6 VIP: %v", err)
	}
	if removed, err := e.ReconcileVIPs(ctx, []*policy.Resource{r}); err != nil || len(removed) != 0 {
		t.Fatalf("reconcile while the group is held removed %v (err %v)", removed, err)
	}
	removed, err := e.ReconcileVIPs(ctx, nil)
	if err != nil || len(removed) != 1 || removed[0].Address.String() != "2001:db8::100/64" {
		t.Fatalf("reconcile with no held group = %v, %v; want the IPv6 VIP removed", removed, err)
	}
	if onN1() {
		t.Fatalf("the VIP is still on n1 after reconcile removed it")
	}
}
