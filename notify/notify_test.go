package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

const basePolicy = `
load("@stdlib//placement.star", "active_standby")
cluster(name = "unit", secret_file = "secret")
node("node1", address = "198.51.100.1")
node("node2", address = "198.51.100.2")
heartbeat("lan")
group("web",
    resources = [
        vip("198.51.100.10/24", interface = "eth0"),
        service("app", command = ["sleep", "1000"]),
    ],
    placement = active_standby(["node1", "node2"]),
)
`

// loadPolicy compiles basePolicy plus extra with the real loader.
func loadPolicy(t testing.TB, extra string) *policy.Policy {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(path, []byte(basePolicy+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		t.Fatalf("load policy: %v", err)
	}
	return p
}

// receiver is a webhook endpoint that records the events it accepts.
type receiver struct {
	mu       sync.Mutex
	events   []Event
	attempts int
	// answer decides the response to attempt n (from 1); nil accepts.
	answer func(n int, w http.ResponseWriter, r *http.Request) bool
	got    chan struct{}
	srv    *httptest.Server
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request) bool) *receiver {
	rc := &receiver{answer: answer, got: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.attempts++
		n := rc.attempts
		rc.mu.Unlock()
		if rc.answer != nil && !rc.answer(n, w, r) {
			return
		}
		var e Event
		if err := json.Unmarshal(body, &e); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.events = append(rc.events, e)
		rc.mu.Unlock()
		rc.got <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) snapshot() []Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Event(nil), rc.events...)
}

func (rc *receiver) wait(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		rc.mu.Lock()
		if len(rc.events) >= n {
			out := append([]Event(nil), rc.events...)
			rc.mu.Unlock()
			return out
		}
		rc.mu.Unlock()
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver got %d events, want %d: %+v", len(rc.events), n, rc.events)
		}
	}
}

func names(es []Event) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Event)
	}
	return strings.Join(s, ",")
}

func startDispatcher(t *testing.T, p *policy.Policy) *Dispatcher {
	t.Helper()
	d := New(Config{Policy: p, Node: "node2", Incarnation: 7, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

// crashRecords are the records node2 keeps when node1 crashes: as
// engine.Node writes them ("op resource: detail", takeover reasons).
func crashRecords(p *policy.Policy, at time.Time) []engine.Record {
	g := p.Group("web")
	reason := "web placed on node2: node1 is dead; takeover from node1: declared dead over all heartbeat paths and no guard rule objected"
	return []engine.Record{
		{At: at, Node: "node2", Kind: engine.RecPath, Text: "path lan to node1 down", Reason: "15 heartbeats missed"},
		{At: at, Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead", Reason: "no heartbeat on any path"},
		{At: at, Node: "node2", Kind: engine.RecPolicy, Group: "web", Text: "web should run on node2"},
		{At: at, Node: "node2", Kind: engine.RecAction, Group: "web", Text: "start " + g.Resources[0].ID() + ": add address", Reason: reason},
		{At: at, Node: "node2", Kind: engine.RecAction, Group: "web", Text: "start " + g.Resources[1].ID() + ": run sleep", Reason: reason},
		{At: at, Node: "node2", Kind: engine.RecAlert, Text: "path-down [warning] path lan to node1 is down"},
	}
}

func TestWebhookGetsFailoverEventsInOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	p := loadPolicy(t, fmt.Sprintf("notify(%q, webhook = %q, events = [\"path\", \"peer-dead\", \"failover\"], headers = {\"Authorization\": \"Bearer t0k\"})\n", "ops", rc.srv.URL))
	var auth string
	rc.answer = func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		auth = r.Header.Get("Authorization")
		return true
	}
	d := startDispatcher(t, p)
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	for _, r := range crashRecords(p, at) {
		d.Record(r)
	}
	got := rc.wait(t, 4)
	if want := "path-down,peer-dead,failover-started,failover-finished"; names(got) != want {
		t.Fatalf("events %s, want %s", names(got), want)
	}
	if auth != "Bearer t0k" {
		t.Errorf("Authorization header %q, want the declared one", auth)
	}
	for i, e := range got {
		if e.Cluster != "unit" || e.Node != "node2" || e.Incarnation != 7 || !e.At.Equal(at) {
			t.Errorf("event %d: %+v: want cluster unit, node node2, incarnation 7, at %s", i, e, at)
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Errorf("seq not increasing: %d after %d", e.Seq, got[i-1].Seq)
		}
	}
	if got[0].Peer != "node1" || got[1].Peer != "node1" || got[2].Group != "web" || got[3].Group != "web" || got[2].Peer != "node1" || got[3].Peer != "node1" {
		t.Errorf("peer/group fields: %+v", got)
	}
	if got[2].Text != "node2 takes over web" || got[3].Text != "web runs on node2 after the takeover" || !strings.Contains(got[3].Reason, "takeover from node1") {
		t.Errorf("failover texts %q, %q (reason %q)", got[2].Text, got[3].Text, got[3].Reason)
	}
	// The alert is not among the notifier's events: seq 5 (the alert) was
	// produced but filtered, so no more than 4 arrive.
	time.Sleep(50 * time.Millisecond)
	if s := d.Stats(); len(s) != 1 || s[0].Sent != 4 || s[0].Failed != 0 || s[0].Dropped != 0 {
		t.Errorf("stats %+v, want 4 sent", s)
	}
}

func TestWebhookRetriesAfterServerError(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 1 {
			http.Error(w, "overloaded", http.StatusInternalServerError)
			return false
		}
		return true
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, retries = 2, backoff = \"10ms\")\n", rc.srv.URL))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is alive"})
	got := rc.wait(t, 2)
	if names(got) != "peer-dead,peer-alive" {
		t.Fatalf("events %s, want peer-dead then peer-alive (the first retried after the 500)", names(got))
	}
	rc.mu.Lock()
	attempts := rc.attempts
	rc.mu.Unlock()
	if attempts != 3 {
		t.Errorf("%d POSTs, want 3 (500, retry, next event)", attempts)
	}
	waitStats(t, d, func(s Stats) bool { return s.Sent == 2 && s.Failed == 0 })
}

