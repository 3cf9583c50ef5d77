package rules_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins"
	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

func mustLoad(t *testing.T, path string) *policy.Policy {
	t.Helper()
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return p
}

// TestExamplesLoad loads every shipped example; the ones this test knows
// are also checked against the numbers their comments promise.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../examples/*/policy.star")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*/policy.star found")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			p := mustLoad(t, f)
			if p.Cluster.Name == "" || len(p.Nodes) == 0 || len(p.Groups) == 0 {
				t.Errorf("example compiled to an empty model: cluster %q, %d nodes, %d groups", p.Cluster.Name, len(p.Nodes), len(p.Groups))
			}
			if len(p.Hash) != 16 || p.Files[0] != filepath.Clean(f) {
				t.Errorf("hash %q / files %v: want a 16-hex-digit hash and the main file first", p.Hash, p.Files)
			}
		})
	}
}

func TestWebActiveStandbyModel(t *testing.T) {
	p := mustLoad(t, "../examples/web-active-standby/policy.star")
	if got := names(p.Nodes, func(n *policy.Node) string { return n.Name }); !slices.Equal(got, []string{"node1", "node2"}) {
		t.Errorf("nodes = %v", got)
	}
	n2 := p.Node("node2")
	if n2 == nil || n2.AddressOn("lan").String() != "198.51.100.2" || n2.AddressOn("backnet").String() != "203.0.113.2" {
		t.Errorf("node2 addresses wrong: %+v", n2)
	}
	if len(p.Paths) != 2 || p.Path("lan").Interval != 200*time.Millisecond || p.Path("lan").Misses != 5 || p.Path("lan").Port != 694 {
		t.Errorf("paths = %+v", p.Paths)
	}
	if d := p.DetectionTime(); d != time.Second {
		t.Errorf("detection time = %s, want 1s (5 x 200ms)", d)
	}
	if pr := p.Probe("gateway"); pr == nil || pr.Check.Kind != "gateway" || pr.Check.Params["address"] != "198.51.100.254" || pr.Fall != 2 || pr.Rise != 1 {
		t.Errorf("gateway probe = %+v", pr)
	}
	g := p.Group("web")
	if g == nil {
		t.Fatal("no group web")
	}
	if len(g.Resources) != 2 || g.Resources[0].ID() != "vip:198.51.100.10" || g.Resources[0].Params["interface"] != "eth0" ||
		g.Resources[1].Params["kind"] != "process" || g.Resources[1].Params["command"] != "/usr/local/bin/webapp\x00--port\x008080" {
		t.Errorf("resources = %+v %+v", g.Resources[0], g.Resources[1])
	}
	pl := g.Placement
	if pl.Kind != "active_standby" || !slices.Equal(pl.Nodes, []string{"node1", "node2"}) || pl.Scores["node1"] != 100 || pl.Scores["node2"] != 49 ||
		pl.Stickiness != 1_000_000 || pl.Failback != policy.FailbackManual || pl.Weight != 1 || pl.Priority != 0 {
		t.Errorf("placement = %+v", pl)
	}
	if !strings.HasPrefix(pl.Pos.File, "@stdlib//placement.star") {
		t.Errorf("placement position %s; want the placement() call in @stdlib", pl.Pos)
	}
	// The example grows; pin the rules its comments promise, not the count.
	ruleNames := names(p.Rules, func(r *policy.Rule) string { return r.Name })
	for _, want := range []string{"path-alert", "gateway-guard", "web-health"} {
		if !slices.Contains(ruleNames, want) {
			t.Errorf("rules = %v; missing %q", ruleNames, want)
		}
	}
	for _, r := range p.Rules {
		if r.Name == "web-health" && (r.For != 10*time.Second || r.Then == nil || r.Pos.File != "../examples/web-active-standby/policy.star") {
			t.Errorf("web-health rule = %+v", r)
		}
	}
}

func TestActiveActiveModel(t *testing.T) {
	p := mustLoad(t, "../examples/active-active/policy.star")
	for _, n := range p.Nodes {
		if n.Capacity != 2 {
			t.Errorf("node %s capacity %d, want 2", n.Name, n.Capacity)
		}
	}
	if d := p.DetectionTime(); d != 2*time.Second {
		t.Errorf("detection = %s, want 2s (4 x 500ms)", d)
	}
	want := []struct {
		group    string
		nodes    []string
		priority int
	}{{"app-a", []string{"node1", "node2"}, 10}, {"app-b", []string{"node2", "node1"}, 10}, {"reports", []string{"node2", "node1"}, 0}}
	for _, w := range want {
		g := p.Group(w.group)
		if g == nil {
			t.Errorf("no group %s", w.group)
			continue
		}
		pl := g.Placement
		if pl.Kind != "active_standby" || !slices.Equal(pl.Nodes, w.nodes) || pl.Priority != w.priority || pl.Weight != 1 ||
			pl.Failback != policy.FailbackAuto || pl.FailbackDelay != 30*time.Second || pl.Stickiness != 0 || pl.Scores[w.nodes[0]] != 100 {
			t.Errorf("%s placement = %+v", w.group, pl)
		}
	}
}

