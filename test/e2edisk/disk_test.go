package e2edisk

import (
	"bufio"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/internal/clustertest"
)

// TestCrashFailoverWaitsForLease: node1 (disk + VIP + service) loses
// power. node2 declares it dead after ~1.5 s, but mounts only once node1's
// lease has expired on node2's clock (lease + margin after node1's slot
// stopped changing); then the VIP and the service follow, and the data
// node1's service wrote is there on node2. While node2 waits for the
// lease its loop keeps running: `harules status --json` answers and shows
// the group waiting for node1's lease, a control request is applied, and
// node3's heartbeats keep being read (node3 is never taken for dead).
func TestCrashFailoverWaitsForLease(t *testing.T) {
	l := newDiskLab(t, labOptions{nodes: 3})
	ft := crashFailover(t, l, true)
	t.Logf("crash failover of disk+VIP+service: %s", ft)
}

// BenchmarkCrashFailover measures a crash failover of the disk + VIP +
// service group (heartbeats 100ms x 15; lease timings as in the tests, or
// the product's with HARULES_E2EDISK_TIMING=default), split into
// detection, lease wait, mount and the rest of the group.
func BenchmarkCrashFailover(b *testing.B) {
	var sum failoverTimes
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := newDiskLab(b, labOptions{})
		b.StartTimer()
		ft := crashFailover(b, l, false)
		b.StopTimer()
		b.Logf("run %d: %s", i+1, ft)
		sum.detect += ft.detect
		sum.leaseWait += ft.leaseWait
		sum.mount += ft.mount
		sum.rest += ft.rest
		sum.total += ft.total
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.detect.Milliseconds())/n, "detect-ms")
	b.ReportMetric(float64(sum.leaseWait.Milliseconds())/n, "leasewait-ms")
	b.ReportMetric(float64(sum.mount.Microseconds())/n/1000, "mount-ms")
	b.ReportMetric(float64(sum.rest.Milliseconds())/n, "vip+service-ms")
	b.ReportMetric(float64(sum.total.Milliseconds())/n, "failover-ms")
}

// failoverTimes splits a crash failover: crash -> takeover decided
// (detection), -> lease acquired (lease wait), -> mounted, -> VIP serving.
type failoverTimes struct {
	detect, leaseWait, mount, rest, total time.Duration
	// sinceRenew is how long before the crash node1's last lease write was seen.
	sinceRenew time.Duration
}

func (f failoverTimes) String() string {
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("crash -> takeover decided %s, lease wait %s (node1's last renewal seen %s before the crash), lease acquired -> mounted %s, "+
		"mounted -> VIP serving %s; crash -> VIP on node2 %s (lease %s + margin %s, heartbeats %s x 15)",
		r(f.detect), r(f.leaseWait), r(f.sinceRenew), f.mount.Round(100*time.Microsecond), r(f.rest), r(f.total), testTiming.Lease, testTiming.Margin, heartbeatInterval)
}

