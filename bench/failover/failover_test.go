package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/rules"
)

func at(ms float64) time.Time {
	return time.Unix(0, 0).Add(time.Duration(ms * float64(time.Millisecond)))
}

func TestClientGapIsLastOldToFirstNew(t *testing.T) {
	rs := []reply{{at(0), 0}, {at(1), 0}, {at(2), 0}, {at(40), 1}, {at(41), 1}}
	gap, first, ok := clientGap(rs, 0, 1)
	if !ok || gap != 38*time.Millisecond || !first.Equal(at(40)) {
		t.Fatalf("clientGap = %v, %v, %v; want 38ms from the answer at 2ms to the one at 40ms", gap, first, ok)
	}
	// Both answering (a VIP left behind): the gap ends at the new node's
	// first answer, measured from the old node's answer just before it.
	rs = []reply{{at(0), 0}, {at(5), 0}, {at(6), 1}, {at(7), 0}, {at(8), 1}}
	if gap, _, ok := clientGap(rs, 0, 1); !ok || gap != time.Millisecond {
		t.Fatalf("overlapping answers: gap %v ok %v, want 1ms", gap, ok)
	}
	if _, _, ok := clientGap([]reply{{at(0), 0}, {at(1), 0}}, 0, 1); ok {
		t.Fatal("no answer from the new node must not count as a switch")
	}
	if _, _, ok := clientGap([]reply{{at(0), 1}}, 0, 1); ok {
		t.Fatal("the new node answering without the old one before it is not a measured switch")
	}
}

func TestSummarizeMedianMinMaxAndCounts(t *testing.T) {
	rs := []runResult{
		{Gap: 30 * time.Millisecond, TwoMACs: true, Leftover: true},
		{Gap: 10 * time.Millisecond},
		{Gap: 20 * time.Millisecond},
		{Gap: 40 * time.Millisecond},
		{Err: os.ErrDeadlineExceeded},
	}
	s := summarize(rs)
	if s.n != 4 || s.failed != 1 || s.twoMACs != 1 || s.leftover != 1 {
		t.Fatalf("counts %+v, want 4 measured, 1 failed, 1 with two MACs, 1 leftover", s)
	}
	if s.median != 25*time.Millisecond || s.min != 10*time.Millisecond || s.max != 40*time.Millisecond {
		t.Fatalf("median/min/max %v/%v/%v, want 25ms/10ms/40ms", s.median, s.min, s.max)
	}
	if s := summarize(rs[:3]); s.median != 20*time.Millisecond {
		t.Fatalf("odd count median %v, want 20ms", s.median)
	}
}

func TestKeepalivedConfigMatchesTheHarulesSettings(t *testing.T) {
	conf := keepalivedConfig("node2", 10*time.Millisecond)
	for _, want := range []string{
		"vrrp_version 3", "vrrp_garp_master_delay 0", "vrrp_garp_master_repeat 3", "vrrp_garp_interval 0.05",
		"state BACKUP", "priority 100", "advert_int 0.01", "unicast_src_ip 198.51.100.2",
		"unicast_peer {\n        198.51.100.1\n", "198.51.100.100/24 dev eth0",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("node2 config lacks %q:\n%s", want, conf)
		}
	}
	if conf := keepalivedConfig("node1", time.Second); !strings.Contains(conf, "advert_int 1\n") || !strings.Contains(conf, "priority 150") {
		t.Errorf("node1 config at 1s:\n%s", conf)
	}
}

func TestHarulesPolicyLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("bench-failover-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(harulesPolicy(10*time.Millisecond)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		t.Fatalf("the benchmark's policy does not load: %v", err)
	}
	if len(p.Paths) != 2 || p.Paths[0].Interval != 10*time.Millisecond || p.Paths[0].Misses != 3 {
		t.Fatalf("paths %+v, want lan and backnet at 10ms x 3", p.Paths)
	}
	if g := p.Group("vip"); g == nil || len(g.Resources) != 1 || g.Resources[0].Params["address"] != vipCIDR {
		t.Fatalf("group vip: %+v", g)
	}
}

func TestProcReadersReadThisProcess(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.state == "" {
		t.Fatal("no process state parsed from /proc/self/stat")
	}
	m, err := readMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Anon <= 0 || m.File <= 0 || m.PSS <= 0 {
		t.Fatalf("readMem of this test: %+v, %v; want RSS, anonymous, file and PSS all above 0", m, err)
	}
	if m.Anon+m.File > m.RSS+m.RSS/10 || m.PSS > m.RSS {
		t.Fatalf("readMem of this test: %+v; anonymous + file should make up VmRSS and PSS be at most VmRSS", m)
	}
	time.Sleep(5 * time.Millisecond) // the thread running the test blocks at least once
	if n, err := wakeupsOf(os.Getpid()); err != nil || n == 0 {
		t.Fatalf("wakeupsOf this test: %d, %v; a running Go test has slept at least once", n, err)
	}
	if ns, err := cpuNS(os.Getpid()); err != nil || ns == 0 {
		t.Fatalf("cpuNS of this test: %d, %v", ns, err)
	}
}
