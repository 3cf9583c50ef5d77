package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/policy"
)

// arrivals records when a peer received each heartbeat.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (r *arrivals) add(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, t)
}

// in returns the arrivals in [from, to).
func (r *arrivals) in(from, to time.Time) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, t := range r.at {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t)
		}
	}
	return out
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestWedgedLoopSilencesHeartbeats blocks the real agent's decision loop
// (a SIGHUP reload reading a policy file that hangs: a FIFO standing in
// for a hung mount) and watches its heartbeats from a peer's socket: they
// must stop within the gate (half the detection time), stay away long
// enough for the peer to declare the node dead, come back once the loop
// is unblocked, and a loop stuck for the abort time must make the agent
// give up (exit, so the supervisor releases). Before the liveness gate the
// sender kept beating for ever while the loop was stuck.
func TestWedgedLoopSilencesHeartbeats(t *testing.T) {
	dir := t.TempDir()
	port := freeUDPPort(t)
	const interval = 50 * time.Millisecond
	src := fmt.Sprintf(`cluster(name = "wedge", secret_file = "secret", reevaluate = "1s")
node("a", address = "127.0.0.1")
node("b", address = "127.0.0.2")
heartbeat("lan", interval = "50ms", misses = 3, port = %d)
`, port)
	pol := filepath.Join(dir, "policy.star")
	secret := []byte("0123456789abcdef-wedge-test-secret")
	if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}

	// Peer b: only a socket that records a's heartbeats.
	codec, err := heartbeat.NewCodec("wedge", secret)
	if err != nil {
		t.Fatal(err)
	}
	heard := &arrivals{}
	ep, err := heartbeat.Listen(t.Context(), heartbeat.EndpointConfig{Path: "lan", Listen: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(port)),
		Peers: map[string]netip.AddrPort{"a": netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}, Codec: codec,
		Logger: quietLogger(), Deliver: func(r heartbeat.Received) { heard.add(r.At) }})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()

	wedged := make(chan time.Duration, 4)
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: filepath.Join(dir, "state"), ControlSocket: filepath.Join(dir, "ctl.sock"),
		Logger: quietLogger(), Executor: noopExecutor{}, HandoverTimeout: time.Second,
		OnWedged: func(stuck time.Duration) { wedged <- stuck }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	// A cleanup, not a defer: the wedges' cleanups (registered later, run
	// first) unblock the loop even when the test fails.
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	})
	p := a.policy
	gate, abort := livenessTimes(p)
	detection := p.DetectionTime()
	waitUntil(t, 10*time.Second, "a's first heartbeats", func() bool { return len(heard.in(time.Time{}, time.Now())) >= 3 })

	// wedge blocks the loop in a reload until the returned function writes
	// the policy into the FIFO.
	wedge := func() (t0 time.Time, unblock func()) {
		if err := os.Remove(pol); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(pol, 0o600); err != nil {
			t.Fatal(err)
		}
		reloaded := make(chan error, 1)
		go func() { reloaded <- a.Reload(context.Background()) }()
		t0 = time.Now()
		var once sync.Once
		unblock = func() {
			once.Do(func() {
				f, err := os.OpenFile(pol, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, werr := f.WriteString(src)
				if err := errors.Join(werr, f.Close()); err != nil {
					t.Fatal(err)
				}
				if err := <-reloaded; err != nil {
					t.Fatalf("reload after unblocking: %v", err)
				}
				// Back to a regular file for the next wedge and for Run's end.
				if err := os.Remove(pol); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			})
		}
		t.Cleanup(unblock)
		return t0, unblock
	}

	// A loop stuck for less than the abort time: heartbeats stop within the
	// gate (plus one interval for a round already due and a margin) and
	// stay silent longer than the detection time, so the peer declares the
	// node dead; once the loop runs again they resume.
	t0, unblock := wedge()
	silentFrom := t0.Add(gate + interval + 100*time.Millisecond)
	silentTo := silentFrom.Add(detection + 100*time.Millisecond)
	if silentTo.Sub(t0) >= abort {
		t.Fatalf("test timing: silence window ends %s after the wedge, past the abort time %s", silentTo.Sub(t0), abort)
	}
	time.Sleep(time.Until(silentTo))
	if got := heard.in(silentFrom, silentTo); len(got) > 0 {
		t.Fatalf("%d heartbeats arrived %s..%s after the loop got stuck (gate %s, detection %s): peers keep trusting a node that no longer acts",
			len(got), silentFrom.Sub(t0), silentTo.Sub(t0), gate, detection)
	}
	unblocked := time.Now()
	unblock()
	waitUntil(t, 10*time.Second, "heartbeats after the loop was unblocked", func() bool { return len(heard.in(unblocked, time.Now())) > 0 })
	select {
	case stuck := <-wedged:
		t.Fatalf("gave up after %s although the loop was stuck for less than the abort time %s", stuck, abort)
	default:
	}

	// A loop stuck past the abort time: the agent gives up.
	t0, unblock = wedge()
	select {
	case stuck := <-wedged:
		if took := time.Since(t0); stuck < abort || took < abort {
			t.Errorf("gave up after %s (stuck %s), before the abort time %s", took, stuck, abort)
		}
	case <-time.After(abort + 10*time.Second):
		t.Fatalf("a loop stuck for %s did not make the agent give up (abort time %s)", time.Since(t0), abort)
	}
	unblock()
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type noopExecutor struct{}

func (noopExecutor) Execute(context.Context, engine.Action) error            { return nil }
func (noopExecutor) Backup(context.Context, engine.BackupRun) error          { return nil }
func (noopExecutor) Monitor(context.Context, string, *policy.Resource) error { return nil }

func TestLivenessTimes(t *testing.T) {
	p := &policy.Policy{Cluster: policy.Cluster{Reevaluate: time.Second}, Paths: []*policy.HeartbeatPath{{Name: "lan", Interval: time.Second, Misses: 3}}}
	if gate, abort := livenessTimes(p); gate != 2*time.Second || abort != 4*time.Second {
		// D/2 = 1.5s is below two ticks (2s): idle passes come once a tick.
		t.Errorf("1s x 3: gate %s abort %s, want 2s and 4s", gate, abort)
	}
	p.Paths[0].Interval, p.Paths[0].Misses = 100*time.Millisecond, 10
	if gate, abort := livenessTimes(p); gate != 500*time.Millisecond || abort != time.Second {
		t.Errorf("100ms x 10: gate %s abort %s, want 500ms and 1s", gate, abort)
	}
}

// TestLivenessMonitorPetsOnlyWhileTheLoopProgresses runs the monitor with a
// notify socket and a regular file standing in for /dev/watchdog (never
// the real device in a test): READY=1 after the first pass, WATCHDOG=1
// and device writes while the loop passes, none once it is stuck, the
// wedge reported after the abort time, and a magic close at the end.
func TestLivenessMonitorPetsOnlyWhileTheLoopProgresses(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	notes := make(chan string, 1024)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			notes <- string(buf[:n])
		}
	}()
	dogPath := filepath.Join(dir, "watchdog")
	if err := os.WriteFile(dogPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &policy.Policy{Cluster: policy.Cluster{Reevaluate: time.Second}, Paths: []*policy.HeartbeatPath{{Name: "lan", Interval: 50 * time.Millisecond, Misses: 3}}}
	wedged := make(chan time.Duration, 4)
	l := newLiveness(quietLogger(), time.Now, p, func(d time.Duration) { wedged <- d })
	l.sd = newSDNotifier(SystemdEnv{NotifySocket: sock, Watchdog: 400 * time.Millisecond})
	if l.dog, err = openWatchdog(dogPath, 2*time.Second, quietLogger()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	monitorDone := make(chan struct{})
	go func() { defer close(monitorDone); l.run(ctx) }()

	// Progress for 600 ms: a pass every 20 ms.
	var lastPass time.Time
	for range 30 {
		lastPass = time.Now()
		l.passed(lastPass)
		time.Sleep(20 * time.Millisecond)
	}
	if got := <-notes; got != "READY=1\nSTATUS=deciding" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	pets := 0
	for len(notes) > 0 {
		if n := <-notes; n != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", n)
		}
		pets++
	}
	if pets < 3 { // every 100 ms (a quarter of 400 ms) over 600 ms
		t.Errorf("%d WATCHDOG=1 in 600 ms of progress, want about 6", pets)
	}
	if !l.alive() {
		t.Error("gate closed while the loop passes")
	}

	// Stuck: the gate closes, the wedge is reported after the abort time
	// and nothing is petted from then on.
	stuckAt := lastPass
	_, abort := livenessTimes(p)
	time.Sleep(200 * time.Millisecond)
	if l.alive() {
		t.Error("gate open 200 ms into a stuck loop (gate 100 ms)")
	}
	select {
	case d := <-wedged:
		if d < abort || time.Since(stuckAt) < abort {
			t.Errorf("wedge reported after %s (stuck %s), before the abort time %s", time.Since(stuckAt), d, abort)
		}
	case <-time.After(abort + 5*time.Second):
		t.Fatal("a stuck loop was never reported")
	}
	for len(notes) > 0 {
		<-notes
	}
	info, err := os.Stat(dogPath)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if len(notes) > 0 {
		t.Errorf("systemd's watchdog petted while the loop is stuck: %q", <-notes)
	}
	if again, _ := os.Stat(dogPath); again.Size() != info.Size() {
		t.Errorf("the watchdog device was written while the loop is stuck (%d -> %d bytes)", info.Size(), again.Size())
	}
	if info.Size() < 3 {
		t.Errorf("the watchdog device got %d writes during progress, want several", info.Size())
	}

	// A pass ends the episode; a clean stop disarms the device.
	l.passed(time.Now())
	if !l.alive() {
		t.Error("gate still closed after a pass")
	}
	cancel()
	<-monitorDone
	if err := l.dog.disarm(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dogPath)
	if err != nil || len(b) == 0 || b[len(b)-1] != 'V' {
		t.Errorf("device contents end %q, want the magic close 'V'", b[max(len(b)-3, 0):])
	}
}

