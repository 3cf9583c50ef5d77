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
		{name: "valid", args: []string{"check", goodPolicy}, code: exitOK,
			stdout: []string{goodPolicy + `: ok: cluster "complete", 3 nodes, 3 heartbeat paths, 3 probes, 2 groups, 3 rules, 2 backups (policy `, "a dead peer is declared after 5s"}},
		{name: "shipped example", args: []string{"check", example}, code: exitOK,
			stdout: []string{example + `: ok: cluster "web", 2 nodes`}},
		{name: "invalid", args: []string{"check", badPolicy}, code: exitFailed, emptyStdio: true,
			stderr: []string{badPolicy + `:4:5: node "node1" is already declared at ` + badPolicy + ":3:5"}},
		{name: "valid and invalid", args: []string{"check", goodPolicy, badPolicy}, code: exitFailed,
			stdout: []string{goodPolicy + ": ok"}, stderr: []string{badPolicy + ":4:5:"}},
		{name: "missing file", args: []string{"check", "no-such-policy.star"}, code: exitFailed, emptyStdio: true,
			stderr: []string{"no-such-policy.star", "no such file"}},
		{name: "no file", args: []string{"check"}, code: exitUsage, emptyStdio: true,
			stderr: []string{"harules: check: give a policy file"}},
		{name: "unknown flag", args: []string{"check", "--bogus", goodPolicy}, code: exitUsage,
			stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "unknown command", args: []string{"chek", goodPolicy}, code: exitUsage},
		{name: "help", args: []string{"check", "--help"}, code: exitOK,
			stdout: []string{"Exit 0 when every policy is valid, 1 when one has errors, 2 on usage errors."}},
		{name: "flags after the file", args: []string{"check", goodPolicy, "--json"}, code: exitOK,
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
	code, stdout, stderr := harules(t, "check", "--json", goodPolicy, badPolicy, "../../rules/testdata/bad/several_errors.star")
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
	code, stdout, stderr := harules(t, "check", "--json", goodPolicy)
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
	code, stdout, stderr := harules(t, "check", policyFile)
	if code != exitOK || !strings.Contains(stdout, `cluster "relative", 3 nodes`) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Break the library: the error must point into lib.star, via the load.
	if err := os.WriteFile(filepath.Join(dir, "lib.star"), []byte("NODES = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = harules(t, "check", policyFile)
	if code != exitFailed || !strings.Contains(stderr, filepath.Join(dir, "lib.star")+":2:1:") {
		t.Errorf("exit %d, stderr:\n%s\nwant the syntax error at lib.star:2:1", code, stderr)
	}
}
