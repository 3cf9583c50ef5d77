package netnstest

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func requirePing(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatalf("this test needs `ping`: install the Debian package iputils-ping (apt-get install -y iputils-ping): %v", err)
	}
}

func namespaces(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

// TestTwoHostsPingThroughBridge builds two hosts on a bridge, checks they
// reach each other, that cutting a link breaks the path, and that cleanup
// leaves no namespace behind.
func TestTwoHostsPingThroughBridge(t *testing.T) {
	requirePing(t)
	var names []string
	var sleeperCmd *exec.Cmd
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		names = append(names, lab.Bridge("sw"), lab.Host("a"), lab.Host("b"))
		lab.Connect("a", "sw", "eth0", "198.51.100.1/24")
		lab.Connect("b", "sw", "eth0", "198.51.100.2/24")

		listed := namespaces(t)
		for _, n := range names {
			if !strings.Contains(listed, n) {
				t.Fatalf("namespace %s not in `ip netns list`:\n%s", n, listed)
			}
			if !strings.HasSuffix(n, lab.Suffix()) {
				t.Errorf("namespace %s lacks the lab suffix %s", n, lab.Suffix())
			}
		}

		if out, err := lab.Exec("a", "ping", "-c1", "-W5", "198.51.100.2"); err != nil {
			t.Fatalf("a cannot ping b: %v\n%s", err, out)
		}
		if out, err := lab.Exec("b", "ping", "-c1", "-W5", "198.51.100.1"); err != nil {
			t.Fatalf("b cannot ping a: %v\n%s", err, out)
		}

		// Cutting b's link must break the path; restoring it must heal it.
		lab.SetLink("b", "eth0", false)
		if out, err := lab.Exec("a", "ping", "-c1", "-W1", "198.51.100.2"); err == nil {
			t.Fatalf("a still reaches b with b's link down:\n%s", out)
		}
		lab.SetLink("b", "eth0", true)
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, err := lab.Exec("a", "ping", "-c1", "-W1", "198.51.100.2")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a does not reach b after the link came back: %v\n%s", err, out)
			}
		}

		// A long-running process started through the lab; cleanup must kill it.
		sleeper := lab.Command("a", "sleep", "300")
		if err := sleeper.Start(); err != nil {
			t.Fatalf("start sleep: %v", err)
		}
		sleeperCmd = sleeper
	})

	if sleeperCmd == nil {
		t.Fatalf("lab subtest did not start its process")
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeperCmd.Wait() }()
	select {
	case err := <-waited:
		if err == nil {
			t.Errorf("sleep exited cleanly; expected the lab's cleanup to kill it")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("sleep %d still running after the lab's cleanup", sleeperCmd.Process.Pid)
		_ = sleeperCmd.Process.Kill()
	}

	listed := namespaces(t)
	for _, n := range names {
		if strings.Contains(listed, n) {
			t.Errorf("namespace %s survived cleanup:\n%s", n, listed)
		}
	}
}

// TestDoEntersNamespace checks that Go code run with Do sees the host's
// interfaces and that the caller's thread is back in its own namespace.
func TestDoEntersNamespace(t *testing.T) {
	lab := New(t)
	lab.Bridge("sw")
	lab.Host("a")
	lab.Connect("a", "sw", "veth-a", "203.0.113.7/24")

	var found bool
	err := lab.Do("a", func() error {
		ifi, err := net.InterfaceByName("veth-a")
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == netip.MustParseAddr("203.0.113.7") {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if !found {
		t.Fatalf("203.0.113.7 not seen on veth-a inside the namespace")
	}
	if mac := lab.MAC("a", "veth-a"); len(mac) != 6 {
		t.Fatalf("MAC of veth-a = %v, want 6 bytes", mac)
	}
	// The test's own namespace must not have the lab's interface.
	if _, err := net.InterfaceByName("veth-a"); err == nil {
		t.Fatalf("veth-a is visible outside the lab's namespace")
	}
}

func TestAddressRangeGuard(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		ok   bool
	}{
		{"198.51.100.9/24", true},
		{"203.0.113.1/32", true},
		{"192.168.1.1/24", false},
		{"10.0.0.1/8", false},
		{"198.51.101.1/24", false},
		{"2001:db8::1/64", true},
		{"2001:db8:ffff::1/48", true},
		{"2001:db9::1/64", false},
		{"fd00::1/64", false},
		{"::ffff:198.51.100.9/120", false},
		{"nonsense", false},
	} {
		if err := checkCIDR(tc.cidr); (err == nil) != tc.ok {
			t.Errorf("checkCIDR(%q) = %v, want ok=%v", tc.cidr, err, tc.ok)
		}
	}
}

// TestIPv6AddressUsableAtOnce checks that lab namespaces have IPv6 DAD off:
// an address added by Connect is not tentative and answers a ping at once.
func TestIPv6AddressUsableAtOnce(t *testing.T) {
	lab := New(t)
	lab.Bridge("sw")
	lab.Host("a")
	lab.Host("b")
	lab.Connect("a", "sw", "eth0", "2001:db8::1/64")
	lab.Connect("b", "sw", "eth0", "2001:db8::2/64")
	if out := lab.MustExec("a", "ip", "-6", "addr", "show", "dev", "eth0"); strings.Contains(out, "tentative") {
		t.Fatalf("address still tentative (DAD on):\n%s", out)
	}
	lab.MustExec("a", "ping", "-6", "-c1", "-W2", "2001:db8::2")
}
