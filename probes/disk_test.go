package probes

import (
	"fmt"
	"os"
	"os/exec"
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

// mountExt4 mounts a small ext4 on a loop device, so it can be
// frozen with fsfreeze (tmpfs cannot be frozen), and tears it all down.
func mountExt4(t *testing.T) string {
	t.Helper()
	netnstest.RequireRoot(t)
	for tool, pkg := range map[string]string{"mkfs.ext4": "e2fsprogs", "losetup": "mount", "fsfreeze": "util-linux"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", tool, pkg, pkg)
		}
	}
	base, err := os.MkdirTemp("", "harules-probe-ext4-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	img := filepath.Join(base, "disk.img")
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(argv ...string) string {
		t.Helper()
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", "16M", img)
	run("mkfs.ext4", "-q", "-F", img)
	dev := run("losetup", "-f", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, mnt, err)
	}
	t.Cleanup(func() {
		exec.Command("fsfreeze", "--unfreeze", mnt).Run() // in case the test failed while frozen
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

func TestWritableHungFilesystem(t *testing.T) {
	mnt := mountExt4(t)
	c, err := NewWritable(mnt)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, runWithin(t, c, 10*time.Second))

	// A frozen filesystem blocks writers in the kernel, like hung storage.
	if out, err := exec.Command("fsfreeze", "--freeze", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze --freeze: %v\n%s", err, out)
	}
	start := time.Now()
	r := runWithin(t, c, time.Second)
	mustFail(t, r, "did not finish")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("write probe on a frozen filesystem took %s with a 1s deadline", el)
	}

	rn := NewRunner(Options{})
	if err := rn.Add(Spec{Name: "disk", Check: c, Every: 2 * time.Second, Timeout: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, rn)
	waitFact(t, rn, "disk", "failing while frozen", func(f Fact) bool { return f.State == StateFailing })

	if out, err := exec.Command("fsfreeze", "--unfreeze", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze --unfreeze: %v\n%s", err, out)
	}
	waitFact(t, rn, "disk", "ok after thaw", func(f Fact) bool { return f.State == StateOK })
	waitFor(t, "the blocked writes to finish and clean up", func() bool {
		left, _ := filepath.Glob(filepath.Join(mnt, ".harules-probe-*"))
		return len(left) == 0
	})
}