// TestRelativeLoads: load() of files relative to the loading file, from a
// subdirectory and back up, with one shared library module.
func TestRelativeLoads(t *testing.T) {
	p := mustLoad(t, "testdata/good/relative/policy.star")
	want := []string{"testdata/good/relative/policy.star", "testdata/good/relative/lib.star", "testdata/good/relative/sub/nodes.star", "@stdlib//rules.star"}
	if !slices.Equal(p.Files, want) {
		t.Errorf("files = %v, want %v (lib.star once)", p.Files, want)
	}
	if got := names(p.Nodes, func(n *policy.Node) string { return n.Name }); !slices.Equal(got, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("nodes = %v", got)
	}
	if a := p.Node("gamma").Address.String(); a != "198.51.100.3" || p.Node("gamma").Capacity != 4 {
		t.Errorf("gamma = %s cap %d", a, p.Node("gamma").Capacity)
	}
	api := p.Group("api")
	if api == nil || !slices.Equal(api.Placement.Nodes, []string{"beta", "gamma"}) || api.Placement.Weight != 3 {
		t.Fatalf("api group = %+v", api)
	}
	// Declarations made by a library function carry the library's position.
	if api.Pos.File != "testdata/good/relative/lib.star" || api.Pos.Line != 9 {
		t.Errorf("api declared at %s; want testdata/good/relative/lib.star:9", api.Pos)
	}
	if p.Cluster.Reevaluate != 2*time.Second {
		t.Errorf("reevaluate = %s", p.Cluster.Reevaluate)
	}
}

func TestCompletePolicy(t *testing.T) {
	p := mustLoad(t, "testdata/good/complete.star")
	if len(p.Nodes) != 3 || len(p.Paths) != 3 || len(p.Probes) != 3 || len(p.Groups) != 2 || len(p.Rules) != 3 || len(p.Backups) != 2 {
		t.Fatalf("counts: %d nodes %d paths %d probes %d groups %d rules %d backups", len(p.Nodes), len(p.Paths), len(p.Probes), len(p.Groups), len(p.Rules), len(p.Backups))
	}
	if pr := p.Probe("pg"); !slices.Equal(pr.Nodes, []string{"db1", "db2"}) || pr.Timeout != time.Second || pr.Check.Params["max_lag_bytes"] != "1048576" {
		t.Errorf("pg probe = %+v", pr)
	}
	db := p.Group("db").Placement
	if db.Failback != policy.FailbackAuto || db.FailbackDelay != 5*time.Minute || db.Weight != 6 || db.Priority != 10 || db.Stickiness != 0 {
		t.Errorf("db placement = %+v", db)
	}
	rep := p.Group("reports").Placement
	if rep.Kind != "active_standby" || !slices.Equal(rep.Nodes, []string{"db3", "db1", "db2"}) {
		t.Errorf("reports placement (active_active home db3) = %+v", rep)
	}
	svc := p.Group("reports").Resources[0]
	if svc.Params["kind"] != "commands" || svc.Params["start"] != "/opt/r\x00start" || svc.Params["stop"] != "/opt/r stop" {
		t.Errorf("reports service = %+v", svc.Params)
	}
	b := p.Backups[0]
	if b.Location.String() != "Europe/Berlin" || b.Group != "db" || b.Params["keep"] != "7" || !b.CatchUp {
		t.Errorf("nightly backup = %+v", b)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, b.Location)
	if next := b.Sched.Next(from); !next.Equal(time.Date(2026, 3, 1, 2, 30, 0, 0, b.Location)) {
		t.Errorf("nightly next run after %s = %s", from, next)
	}
	if p.Path("quorum").Kind != "disk" || p.Path("backnet").Port != 7694 || p.Path("lan").Jitter != 50*time.Millisecond {
		t.Errorf("paths = %+v %+v %+v", p.Path("quorum"), p.Path("backnet"), p.Path("lan"))
	}
	if p.Cluster.StartupGrace != 3*time.Second || p.StartupGrace() != 3*time.Second || p.Cluster.FailureTimeout != 2*time.Minute {
		t.Errorf("cluster = %+v", p.Cluster)
	}
}

