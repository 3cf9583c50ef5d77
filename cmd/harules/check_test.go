package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	// goodPolicy is a fixed test policy (the examples keep growing).
	goodPolicy = "../../rules/testdata/good/complete.star"
	example    = "../../examples/web-active-standby/policy.star"
	badPolicy  = "../../rules/testdata/bad/dup_node.star"
)

// harules runs the command line in-process and returns exit code and output.
func harules(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"harules"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string
		emptyStdio bool // stdout must be empty
	}{
		{name: "valid", args: []string{"check", "--policy-only", goodPolicy}, code: exitOK,
			stdout: []string{goodPolicy + `: ok: cluster "complete", 3 nodes, 3 heartbeat paths, 3 probes, 2 groups, 3 rules, 2 backups (policy `, "a dead peer is declared after 5s"}},
		{name: "shipped example", args: []string{"check", "--policy-only", example}, code: exitOK,
			stdout: []string{example + `: ok: cluster "web", 2 nodes`}},
		{name: "invalid", args: []string{"check", "--policy-only", badPolicy}, code: exitFailed, emptyStdio: true,
			stderr: []string{badPolicy + `:4:5: node "node1" is already declared at ` + badPolicy + ":3:5"}},
		{name: "valid and invalid", args: []string{"check", "--policy-only", goodPolicy, badPolicy}, code: exitFailed,
			stdout: []string{goodPolicy + ": ok"}, stderr: []string{badPolicy + ":4:5:"}},
		{name: "missing file", args: []string{"check", "--policy-only", "no-such-policy.star"}, code: exitFailed, emptyStdio: true,
			stderr: []string{"no-such-policy.star", "no such file"}},
		{name: "no file", args: []string{"check"}, code: exitUsage, emptyStdio: true,
			stderr: []string{"harules: check: give a policy file"}},
		{name: "unknown flag", args: []string{"check", "--policy-only", "--bogus", goodPolicy}, code: exitUsage,
			stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "unknown command", args: []string{"chek", goodPolicy}, code: exitUsage},
		{name: "help", args: []string{"check", "--policy-only", "--help"}, code: exitOK,
			stdout: []string{"Exit 0 when every policy is valid, 1 when one has errors, 2 on usage errors."}},
		{name: "flags after the file", args: []string{"check", "--policy-only", goodPolicy, "--json"}, code: exitOK,
			stdout: []string{`"ok": true`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := harules(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
			if tc.emptyStdio && stdout != "" {
				t.Errorf("stdout should be empty, got:\n%s", stdout)
			}
		})
	}
}

// checkResult mirrors the documented --json shape of `harules check`.
type checkResult struct {
	File    string          `json:"file"`
	OK      bool            `json:"ok"`
	Errors  []string        `json:"errors"`
	Summary *map[string]any `json:"summary"`
}

func TestCheckJSON(t *testing.T) {
	code, stdout, stderr := harules(t, "check", "--policy-only", "--json", goodPolicy, badPolicy, "../../rules/testdata/bad/several_errors.star")
	if code != exitFailed {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitFailed, stderr)
	}
	if stderr != "" {
		t.Errorf("--json wrote to stderr: %q", stderr)
	}
	var results []checkResult
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&results); err != nil {
		t.Fatalf("stdout is not a JSON array of results: %v\n%s", err, stdout)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(results), results)
	}
	good := results[0]
	if good.File != goodPolicy || !good.OK || len(good.Errors) != 0 || good.Summary == nil {
		t.Fatalf("good result = %+v", good)
	}
	s := *good.Summary
	// JSON numbers decode as float64.
	want := map[string]any{"cluster": "complete", "nodes": 3.0, "paths": 3.0, "probes": 3.0, "groups": 2.0, "rules": 3.0, "backups": 2.0, "detection": "5s"}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("summary[%q] = %v, want %v", k, s[k], v)
		}
	}
	if h, _ := s["hash"].(string); len(h) != 16 {
		t.Errorf("summary hash = %v, want 16 hex digits", s["hash"])
	}
	bad := results[1]
	if bad.File != badPolicy || bad.OK || bad.Summary != nil || len(bad.Errors) != 1 || !strings.HasPrefix(bad.Errors[0], badPolicy+":4:5: ") {
		t.Errorf("bad result = %+v", bad)
	}
	if several := results[2]; several.OK || len(several.Errors) != 2 {
		t.Errorf("several_errors result = %+v; want 2 errors", several)
	}
}

