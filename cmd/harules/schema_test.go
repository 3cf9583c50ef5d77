// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

// schemaBase is the $id prefix of the schemas in docs/schema.
const schemaBase = "https://github.com/harules/harules/docs/schema/"

// compileSchema compiles docs/schema/NAME with the other schemas there
// available to its $refs, with formats (date-time) asserted.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "schema", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(schemaBase+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	s, err := c.Compile(schemaBase + name)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// validateJSON checks a command's JSON output against docs/schema/NAME.
func validateJSON(t *testing.T, name, what, out string) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, out)
	}
	if err := compileSchema(t, name).Validate(inst); err != nil {
		t.Errorf("%s does not match docs/schema/%s:\n%v\n%s", what, name, err, out)
	}
}

// TestSimulateJSONSchema: simulate --json of every example scenario
// matches docs/schema/simulate.json.
func TestSimulateJSONSchema(t *testing.T) {
	policies, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*", "policy.star"))
	if err != nil || len(policies) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, p := range policies {
		scenarios := filepath.Join(filepath.Dir(p), "scenarios", "*.star")
		code, out, errOut := harules(t, "simulate", p, "--scenario", scenarios, "--json")
		if code != exitOK && code != exitFailed {
			t.Fatalf("simulate %s: exit %d: %s", p, code, errOut)
		}
		validateJSON(t, "simulate.json", "simulate --json "+p, out)
	}
	// A failed expectation and a split brain fill the other fields.
	code, out, _ := harules(t, "simulate", filepath.Join(repoRoot, "examples", "web-active-standby", "policy.star"),
		"--scenario", filepath.Join(repoRoot, "examples", "web-active-standby", "known-split-brain", "*.star"), "--json")
	if code == exitUsage || code == exitInternal {
		t.Fatalf("simulate known-split-brain: exit %d", code)
	}
	validateJSON(t, "simulate.json", "simulate --json known-split-brain", out)
}

// TestSchemaRejectsDrift: the schemas are strict where they say so: an
// unknown top-level field or a wrong type fails, so the test above fails
// when the output changes without the schema (and docs) following.
func TestSchemaRejectsDrift(t *testing.T) {
	s := compileSchema(t, "simulate.json")
	for _, bad := range []string{
		`{"ok": true, "results": [], "extra": 1}`,
		`{"ok": "yes", "results": []}`,
		`{"ok": true}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if s.Validate(inst) == nil {
			t.Errorf("simulate.json accepts %s", bad)
		}
	}
	st := compileSchema(t, "status.json")
	inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"node": "n1"}`))
	if st.Validate(inst) == nil {
		t.Error("status.json accepts a document without its required fields")
	}
}

// TestStatusSchemaKnowsStartingGroups: a status taken while a start runs
// lists the group and node under starting (see agent.GroupStatus); the
// schema, strict about unknown fields, accepts it.
func TestStatusSchemaKnowsStartingGroups(t *testing.T) {
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	st := agent.Status{Node: "n1", Cluster: "c", PolicyHash: "0123456789abcdef", Incarnation: 1, Now: now,
		Nodes:  []agent.NodeStatus{{Name: "n1", State: "alive", Since: now, Holds: []string{}, Starting: []string{"web"}}},
		Groups: []agent.GroupStatus{{Name: "web", Target: "n1", Reason: "score 100", Holders: []string{}, Starting: []string{"n1"}}},
		Alerts: []engine.Alert{}, Plan: engine.Plan{}, Recent: []engine.Record{}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"starting":["n1"]`) {
		t.Fatalf("status JSON lacks the starting node: %s", b)
	}
	validateJSON(t, "status.json", "a status with a start in flight", string(b))
}