// TestHashFollowsLoadedFiles: the policy hash covers every loaded file, so
// editing only a library changes it, and identical sources hash the same.
func TestHashFollowsLoadedFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/good/relative")); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "policy.star")
	first := mustLoad(t, main).Hash
	if again := mustLoad(t, main).Hash; again != first {
		t.Fatalf("hash of unchanged sources changed: %s -> %s", first, again)
	}
	lib := filepath.Join(dir, "lib.star")
	src, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, append(src, "\n# a comment changes the source\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed := mustLoad(t, main).Hash; changed == first {
		t.Errorf("hash %s did not change when lib.star changed", changed)
	}
	if err := os.WriteFile(lib, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if back := mustLoad(t, main).Hash; back != first {
		t.Errorf("hash after restoring lib.star = %s, want %s", back, first)
	}
	// The same files under another directory and main file name hash the
	// same: nodes keep their policy where they like.
	elsewhere := filepath.Join(t.TempDir(), "deeper", "x")
	if err := os.MkdirAll(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(elsewhere, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(elsewhere, "policy.star"), filepath.Join(elsewhere, "harules.star")); err != nil {
		t.Fatal(err)
	}
	if moved := mustLoad(t, filepath.Join(elsewhere, "harules.star")).Hash; moved != first {
		t.Errorf("the same policy under %s hashes %s, want %s", elsewhere, moved, first)
	}
}

// TestReadFileOption: Options.ReadFile replaces the file system, so policies
// can be loaded from memory (the fuzz target relies on it).
func TestReadFileOption(t *testing.T) {
	files := map[string]string{
		"mem/policy.star": "load(\"lib.star\", \"N\")\ncluster(name = \"mem\")\nnode(N, address = \"198.51.100.1\")\n",
		"mem/lib.star":    "N = \"only\"\n",
	}
	p, err := rules.Load(context.Background(), "mem/policy.star", rules.Options{
		ReadFile: func(path string) ([]byte, error) {
			if s, ok := files[path]; ok {
				return []byte(s), nil
			}
			return nil, os.ErrNotExist
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Node("only") == nil {
		t.Errorf("nodes = %v", p.Nodes)
	}
}

// TestPrintOption: print() output of a policy goes to Options.Print.
func TestPrintOption(t *testing.T) {
	src := "cluster(name = \"p\")\nnode(\"n\", address = \"198.51.100.1\")\nprint(\"hello\", 42)\n"
	var printed []string
	_, err := rules.Load(context.Background(), "p.star", rules.Options{
		ReadFile: func(string) ([]byte, error) { return []byte(src), nil },
		Print:    func(msg string) { printed = append(printed, msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(printed, []string{"hello 42"}) {
		t.Errorf("printed = %q", printed)
	}
}

func oneNodeFacts() *builtins.FactsValue {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &facts.Facts{Self: "node1", Now: now, Boot: now.Add(-time.Minute),
		Nodes: []*facts.Node{{Name: "node1", Self: true, State: facts.Alive, Since: now.Add(-time.Minute)}}}
	f.Index()
	return builtins.NewFactsValue(f)
}

// TestRuleCannotMutateGlobals: once loaded, the policy's values are frozen;
// a rule that appends to a global list fails with a clear error instead of
// leaking state from one decision into the next.
func TestRuleCannotMutateGlobals(t *testing.T) {
	p := mustLoad(t, "testdata/good/frozen.star")
	fv := oneNodeFacts()
	_, err := builtins.EvalRule(context.Background(), p.Rules[0], fv, time.Now())
	var re *builtins.RuleError
	if !errors.As(err, &re) {
		t.Fatalf("EvalRule = %v; want a *builtins.RuleError", err)
	}
	msg := err.Error()
	for _, s := range []string{`rule "remember"`, "cannot append to frozen list", "a rule cannot keep state in globals", "testdata/good/frozen.star:8:16"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
}

// TestDeclareInsideRule: declarations only work while the policy loads; a
// rule calling node() gets an error that says so.
func TestDeclareInsideRule(t *testing.T) {
	p := mustLoad(t, "testdata/good/declare_in_rule.star")
	_, err := builtins.EvalRule(context.Background(), p.Rules[0], oneNodeFacts(), time.Now())
	if err == nil {
		t.Fatal("a rule declaring a node evaluated without error")
	}
	for _, s := range []string{`rule "sneaky"`, "node() declares part of the policy and may only be called while the policy file loads, not inside a rule"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if len(p.Nodes) != 1 {
		t.Errorf("policy now has %d nodes; a rule must not change it", len(p.Nodes))
	}
}

func names[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

// TestIPv6Policy: IPv6 heartbeat addresses and an IPv6 VIP are accepted,
// canonicalised, and mixed with IPv4 on another path.
func TestIPv6Policy(t *testing.T) {
	src := `cluster(name = "v6")
node("node1", address = "2001:db8::1", addresses = {"backnet": "203.0.113.1"})
node("node2", address = "2001:DB8:0::2", addresses = {"backnet": "203.0.113.2"})
heartbeat("lan", port = 7001)
heartbeat("backnet", port = 7002)
group("web", resources = [vip("2001:db8:0:0::10/64", interface = "eth0", arp_count = 2)])
`
	p, err := rules.Load(context.Background(), "v6.star", rules.Options{
		ReadFile: func(string) ([]byte, error) { return []byte(src), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Node("node2").AddressOn("lan"); a.String() != "2001:db8::2" || !a.Is6() {
		t.Errorf("node2 on lan = %s, want 2001:db8::2", a)
	}
	if a := p.Node("node1").AddressOn("backnet"); a.String() != "203.0.113.1" {
		t.Errorf("node1 on backnet = %s", a)
	}
	r := p.Group("web").Resources[0]
	if r.Kind != policy.KindVIP || r.Params["address"] != "2001:db8::10/64" || r.Name != "2001:db8::10" || r.Params["arp_count"] != "2" {
		t.Errorf("vip resource = %s %q %v", r.Kind, r.Name, r.Params)
	}
}
