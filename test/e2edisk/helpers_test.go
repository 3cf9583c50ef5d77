package e2edisk

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/netnstest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// Lease timings of the tests' disks, set through the policy's disk(...)
// params: a dead holder's disk is taken over lease+margin = 4 s after its
// last renewal; the live holder gets 3 renewal attempts per lease.
var testTiming = disk.Timing{Lease: 3 * time.Second, Renew: 500 * time.Millisecond, Margin: time.Second,
	IOTimeout: 500 * time.Millisecond, Settle: 100 * time.Millisecond}

// heartbeatInterval of every path (misses 15); HARULES_E2EDISK_INTERVAL
// overrides it (e.g. 200ms) for the benchmark.
var heartbeatInterval = "100ms"

func init() {
	if v := os.Getenv("HARULES_E2EDISK_INTERVAL"); v != "" {
		heartbeatInterval = v
	}
	// HARULES_E2EDISK_TIMING=default runs with the product's lease timings
	// (a crash failover then waits ~20 s for the lease).
	if os.Getenv("HARULES_E2EDISK_TIMING") == "default" {
		testTiming = disk.DefaultTiming()
	}
}

// diskLab is a cluster (two nodes unless told) whose group "web" is disk +
// VIP + service on a shared loop device.
type diskLab struct {
	t   testing.TB
	c   *clustertest.Cluster
	dev string
	mp  string
	// maj, min identify the device in mountinfo.
	maj, min uint32
}

type labOptions struct {
	// nodes is the number of nodes (default 2); the group prefers node1,
	// then node2.
	nodes int
	// diskHeartbeat adds the heartbeat path "disk" on the shared device.
	diskHeartbeat bool
	// diskParams are more disk(...) arguments, e.g. `stop_grace = "1s"`.
	diskParams string
}

// newDiskLab formats a loop device, writes the policy and starts both
// agents; node1 holds the group with the disk mounted when it returns.
func newDiskLab(t testing.TB, o labOptions) *diskLab {
	t.Helper()
	netnstest.RequireRoot(t)
	for _, tool := range []string{"losetup", "mkfs.ext4", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install util-linux e2fsprogs (scripts/deps.d/e2edisk.txt): %v", tool, err)
		}
	}
	dev := clustertest.LoopDevice(t, 64<<20)
	dir, err := os.MkdirTemp("", "hrd-")
	if err != nil {
		t.Fatalf("mountpoint dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // after the cluster's cleanup: no mount is left then
	mp := filepath.Join(dir, "data")
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatalf("stat %s: %v", dev, err)
	}
	l := &diskLab{t: t, dev: dev, mp: mp, maj: unix.Major(st.Rdev), min: unix.Minor(st.Rdev)}

	params := fmt.Sprintf(`lease = %q, renew = %q, margin = %q, io_timeout = %q`, testTiming.Lease, testTiming.Renew, testTiming.Margin, testTiming.IOTimeout)
	if o.diskParams != "" {
		params += ", " + o.diskParams
	}
	po := clustertest.PolicyOptions{
		Interval:  heartbeatInterval,
		Resources: []string{fmt.Sprintf("disk(%q, %q, %s)", dev, mp, params)},
		// The service writes to the shared disk: its lines say which node
		// wrote them, so the data visibly follows the disk.
		ServiceCommand: fmt.Sprintf(`["sh", "-c", "while :; do echo \"$HARULES_NODE $(date +%%s.%%N)\" >> %s/app.log; sleep 0.1; done"]`, mp),
	}
	if o.diskHeartbeat {
		po.DiskHeartbeat = dev
	}
	l.c = clustertest.New(t, clustertest.Options{Nodes: o.nodes, Policy: po})
	l.c.StartAll()
	l.c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	l.c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)
	l.c.WaitFor(10*time.Second, "the disk is mounted on node1", func() bool { return l.mounted("node1") })
	return l
}

// mountinfo is the mount table of node's agent (the supervisor and the
// agent share the mount namespace `ip netns exec` made).
func (l *diskLab) mountinfo(node string) string {
	if !l.c.Running(node) {
		return ""
	}
	return fmt.Sprintf("/proc/%d/mountinfo", l.c.SupervisorPID(node))
}

