package diskhb

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/builtins/disk"
)

var nodes = []string{"node1", "node2"}

// TestMain lets the test binary be the second writer
// (HARULES_DISKHB_TEST_WRITER): a process in its own network and mount
// namespaces, so it has no network at all.
func TestMain(m *testing.M) {
	if raw := os.Getenv("HARULES_DISKHB_TEST_WRITER"); raw != "" {
		os.Exit(runWriter(raw))
	}
	os.Exit(m.Run())
}

type writerConfig struct {
	Device   string
	Node     string
	Interval time.Duration
}

func runWriter(raw string) int {
	var cfg writerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Println("bad config:", err)
		return 2
	}
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println("interfaces:", err)
		return 2
	}
	var up []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 {
			up = append(up, i.Name)
		}
	}
	a, err := disk.OpenArea(context.Background(), cfg.Device)
	if err != nil {
		fmt.Println("open:", err)
		return 2
	}
	h, err := New(Config{Area: a, Node: cfg.Node, Nodes: nodes, Interval: cfg.Interval, Misses: 3,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Println("new:", err)
		return 2
	}
	fmt.Printf("ready interfaces-up=%d %v\n", len(up), up)
	h.Run(context.Background())
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPING (HARULES_SKIP_ROOT_TESTS=1): disk heartbeat tests need root for loop devices and namespaces")
		}
		t.Fatal("disk heartbeat tests need root (loop devices, namespaces); run as root or set HARULES_SKIP_ROOT_TESTS=1")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install util-linux e2fsprogs (scripts/deps.d/disk.txt)", tool)
		}
	}
}

// sharedDevice is a loop device (backing file on tmpfs) with a lease area.
func sharedDevice(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "harules-diskhb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	img := filepath.Join(dir, "hb.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, disk.AreaSize); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	// A dedicated 1 MiB heartbeat device: the area is the whole device.
	if err := disk.FormatArea(context.Background(), dev, false); err != nil {
		t.Fatal(err)
	}
	return dev
}

type beats struct {
	mu sync.Mutex
	at []time.Time
}

func (b *beats) add(peer string, at time.Time) {
	if peer != "node2" {
		return
	}
	b.mu.Lock()
	b.at = append(b.at, at)
	b.mu.Unlock()
}

func (b *beats) since(t time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, a := range b.at {
		if !a.Before(t) {
			n++
		}
	}
	return n
}

func peerUp(h *Heartbeat) bool {
	for _, p := range h.Peers() {
		if p.Node == "node2" {
			return p.Up
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

func TestFirstReadIsNotABeat(t *testing.T) {
	requireRoot(t)
	dev := sharedDevice(t)
	ctx := context.Background()
	a, err := disk.OpenArea(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// node2's slot holds a value from long ago.
	old := disk.Slot{Index: 2, Node: "node2", Incarnation: 1, Seq: 99, WallTime: time.Unix(1, 0)}
	if err := a.WriteSlot(ctx, disk.RegionHeartbeat, old); err != nil {
		t.Fatal(err)
	}
	var got beats
	h, err := New(Config{Area: a, Node: "node1", Nodes: nodes, Interval: time.Second, Misses: 3, OnBeat: got.add})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := got.since(time.Time{}); n != 0 || peerUp(h) {
		t.Fatalf("a stale slot counted as %d heartbeats (up=%v)", n, peerUp(h))
	}
	old.Seq++
	if err := a.WriteSlot(ctx, disk.RegionHeartbeat, old); err != nil {
		t.Fatal(err)
	}
	if err := h.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if n := got.since(time.Time{}); n != 1 || !peerUp(h) {
		t.Fatalf("an advance gave %d heartbeats (up=%v), want 1", n, peerUp(h))
	}
	// A slot that names a node other than the policy's is ignored.
	if err := a.WriteSlot(ctx, disk.RegionHeartbeat, disk.Slot{Index: 2, Node: "intruder", Seq: 5}); err != nil {
		t.Fatal(err)
	}
	if err := h.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if n := got.since(time.Time{}); n != 1 {
		t.Fatalf("a foreign slot counted as a heartbeat (%d)", n)
	}
	if _, err := New(Config{Area: a, Node: "node9", Nodes: nodes, Interval: time.Second, Misses: 3}); err == nil {
		t.Fatal("a node outside the node list was accepted")
	}
}

func TestTwoWritersWithoutNetwork(t *testing.T) {
	requireRoot(t)
	dev := sharedDevice(t)
	const interval, misses = 50 * time.Millisecond, 3

	// node2 writes from a process with its own (empty) network namespace.
	raw, _ := json.Marshal(writerConfig{Device: dev, Node: "node2", Interval: interval})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARULES_DISKHB_TEST_WRITER="+string(raw))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-exited
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready interfaces-up=0") {
		t.Fatalf("writer: %q %v (want no interface up in its network namespace)", line, err)
	}

	a, err := disk.OpenArea(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var got beats
	h, err := New(Config{Area: a, Node: "node1", Nodes: nodes, Interval: interval, Misses: misses, OnBeat: got.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runStart := time.Now()
	go h.Run(ctx)
	waitFor(t, "node2's heartbeats", func() bool { return got.since(time.Time{}) >= 10 && peerUp(h) })

	stopped := time.Now()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	down := waitFor(t, "node2 to be detected down", func() bool { return !peerUp(h) })
	detect := down.Sub(stopped)
	if min := (misses - 1) * interval; detect < min {
		t.Fatalf("node2 declared down %s after it stopped, before %d misses could have passed", detect, misses-1)
	}
	if n := got.since(stopped); n > 1 {
		t.Fatalf("%d heartbeats from a stopped writer (at most the one written before the stop may arrive)", n)
	}
	t.Logf("stopped writer detected after %s (misses x interval = %s)", detect.Round(time.Millisecond), misses*interval)

	resumed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := waitFor(t, "node2 to come back", func() bool { return peerUp(h) })
	t.Logf("resumed writer seen again after %s", back.Sub(resumed).Round(time.Millisecond))

	elapsed := time.Since(runStart)
	iops := h.IOPerSecond()
	st := a.Stats()
	if max := 2 * (elapsed.Seconds()/interval.Seconds() + 2); float64(st.Reads+st.Writes) > max {
		t.Fatalf("%d I/Os in %s: more than one read and one write per interval", st.Reads+st.Writes, elapsed)
	}
	t.Logf("disk heartbeat I/O: %.1f ops/s at interval %s (%d reads of %d KiB, %d writes of 4 KiB in %s)",
		iops, interval, st.Reads, 4*len(nodes), st.Writes, elapsed.Round(time.Millisecond))
}

// BenchmarkBeat is the cost of one heartbeat (one 4 KiB O_DIRECT|O_DSYNC
// write and one read of the node slots).
func BenchmarkBeat(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a loop device")
	}
	dir := b.TempDir()
	img := filepath.Join(dir, "hb.img")
	if err := os.WriteFile(img, make([]byte, disk.AreaSize), 0o600); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		b.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	ctx := context.Background()
	if err := disk.FormatArea(ctx, dev, false); err != nil {
		b.Fatal(err)
	}
	a, err := disk.OpenArea(ctx, dev)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	h, err := New(Config{Area: a, Node: "node1", Nodes: nodes, Interval: time.Second, Misses: 3})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := h.Beat(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
