// Package pgtest holds what tests that run real PostgreSQL servers share.
package pgtest

import (
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// BinDir returns the bin directory of the newest PostgreSQL server from the
// Debian packages (/usr/lib/postgresql/<version>/bin) that has tool, and
// fails the test loudly, saying what to install, when there is none.
func BinDir(t testing.TB, tool string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql/*/bin", tool))
	if len(matches) == 0 {
		t.Fatalf("PostgreSQL server binaries (%s) not found under /usr/lib/postgresql/*/bin: install them: apt-get install -y postgresql", tool)
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) < version(matches[j]) })
	return filepath.Dir(matches[len(matches)-1])
}

// version is the major version in /usr/lib/postgresql/<version>/bin/<tool>.
func version(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}