// mounted reports whether the shared device is mounted at the mountpoint
// in node's mount namespace.
func (l *diskLab) mounted(node string) bool {
	path := l.mountinfo(node)
	if path == "" {
		return false
	}
	entries, err := disk.ReadMountinfo(path)
	if err != nil {
		return false // the process is gone: so is its mount namespace
	}
	for _, e := range entries {
		if e.Major == l.maj && e.Minor == l.min && e.Mountpoint == l.mp {
			return true
		}
	}
	return false
}

// nodeFile reads a file as node's mount namespace sees it.
func (l *diskLab) nodeFile(node, path string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", l.c.SupervisorPID(node), path))
	return string(b), err
}

// assertNothingBelowMount fails if anything was written to the mountpoint
// directory itself: the service wrote while the disk was not mounted.
func (l *diskLab) assertNothingBelowMount() {
	l.t.Helper()
	entries, err := os.ReadDir(l.mp)
	if err != nil {
		l.t.Fatalf("read the mountpoint directory %s in the root namespace: %v", l.mp, err)
	}
	if len(entries) > 0 {
		l.t.Errorf("the mountpoint directory itself holds %d entries (e.g. %s): something wrote there while the disk was not mounted", len(entries), entries[0].Name())
	}
}

// mountSample is one look at both nodes' mount tables and the lease slots.
type mountSample struct {
	at      time.Time
	mounted map[string]bool
	// lease slots by node, when the sampler reads them.
	slots map[string]disk.Slot
}

// mountSampler reads every node's mountinfo (and optionally the lease
// slots) every 20 ms.
type mountSampler struct {
	mu      sync.Mutex
	samples []mountSample
	stop    chan struct{}
	done    chan struct{}
}

func (l *diskLab) startMountSampler(withSlots bool) *mountSampler {
	l.t.Helper()
	var area *disk.Area
	if withSlots {
		var err error
		if area, err = disk.OpenArea(context.Background(), l.dev); err != nil {
			l.t.Fatalf("open the lease area of %s: %v", l.dev, err)
		}
	}
	nodes := l.c.Nodes()
	s := &mountSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if area != nil {
			defer area.Close()
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			smp := mountSample{at: time.Now(), mounted: map[string]bool{}}
			for _, n := range nodes {
				smp.mounted[n] = l.mounted(n)
			}
			if area != nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				slots, err := area.ReadSlots(ctx, disk.RegionLease, 1, len(nodes))
				cancel()
				if err == nil {
					smp.slots = map[string]disk.Slot{}
					for _, sl := range slots {
						if sl.Node != "" {
							smp.slots[sl.Node] = sl
						}
					}
				}
			}
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	l.t.Cleanup(s.halt)
	return s
}

func (s *mountSampler) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// finish stops the sampler and fails the test if the disk was ever mounted
// on two nodes in one sample, or if too few samples were taken to tell.
func (s *mountSampler) finish(t testing.TB) []mountSample {
	t.Helper()
	s.halt()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 20 {
		t.Errorf("the mount sampler took only %d samples: the double-mount check proves nothing", len(s.samples))
	}
	for _, smp := range s.samples {
		var on []string
		for n, m := range smp.mounted {
			if m {
				on = append(on, n)
			}
		}
		if len(on) > 1 {
			t.Errorf("DOUBLE MOUNT: at %s the disk was mounted on %v", smp.at.Format("15:04:05.000"), on)
			break
		}
	}
	return s.samples
}

// firstMounted is the first sample at or after from in which node had the
// disk mounted (zero if none).
func firstMounted(samples []mountSample, node string, from time.Time) time.Time {
	for _, s := range samples {
		if !s.at.Before(from) && s.mounted[node] {
			return s.at
		}
	}
	return time.Time{}
}

// firstUnmounted is the first sample at or after from in which node did
// not have the disk mounted (zero if none).
func firstUnmounted(samples []mountSample, node string, from time.Time) time.Time {
	for _, s := range samples {
		if !s.at.Before(from) && !s.mounted[node] {
			return s.at
		}
	}
	return time.Time{}
}

// lastMounted is the last sample in which node had the disk mounted.
func lastMounted(samples []mountSample, node string) time.Time {
	var t time.Time
	for _, s := range samples {
		if s.mounted[node] {
			t = s.at
		}
	}
	return t
}

// everMounted reports whether node had the disk mounted in any sample.
func everMounted(samples []mountSample, node string) bool {
	return !lastMounted(samples, node).IsZero()
}

