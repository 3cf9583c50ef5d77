package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
)

// slowStarts is an executor whose starts of the resources in slow take that
// long; it records every action with the node it ran on.
type slowStarts struct {
	node string
	slow map[string]time.Duration
	mu   *sync.Mutex
	log  *[]string
	// began is closed when the first slow start begins.
	began chan struct{}
	once  *sync.Once
}

func (e slowStarts) Execute(ctx context.Context, a engine.Action) error {
	if d := e.slow[a.Resource]; d > 0 && a.Op == engine.OpStart {
		e.once.Do(func() { close(e.began) })
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	*e.log = append(*e.log, e.node+": "+a.Op+" "+a.Group+"/"+a.Resource)
	e.mu.Unlock()
	return nil
}

func (slowStarts) Backup(context.Context, engine.BackupRun) error { return nil }

// recordCatcher is a slog handler that keeps the messages logged.
type recordCatcher struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (h recordCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h recordCatcher) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h recordCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordCatcher) WithGroup(string) slog.Handler      { return h }

// TestSlowStartDoesNotDeclareLivePeerDead is the regression test of a start
// that blocked the decision loop: node a's start of its group takes 2 s
// (20 times the detection time of 300 ms) while operator requests queue up
// on its control socket. Before the loop handed actions to workers, the
// first request handled after the start decided on a view that had not
// taken in the heartbeats queued meanwhile: a logged "b is dead" and took
// b's group over beside it. Now decisions go on during the start, with
// every heartbeat taken in first.
func TestSlowStartDoesNotDeclareLivePeerDead(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.star")
	// Loopback only: no traffic leaves the machine.
	src := `load("@stdlib//placement.star", "active_standby")
cluster(name = "slow", secret_file = "` + secret + `", reevaluate = "1s", startup_grace = "1s")
node("a", address = "127.0.0.1")
node("b", address = "127.0.0.2")
heartbeat("lan", interval = "100ms", misses = 3, port = 17962)
group("ga", resources = [service("sa", command = ["/bin/true"])], placement = active_standby(["a", "b"]))
group("gb", resources = [service("sb", command = ["/bin/true"])], placement = active_standby(["b", "a"]))
group("gc", resources = [service("sc", command = ["/bin/true"])], placement = active_standby(["a", "b"]))
`
	if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var actions, msgsA []string
	began := make(chan struct{})
	start := func(node string, slow map[string]time.Duration, logger *slog.Logger) *Client {
		sock := filepath.Join(dir, node, "ctl.sock")
		ag, err := New(Config{PolicyPath: pol, Node: node, StateDir: filepath.Join(dir, node), ControlSocket: sock,
			Logger: logger, Executor: slowStarts{node: node, slow: slow, mu: &mu, log: &actions, began: began, once: &sync.Once{}}, HandoverTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ag.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("agent %s did not stop", node)
			}
		})
		return NewClient(sock)
	}
	clB := start("b", nil, quietLogger())
	clA := start("a", map[string]time.Duration{"service:sc": 2 * time.Second}, slog.New(recordCatcher{mu: &mu, msgs: &msgsA}))
	waitStatus := func(cl *Client, what string, ok func(*Status) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := cl.Status(t.Context())
			if err == nil && ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never happened (last status %+v, %v)", what, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	holders := func(st *Status, g string) []string {
		for _, gs := range st.Groups {
			if gs.Name == g {
				return gs.Holders
			}
		}
		return nil
	}
	waitStatus(clB, "b holds gb", func(st *Status) bool { return slices.Equal(holders(st, "gb"), []string{"b"}) })
	// a's start of gc takes 2 s; meanwhile operator requests queue up.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-began
			time.Sleep(time.Duration(500+100*i) * time.Millisecond)
			_ = clA.Do(t.Context(), "move", "ga", "a", false)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		started := slices.Contains(actions, "a: start gc/service:sc")
		mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's slow start of gc never finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitStatus(clA, "a holds ga and gc", func(st *Status) bool {
		return slices.Equal(holders(st, "ga"), []string{"a"}) && slices.Equal(holders(st, "gc"), []string{"a"})
	})
	wg.Wait()
	// One more second of normal running: nothing may have moved.
	time.Sleep(time.Second)
	waitStatus(clA, "b still holds gb", func(st *Status) bool { return slices.Equal(holders(st, "gb"), []string{"b"}) })
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgsA {
		if strings.Contains(m, "b is dead") {
			t.Errorf("a declared its live peer dead during its own slow start: %q", m)
		}
	}
	for _, act := range actions {
		if strings.HasPrefix(act, "a: start gb/") {
			t.Errorf("a took over b's group beside it: %s (actions %s)", act, fmt.Sprint(actions))
		}
	}
}

// TestFullInboxDropsTheOldestHeartbeat: when the loop's inbox is full, a
// new heartbeat pushes out the oldest queued one, never itself: decisions
// must not use a view older than the newest heartbeat that arrived.
func TestFullInboxDropsTheOldestHeartbeat(t *testing.T) {
	a := &Agent{inbox: make(chan heartbeat.Received, 4)}
	t0 := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		a.deliver(heartbeat.Received{At: t0.Add(time.Duration(i) * time.Second)})
	}
	var got []int
	for len(a.inbox) > 0 {
		got = append(got, int((<-a.inbox).At.Sub(t0)/time.Second))
	}
	if !slices.Equal(got, []int{2, 3, 4, 5}) {
		t.Errorf("queued heartbeats %v after 6 into a queue of 4, want the newest four [2 3 4 5]", got)
	}
}
