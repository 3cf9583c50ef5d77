// SPDX-License-Identifier: Apache-2.0

// Package version says which build of harules is running: the module
// version, VCS revision and dirty flag the Go toolchain records in the
// binary (runtime/debug.ReadBuildInfo), each overridable at link time:
//
//	go build -ldflags "-X github.com/harules/harules/internal/version.Version=1.4.0 \
//	  -X github.com/harules/harules/internal/version.Revision=$(git rev-parse HEAD) \
//	  -X github.com/harules/harules/internal/version.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// Packagers set them because a build from a source tarball has no VCS
// information to record.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Link-time overrides (-ldflags -X); empty means "from the build info".
var (
	Version   string
	Revision  string
	BuildTime string
	// Dirty is "true" or "false" to override the build info's flag.
	Dirty string
)

// Info describes one build. It is the document `harules version --json`
// prints.
type Info struct {
	// Version is the release ("v1.4.0"), the pseudo-version the toolchain
	// derives from the VCS ("v0.0.0-20261208030229-39b4ae7abcde+dirty"),
	// or "dev" when nothing is known (go run, tests).
	Version string `json:"version"`
	// Revision is the full VCS commit hash, if known.
	Revision string `json:"revision,omitempty"`
	// Dirty: the work tree had uncommitted changes when it was built.
	Dirty bool `json:"dirty"`
	// CommitTime is the commit's time (vcs.time), if known.
	CommitTime string `json:"commit_time,omitempty"`
	// BuildTime is when the binary was built, if the build said so.
	BuildTime string `json:"build_time,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi)
}

func get(bi *debug.BuildInfo) Info {
	info := Info{Version: "dev", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Dirty = s.Value == "true"
			case "vcs.time":
				info.CommitTime = s.Value
			}
		}
	}
	if Version != "" {
		info.Version = Version
	}
	if Revision != "" {
		info.Revision = Revision
	}
	if BuildTime != "" {
		info.BuildTime = BuildTime
	}
	switch Dirty {
	case "true":
		info.Dirty = true
	case "false":
		info.Dirty = false
	}
	return info
}

// ShortRevision is the first 12 characters of the revision ("" if unknown).
func (i Info) ShortRevision() string {
	if len(i.Revision) > 12 {
		return i.Revision[:12]
	}
	return i.Revision
}

// String is the one-line form `harules --version` and `harules version`
// print: "v1.4.0 (revision 39b4ae7abcde, dirty, built 2026-12-08T03:00:00Z, go1.26.0 linux/amd64)".
func (i Info) String() string {
	var parts []string
	if r := i.ShortRevision(); r != "" {
		parts = append(parts, "revision "+r)
	}
	if i.Dirty {
		parts = append(parts, "dirty")
	}
	if i.BuildTime != "" {
		parts = append(parts, "built "+i.BuildTime)
	} else if i.CommitTime != "" {
		parts = append(parts, "committed "+i.CommitTime)
	}
	parts = append(parts, i.GoVersion+" "+i.Platform)
	return fmt.Sprintf("%s (%s)", i.Version, strings.Join(parts, ", "))
}
