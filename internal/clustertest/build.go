package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BinEnv names a prebuilt harules binary to use instead of building one.
const BinEnv = "HARULES_BIN"

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of a harules binary built once per test process
// (go build of ./cmd/harules into a temporary directory), or $HARULES_BIN.
// Call RemoveBuild from TestMain to delete the build directory.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		return p
	}
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "harules-clustertest-")
		if err != nil {
			build.err = fmt.Errorf("build dir: %w", err)
			return
		}
		build.dir = dir
		out := filepath.Join(dir, "harules")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/harules/harules/cmd/harules")
		if b, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/harules: %w: %s", err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatalf("clustertest: %v", build.err)
	}
	return build.path
}

// RemoveBuild deletes the binary Binary built (call it from TestMain after
// m.Run).
func RemoveBuild() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}
