package vip

import (
	"strings"
	"testing"
)

// TestCarrierFollowsTheLink: an interface has a carrier only while it is
// up and its cable (the bridge side of the veth) is up; a missing
// interface has none.
func TestCarrierFollowsTheLink(t *testing.T) {
	l := newLAN(t)
	check := func(when string, want bool, stateHas string) {
		t.Helper()
		up, state, err := l.m1.Carrier("eth0")
		if err != nil {
			t.Fatalf("%s: Carrier: %v", when, err)
		}
		if up != want || !strings.Contains(state, stateHas) {
			t.Errorf("%s: Carrier = %v (%s), want %v with %q", when, up, state, want, stateHas)
		}
	}
	check("plugged in", true, "oper up")

	// The switch port goes down: eth0 stays admin up without carrier.
	port := l.bridgePort(t, "ha1")
	l.lab.SetLink("sw", port, false)
	check("cable cut", false, "no carrier")
	l.lab.SetLink("sw", port, true)
	check("cable back", true, "carrier")

	l.lab.SetLink("ha1", "eth0", false)
	check("admin down", false, "admin down")
	l.lab.SetLink("ha1", "eth0", true)

	if up, state, err := l.m1.Carrier("nosuch0"); err != nil || up || state != "gone" {
		t.Errorf("missing interface: Carrier = %v, %q, %v; want false, \"gone\", nil", up, state, err)
	}
}

// bridgePort names the bridge-side end of host's eth0 (netnstest names it
// "p<N>-<host>").
func (l *lan) bridgePort(t *testing.T, host string) string {
	t.Helper()
	out := l.lab.MustExec("sw", "ip", "-o", "link", "show", "master", "br0")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasSuffix(name, "-"+host) {
				return name
			}
		}
	}
	t.Fatalf("no port of %s on the bridge:\n%s", host, out)
	return ""
}
