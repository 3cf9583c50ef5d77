// SPDX-License-Identifier: Apache-2.0

package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/harules/harules", Version: "v0.0.0-20261208030229-39b4ae7abcde+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "39b4ae7abcdef0123456789"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-12-08T03:02:29Z"}}}
	got := get(bi)
	if got.Version != bi.Main.Version || got.Revision != "39b4ae7abcdef0123456789" || !got.Dirty || got.CommitTime != "2026-12-08T03:02:29Z" || got.GoVersion != "go1.26.0" {
		t.Fatalf("get = %+v", got)
	}
	s := got.String()
	for _, want := range []string{"v0.0.0-20261208030229-39b4ae7abcde+dirty (", "revision 39b4ae7abcde,", "dirty", "committed 2026-12-08T03:02:29Z", "go1.26.0"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
}

func TestDevel(t *testing.T) {
	got := get(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if got.Version != "dev" || got.Revision != "" || got.Dirty {
		t.Fatalf("get = %+v, want version dev", got)
	}
	if got := get(nil); got.Version != "dev" {
		t.Fatalf("get(nil) = %+v", got)
	}
}

func TestLdflagsOverride(t *testing.T) {
	defer func(v, r, b, d string) { Version, Revision, BuildTime, Dirty = v, r, b, d }(Version, Revision, BuildTime, Dirty)
	Version, Revision, BuildTime, Dirty = "1.4.0", "abc", "2026-12-08T00:00:00Z", "false"
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-x"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "def"}, {Key: "vcs.modified", Value: "true"}}}
	got := get(bi)
	if got.Version != "1.4.0" || got.Revision != "abc" || got.Dirty || got.BuildTime != "2026-12-08T00:00:00Z" {
		t.Fatalf("get with overrides = %+v", got)
	}
	if s := got.String(); !strings.Contains(s, "built 2026-12-08T00:00:00Z") {
		t.Errorf("String() = %q, want the build time", s)
	}
}
