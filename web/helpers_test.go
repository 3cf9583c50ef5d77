package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

const (
	operatorToken = "operator-token-0123456789abcdef"
	readToken     = "reader-token-0123456789abcdef"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

// fakeBackend is a two-node cluster whose status changes when an operator
// request is applied, after a delay like a real agent's next decision.
type fakeBackend struct {
	mu         sync.Mutex
	st         *agent.Status
	policyPath string
	delay      time.Duration
	calls      []string
	refuse     error
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	abs, err := filepath.Abs("testdata/policy.star")
	if err != nil {
		t.Fatal(err)
	}
	st := &agent.Status{Node: "node1", Cluster: "webtest", PolicyHash: "0123abcd0123abcd", Incarnation: 7, Now: t0,
		Nodes: []agent.NodeStatus{
			{Name: "node1", State: "alive", Since: t0.Add(-time.Hour), Holds: []string{"web"}, PolicyHash: "0123abcd0123abcd"},
			{Name: "node2", State: "alive", Since: t0.Add(-time.Hour), PolicyHash: "0123abcd0123abcd", Paths: []agent.PathStatus{
				{Name: "lan", Up: true, Missed: 0, LastSeen: t0.Add(-150 * time.Millisecond)},
				{Name: "backnet", Up: false, Missed: 3, LastSeen: t0.Add(-1200 * time.Millisecond), Loss: 0.25},
			}},
		},
		Groups: []agent.GroupStatus{{Name: "web", Target: "node1", Reason: "web placed on node1: score 50", Holders: []string{"node1"}}},
		Alerts: []engine.Alert{{Name: "path-down", Severity: "warning", Message: "path backnet to node2 is down", Node: "node1", Rule: "path-alert"}},
		Recent: []engine.Record{
			{At: t0.Add(-time.Hour), Node: "node1", Kind: engine.RecPolicy, Group: "web", Target: "node1", Text: "web should run on node1", Reason: "score 50"},
			{At: t0.Add(-time.Hour), Node: "node1", Kind: engine.RecAction, Group: "web", Op: engine.OpStart, Resource: "vip:198.51.100.10", Text: "start vip:198.51.100.10: add"},
			{At: t0.Add(-time.Minute), Node: "node1", Kind: engine.RecPath, Text: "path backnet to node2 down"},
			{At: t0.Add(-time.Minute), Node: "node1", Kind: engine.RecAlert, Text: "path-down [warning] path backnet to node2 is down"},
		},
	}
	return &fakeBackend{st: st, policyPath: abs}
}

// HeartbeatStats reports a measured RTT on node2's lan path (backnet has
// none yet), as a live agent's endpoints would.
func (f *fakeBackend) HeartbeatStats() []agent.HeartbeatStats {
	return []agent.HeartbeatStats{
		{Path: "lan", Accepted: 18000, RTT: []agent.PeerRTT{{Peer: "node2", LastSeconds: 0.00031, SmoothedSeconds: 0.000287, Count: 18000, SumSeconds: 5.2}}},
		{Path: "backnet", Accepted: 13500},
	}
}

func (f *fakeBackend) Status() *agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeBackend) PolicyPath() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policyPath
}

func (f *fakeBackend) setPolicyPath(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policyPath = p
}

// update changes the status under the lock.
func (f *fakeBackend) update(fn func(st *agent.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := cloneStatus(f.st)
	fn(st)
	f.st = st
}

func (f *fakeBackend) Do(_ context.Context, op, group, node string, on bool) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s %v", op, group, node, on))
	refuse, delay := f.refuse, f.delay
	f.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	apply := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		st := cloneStatus(f.st)
		now := st.Now.Add(time.Second)
		st.Now = now
		switch op {
		case "move":
			for i := range st.Groups {
				if st.Groups[i].Name == group {
					st.Groups[i].Target, st.Groups[i].Holders, st.Groups[i].Reason = node, []string{node}, "operator moved "+group+" to "+node
				}
			}
			for i := range st.Nodes {
				st.Nodes[i].Holds = nil
				if st.Nodes[i].Name == node {
					st.Nodes[i].Holds = []string{group}
				}
			}
			st.Recent = append(st.Recent,
				engine.Record{At: now, Node: "node1", Kind: engine.RecEvent, Group: group, Text: "operator: move " + group + " to " + node},
				engine.Record{At: now, Node: "node1", Kind: engine.RecPolicy, Group: group, Target: node, Text: group + " should run on " + node})
		case "standby", "online":
			for i := range st.Nodes {
				if st.Nodes[i].Name == node {
					st.Nodes[i].Standby = op == "standby"
				}
			}
		case "maintenance":
			st.Maintenance = on
		}
		f.st = st
	}
	if delay > 0 {
		time.AfterFunc(delay, apply)
	} else {
		apply()
	}
	return nil
}