func TestTakeSystemdEnv(t *testing.T) {
	t.Setenv(envNotifySocket, "@/org/freedesktop/systemd1/notify")
	t.Setenv(envWatchdogUSec, "30000000")
	t.Setenv(envWatchdogPID, fmt.Sprint(os.Getpid()))
	env := TakeSystemdEnv()
	if env.NotifySocket != "@/org/freedesktop/systemd1/notify" || env.Watchdog != 30*time.Second {
		t.Errorf("got %+v", env)
	}
	for _, k := range []string{envNotifySocket, envWatchdogUSec, envWatchdogPID} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s left in the environment: services would inherit it", k)
		}
	}
	// Handed to the agent child: no PID, so the child takes it.
	for _, kv := range env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if got := TakeSystemdEnv(); got != env {
		t.Errorf("child got %+v, want %+v", got, env)
	}
	// Another process's watchdog is not ours.
	t.Setenv(envWatchdogUSec, "30000000")
	t.Setenv(envWatchdogPID, "1")
	if got := TakeSystemdEnv(); got.Watchdog != 0 {
		t.Errorf("watchdog of pid 1 taken: %+v", got)
	}
}

// shiftClock is the real clock plus a settable offset: a jump forward is
// what every goroutine of a process sees after it was stopped (SIGSTOP, a
// VM pause) for that long.
type shiftClock struct{ offset atomic.Int64 }