// crashFailover crashes node1 holding the group and checks that node2
// mounts only once node1's lease has expired, never while node1 has it
// mounted, and that the VIP, the service and the data follow. watchLoop
// also asks node2's status and sends it a control request during the
// lease wait (see checkLoopDuringWait).
func crashFailover(t testing.TB, l *diskLab, watchLoop bool) failoverTimes {
	t.Helper()
	c := l.c
	own := c.StartSampler(20 * time.Millisecond)
	ms := l.startMountSampler(true)
	c.WaitFor(10*time.Second, "node1's service wrote to the disk", func() bool {
		s, err := l.nodeFile("node1", l.mp+"/app.log")
		return err == nil && writers(s)["node1"] >= 3
	})

	crashAt := c.Crash("node1")
	var watch *loopWatch
	if watchLoop {
		watch = l.awaitMountWatchingLoop("node2", 30*time.Second+testTiming.TakeoverWait())
	} else {
		c.WaitFor(30*time.Second+testTiming.TakeoverWait(), "node2 mounted the disk", func() bool { return l.mounted("node2") })
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 20*time.Second)
	c.WaitFor(10*time.Second, "the service runs on node2 and wrote to the disk", func() bool {
		s, err := l.nodeFile("node2", l.mp+"/app.log")
		return l.serviceRuns("node2") && err == nil && writers(s)["node2"] >= 2
	})
	samples := ms.finish(t)
	ownRep := own.Stop()

	// Safety: node2 mounted only after node1's last lease write + lease.
	// node1's last renewal was issued before this sampler saw it, so the
	// bound is sound; node2 itself waits lease + margin from when it saw it.
	lastRenew, slot := lastSlotChange(samples, "node1")
	mountAt := firstMounted(samples, "node2", crashAt)
	if slot.Claim != disk.ClaimHeld {
		t.Errorf("node1's last lease slot says %s, want held (it crashed holding the disk)", slot.Claim)
	}
	if mountAt.IsZero() || lastRenew.IsZero() {
		t.Fatalf("no mount on node2 (%v) or no lease write of node1 (%v) sampled", mountAt, lastRenew)
	}
	if mountAt.Before(lastRenew.Add(testTiming.Lease)) {
		t.Errorf("node2 mounted at %s, before node1's lease (last renewal seen at %s + %s) could have expired",
			mountAt.Format("15:04:05.000"), lastRenew.Format("15:04:05.000"), testTiming.Lease)
	}
	waitAt := l.mustLogTime("node2", "waiting for the lease of a holder", crashAt)
	acquiredAt := l.mustLogTime("node2", "lease acquired", crashAt)
	mountedAt := l.mustLogTime("node2", "disk mounted", crashAt)
	var vipAt time.Time
	for _, s := range ownRep.Samples {
		if s.At.After(crashAt) && s.State["node2"] == clustertest.VIPServing {
			vipAt = s.At
			break
		}
	}
	if vipAt.IsZero() || vipAt.Before(mountAt.Add(-50*time.Millisecond)) {
		t.Errorf("the VIP came up on node2 at %v, before the disk was mounted there (%s): the group order is disk first", vipAt, mountAt.Format("15:04:05.000"))
	}

	// The data followed: node2 reads what node1 wrote before the crash.
	data, err := l.nodeFile("node2", l.mp+"/app.log")
	if err != nil {
		t.Fatalf("read app.log on node2: %v", err)
	}
	if w := writers(data); w["node1"] == 0 || w["node2"] == 0 {
		t.Errorf("app.log on node2 has lines by %v, want node1's (before the crash) and node2's", w)
	}
	if d := ownRep.DualPresent(); len(d) > 0 {
		t.Errorf("the VIP was on two nodes at once: %s", ownRep)
	}
	if watch != nil {
		l.checkLoopDuringWait(watch, crashAt, mountAt)
	}
	l.assertNothingBelowMount()
	return failoverTimes{detect: waitAt.Sub(crashAt), leaseWait: acquiredAt.Sub(waitAt), mount: mountedAt.Sub(acquiredAt),
		rest: vipAt.Sub(mountAt), total: vipAt.Sub(crashAt), sinceRenew: crashAt.Sub(lastRenew)}
}

// TestPlannedMoveUnmountsFirst: `harules move` stops the service, removes
// the VIP and unmounts on node1, releases the lease, and node2 mounts at
// once: no lease wait, never mounted on both.
func TestPlannedMoveUnmountsFirst(t *testing.T) {
	l := newDiskLab(t, labOptions{})
	c := l.c
	ms := l.startMountSampler(true)
	time.Sleep(200 * time.Millisecond)

	moveAt := time.Now()
	out, err := exec.Command(c.Bin, "move", clustertest.Group, "node2", "--control", c.ControlSocket("node1")).CombinedOutput()
	if err != nil {
		t.Fatalf("harules move %s node2: %v: %s", clustertest.Group, err, out)
	}
	c.WaitFor(20*time.Second, "node2 mounted the disk", func() bool { return l.mounted("node2") })
	c.WaitOwner("node1", clustertest.Group, "node2", 10*time.Second)
	c.WaitFor(10*time.Second, "the service runs on node2", func() bool { return l.serviceRuns("node2") })
	time.Sleep(200 * time.Millisecond)
	samples := ms.finish(t)

	unmountAt := firstUnmounted(samples, "node1", moveAt)
	mountAt := firstMounted(samples, "node2", moveAt)
	releasedAt := firstClaim(samples, "node1", disk.ClaimNone, moveAt)
	heldAt := firstClaim(samples, "node2", disk.ClaimHeld, moveAt)
	if l.mounted("node1") {
		t.Errorf("node1 still has the disk mounted after the move")
	}
	if releasedAt.IsZero() || heldAt.IsZero() || heldAt.Before(releasedAt) {
		t.Errorf("lease slots: node1 released at %v, node2 held at %v; want node1's release seen first", releasedAt, heldAt)
	}
	if _, line, ok := l.logTime("node2", "waiting for the lease of a holder", moveAt); ok {
		t.Errorf("a planned move waited for a lease to expire: %s", line)
	}
	if _, line, ok := l.logTime("node2", "refusing to mount", moveAt); ok {
		t.Errorf("node2 was refused the lease in a planned move: %s", line)
	}
	t.Logf("planned move: move -> unmounted on node1 %s, -> mounted on node2 %s (unmounted -> mounted %s; a takeover would wait %s)",
		unmountAt.Sub(moveAt).Round(time.Millisecond), mountAt.Sub(moveAt).Round(time.Millisecond),
		mountAt.Sub(unmountAt).Round(time.Millisecond), testTiming.TakeoverWait())
	l.assertNothingBelowMount()
}

