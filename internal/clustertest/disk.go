package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/disk"
)

// LoopDevice returns a loop device over a sparse image of size bytes on
// /dev/shm, formatted with disk.Format (ext4 that stops short of the lease
// area, then an empty lease area). Every node namespace sees the same
// /dev/loopN: a shared disk. It is detached and its image removed in
// cleanup; create it before New so the cluster's agents are gone first.
func LoopDevice(t testing.TB, size int64) string {
	t.Helper()
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("clustertest: %s is missing: apt-get install util-linux e2fsprogs: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("/dev/shm", "hrc-disk-")
	if err != nil {
		t.Fatalf("clustertest: temp dir on /dev/shm: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("clustertest: disk image %s: %v", img, err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("clustertest: losetup -f --show %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("clustertest: losetup -d %s: %v: %s", dev, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No lazy init: its background zeroing would write ~2 MB/s for a
	// while after the first mount, noise in I/O measurements.
	if err := disk.Format(ctx, dev, "ext4", "-E", "lazy_itable_init=0,lazy_journal_init=0"); err != nil {
		t.Fatalf("clustertest: format %s: %v", dev, err)
	}
	return dev
}
