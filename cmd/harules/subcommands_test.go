// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
)

// TestSubcommandHelp: every backup, disk and database verb is a real
// subcommand with its own help listing its own flags (before, `harules
// backup list --help` exited 2 with "No help topic").
func TestSubcommandHelp(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"backup", "list"}, []string{"--policy", "--control", "--json", "--state-dir", "--now"}},
		{[]string{"backup", "run"}, []string{"--control", "--wait", "--json"}},
		{[]string{"backup", "verify"}, []string{"--policy", "--store", "--state-dir", "--json"}},
		{[]string{"backup", "restore"}, []string{"--policy", "--to", "--to-dsn", "--to-file", "--json"}},
		{[]string{"disk", "format"}, []string{"--fstype"}},
		{[]string{"disk", "format-area"}, []string{"--overwrite"}},
		{[]string{"disk", "status"}, []string{"--observe", "--json"}},
		{[]string{"disk", "clear"}, []string{"--node", "--reason", "--watch"}},
		{[]string{"database", "rejoin"}, []string{"--policy", "--primary", "--timeout"}},
		{[]string{"db", "rejoin"}, []string{"--primary"}},
	} {
		for _, help := range [][]string{{"--help"}, {"-h"}} {
			args := append(append([]string{}, c.args...), help...)
			code, out, errOut := harules(t, args...)
			if code != exitOK || errOut != "" {
				t.Errorf("harules %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
				continue
			}
			name := c.args[0]
			if name == "db" {
				name = "database"
			}
			if !strings.Contains(out, "harules "+name+" "+c.args[1]+" - ") {
				t.Errorf("harules %s does not describe the subcommand:\n%s", strings.Join(args, " "), out)
			}
			for _, f := range c.flags {
				if !strings.Contains(out, f) {
					t.Errorf("harules %s does not list %s:\n%s", strings.Join(args, " "), f, out)
				}
			}
		}
	}
	// The parent's help lists the subcommands.
	for cmd, subs := range map[string][]string{"backup": {"list", "run", "verify", "restore"}, "disk": {"format", "format-area", "status", "clear"}, "database": {"rejoin"}} {
		code, out, _ := harules(t, cmd, "--help")
		for _, s := range subs {
			if code != exitOK || !strings.Contains(out, "\n   "+s+" ") {
				t.Errorf("harules %s --help: exit %d, no subcommand %s:\n%s", cmd, code, s, out)
			}
		}
	}
}

// TestSubcommandArguments: wrong argument counts are usage errors naming
// the subcommand's help.
func TestSubcommandArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"disk"}, "want format DEVICE"},
		{[]string{"disk", "frob", "/dev/x"}, `unknown subcommand "frob"`},
		{[]string{"disk", "status"}, "disk status: want DEVICE; see harules disk status --help"},
		{[]string{"disk", "format", "a", "b"}, "disk format: want DEVICE"},
		{[]string{"backup", "list", "extra"}, "backup list: want no arguments"},
		{[]string{"backup", "run"}, "backup run: want JOB"},
		{[]string{"backup", "restore", "site"}, "backup restore: want JOB ID"},
		{[]string{"database"}, "want rejoin RESOURCE"},
		{[]string{"database", "rejoin"}, "database rejoin: want RESOURCE"},
	} {
		code, _, errOut := harules(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("harules %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

// TestSubcommandFlagsBeforeTheVerb: the form that worked before the verbs
// were subcommands (flags between the command and its verb) still works.
func TestSubcommandFlagsBeforeTheVerb(t *testing.T) {
	f := newBackupFixture(t)
	code, out, errOut := harules(t, "backup", "--policy", f.policy, "list", "--now", "2026-01-10T12:00:00Z")
	if code != exitOK || !strings.Contains(out, "site") {
		t.Fatalf("backup --policy P list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = harules(t, "backup", "--policy", f.policy, "--json", "verify", "site", f.ids[0])
	if code != exitOK || !strings.Contains(out, `"ok"`) {
		t.Fatalf("backup --policy P --json verify JOB ID: exit %d\n%s%s", code, out, errOut)
	}
}