// TestNetworkCutDiskHeartbeatKeepsPeer: both UDP paths between the nodes
// are cut while both live; the disk heartbeat path keeps each node seeing
// the other alive, so node2 takes nothing over; status shows lan and
// backnet down and disk up. Also measures the disk heartbeat's I/O rate.
func TestNetworkCutDiskHeartbeatKeepsPeer(t *testing.T) {
	l := newDiskLab(t, labOptions{diskHeartbeat: true})
	c := l.c
	ms := l.startMountSampler(false)

	reads, writes := l.logDeviceIO(fmt.Sprintf("both agents up, disk heartbeat every %s (diskhb alone: 2 nodes x (1 read + 1 write) per interval), lease renew %s, disk monitor 1s",
		heartbeatInterval, testTiming.Renew), 2*time.Second)
	if reads < 5 || writes < 5 {
		t.Errorf("the device saw %.1f reads/s and %.1f writes/s: the disk heartbeat does not run", reads, writes)
	}

	cutAt := time.Now()
	for _, ifname := range []string{"eth0", "eth1"} {
		c.SetLink("node2", ifname, false)
	}
	// Well past the detection time (1.5 s) on both UDP paths.
	c.WaitFor(20*time.Second, "node2 sees lan and backnet to node1 down, disk up", func() bool {
		st, err := c.Status("node2")
		if err != nil {
			return false
		}
		up := pathsUp(st.Nodes, "node1")
		return !up["lan"] && !up["backnet"] && up["disk"]
	})
	time.Sleep(3 * time.Second)
	for _, n := range []string{"node1", "node2"} {
		st := c.MustStatus(n)
		other := map[string]string{"node1": "node2", "node2": "node1"}[n]
		up := pathsUp(st.Nodes, other)
		state := ""
		for _, ns := range st.Nodes {
			if ns.Name == other {
				state = ns.State
			}
		}
		if state != "alive" || up["lan"] || up["backnet"] || !up["disk"] {
			t.Errorf("%s sees %s %q with paths %v, want alive with lan and backnet down and disk up", n, other, state, up)
		}
	}
	if h := c.VIPHolders(); len(h) != 1 || h[0] != "node1" {
		t.Errorf("the VIP is on %v during the cut, want node1 only", h)
	}
	if !l.mounted("node1") || l.serviceRuns("node2") {
		t.Errorf("during the cut: node1 mounted=%v, service on node2=%v; want node1 to keep the disk", l.mounted("node1"), l.serviceRuns("node2"))
	}
	for _, msg := range []string{"takeover", "waiting for the lease of a holder", "refusing to mount"} {
		if _, line, ok := l.logTime("node2", msg, cutAt); ok {
			t.Errorf("node2 attempted a takeover while the disk heartbeat lived: %s", line)
		}
	}
	for _, ifname := range []string{"eth0", "eth1"} {
		c.SetLink("node2", ifname, true)
	}
	c.WaitFor(20*time.Second, "node2 sees every path to node1 up again", func() bool {
		st, err := c.Status("node2")
		if err != nil {
			return false
		}
		up := pathsUp(st.Nodes, "node1")
		return up["lan"] && up["backnet"] && up["disk"]
	})
	samples := ms.finish(t)
	if everMounted(samples, "node2") {
		t.Errorf("node2 mounted the disk although node1 lived")
	}
}

