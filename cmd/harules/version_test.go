// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/harules/harules/internal/version"
)

// TestVersionCommandAndFlagAgree: `harules version` and `harules --version`
// print the same line, built from internal/version; --json has the fields.
func TestVersionCommandAndFlagAgree(t *testing.T) {
	code, cmdOut, errOut := harules(t, "version")
	if code != exitOK {
		t.Fatalf("harules version: exit %d: %s", code, errOut)
	}
	code, flagOut, errOut := harules(t, "--version")
	if code != exitOK {
		t.Fatalf("harules --version: exit %d: %s", code, errOut)
	}
	want := "harules " + version.Get().String() + "\n"
	if cmdOut != want || flagOut != want {
		t.Fatalf("harules version = %q, --version = %q, want both %q", cmdOut, flagOut, want)
	}
	code, out, _ := harules(t, "version", "--json")
	var got version.Info
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got != version.Get() {
		t.Fatalf("harules version --json: exit %d, %s", code, out)
	}
	if code, _, errOut := harules(t, "version", "extra"); code != exitUsage || !strings.Contains(errOut, "no arguments") {
		t.Errorf("harules version extra: exit %d: %s", code, errOut)
	}
	if code, out, _ := harules(t, "version", "--help"); code != exitOK || !strings.Contains(out, "--json") {
		t.Errorf("harules version --help: exit %d:\n%s", code, out)
	}
}

// TestVersionLdflags: a build with -ldflags -X shows the given version in
// harules version (what scripts/package.sh and distributions do).
func TestVersionLdflags(t *testing.T) {
	defer func(v, r string) { version.Version, version.Revision = v, r }(version.Version, version.Revision)
	version.Version, version.Revision = "1.4.0", "0123456789abcdef0123"
	_, out, _ := harules(t, "version")
	if !strings.HasPrefix(out, "harules 1.4.0 (revision 0123456789ab,") {
		t.Fatalf("harules version with overrides = %q", out)
	}
}