func TestWebhookPermanentErrorIsNotRetried(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 1 {
			http.Error(w, "no such hook", http.StatusNotFound)
			return false
		}
		return true
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, retries = 5, backoff = \"10ms\")\n", rc.srv.URL))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is alive"})
	got := rc.wait(t, 1)
	if names(got) != "peer-alive" {
		t.Fatalf("events %s, want only peer-alive (peer-dead got a 404)", names(got))
	}
	waitStats(t, d, func(s Stats) bool { return s.Sent == 1 && s.Failed == 1 })
}

func TestWebhookTimeoutThenRetry(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			select { // hang until the sender gives up
			case <-r.Context().Done():
			case <-release:
			}
			return false
		}
		return true
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, timeout = \"200ms\", retries = 1, backoff = \"10ms\")\n", rc.srv.URL))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	got := rc.wait(t, 1)
	if names(got) != "peer-dead" {
		t.Fatalf("events %s, want peer-dead delivered by the retry", names(got))
	}
	waitStats(t, d, func(s Stats) bool { return s.Sent == 1 && s.Failed == 0 })
}

func TestWebhookTimeoutWithoutRetryFails(t *testing.T) {
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return false
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, timeout = \"100ms\", retries = 0)\n", rc.srv.URL))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	waitStats(t, d, func(s Stats) bool { return s.Failed == 1 && s.Sent == 0 })
}

// A receiver that hangs must not block Record: the queue keeps the newest
// events and counts the dropped ones.
func TestFullQueueDropsOldest(t *testing.T) {
	release := make(chan struct{})
	first := make(chan struct{})
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 1 {
			close(first)
			<-release
		}
		return true
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, queue = 2, timeout = \"30s\")\n", rc.srv.URL))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPath, Text: "path lan to node1 down"})
	<-first // event 1 is in flight, the worker is stuck on it
	for i := 0; i < 1000; i++ {
		d.Record(engine.Record{Node: "node2", Kind: engine.RecPath, Text: fmt.Sprintf("path lan to node%d up", i+2)})
	}
	s := d.Stats()[0]
	if s.Dropped != 998 || s.Queued != 2 {
		t.Fatalf("stats %+v, want 998 dropped and 2 queued", s)
	}
	close(release)
	got := rc.wait(t, 3)
	if got[0].Seq != 1 || got[1].Seq != 1000 || got[2].Seq != 1001 || got[2].Peer != "node1001" {
		t.Fatalf("delivered seqs %d,%d,%d (peer %s); want 1, 1000, 1001 (the newest kept)", got[0].Seq, got[1].Seq, got[2].Seq, got[2].Peer)
	}
	waitStats(t, d, func(s Stats) bool { return s.Sent == 3 && s.Dropped == 998 })
}

