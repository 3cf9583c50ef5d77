package simulate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

// twoNodes is a small Active/Standby policy the semantic tests build on;
// %RULES% is replaced by each test's rules.
const twoNodes = `
load("@stdlib//placement.star", "active_standby")
load("@stdlib//rules.star", "gateway_guard", "path_down_alert")

cluster(name = "t")
node("node1", address = "198.51.100.1", addresses = {"b": "203.0.113.1"})
node("node2", address = "198.51.100.2", addresses = {"b": "203.0.113.2"})
heartbeat("a", interval = "200ms", misses = 5)
heartbeat("b", interval = "200ms", misses = 5)
probe("gateway", check.gateway("198.51.100.254"), every = "1s", fall = 2, rise = 1)
probe("http", check.http("http://127.0.0.1/health"), every = "1s", fall = 3, rise = 2)
group("web", resources = [vip("198.51.100.10/24"), service("web", command = "/bin/web")],
      placement = active_standby(["node1", "node2"]))
backup("nightly", schedule = "0 2 * * *", group = "web", params = {"target": "/var/backups/harules", "source": "/srv/data"})
%RULES%
`

// writeFiles writes a policy and a scenario into a temporary directory and
// returns their paths.
func writeFiles(t *testing.T, policySrc, scenarioSrc string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pf, sf := filepath.Join(dir, "policy.star"), filepath.Join(dir, "scenario.star")
	if err := os.WriteFile(pf, []byte(policySrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sf, []byte(scenarioSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	return pf, sf
}

func loadPolicy(t *testing.T, path string) *policy.Policy {
	t.Helper()
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		t.Fatalf("policy invalid:\n%v", err)
	}
	return p
}

// simulateSrc loads both sources and runs the scenario.
func simulateSrc(t *testing.T, policySrc, scenarioSrc string) *simulate.Result {
	t.Helper()
	pf, sf := writeFiles(t, policySrc, scenarioSrc)
	p := loadPolicy(t, pf)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := simulate.LoadScenario(ctx, sf, p)
	if err != nil {
		t.Fatalf("scenario invalid:\n%v", err)
	}
	res, err := simulate.Run(ctx, p, pf, sc, simulate.Options{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

func withRules(rulesSrc string) string { return strings.Replace(twoNodes, "%RULES%", rulesSrc, 1) }

// offset is a record's time relative to the scenario start.
func offset(res *simulate.Result, r engine.Record) time.Duration { return r.At.Sub(res.Start) }

// find returns the records of a kind on a node whose text contains substr.
func find(res *simulate.Result, node, kind, substr string) []engine.Record {
	var out []engine.Record
	for _, r := range res.Records {
		if (node == "" || r.Node == node) && r.Kind == kind && strings.Contains(r.Text, substr) {
			out = append(out, r)
		}
	}
	return out
}

func mustOK(t *testing.T, res *simulate.Result) {
	t.Helper()
	if !res.OK {
		var b strings.Builder
		simulate.WriteText(&b, res, simulate.TextOptions{Quiet: true})
		t.Fatalf("scenario failed:\n%s", b.String())
	}
}
