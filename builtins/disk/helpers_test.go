package disk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Test timings: short enough for a fast suite, long enough for a busy
// 2-core machine (the loop device's backing file lives on tmpfs, so an
// O_DSYNC write costs no real disk flush).
var testTiming = Timing{Lease: 1200 * time.Millisecond, Renew: 200 * time.Millisecond, Margin: 400 * time.Millisecond,
	IOTimeout: 300 * time.Millisecond, Settle: 50 * time.Millisecond}

func init() {
	// HARULES_DISK_TEST_TIMING=default measures with the product's defaults
	// (the crash test then takes ~21 s).
	if os.Getenv("HARULES_DISK_TEST_TIMING") == "default" {
		testTiming = DefaultTiming()
	}
}

// TestMain lets the test binary play a node (HARULES_DISK_TEST_NODE, in its
// own mount namespace) or a process that keeps a mount busy
// (HARULES_DISK_TEST_HOLD).
func TestMain(m *testing.M) {
	if cfg := os.Getenv("HARULES_DISK_TEST_NODE"); cfg != "" {
		os.Exit(runTestNode(cfg))
	}
	if mp := os.Getenv("HARULES_DISK_TEST_HOLD"); mp != "" {
		os.Exit(runHolder(mp, os.Getenv("HARULES_DISK_TEST_STUBBORN") == "1"))
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPING (HARULES_SKIP_ROOT_TESTS=1): disk tests need root for loop devices, mount namespaces and mounts")
		}
		t.Fatalf("disk tests need root (loop devices, mount namespaces, mount); run as root or set HARULES_SKIP_ROOT_TESTS=1 to skip")
	}
	for _, tool := range append([]string{"losetup", "mkfs.ext4", "findmnt", "blkid"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install util-linux mount e2fsprogs (see scripts/deps.d/disk.txt): %v", tool, err)
		}
	}
}

