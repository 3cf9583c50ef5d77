// SPDX-License-Identifier: Apache-2.0

package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckInstalled: what harules check --node and the agent's start
// report about a service's programs.
func TestCheckInstalled(t *testing.T) {
	dir := t.TempDir()
	noExec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := writeScript(t, filepath.Join(dir, "run"), "exit 0")
	for _, c := range []struct {
		name   string
		params map[string]string
		want   string // "" = fine
	}{
		{"in PATH", map[string]string{"kind": "process", "command": "sleep 100"}, ""},
		{"absolute", map[string]string{"kind": "process", "command": run + " --serve"}, ""},
		{"relative to dir", map[string]string{"kind": "process", "command": "./run", "dir": dir}, ""},
		{"shell line", map[string]string{"kind": "process", "command": "exec no-such-prog-xyz | cat"}, ""},
		{"missing", map[string]string{"kind": "process", "command": dir + "/missing"}, "command: program " + dir + "/missing does not exist"},
		{"not executable", map[string]string{"kind": "process", "command": noExec}, "command: program " + noExec + " is not executable"},
		{"not in PATH", map[string]string{"kind": "process", "command": "no-such-prog-xyz"}, `command: program "no-such-prog-xyz" is not in $PATH`},
		{"commands", map[string]string{"kind": "commands", "start": run + " start", "stop": "no-such-prog-xyz stop", "monitor": dir + "/gone status"},
			`stop: program "no-such-prog-xyz" is not in $PATH|monitor: program ` + dir + "/gone does not exist"},
		{"ocf", map[string]string{"kind": "ocf", "ocf_agent": "NoSuchAgentXyz", "ocf_root": dir}, "OCF agent ocf:heartbeat:NoSuchAgentXyz not found at " + dir},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := SpecFromParams("s", c.params)
			if err != nil {
				t.Fatal(err)
			}
			errs := CheckInstalled(spec)
			var wants []string
			if c.want != "" {
				wants = strings.Split(c.want, "|")
			}
			if len(errs) != len(wants) {
				t.Fatalf("CheckInstalled = %v, want %d errors: %q", errs, len(wants), wants)
			}
			for i, w := range wants {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %v, want %q", i, errs[i], w)
				}
			}
		})
	}
}