// TestCheckJSONValid: with only valid policies --json exits 0 and the
// result has no "errors" key at all.
func TestCheckJSONValid(t *testing.T) {
	code, stdout, stderr := harules(t, "check", "--policy-only", "--json", goodPolicy)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("stdout = %q (%v)", stdout, err)
	}
	if _, ok := raw[0]["errors"]; ok {
		t.Errorf("a valid result carries an errors key: %s", stdout)
	}
	if string(raw[0]["ok"]) != "true" {
		t.Errorf("ok = %s", raw[0]["ok"])
	}
}

// TestCheckRelativeLoadFromOtherDirectory: load() paths resolve against the
// policy file, not the working directory of harules.
func TestCheckRelativeLoadFromOtherDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../rules/testdata/good/relative")); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.star")
	code, stdout, stderr := harules(t, "check", "--policy-only", policyFile)
	if code != exitOK || !strings.Contains(stdout, `cluster "relative", 3 nodes`) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Break the library: the error must point into lib.star, via the load.
	if err := os.WriteFile(filepath.Join(dir, "lib.star"), []byte("NODES = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = harules(t, "check", "--policy-only", policyFile)
	if code != exitFailed || !strings.Contains(stderr, filepath.Join(dir, "lib.star")+":2:1:") {
		t.Errorf("exit %d, stderr:\n%s\nwant the syntax error at lib.star:2:1", code, stderr)
	}
}

const (
	unguardedPolicy = "../../simulate/testdata/faults/unguarded.star"
	threeNode       = "../../examples/three-node/policy.star"
)

// TestCheckFaults: check --faults prints the matrix and gates on split
// brain: 0 without one, 1 with one, 2 for an invalid policy.
func TestCheckFaults(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "quorum example", args: []string{"check", "--policy-only", "--faults", threeNode}, code: exitOK,
			stdout: []string{threeNode + `: ok: cluster "web3"`, "fault matrix for " + threeNode, "steady state at 10s: web on node1",
				"crash node1 ", "web node1->node2 at ", "cut node1-node2", "crash node1 while node3 down",
				"summary: 10 faults, 0 with split brain", "caveats:", "probes keep their scenario defaults"}},
		{name: "unguarded", args: []string{"check", "--policy-only", "--faults", unguardedPolicy}, code: exitFailed,
			stdout: []string{"isolate node1", "web on node1+node2 10.948s-", "summary: 5 faults, 2 with split brain", "SPLIT BRAIN:"},
			stderr: []string{"split brain under " + unguardedPolicy + ": isolate node1, isolate node2"}},
		{name: "gateway probe fails on isolation", args: []string{"check", "--policy-only", "--faults", "--isolation-probe", "gateway", example}, code: exitOK,
			stdout: []string{"probe gateway fails there meanwhile", "summary: 5 faults, 0 with split brain"}},
		{name: "the example without the gateway hint", args: []string{"check", "--policy-only", example, "--faults"}, code: exitFailed,
			stdout: []string{"--isolation-probe gateway"}},
		{name: "invalid policy", args: []string{"check", "--policy-only", "--faults", badPolicy}, code: exitUsage,
			stderr: []string{badPolicy + ":4:5:"}},
		{name: "invalid among valid", args: []string{"check", "--policy-only", "--faults", threeNode, badPolicy}, code: exitUsage,
			stdout: []string{"summary: 10 faults"}, stderr: []string{badPolicy + ":4:5:"}},
		{name: "unknown isolation probe", args: []string{"check", "--policy-only", "--faults", "--isolation-probe", "nope", threeNode}, code: exitUsage,
			stderr: []string{`isolation probe "nope" is not a probe`}},
		{name: "matrix flag without --faults", args: []string{"check", "--policy-only", "--seed", "3", threeNode}, code: exitUsage,
			stderr: []string{"--seed only applies with --faults"}},
		{name: "several seeds", args: []string{"check", "--policy-only", "--faults", "--seeds", "3", unguardedPolicy}, code: exitFailed,
			stdout: []string{"split brain checked with seeds 1-3", "with seed 2,3"}},
		{name: "outage limit", args: []string{"check", "--policy-only", "--faults", "--outage-limit", "30s", threeNode}, code: exitOK,
			stdout: []string{"0 with an outage longer than 30s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := harules(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// faultsResult mirrors the documented --json shape of check --faults.
type faultsResult struct {
	File    string          `json:"file"`
	OK      bool            `json:"ok"`
	Errors  []string        `json:"errors"`
	Summary *map[string]any `json:"summary"`
	Faults  *struct {
		Policy          string              `json:"policy"`
		Duration        string              `json:"duration"`
		FaultAt         string              `json:"fault_at"`
		RecoverAt       string              `json:"recover_at"`
		Seed            int64               `json:"seed"`
		Seeds           int                 `json:"seeds"`
		IsolationProbes []string            `json:"isolation_probes"`
		Steady          map[string][]string `json:"steady"`
		Faults          []struct {
			Name        string   `json:"name"`
			Kind        string   `json:"kind"`
			Nodes       []string `json:"nodes"`
			Path        string   `json:"path"`
			Description string   `json:"description"`
			Moves       []struct {
				Group string   `json:"group"`
				At    string   `json:"at"`
				From  []string `json:"from"`
				To    []string `json:"to"`
			} `json:"moves"`
			Outages []struct {
				Group   string `json:"group"`
				Longest string `json:"longest"`
				Start   string `json:"start"`
			} `json:"outages"`
			SplitBrain []struct {
				Group string   `json:"group"`
				Start string   `json:"start"`
				End   string   `json:"end"`
				Nodes []string `json:"nodes"`
			} `json:"split_brain"`
			SplitBrainSeeds []int64  `json:"split_brain_seeds"`
			Stopped         []string `json:"stopped"`
			Alerts          []struct {
				At   string `json:"at"`
				Node string `json:"node"`
				Name string `json:"name"`
				Text string `json:"text"`
			} `json:"alerts"`
			FinalPlacement map[string][]string `json:"final_placement"`
			Stats          map[string]int      `json:"stats"`
		} `json:"faults"`
		Summary struct {
			Faults      int    `json:"faults"`
			SplitBrain  int    `json:"split_brain"`
			LongOutages int    `json:"long_outages"`
			OutageLimit string `json:"outage_limit"`
			Stopped     int    `json:"stopped"`
		} `json:"summary"`
		Caveats []string `json:"caveats"`
	} `json:"faults"`
}

func TestCheckFaultsJSON(t *testing.T) {
	code, stdout, stderr := harules(t, "check", "--policy-only", "--faults", "--json", "--seeds", "2", threeNode, unguardedPolicy)
	if code != exitFailed {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitFailed, stderr)
	}
	if stderr != "" {
		t.Errorf("--json wrote to stderr: %q", stderr)
	}
	var results []faultsResult
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&results); err != nil {
		t.Fatalf("stdout is not the documented JSON: %v\n%s", err, stdout)
	}
	if len(results) != 2 || results[0].Faults == nil || results[1].Faults == nil {
		t.Fatalf("results = %+v", results)
	}
	three, unguarded := results[0], results[1]
	if !three.OK || three.Summary == nil || three.Faults.Summary.Faults != 10 || three.Faults.Summary.SplitBrain != 0 ||
		three.Faults.Duration != "1m0s" || three.Faults.FaultAt != "10s" || three.Faults.RecoverAt != "40s" || three.Faults.Summary.OutageLimit != "5s" {
		t.Errorf("three-node: ok %v summary %+v", three.OK, three.Faults.Summary)
	}
	crash := three.Faults.Faults[1]
	if crash.Name != "crash node1" || crash.Kind != "crash" || len(crash.Moves) != 1 || crash.Moves[0].Group != "web" ||
		crash.Moves[0].To[0] != "node2" || len(crash.Outages) != 1 || len(crash.SplitBrain) != 0 {
		t.Errorf("three-node crash node1 = %+v", crash)
	}
	if unguarded.OK || unguarded.Faults.Summary.SplitBrain != 2 {
		t.Errorf("unguarded: ok %v, summary %+v; want not ok with 2 split brains", unguarded.OK, unguarded.Faults.Summary)
	}
	for _, f := range unguarded.Faults.Faults {
		if f.Kind == "isolate" && (len(f.SplitBrain) != 1 || f.SplitBrain[0].Group != "web" || len(f.SplitBrain[0].Nodes) != 2 ||
			len(f.SplitBrainSeeds) != 2) {
			t.Errorf("unguarded %s: split brain %+v", f.Name, f.SplitBrain)
		}
	}

	// Plain check --json is unchanged: no faults key.
	_, stdout, _ = harules(t, "check", "--policy-only", "--json", threeNode)
	if strings.Contains(stdout, `"faults"`) {
		t.Errorf("check --json without --faults carries a faults key:\n%s", stdout)
	}
}