// newLoop returns a loop device over a fresh sparse file on tmpfs,
// detached in cleanup.
func newLoop(t *testing.T, size int64) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "harules-disk-test-")
	if err != nil {
		t.Fatalf("temp dir on /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	img := filepath.Join(dir, "disk.img")
	if err := os.Truncate(img, size); err != nil {
		f, cerr := os.Create(img)
		if cerr != nil {
			t.Fatalf("create image: %v", cerr)
		}
		f.Close()
		if err := os.Truncate(img, size); err != nil {
			t.Fatalf("truncate image: %v", err)
		}
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -f --show %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		_ = exec.Command("blockdev", "--setrw", dev).Run()
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// formattedLoop is a loop device with an ext4 filesystem and a lease area.
func formattedLoop(t *testing.T) string {
	t.Helper()
	dev := newLoop(t, 64<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Format(ctx, dev, "ext4"); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return dev
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// nodeConfig is what a test node process is started with.
type nodeConfig struct {
	Node, Device, LeaseDevice, Mountpoint string
	Fsck                                  bool
	Nodes                                 []string
	Timing                                Timing
}

type nodeReply struct {
	OK    bool   `json:"ok"`
	Err   string `json:"err,omitempty"`
	Value string `json:"value,omitempty"`
	// Held reports a *HeldError's holder.
	Held string `json:"held,omitempty"`
}

// runTestNode is a node: a disk Manager in the process's own mount
// namespace, driven by one command per line on stdin.
func runTestNode(raw string) int {
	var cfg nodeConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Println(`{"ok":false,"err":"bad config"}`)
		return 2
	}
	log := testLogger(os.Stderr).With("test_node", cfg.Node)
	m, err := NewManager(ManagerConfig{Node: cfg.Node, Nodes: cfg.Nodes, Timing: cfg.Timing, Log: log})
	if err != nil {
		fmt.Printf("{\"ok\":false,\"err\":%q}\n", err.Error())
		return 2
	}
	spec := Spec{Device: cfg.Device, Mountpoint: cfg.Mountpoint, FSType: "ext4", LeaseDevice: cfg.LeaseDevice, Fsck: cfg.Fsck}
	var holders []*exec.Cmd
	defer func() {
		for _, h := range holders {
			_ = h.Process.Kill()
		}
	}()
	enc := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var rep nodeReply
		var err error
		switch f[0] {
		case "mount":
			err = m.Mount(ctx, spec)
		case "force":
			err = m.ForceMount(ctx, spec, strings.Join(f[1:], " "))
		case "unmount":
			busy := BusyPolicy{}
			if len(f) > 2 && f[1] == "kill" {
				ms, _ := strconv.Atoi(f[2])
				busy = BusyPolicy{Kill: true, Grace: time.Duration(ms) * time.Millisecond}
			}
			err = m.Unmount(ctx, spec, busy)
		case "monitor":
			err = m.Monitor(ctx, spec)
		case "holder":
			var l *Lease
			if l, err = m.Lease(ctx, spec); err == nil {
				rep.Value = l.Holder()
			}
		case "hold":
			// A process in this mount namespace with its cwd and a file on the mount.
			h := exec.Command(os.Args[0], "-test.run=^$")
			h.Env = append(os.Environ(), "HARULES_DISK_TEST_NODE=", "HARULES_DISK_TEST_HOLD="+cfg.Mountpoint,
				"HARULES_DISK_TEST_STUBBORN="+f[1])
			h.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			out, _ := h.StdoutPipe()
			if err = h.Start(); err == nil {
				holders = append(holders, h)
				go func() { _ = h.Wait() }()
				line, rerr := bufio.NewReader(out).ReadString('\n')
				if rerr != nil || strings.TrimSpace(line) != "ready" {
					err = fmt.Errorf("holder did not start: %q %v", line, rerr)
				}
				rep.Value = strconv.Itoa(h.Process.Pid)
			}
		case "stop-renewer":
			// The renewer dies while the process (and its mount) lives on.
			m.cancel()
		case "exit":
			cancel()
			return 0
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		cancel()
		rep.OK = err == nil
		if err != nil {
			rep.Err = err.Error()
			var held *HeldError
			if errors.As(err, &held) {
				rep.Held = held.Holder
			}
		}
		_ = enc.Encode(rep)
	}
	return 0
}

func runHolder(mp string, stubborn bool) int {
	if stubborn {
		signal.Ignore(syscall.SIGTERM)
	}
	if err := os.Chdir(mp); err != nil {
		fmt.Println("chdir:", err)
		return 1
	}
	f, err := os.OpenFile("held-file", os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer f.Close()
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// testNode drives a node process from the test.
type testNode struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *lockedBuffer
	exited chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode starts node in a new mount namespace (private propagation).
func startNode(t *testing.T, cfg nodeConfig) *testNode {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARULES_DISK_TEST_NODE="+string(raw))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{t: t, name: cfg.Node, cmd: cmd, in: in, out: bufio.NewReader(out), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", cfg.Node, err)
	}
	go func() { _ = cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", n.name, n.stderr.String())
		}
	})
	return n
}

// kill ends the node's process group (the node and its holders) and waits:
// its mount namespace, and so its mounts, go with it.
func (n *testNode) kill() {
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.t.Errorf("node %s did not exit after SIGKILL", n.name)
	}
}

// do sends one command and returns the reply.
func (n *testNode) do(cmd string) nodeReply {
	n.t.Helper()
	if _, err := fmt.Fprintln(n.in, cmd); err != nil {
		n.t.Fatalf("node %s: send %q: %v", n.name, cmd, err)
	}
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() { l, err := n.out.ReadString('\n'); ch <- res{l, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			n.t.Fatalf("node %s: %q: no reply: %v\n%s", n.name, cmd, r.err, n.stderr.String())
		}
		var rep nodeReply
		if err := json.Unmarshal([]byte(r.line), &rep); err != nil {
			n.t.Fatalf("node %s: bad reply %q: %v", n.name, r.line, err)
		}
		return rep
	case <-time.After(30 * time.Second):
		n.t.Fatalf("node %s: %q: no reply within 30s", n.name, cmd)
	}
	return nodeReply{}
}

func (n *testNode) must(cmd string) nodeReply {
	n.t.Helper()
	rep := n.do(cmd)
	if !rep.OK {
		n.t.Fatalf("node %s: %q failed: %s", n.name, cmd, rep.Err)
	}
	return rep
}

// mountSampler runs findmnt in every node's mount namespace every ~20 ms
// and counts samples where the device was mounted in more than one.
type mountSampler struct {
	mu      sync.Mutex
	samples int
	both    int
	seen    map[string]int
	stop    chan struct{}
	done    chan struct{}
	errs    []string
}

func startSampler(t *testing.T, device, mountpoint string, nodes ...*testNode) *mountSampler {
	s := &mountSampler{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			mounted := 0
			var where []string
			for _, n := range nodes {
				select {
				case <-n.exited:
					continue // a dead node's namespace (and mounts) is gone
				default:
				}
				out, err := exec.Command("findmnt", "--task", strconv.Itoa(n.cmd.Process.Pid), "--source", device,
					"--mountpoint", mountpoint, "-n", "-o", "TARGET").Output()
				if err == nil && strings.TrimSpace(string(out)) == mountpoint {
					mounted++
					where = append(where, n.name)
				}
			}
			s.mu.Lock()
			s.samples++
			for _, w := range where {
				s.seen[w]++
			}
			if mounted > 1 {
				s.both++
				s.errs = append(s.errs, fmt.Sprintf("%s: mounted on %v", time.Now().Format("15:04:05.000"), where))
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.halt)
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

// waitSeen waits until a sample shows the volume mounted on node (so a
// mount that lasts only a moment is sampled too).
func (s *mountSampler) waitSeen(t *testing.T, node string) {
	t.Helper()
	s.mu.Lock()
	before := s.seen[node]
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		now := s.seen[node]
		s.mu.Unlock()
		if now > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the findmnt sampler did not see the volume mounted on %s within 10s", node)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check stops sampling and fails on any double mount; every node in
// wantSeen must have been seen mounted (proof the sampler works).
func (s *mountSampler) check(t *testing.T, wantSeen ...string) {
	t.Helper()
	s.halt()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.both > 0 {
		t.Errorf("DOUBLE MOUNT: %d of %d findmnt samples saw the volume mounted in two namespaces: %v", s.both, s.samples, s.errs)
	}
	for _, n := range wantSeen {
		if s.seen[n] == 0 {
			t.Errorf("the sampler never saw the volume mounted on %s (%d samples): it proves nothing", n, s.samples)
		}
	}
	t.Logf("findmnt sampler: %d samples, mounted per node %v, both at once: %d", s.samples, s.seen, s.both)
}

// twoNodes formats a loop device and starts node1 and node2 on it.
func twoNodes(t *testing.T) (dev, mp string, n1, n2 *testNode) {
	t.Helper()
	dev = formattedLoop(t)
	mp, n1, n2 = startPair(t, nodeConfig{Device: dev})
	return dev, mp, n1, n2
}

// startPair starts node1 and node2 with base (device and options) and a
// fresh mountpoint.
func startPair(t *testing.T, base nodeConfig) (mp string, n1, n2 *testNode) {
	t.Helper()
	mp = filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := base
	cfg.Mountpoint, cfg.Nodes, cfg.Timing = mp, []string{"node1", "node2"}, testTiming
	cfg.Node = "node1"
	n1 = startNode(t, cfg)
	cfg.Node = "node2"
	n2 = startNode(t, cfg)
	return mp, n1, n2
}