// RunBackup starts job like the agent: the status shows the run in
// progress at once.
func (f *fakeBackend) RunBackup(_ context.Context, job string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "backup "+job)
	if f.refuse != nil {
		return f.refuse
	}
	st := cloneStatus(f.st)
	st.Backups = append(slices.Clone(st.Backups), agent.BackupState{Job: job, Running: true, Reason: "operator", Started: st.Now,
		Done: 256 << 20, Estimate: 1 << 30})
	f.st = st
	return nil
}

func (f *fakeBackend) setDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

func (f *fakeBackend) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func cloneStatus(st *agent.Status) *agent.Status {
	cp := *st
	cp.Nodes = slices.Clone(st.Nodes)
	cp.Groups = slices.Clone(st.Groups)
	cp.Alerts = slices.Clone(st.Alerts)
	cp.Recent = slices.Clone(st.Recent)
	return &cp
}

func writeTokenFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web-tokens")
	body := "# test tokens\noperator:" + operatorToken + "\nread:" + readToken + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTestServer serves a console over a fake backend on a loopback
// httptest server.
func newTestServer(t *testing.T, opts Options) (*httptest.Server, *Server, *fakeBackend) {
	t.Helper()
	fb := newFakeBackend(t)
	if opts.TokenFile == "" {
		opts.TokenFile = writeTokenFile(t, 0o600)
	}
	opts.LoginFailDelay = time.Millisecond
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	srv, err := New(fb, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
	})
	return ts, srv, fb
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see them.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login logs in through the form and remembers the session's CSRF token.
func (b *browser) login(token string) {
	b.t.Helper()
	_, body := b.get("/login")
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("login page has no CSRF field:\n%s", body)
	}
	resp, _ := b.postForm("/login", url.Values{"csrf": {m[1]}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		b.t.Fatalf("login: got %s, location %q", resp.Status, resp.Header.Get("Location"))
	}
	_, body = b.get("/")
	m = csrfInput.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("overview has no CSRF field after login:\n%s", body)
	}
	b.csrf = m[1]
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, string(data)
}

func (b *browser) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) postForm(path string, v url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// call makes a request with optional bearer token, CSRF header and JSON
// body.
func (b *browser) call(method, path, bearer, csrf, body string) (*http.Response, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return b.do(req)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setPath brings a heartbeat path to a peer up or down, as the agent's
// status shows it: the path's state, the path-down alert of the default
// policy's rule (raised while any path is down) and the records.
func (f *fakeBackend) setPath(peer, path string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := cloneStatus(f.st)
	now := st.Now.Add(time.Second)
	st.Now = now
	st.Alerts = nil
	for i := range st.Nodes {
		n := &st.Nodes[i]
		n.Paths = slices.Clone(n.Paths)
		for j := range n.Paths {
			p := &n.Paths[j]
			if n.Name == peer && p.Name == path {
				p.Up, p.Missed = up, 0
				if !up {
					p.Missed = 3
				}
			}
			if !p.Up {
				st.Alerts = append(st.Alerts, engine.Alert{Name: "path-down", Severity: "warning",
					Message: "path " + p.Name + " to " + n.Name + " is down", Node: st.Node, Rule: "path-alert"})
			}
		}
	}
	state := "up"
	if !up {
		state = "down"
	}
	st.Recent = append(st.Recent, engine.Record{At: now, Node: st.Node, Kind: engine.RecPath, Text: "path " + path + " to " + peer + " " + state})
	if !up {
		st.Recent = append(st.Recent, engine.Record{At: now, Node: st.Node, Kind: engine.RecAlert, Text: "path-down [warning] path " + path + " to " + peer + " is down"})
	}
	f.st = st
}

// startAgentConsole creates an agent from cfg with the console on a free
// loopback port (opts: the console's options; the token file and logger
// default to the test's), runs it until the test ends, and returns it with
// a browser on its console.
func startAgentConsole(t *testing.T, cfg agent.Config, opts Options) (*agent.Agent, *browser) {
	t.Helper()
	if opts.TokenFile == "" {
		opts.TokenFile = writeTokenFile(t, 0o600)
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	addrCh := make(chan net.Addr, 1)
	cfg.WebListen = "127.0.0.1:0"
	cfg.WebStart = func(ctx context.Context, listen string, a *agent.Agent) (func(), error) {
		addr, stop, err := Listen(ctx, a, ListenOptions{Addr: listen}, opts)
		if err == nil {
			addrCh <- addr
		}
		return stop, err
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	})
	select {
	case addr := <-addrCh:
		return a, newBrowser(t, "http://"+addr.String())
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not start the console")
	}
	return nil, nil
}
