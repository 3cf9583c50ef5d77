package agent

import (
	"strings"
	"testing"

	"github.com/harules/harules/policy"
)

// TestKernelAtLeast: the release parsing behind check's "IPv6 VIPs need
// Linux 6.1" error.
func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"6.18.44-fc-v1300", true},
		{"6.1.0-28-amd64", true},
		{"6.0.12", false},
		{"5.15.0-91-generic", false},
		{"7.0", true},
		{"weird", true},
	} {
		if got := kernelAtLeast(c.release, 6, 1); got != c.want {
			t.Errorf("kernelAtLeast(%q, 6, 1) = %v, want %v", c.release, got, c.want)
		}
	}
}

// TestCheckNodeRefusesIPv6VIPOnOldKernel: check --node (and run) report an
// IPv6 VIP on a kernel older than 6.1 at its declaration; an IPv4 VIP on
// the same kernel is fine.
func TestCheckNodeRefusesIPv6VIPOnOldKernel(t *testing.T) {
	old := kernelRelease
	kernelRelease = func() (string, error) { return "5.15.0-91-generic", nil }
	t.Cleanup(func() { kernelRelease = old })
	for _, c := range []struct {
		address string
		want    bool
	}{{"2001:db8::10/64", true}, {"198.51.100.10/24", false}} {
		pf := &Preflight{}
		r := &policy.Resource{Kind: policy.KindVIP, Name: "v", Params: map[string]string{"address": c.address, "interface": "lo"}, Pos: policy.Pos{File: "p.star", Line: 3, Col: 5}}
		pf.checkResource(r, nil)
		err := pf.Err()
		if got := err != nil && strings.Contains(err.Error(), "p.star:3:5: vip v: IPv6 VIPs need Linux 6.1 or later"); got != c.want {
			t.Errorf("%s on Linux 5.15: error %v, want the kernel error: %v", c.address, err, c.want)
		}
	}
}
