package probes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/netnstest"
)

func TestICMPLoopback(t *testing.T) {
	netnstest.RequireRoot(t) // the raw socket fallback needs root here
	c, err := NewICMP(ICMPConfig{Target: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r := runWithin(t, c, 5*time.Second)
	mustOK(t, r)
	if r.Value <= 0 || !strings.Contains(r.Text, "127.0.0.1") {
		t.Fatalf("reply not described: %+v", r)
	}
	for _, bad := range []ICMPConfig{{Target: "gw"}, {Target: "::1"}, {Target: "127.0.0.1", Mode: "tcp"}} {
		if _, err := NewICMP(bad); err == nil {
			t.Errorf("NewICMP(%+v) accepted", bad)
		}
	}
}

// gatewayLab builds host "a" (198.51.100.10/24) and a gateway "gw"
// (198.51.100.1/24) on one bridge; 198.51.100.2 does not exist.
func gatewayLab(t *testing.T) *netnstest.Lab {
	lab := netnstest.New(t)
	lab.Bridge("sw")
	lab.Host("a")
	lab.Host("gw")
	lab.Connect("a", "sw", "eth0", "198.51.100.10/24")
	lab.Connect("gw", "sw", "eth0", "198.51.100.1/24")
	return lab
}

// runIn runs the check on a thread inside host's network namespace.
func runIn(t *testing.T, lab *netnstest.Lab, host string, c Check, timeout time.Duration) Result {
	t.Helper()
	var r Result
	err := lab.Do(host, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		r = c.Run(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGatewayICMPInNamespace(t *testing.T) {
	lab := gatewayLab(t)
	gw, _ := NewICMP(ICMPConfig{Target: "198.51.100.1"})
	missing, _ := NewICMP(ICMPConfig{Target: "198.51.100.2"})
	unpriv, _ := NewICMP(ICMPConfig{Target: "198.51.100.1", Mode: ICMPUnprivileged})

	// The namespace starts with ping_group_range "1 0" (nobody): auto mode
	// must fall back to the raw socket.
	r := runIn(t, lab, "a", gw, 5*time.Second)
	mustOK(t, r)
	if !strings.Contains(r.Text, "raw socket") {
		t.Fatalf("default namespace should use the raw socket: %q", r.Text)
	}
	start := time.Now()
	mustFail(t, runIn(t, lab, "a", missing, 700*time.Millisecond), "no echo reply from 198.51.100.2")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("failing ping with a 700ms deadline took %s", el)
	}
	lab.MustExec("a", "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	r = runIn(t, lab, "a", unpriv, 5*time.Second)
	mustOK(t, r)
	if !strings.Contains(r.Text, "udp socket") {
		t.Fatalf("widened ping_group_range should allow the ping socket: %q", r.Text)
	}
	r = runIn(t, lab, "a", gw, 5*time.Second)
	mustOK(t, r)
	if !strings.Contains(r.Text, "udp socket") {
		t.Fatalf("auto mode should prefer the ping socket when allowed: %q", r.Text)
	}
	mustFail(t, runIn(t, lab, "a", missing, 700*time.Millisecond), "no echo reply")

	// Take the gateway away: the check that passed now fails.
	lab.SetLink("gw", "eth0", false)
	mustFail(t, runIn(t, lab, "a", gw, 700*time.Millisecond), "no echo reply from 198.51.100.1")
}

func TestGatewayARPInNamespace(t *testing.T) {
	lab := gatewayLab(t)
	gwMAC := lab.MAC("gw", "eth0")
	gw, err := NewARP(ARPConfig{Target: "198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	r := runIn(t, lab, "a", gw, 5*time.Second)
	mustOK(t, r)
	if !strings.Contains(r.Text, gwMAC.String()) || !strings.Contains(r.Text, "eth0") {
		t.Fatalf("reply %q does not name gateway MAC %s on eth0", r.Text, gwMAC)
	}
	named, _ := NewARP(ARPConfig{Target: "198.51.100.1", Interface: "eth0"})
	mustOK(t, runIn(t, lab, "a", named, 5*time.Second))

	missing, _ := NewARP(ARPConfig{Target: "198.51.100.2"})
	mustFail(t, runIn(t, lab, "a", missing, 700*time.Millisecond), "no ARP reply from 198.51.100.2")
	offSubnet, _ := NewARP(ARPConfig{Target: "203.0.113.1"})
	mustFail(t, runIn(t, lab, "a", offSubnet, time.Second), "no interface has an IPv4 subnet containing 203.0.113.1")
	wrongIf, _ := NewARP(ARPConfig{Target: "198.51.100.1", Interface: "lo"})
	mustFail(t, runIn(t, lab, "a", wrongIf, time.Second), "no IPv4 subnet containing")

	lab.SetLink("gw", "eth0", false)
	mustFail(t, runIn(t, lab, "a", gw, 700*time.Millisecond), "no ARP reply from 198.51.100.1")

	for _, bad := range []ARPConfig{{Target: ""}, {Target: "2001:db8::1"}, {Target: "198.51.100.1", Interface: "a-very-long-interface"}} {
		if _, err := NewARP(bad); err == nil {
			t.Errorf("NewARP(%+v) accepted", bad)
		}
	}
}
