package probes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/internal/netnstest"
)

// mountTmpfs mounts a small tmpfs on a fresh directory and removes it when
// the test ends, even on failure.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	netnstest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "harules-probe-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		os.Remove(dir)
		t.Fatalf("mount tmpfs on %s (needs root): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

func TestDiskSpace(t *testing.T) {
	dir := mountTmpfs(t, "size=1m,nr_inodes=100")
	c, err := NewDiskSpace(DiskSpaceConfig{Path: dir, MinFreePercent: 20, MinFreeInodesPercent: 50})
	if err != nil {
		t.Fatal(err)
	}
	r := runWithin(t, c, 5*time.Second)
	mustOK(t, r)
	if r.Value < 99 || r.Values["total_bytes"] != 1<<20 {
		t.Fatalf("empty 1 MiB tmpfs reported %+v", r)
	}

	// Fill 90% of the space.
	if err := os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, 900<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runWithin(t, c, 5*time.Second)
	mustFail(t, r, "free space")
	if r.Value > 15 {
		t.Fatalf("free percent %.1f after filling 90%%", r.Value)
	}
	os.Remove(filepath.Join(dir, "ballast"))
	mustOK(t, runWithin(t, c, 5*time.Second))

	// Use up more than half the inodes.
	for i := range 60 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = runWithin(t, c, 5*time.Second)
	mustFail(t, r, "free inodes")
	if r.Values["free_inodes_percent"] > 50 {
		t.Fatalf("free inodes %.1f%% after using 60 of 100", r.Values["free_inodes_percent"])
	}

	mustFail(t, runWithin(t, mustDisk(t, filepath.Join(dir, "missing")), 5*time.Second), "no such file")
	for _, bad := range []DiskSpaceConfig{{Path: "rel"}, {Path: "/", MinFreePercent: 101}, {Path: "/", MinFreeInodesPercent: -1}} {
		if _, err := NewDiskSpace(bad); err == nil {
			t.Errorf("NewDiskSpace(%+v) accepted", bad)
		}
	}
}

func mustDisk(t *testing.T, path string) *DiskSpaceCheck {
	c, err := NewDiskSpace(DiskSpaceConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWritable(t *testing.T) {
	dir := mountTmpfs(t, "size=1m")
	c, err := NewWritable(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, runWithin(t, c, 5*time.Second))
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("probe left files behind: %v", left)
	}

	// A full filesystem refuses the write.
	if err := os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	mustFail(t, runWithin(t, c, 5*time.Second), "no space left")
	os.Remove(filepath.Join(dir, "ballast"))
	mustOK(t, runWithin(t, c, 5*time.Second))

	// Remounted read-only, as ext4 does after an I/O error.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	r := runWithin(t, c, 5*time.Second)
	mustFail(t, r, "is read-only")
	if !strings.Contains(r.Err, "read-only file system") {
		t.Fatalf("error %q does not carry EROFS", r.Err)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}
	mustOK(t, runWithin(t, c, 5*time.Second))

	mustFail(t, runWithin(t, mustWritable(t, filepath.Join(dir, "nodir")), 5*time.Second), "create probe file")
	if _, err := NewWritable("relative"); err == nil {
		t.Error("relative dir accepted")
	}
}

func mustWritable(t *testing.T, dir string) *WritableCheck {
	c, err := NewWritable(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
