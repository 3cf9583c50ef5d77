package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/netnstest"
	"github.com/harules/harules/policy"
)

// diskTestLease is the lease of the test disk: lease 1 s scales renew to
// 200 ms and margin to 333 ms, so a silent holder's lease is taken over
// 1.333 s after its last write.
const diskTestLease = "1s"

// testDisk makes a loop device with an ext4 filesystem and a lease area
// (disk.Format), detached in cleanup.
func testDisk(t *testing.T) string {
	t.Helper()
	netnstest.RequireRoot(t)
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install util-linux e2fsprogs (scripts/deps.d/e2edisk.txt): %v", tool, err)
		}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -f --show %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := disk.Format(ctx, dev, "ext4"); err != nil {
		t.Fatalf("format %s: %v", dev, err)
	}
	return dev
}

// TestDiskStartWaitsForLeaseWithoutBlocking drives node2's executor
// against a real lease held by node1 (another lease on the same loop
// device, in this process). A start never blocks for the lease: it is
// refused for now (engine.ErrRetry) and the wait is shown; a holder that
// writes its slot during the wait makes the start fail for real; a wait
// the decision gave up does not judge the next takeover; and when the
// holder falls silent, Wake fires and the start then mounts, only after
// the holder's lease has expired.
func TestDiskStartWaitsForLeaseWithoutBlocking(t *testing.T) {
	dev := testDisk(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := []string{"node1", "node2"}
	res := &policy.Resource{Kind: policy.KindDisk, Name: "data", Params: map[string]string{
		"device": dev, "mountpoint": filepath.Join(t.TempDir(), "data"), "lease": diskTestLease}}
	spec, err := disk.SpecFromParams(res.Params)
	if err != nil {
		t.Fatal(err)
	}

	area, err := disk.OpenArea(ctx, dev)
	if err != nil {
		t.Fatalf("open the lease area: %v", err)
	}
	defer area.Close()
	holder, err := disk.NewLease(ctx, disk.LeaseConfig{Area: area, Node: "node1", Nodes: nodes, Incarnation: 1, Timing: spec.Timing, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Acquire(ctx); err != nil {
		t.Fatalf("node1 acquires the lease: %v", err)
	}

	e := NewExecutor("node2", log)
	// The executor's own manager would reboot the machine (sysrq) if it
	// lost a lease it could not unmount: here that fails the test instead.
	if e.disks, err = disk.NewManager(disk.ManagerConfig{Node: "node2", Nodes: nodes, Incarnation: 2, Log: log,
		Fence: func(reason error) error {
			t.Errorf("node2 would fence itself: %v", reason)
			return errors.New("fencing disabled in this test")
		}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close) // after the release below (cleanups run last first)
	t.Cleanup(func() {
		if err := e.Release(context.Background(), res); err != nil {
			t.Errorf("release the disk: %v", err)
		}
	})
	start := func() error { return e.executeDisk(ctx, "web", res, true) }
	mounted := func() bool {
		entries, err := disk.ReadMountinfo("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range entries {
			if m.Mountpoint == spec.Mountpoint {
				return true
			}
		}
		return false
	}

	// 1. node1 holds the lease: refused for now, shown as a wait.
	err = start()
	if !errors.Is(err, engine.ErrRetry) || !strings.Contains(err.Error(), "node1's lease") {
		t.Fatalf("start while node1 holds the lease: %v; want a retryable wait for node1's lease", err)
	}
	if w := e.StartWaits(time.Now())["web"]; !strings.Contains(w, "node1's lease on "+spec.Mountpoint) || !strings.Contains(w, "left") {
		t.Errorf("StartWaits while waiting: %q", w)
	}
	// 2. node1 renews (alive, only cut off): the start fails for real.
	if err := holder.Renew(ctx); err != nil {
		t.Fatalf("node1 renews: %v", err)
	}
	err = start()
	if err == nil || errors.Is(err, engine.ErrRetry) || !strings.Contains(err.Error(), "it is alive") || !strings.Contains(err.Error(), "holds the lease") {
		t.Fatalf("start after node1 wrote its slot: %v; want a real failure saying node1 is alive", err)
	}
	if mounted() {
		t.Fatal("the disk was mounted although node1 holds the lease")
	}
	if w := e.StartWaits(time.Now()); len(w) != 0 {
		t.Errorf("a failed start still shows a wait: %v", w)
	}

	// 3. A wait the decision gave up (KeepWaits without the group) does not
	// make the next takeover fail when node1 has written meanwhile.
	if err := start(); !errors.Is(err, engine.ErrRetry) {
		t.Fatalf("a new takeover after a failed one: %v; want a new wait", err)
	}
	e.KeepWaits(map[string]bool{"other": true})
	if w := e.StartWaits(time.Now()); len(w) != 0 {
		t.Errorf("KeepWaits without web kept its wait: %v", w)
	}
	if err := holder.Renew(ctx); err != nil {
		t.Fatalf("node1 renews: %v", err)
	}
	if err := start(); !errors.Is(err, engine.ErrRetry) {
		t.Fatalf("start after the earlier wait was given up: %v; want a new wait, not a failure", err)
	}

	// 4. node1 renews once more, then falls silent (it crashed): node2
	// tries at each Wake and mounts once the lease has expired.
	if err := holder.Renew(ctx); err != nil {
		t.Fatalf("node1 renews: %v", err)
	}
	lastWrite := time.Now()
	holder.Close() // stop its expiry timer: node1 is gone
	e.KeepWaits(nil)
	wakes := 0
	deadline := time.After(20 * time.Second)
	for err = start(); err != nil; err = start() {
		if !errors.Is(err, engine.ErrRetry) {
			t.Fatalf("start while node1's lease runs out: %v", err)
		}
		select {
		case <-e.Wake():
			wakes++
		case <-deadline:
			t.Fatalf("no mount 20 s after node1's last write (%d wakes): %v", wakes, err)
		}
	}
	mountedAt := time.Now()
	if !mounted() {
		t.Fatal("the start succeeded but the disk is not mounted")
	}
	if wakes == 0 {
		t.Error("the start succeeded without a wake")
	}
	if early := lastWrite.Add(spec.Timing.Lease); mountedAt.Before(early) {
		t.Errorf("mounted %s after node1's last write, before its lease (%s) could have expired", mountedAt.Sub(lastWrite), spec.Timing.Lease)
	}
	if w := e.StartWaits(time.Now()); len(w) != 0 {
		t.Errorf("the wait is still shown after the mount: %v", w)
	}
	t.Logf("node1 silent -> mounted on node2 after %s (%d wakes; takeover wait %s)", mountedAt.Sub(lastWrite).Round(time.Millisecond), wakes, spec.Timing.TakeoverWait())
}