func waitStats(t *testing.T, d *Dispatcher, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := d.Stats()
		if len(s) == 1 && ok(s[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never as expected: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommandHookGetsJSONAndEnv(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat > \"$1.json.tmp\"\nenv | grep '^HARULES_EVENT_' | sort > \"$1.env\"\nmv \"$1.json.tmp\" \"$1.json\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := loadPolicy(t, fmt.Sprintf("notify(\"hook\", command = [%q, %q], events = [\"backup\"])\n", script, out))
	d := startDispatcher(t, p)
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	d.Record(engine.Record{At: at, Node: "node2", Kind: engine.RecBackup, Text: "backup nightly refused: not enough free space for the headroom", Error: "insufficient headroom"})
	deadline := time.Now().Add(20 * time.Second)
	var body []byte
	for {
		var err error
		if body, err = os.ReadFile(out + ".json"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook never wrote %s.json", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("hook stdin is not an event: %v: %s", err, body)
	}
	if e.Event != "backup-refused" || e.Error != "insufficient headroom" || e.Seq != 1 || e.Cluster != "unit" {
		t.Errorf("stdin event %+v", e)
	}
	env, _ := os.ReadFile(out + ".env")
	for _, want := range []string{"HARULES_EVENT_NAME=backup-refused", "HARULES_EVENT_NODE=node2", "HARULES_EVENT_SEQ=1",
		"HARULES_EVENT_AT=2026-11-26T08:00:00Z", "HARULES_EVENT_ERROR=insufficient headroom", "HARULES_EVENT_CLUSTER=unit"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("hook environment lacks %s:\n%s", want, env)
		}
	}
	waitStats(t, d, func(s Stats) bool { return s.Sent == 1 })
}

// A hook that hangs is killed with its whole process group at the timeout,
// and a failing hook is retried.
func TestCommandHookTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The child sleeps in the background (same process group) and the hook
	// waits for it: killing only the hook would leave the sleep behind.
	script := fmt.Sprintf("sleep 300 & echo $! > %s.tmp; mv %s.tmp %s; wait", pidFile, pidFile, pidFile)
	p := loadPolicy(t, fmt.Sprintf("notify(\"hook\", command = %q, timeout = \"300ms\", retries = 0)\n", script))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	waitStats(t, d, func(s Stats) bool { return s.Failed == 1 })
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("hook never started its child: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		// A killed child not yet reaped by init shows as a zombie (Z).
		if err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %s still runs after the timeout: %s", pid, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandHookRetriesAFailure(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	// Fails on the first run, succeeds on the second.
	script := fmt.Sprintf("echo x >> %s; [ $(wc -l < %s) -ge 2 ]", count, count)
	p := loadPolicy(t, fmt.Sprintf("notify(\"hook\", command = %q, retries = 3, backoff = \"10ms\")\n", script))
	d := startDispatcher(t, p)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	waitStats(t, d, func(s Stats) bool { return s.Sent == 1 && s.Failed == 0 })
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "x"); n != 2 {
		t.Errorf("hook ran %d times, want 2 (one failure, one retry)", n)
	}
}

// Close delivers what is queued until its context ends, then gives up
// instead of holding the agent's shutdown.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return false
		}
		return true
	})
	p := loadPolicy(t, fmt.Sprintf("notify(\"ops\", webhook = %q, timeout = \"1m\")\n", rc.srv.URL))
	d := New(Config{Policy: p, Node: "node2"})
	for i := 0; i < 5; i++ {
		d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	}
	rc.wait(t, 1) // the first is delivered, the second hangs
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a hanging receiver: %v, want a deadline error", err)
	}
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is alive"}) // ignored after Close
	if got := rc.snapshot(); len(got) != 1 {
		t.Errorf("events after Close: %s", names(got))
	}
}
