package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inNS is a path as node n sees it (through /proc/PID/root, which resolves
// in n's mount namespace).
func (n *testNode) inNS(path string) string {
	return filepath.Join("/proc", strconv.Itoa(n.cmd.Process.Pid), "root", path)
}

func (n *testNode) mounted(dev, mp string) bool {
	out, err := exec.Command("findmnt", "--task", strconv.Itoa(n.cmd.Process.Pid), "--source", dev, "--mountpoint", mp, "-n", "-o", "TARGET").Output()
	return err == nil && strings.TrimSpace(string(out)) == mp
}

// waitObserved makes sure node n has read the area and sees holder.
func waitObserved(t *testing.T, n *testNode, holder string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rep := n.must("holder"); rep.Value == holder {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("node %s sees holder %q, want %q", n.name, rep.Value, holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailoverMovesMountAndRefusesDoubleMount(t *testing.T) {
	requireRoot(t)
	dev, mp, n1, n2 := twoNodes(t)
	s := startSampler(t, dev, mp, n1, n2)

	n1.must("mount")
	s.waitSeen(t, "node1")
	if err := os.WriteFile(n1.inNS(filepath.Join(mp, "data")), []byte("written on node1"), 0o644); err != nil {
		t.Fatal(err)
	}
	n1.must("monitor")
	// A manual double mount through the API is refused, naming the holder.
	rep := n2.do("mount")
	if rep.OK || rep.Held != "node1" || !strings.Contains(rep.Err, `"node1"`) || !strings.Contains(rep.Err, "override") {
		t.Fatalf("node2 mount while node1 holds: %+v", rep)
	}
	if n2.mounted(dev, mp) {
		t.Fatal("node2 has the volume mounted after a refused mount")
	}
	if rep := n2.do("monitor"); rep.OK {
		t.Fatal("monitor on node2 passed without a mount")
	}

	for i, pair := range [][2]*testNode{{n1, n2}, {n2, n1}} {
		from, to := pair[0], pair[1]
		start := time.Now()
		from.must("unmount fail")
		released := time.Now()
		to.must("mount")
		mounted := time.Now()
		s.waitSeen(t, to.name)
		t.Logf("clean handover %d %s->%s: unmount+release %s, acquire+mount %s, total %s", i+1, from.name, to.name,
			released.Sub(start).Round(time.Millisecond), mounted.Sub(released).Round(time.Millisecond), mounted.Sub(start).Round(time.Millisecond))
		if from.mounted(dev, mp) {
			t.Fatalf("%s still has the volume mounted after Unmount", from.name)
		}
		got, err := os.ReadFile(to.inNS(filepath.Join(mp, "data")))
		if err != nil || string(got) != "written on node1" {
			t.Fatalf("%s reads %q, %v after failover", to.name, got, err)
		}
		to.must("monitor")
	}
	n1.must("unmount fail")
	// Unmount is idempotent.
	n1.must("unmount fail")
	s.check(t, "node1", "node2")
}

func takeover(t *testing.T, n2 *testNode, since time.Time) (refusals int, total, lastCall time.Duration) {
	t.Helper()
	deadline := since.Add(20 * time.Second)
	for {
		call := time.Now()
		rep := n2.do("mount")
		if rep.OK {
			return refusals, time.Since(since), time.Since(call)
		}
		if rep.Held != "node1" {
			t.Fatalf("node2 mount refused for another reason than node1's lease: %s", rep.Err)
		}
		refusals++
		if time.Now().After(deadline) {
			t.Fatalf("node2 could not take over within 20s: %s", rep.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCrashedHolderTakeoverWaitsForLease(t *testing.T) {
	requireRoot(t)
	dev, mp, n1, n2 := twoNodes(t)
	s := startSampler(t, dev, mp, n1, n2)
	n1.must("mount")
	waitObserved(t, n2, "node1")
	s.waitSeen(t, "node1")
	crash := time.Now()
	n1.kill() // the "host" dies: its renewer, its namespace and mount with it
	refusals, total, last := takeover(t, n2, crash)
	t.Logf("takeover after crash: %s in all (%d refusals while the lease ran), successful acquire+mount call %s; lease %s + margin %s",
		total.Round(time.Millisecond), refusals, last.Round(time.Millisecond), testTiming.Lease, testTiming.Margin)
	if refusals == 0 {
		t.Fatal("node2 was never refused after the crash: it did not wait for the lease")
	}
	if total < testTiming.Lease {
		t.Fatalf("node2 mounted %s after node1 crashed, before the lease (%s) could have expired", total, testTiming.Lease)
	}
	n2.must("monitor")
	s.waitSeen(t, "node2")
	s.check(t, "node1", "node2")
}

func TestStoppedRenewerUnmountsBeforeTakeover(t *testing.T) {
	requireRoot(t)
	dev, mp, n1, n2 := twoNodes(t)
	s := startSampler(t, dev, mp, n1, n2)
	n1.must("mount")
	holder, _ := strconv.Atoi(n1.must("hold 1").Value) // even a holder that ignores SIGTERM
	waitObserved(t, n2, "node1")
	s.waitSeen(t, "node1")
	stop := time.Now()
	n1.must("stop-renewer") // node1 lives on with the mount, but stops renewing
	refusals, total, _ := takeover(t, n2, stop)
	t.Logf("takeover after the renewer stopped: %s, %d refusals", total.Round(time.Millisecond), refusals)
	s.waitSeen(t, "node2")
	if refusals == 0 || total < testTiming.Lease {
		t.Fatalf("node2 mounted after %s with %d refusals; want >= lease %s and refusals", total, refusals, testTiming.Lease)
	}
	if n1.mounted(dev, mp) {
		t.Fatal("node1 still has the volume mounted after losing its lease")
	}
	if err := syscall.Kill(holder, 0); err == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(holder) + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Fatalf("the process holding node1's mount (pid %d) survived the lost lease", holder)
		}
	}
	if rep := n1.do("monitor"); rep.OK {
		t.Fatal("node1's monitor passes after it lost the lease")
	}
	s.check(t, "node1", "node2")
}

func TestBusyMountPolicy(t *testing.T) {
	requireRoot(t)
	dev, mp, n1, n2 := twoNodes(t)
	s := startSampler(t, dev, mp, n1, n2)
	n1.must("mount")
	s.waitSeen(t, "node1")
	pid := n1.must("hold 0").Value
	rep := n1.do("unmount fail")
	if rep.OK || !strings.Contains(rep.Err, "pid "+pid) || !strings.Contains(rep.Err, "busy") || !strings.Contains(rep.Err, "held-file") {
		t.Fatalf("unmount with a busy mount and policy fail: %+v (holder pid %s)", rep, pid)
	}
	// Still mounted, so the lease must still be held.
	n1.must("monitor")
	if rep := n2.do("mount"); rep.OK || rep.Held != "node1" {
		t.Fatalf("node2 mounted while node1's busy unmount failed: %+v", rep)
	}
	n1.must("unmount kill 300")
	if n1.mounted(dev, mp) {
		t.Fatal("still mounted after unmount with the kill policy")
	}
	n2.must("mount")
	s.waitSeen(t, "node2")
	// A holder that ignores SIGTERM is killed after the grace period.
	n2.must("hold 1")
	start := time.Now()
	n2.must("unmount kill 300")
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("a SIGTERM-proof holder was gone after %s, before the 300ms grace", el)
	}
	n1.must("mount")
	s.waitSeen(t, "node1")
	s.check(t, "node1", "node2")
}

func TestHungAndReadOnlyDevice(t *testing.T) {
	requireRoot(t, "fsfreeze", "nsenter", "blockdev")
	dev, mp, n1, n2 := twoNodes(t)
	s := startSampler(t, dev, mp, n1, n2)
	n1.must("mount")
	s.waitSeen(t, "node1")
	pid := strconv.Itoa(n1.cmd.Process.Pid)

	// fsfreeze: writes to the filesystem block, like a hung device.
	if out, err := exec.Command("nsenter", "-t", pid, "-m", "fsfreeze", "-f", mp).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze -f: %v: %s", err, out)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if out, err := exec.Command("nsenter", "-t", pid, "-m", "fsfreeze", "-u", mp).CombinedOutput(); err != nil {
				t.Errorf("fsfreeze -u: %v: %s", err, out)
			}
		}
	}
	t.Cleanup(thaw)
	start := time.Now()
	rep := n1.do("monitor")
	if rep.OK || !strings.Contains(rep.Err, "hung") {
		t.Fatalf("monitor on a frozen filesystem: %+v", rep)
	}
	t.Logf("monitor reported the frozen filesystem after %s: %s", time.Since(start).Round(time.Millisecond), rep.Err)
	if rep := n1.do("monitor"); rep.OK || !strings.Contains(rep.Err, "still not returned") {
		t.Fatalf("second monitor while frozen: %+v", rep)
	}
	// The lease lives on the raw device and keeps being renewed.
	if rep := n2.do("mount"); rep.OK || rep.Held != "node1" {
		t.Fatalf("node2 mount during the freeze: %+v", rep)
	}
	thaw()
	deadline := time.Now().Add(10 * time.Second)
	for rep := n1.do("monitor"); !rep.OK; rep = n1.do("monitor") {
		if time.Now().After(deadline) {
			t.Fatalf("monitor still fails after thaw: %s", rep.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// blockdev --setro: write(2) on the device fails with EPERM, so the
	// lease cannot be renewed and node1 must drop the mount before node2
	// could take it. (The kernel only warns when the mounted ext4 keeps
	// writing, so the filesystem itself does not fail.)
	waitObserved(t, n2, "node1")
	if out, err := exec.Command("blockdev", "--setro", dev).CombinedOutput(); err != nil {
		t.Fatalf("blockdev --setro: %v: %s", err, out)
	}
	ro := time.Now()
	deadline = time.Now().Add(10 * time.Second)
	for n1.mounted(dev, mp) {
		if time.Now().After(deadline) {
			t.Fatal("node1 kept the mount after its lease could not be renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("node1 unmounted %s after the device went read-only", time.Since(ro).Round(time.Millisecond))
	if rep := n1.do("monitor"); rep.OK {
		t.Fatal("node1's monitor passes after it lost the mount")
	}
	if rep := n2.do("mount"); rep.OK {
		t.Fatal("node2 mounted a read-only device")
	}
	if out, err := exec.Command("blockdev", "--setrw", dev).CombinedOutput(); err != nil {
		t.Fatalf("blockdev --setrw: %v: %s", err, out)
	}
	refusals, total, _ := takeover(t, n2, ro)
	t.Logf("node2 took over %s after the device went read-only (%d refusals)", total.Round(time.Millisecond), refusals)
	s.waitSeen(t, "node2")
	s.check(t, "node1", "node2")
}

func TestSeparateLeaseDeviceLabelAndFsck(t *testing.T) {
	requireRoot(t, "tune2fs", "dumpe2fs", "fsck")
	data := newLoop(t, 32<<20)
	label := "hrl" + strconv.Itoa(os.Getpid()%100000)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, data).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	// Make fsck -a check for real: the filesystem claims 100 mounts without a check.
	if out, err := exec.Command("tune2fs", "-c", "20", "-C", "100", data).CombinedOutput(); err != nil {
		t.Fatalf("tune2fs: %v: %s", err, out)
	}
	leaseDev := newLoop(t, AreaSize)
	if err := FormatArea(context.Background(), leaseDev, false); err != nil {
		t.Fatal(err)
	}
	mp, n1, n2 := startPair(t, nodeConfig{Device: "LABEL=" + label, LeaseDevice: leaseDev, Fsck: true})
	s := startSampler(t, data, mp, n1, n2)
	n1.must("mount")
	s.waitSeen(t, "node1")
	out, err := exec.Command("dumpe2fs", "-h", data).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v: %s", err, out)
	}
	if !regexp.MustCompile(`(?m)^Mount count:\s+1$`).Match(out) {
		t.Fatalf("fsck did not run before the mount (mount count should restart at 1):\n%s", out)
	}
	if rep := n2.do("mount"); rep.OK || rep.Held != "node1" {
		t.Fatalf("node2 mount with the lease on a separate device held by node1: %+v", rep)
	}
	n1.must("unmount fail")
	n2.must("mount")
	s.waitSeen(t, "node2")
	s.check(t, "node1", "node2")
}

func TestFilesystemGrownIntoLeaseAreaIsRefused(t *testing.T) {
	requireRoot(t, "resize2fs")
	dev := formattedLoop(t)
	if out, err := exec.Command("resize2fs", "-f", dev).CombinedOutput(); err != nil {
		t.Fatalf("resize2fs: %v: %s", err, out)
	}
	_, n1, _ := startPair(t, nodeConfig{Device: dev})
	rep := n1.do("mount")
	if rep.OK || !strings.Contains(rep.Err, "lease area") {
		t.Fatalf("mount of a filesystem that grew over the lease area: %+v", rep)
	}
	t.Logf("refused: %s", rep.Err)
}