// lastSlotChange is the sample time at which node's lease slot was first
// seen with its final value.
func lastSlotChange(samples []mountSample, node string) (time.Time, disk.Slot) {
	var at time.Time
	var cur disk.Slot
	for _, s := range samples {
		sl, ok := s.slots[node]
		if !ok {
			continue
		}
		if at.IsZero() || sl != cur {
			at, cur = s.at, sl
		}
	}
	return at, cur
}

// firstClaim is the first sample time at which node's lease slot showed c.
func firstClaim(samples []mountSample, node string, c disk.Claim, from time.Time) time.Time {
	for _, s := range samples {
		if sl, ok := s.slots[node]; ok && !s.at.Before(from) && sl.Claim == c {
			return s.at
		}
	}
	return time.Time{}
}

// logTime finds the first line of node's agent log at or after from whose
// message contains msg, and returns its time.
func (l *diskLab) logTime(node, msg string, from time.Time) (time.Time, string, bool) {
	f, err := os.Open(l.c.LogPath(node))
	if err != nil {
		return time.Time{}, "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, msg) || !strings.HasPrefix(line, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && !at.Before(from.Truncate(time.Millisecond)) {
			return at, line, true
		}
	}
	return time.Time{}, "", false
}

// mustLogTime is logTime that fails the test when the line is missing.
func (l *diskLab) mustLogTime(node, msg string, from time.Time) time.Time {
	l.t.Helper()
	at, _, ok := l.logTime(node, msg, from)
	if !ok {
		l.t.Fatalf("the agent log of %s has no %q after %s", node, msg, from.Format("15:04:05.000"))
	}
	return at
}

// serviceRuns reports whether the group's service (the shell loop writing
// app.log) runs in node's mount namespace.
func (l *diskLab) serviceRuns(node string) bool {
	if !l.c.Running(node) {
		return false
	}
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", l.c.SupervisorPID(node)))
	if err != nil {
		return false
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), l.mp+"/app.log") {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && ns == want {
			return true
		}
	}
	return false
}

// writers counts the lines of app.log per node that wrote them.
func writers(log string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if node, _, ok := strings.Cut(line, " "); ok {
			out[node]++
		}
	}
	return out
}

// logDeviceIO measures and logs the device's I/O rate over d. Each
// O_DSYNC write of a lease or heartbeat slot also costs a cache flush,
// which the block layer counts as write requests too: the 4 KiB blocks
// written are the data writes.
func (l *diskLab) logDeviceIO(what string, d time.Duration) (readsPerSec, writesPerSec float64) {
	l.t.Helper()
	a := devIO(l.t, l.dev)
	from := time.Now()
	time.Sleep(d)
	b := devIO(l.t, l.dev)
	secs := time.Since(from).Seconds()
	rate := func(i int) float64 { return float64(b[i]-a[i]) / secs }
	readsPerSec, writesPerSec = rate(0), rate(4)
	l.t.Logf("shared device I/O, %s: %.1f read requests/s, %.1f write requests/s (%.1f 4KiB blocks written/s), %.1f flushes/s",
		what, readsPerSec, writesPerSec, rate(6)/8, rate(15))
	return readsPerSec, writesPerSec
}

// devIO returns the device's /sys/block/NAME/stat counters (0 reads,
// 4 writes, 6 sectors written, 15 flushes; see the kernel's iostats).
func devIO(t testing.TB, dev string) [17]uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "stat"))
	if err != nil {
		t.Fatalf("read block stats of %s: %v", dev, err)
	}
	var out [17]uint64
	f := strings.Fields(string(b))
	if len(f) < len(out) {
		t.Fatalf("block stats of %s have %d fields, want %d (kernel >= 5.5): %q", dev, len(f), len(out), b)
	}
	for i := range out {
		if _, err := fmt.Sscan(f[i], &out[i]); err != nil {
			t.Fatalf("block stats of %s: field %d %q: %v", dev, i, f[i], err)
		}
	}
	return out
}

// pathsUp maps the heartbeat paths to peer (as a status lists them) to up.
func pathsUp(nodes []agent.NodeStatus, peer string) map[string]bool {
	up := map[string]bool{}
	for _, n := range nodes {
		if n.Name == peer {
			for _, p := range n.Paths {
				up[p.Name] = p.Up
			}
		}
	}
	return up
}

// holdsLive reports whether `harules disk status --observe` output shows
// node's lease slot held and changing.
func holdsLive(out, node string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "lease" && f[2] == node && f[3] == "held" && strings.Contains(line, "yes") {
			return true
		}
	}
	return false
}
