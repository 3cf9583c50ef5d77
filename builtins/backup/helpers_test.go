package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
		t.Skipf("SKIPPED LOUDLY: %s needs root and HARULES_SKIP_ROOT_TESTS=1 is set", what)
	}
	t.Fatalf("%s needs root: run the tests as root (or set HARULES_SKIP_ROOT_TESTS=1 to skip)", what)
}

func needCommand(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install %s)", name, pkg, pkg)
	}
	return p
}

func openStore(t *testing.T, dir string, opts ...StoreOption) *Store {
	t.Helper()
	s, _, err := Open(dir, append([]StoreOption{WithLogger(quietLog())}, opts...)...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fileState is what a round trip must preserve for one path.
type fileState struct {
	Type    string
	Mode    fs.FileMode
	MTimeNS int64
	Size    int64
	SHA256  string
	Link    string
	UID     uint32
	GID     uint32
	Rdev    uint64
}

func (f fileState) String() string {
	return fmt.Sprintf("%s mode=%v mtime=%d size=%d sha=%.12s link=%q uid=%d gid=%d rdev=%d",
		f.Type, f.Mode, f.MTimeNS, f.Size, f.SHA256, f.Link, f.UID, f.GID, f.Rdev)
}

// snapshotTree records every path under root (except root's own mtime
// when skipRootTime) with content hashes.
func snapshotTree(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		s := fileState{Mode: info.Mode(), MTimeNS: info.ModTime().UnixNano(), UID: st.Uid, GID: st.Gid}
		switch {
		case info.Mode().IsRegular():
			s.Type, s.Size = "file", info.Size()
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			s.SHA256 = hex.EncodeToString(h.Sum(nil))
		case info.IsDir():
			s.Type = "dir"
		case info.Mode()&fs.ModeSymlink != 0:
			s.Type = "symlink"
			s.Link, _ = os.Readlink(path)
		default:
			s.Type = "special"
			s.Rdev = st.Rdev
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

func compareTrees(t *testing.T, want, got map[string]fileState) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g, ok := got[n]
		if !ok {
			t.Errorf("restored tree lacks %q", n)
			continue
		}
		if g != want[n] {
			t.Errorf("%q differs:\n want %v\n got  %v", n, want[n], g)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("restored tree has extra %q", n)
		}
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// writeAt writes data at off in path, creating it.
func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// fixedClock is an injectable clock that advances by step on every call.
type fixedClock struct {
	t    time.Time
	step time.Duration
}

func (c *fixedClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func mustRun(t *testing.T, ctx context.Context, r *Runner, job Job) Record {
	t.Helper()
	rec, err := r.Run(ctx, job)
	if err != nil {
		t.Fatalf("run %s: %v", job.Name, err)
	}
	if !rec.Good() {
		t.Fatalf("run %s: outcome %s", job.Name, rec.Outcome)
	}
	return rec
}

var _ = strings.Contains