// TestPartitionWithoutDiskHeartbeatRefusesDoubleMount: without a disk
// heartbeat, cutting the network makes node2 declare node1 dead and try a
// takeover. node1 still renews its lease on the shared disk, so node2's
// mount is refused with an error naming node1, the VIP and service (after
// the disk in the group) never start on node2, and the disk is never
// mounted twice. `harules disk status` shows node1's live held claim.
func TestPartitionWithoutDiskHeartbeatRefusesDoubleMount(t *testing.T) {
	l := newDiskLab(t, labOptions{})
	c := l.c
	// Baseline for the disk heartbeat's share: the same lab without it.
	l.logDeviceIO(fmt.Sprintf("both agents up, no disk heartbeat (lease renew %s, disk monitor 1s)", testTiming.Renew), 2*time.Second)
	own := c.StartSampler(20 * time.Millisecond)
	ms := l.startMountSampler(false)

	cutAt := time.Now()
	for _, ifname := range []string{"eth0", "eth1"} {
		c.SetLink("node2", ifname, false)
	}
	c.WaitFor(30*time.Second, "node2 fails to start the group (its disk refused)", func() bool {
		_, _, ok := l.logTime("node2", "refusing to mount", cutAt)
		return ok
	})
	_, line, _ := l.logTime("node2", "refusing to mount", cutAt)
	for _, want := range []string{`node \"node1\" holds the lease`, "it is alive"} {
		if !strings.Contains(line, want) {
			t.Errorf("node2's refusal does not say %q: %s", want, line)
		}
	}
	st := c.MustStatus("node2")
	refused := false
	for _, r := range st.Recent {
		if strings.Contains(r.Error, "holds the lease") && strings.Contains(r.Error, "node1") {
			refused = true
		}
	}
	if !refused {
		t.Errorf("node2's status has no record of the refused mount naming node1: %+v", st.Recent)
	}
	time.Sleep(time.Second)

	out, err := exec.Command(c.Bin, "disk", "status", l.dev, "--observe", "1200ms").CombinedOutput()
	if err != nil {
		t.Fatalf("harules disk status: %v: %s", err, out)
	}
	if !holdsLive(string(out), "node1") {
		t.Errorf("harules disk status does not show node1 holding the lease and writing:\n%s", out)
	}
	t.Logf("harules disk status %s --observe 1200ms:\n%s", l.dev, out)

	samples := ms.finish(t)
	ownRep := own.Stop()
	if everMounted(samples, "node2") {
		t.Errorf("node2 mounted the disk while node1 held it")
	}
	if !l.mounted("node1") {
		t.Errorf("node1 lost its mount during the partition")
	}
	for _, s := range ownRep.Samples {
		if s.State["node2"] != clustertest.VIPAbsent {
			t.Errorf("node2 configured the VIP at %s although its disk was refused", s.At.Format("15:04:05.000"))
			break
		}
	}
	if l.serviceRuns("node2") {
		t.Errorf("the service runs on node2 although its disk was refused")
	}
	for _, ifname := range []string{"eth0", "eth1"} {
		c.SetLink("node2", ifname, true)
	}
	l.assertNothingBelowMount()
}

// TestBusyMountKilledAfterGrace: a process on node1 keeps a file open on
// the disk and ignores SIGTERM. On a planned move, node1 sends SIGTERM,
// waits the policy's stop_grace (2 s), sends SIGKILL, then unmounts; node2
// mounts after that.
func TestBusyMountKilledAfterGrace(t *testing.T) {
	const grace = 2 * time.Second
	l := newDiskLab(t, labOptions{diskParams: fmt.Sprintf("stop_grace = %q", grace)})
	c := l.c
	// The holder runs in node1's network and mount namespaces (entered
	// from the agent's supervisor) so it sees and pins node1's mount.
	holder := exec.Command("nsenter", "-t", fmt.Sprint(c.SupervisorPID("node1")), "-m", "-n", "--",
		"sh", "-c", fmt.Sprintf(`trap "" TERM; exec 3>>%s/busy; echo held; exec sleep 1000`, l.mp))
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatalf("start the holder: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	})
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "held" {
		t.Fatalf("the holder did not start: %q", line)
	}
	go func() { exited <- holder.Wait() }()
	ms := l.startMountSampler(false)
	time.Sleep(200 * time.Millisecond)

	moveAt := time.Now()
	if err := c.Move("node1", clustertest.Group, "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	var werr error
	select {
	case werr = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the holder still runs 30 s after the move")
	}
	killedAt := time.Now()
	c.WaitFor(20*time.Second, "node2 mounted the disk", func() bool { return l.mounted("node2") })
	c.WaitOwner("node1", clustertest.Group, "node2", 10*time.Second)
	samples := ms.finish(t)

	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the holder ended with %v, want SIGKILL (it ignores SIGTERM)", werr)
	}
	unmountAt := lastMounted(samples, "node1")
	if unmountAt.Before(moveAt.Add(grace)) {
		t.Errorf("node1 still had the disk mounted only until %s, %s after the move: it unmounted before the %s grace for the busy holder",
			unmountAt.Format("15:04:05.000"), unmountAt.Sub(moveAt).Round(time.Millisecond), grace)
	}
	termAt := l.mustLogTime("node1", "ending a process that keeps the disk busy", moveAt)
	_, killLine, ok := l.logTime("node1", "signal=killed", moveAt)
	if !ok || !strings.Contains(killLine, "ending a process that keeps the disk busy") {
		t.Errorf("node1's log does not show the holder killed: %q", killLine)
	}
	t.Logf("busy mount: move -> SIGTERM %s, holder gone after %s, node1 unmounted by %s, node2 mounted at %s (stop_grace %s)",
		termAt.Sub(moveAt).Round(time.Millisecond), killedAt.Sub(moveAt).Round(time.Millisecond),
		unmountAt.Sub(moveAt).Round(time.Millisecond), firstMounted(samples, "node2", moveAt).Sub(moveAt).Round(time.Millisecond), grace)
}
