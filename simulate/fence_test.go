package simulate_test

import (
	"os"
	"strings"
	"testing"

	"github.com/harules/harules/engine"
)

const fencePolicy = `
load("@stdlib//placement.star", "active_standby")
cluster(name = "f", fence = ["/usr/local/sbin/fence-ipmi"], fence_timeout = "20s")
node("node1", address = "198.51.100.1")
node("node2", address = "198.51.100.2")
heartbeat("lan", interval = "200ms", misses = 5)
group("web", resources = [vip("198.51.100.10/24", interface = "eth0")], placement = active_standby(["node1", "node2"]))
group("db", resources = [vip("198.51.100.11/24", interface = "eth0")], placement = active_standby(["node1", "node2"]))
`

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	path := t.TempDir() + "/policy.star"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFencingBeforeTakeover: node2 fences node1 once (not once per group)
// before it takes over, and the fence comes before any start.
func TestFencingBeforeTakeover(t *testing.T) {
	res := runScenario(t, writePolicy(t, fencePolicy), `
scenario(duration = "10s")
at("2s", crash("node1"))
expect_owner("web", "node2", at = "5s")
expect_owner("db", "node2", at = "5s")
`)
	if !res.OK {
		t.Fatalf("expectations failed: %+v", res.Expectations)
	}
	fences, firstStart, fenceAt := 0, -1, -1
	for i, r := range res.Records {
		if r.Kind != engine.RecAction || r.Node != "node2" {
			continue
		}
		switch {
		case strings.HasPrefix(r.Text, "fence node1"):
			fences++
			fenceAt = i
		case strings.HasPrefix(r.Text, "start ") && firstStart < 0:
			firstStart = i
		}
	}
	if fences != 1 {
		t.Errorf("node2 fenced node1 %d times, want once for both groups", fences)
	}
	if fenceAt < 0 || firstStart < fenceAt {
		t.Errorf("the fence (record %d) must come before the first start (record %d)", fenceAt, firstStart)
	}
}

// TestFailedFencingBlocksTakeover: while the fence command fails, node2 takes
// nothing over (a split brain is worse than an outage); once it works, the
// takeover proceeds.
func TestFailedFencingBlocksTakeover(t *testing.T) {
	res := runScenario(t, writePolicy(t, fencePolicy), `
scenario(duration = "20s")
at("1s", fail_fence("node2"))
at("2s", crash("node1"))
at("10s", fail_fence("node2", fixed = True))
expect_owner("web", None, at = "8s")
expect_owner("web", "node2", at = "13s")
`)
	if !res.OK {
		t.Fatalf("expectations failed: %+v", res.Expectations)
	}
	failures := 0
	for _, r := range res.Records {
		if r.Kind == engine.RecAction && strings.HasPrefix(r.Text, "fence node1") && r.Error != "" {
			failures++
		}
	}
	if failures == 0 {
		t.Error("no failed fence attempt recorded")
	}
}