func (c *shiftClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// TestLivenessIgnoresAStallOfTheWholeProcess: after the whole process was
// frozen, the monitor may wake before the loop had a chance to pass; the
// freeze is not the loop's fault and must not make the agent exit (the
// pause guard deals with what peers saw meanwhile).
func TestLivenessIgnoresAStallOfTheWholeProcess(t *testing.T) {
	clock := &shiftClock{}
	p := &policy.Policy{Cluster: policy.Cluster{Reevaluate: time.Second}, Paths: []*policy.HeartbeatPath{{Name: "lan", Interval: 50 * time.Millisecond, Misses: 3}}}
	wedged := make(chan time.Duration, 4)
	l := newLiveness(quietLogger(), clock.now, p, func(d time.Duration) { wedged <- d })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go l.run(ctx)
	var passing atomic.Bool
	passing.Store(true)
	go func() {
		for ctx.Err() == nil {
			if passing.Load() {
				l.passed(clock.now())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	// Frozen for 10 s: the loop passes again only after the monitor has
	// woken up twice (a period is a quarter of the 1 s abort time).
	passing.Store(false)
	clock.offset.Store(int64(10 * time.Second))
	time.Sleep(600 * time.Millisecond)
	passing.Store(true)
	select {
	case d := <-wedged:
		t.Fatalf("the agent gave up (stuck %s) after a freeze of the whole process", d)
	case <-time.After(time.Second):
	}
}

// After the loop returned the handover is heard for its grace, and a
// shutdown stuck beyond it counts as stuck.
func TestLivenessShutdownGrace(t *testing.T) {
	clock := &shiftClock{}
	p := &policy.Policy{Cluster: policy.Cluster{Reevaluate: time.Second}, Paths: []*policy.HeartbeatPath{{Name: "lan", Interval: 50 * time.Millisecond, Misses: 3}}}
	l := newLiveness(quietLogger(), clock.now, p, nil)
	clock.offset.Store(int64(time.Minute)) // the loop returned a minute ago
	l.shuttingDown(30 * time.Second)
	if !l.alive() || l.stuckFor(clock.now(), time.Time{}) != 0 {
		t.Fatal("a shutdown within its grace is judged stuck")
	}
	clock.offset.Add(int64(40 * time.Second)) // 10 s past the grace
	if l.alive() {
		t.Error("heartbeats still sent 10 s after the shutdown's grace ended")
	}
	if got := l.stuckFor(clock.now(), time.Time{}); got < 9*time.Second || got > 11*time.Second {
		t.Errorf("stuck for %s 10 s after the grace, want about 10 s", got)
	}
}
