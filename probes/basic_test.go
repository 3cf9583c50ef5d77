package probes

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func runWithin(t *testing.T, c Check, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Run(ctx)
}

func mustOK(t *testing.T, r Result) {
	t.Helper()
	if !r.OK {
		t.Fatalf("check failed: %s (result %+v)", r.Err, r)
	}
}

func mustFail(t *testing.T, r Result, want string) {
	t.Helper()
	if r.OK {
		t.Fatalf("check passed, want failure containing %q (result %+v)", want, r)
	}
	if !strings.Contains(r.Err, want) {
		t.Fatalf("error %q does not contain %q", r.Err, want)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := NewTCP(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := runWithin(t, c, 5*time.Second)
	mustOK(t, r)
	if r.Value <= 0 || r.Latency <= 0 {
		t.Fatalf("latency not reported: %+v", r)
	}
	ln.Close()
	mustFail(t, runWithin(t, c, 5*time.Second), "connection refused")

	for _, bad := range []string{"", "127.0.0.1", ":80", "host:0", "host:http", "host:70000"} {
		if _, err := NewTCP(bad); err == nil {
			t.Errorf("NewTCP(%q) accepted", bad)
		}
	}
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "status: healthy v42\n") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/health", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	check := func(cfg HTTPConfig) *HTTPCheck {
		t.Helper()
		c, err := NewHTTP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r := runWithin(t, check(HTTPConfig{URL: srv.URL + "/health"}), 5*time.Second)
	mustOK(t, r)
	if r.Values["status"] != 200 || r.Text != "200 OK" {
		t.Fatalf("status not reported: %+v", r)
	}
	mustOK(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/health", ExpectStatus: 200, BodyContains: "healthy", BodyRegexp: `v\d+`}), 5*time.Second))
	mustFail(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/health", BodyContains: "sick"}), 5*time.Second), `body does not contain "sick"`)
	mustFail(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/health", BodyRegexp: `^v\d`}), 5*time.Second), "body does not match")
	mustFail(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/down"}), 5*time.Second), "status 503, want 2xx")
	mustOK(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/down", ExpectStatus: 503, BodyContains: "db down"}), 5*time.Second))
	mustFail(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/moved"}), 5*time.Second), "status 302")

	// A hanging handler: the check returns at its deadline, not when the server answers.
	start := time.Now()
	r = runWithin(t, check(HTTPConfig{URL: srv.URL + "/hang"}), 300*time.Millisecond)
	mustFail(t, r, "deadline exceeded")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("hanging request took %s with a 300ms deadline", el)
	}

	// And through the runner, which enforces its own timeout.
	rn := NewRunner(Options{})
	if err := rn.Add(Spec{Name: "hang", Check: check(HTTPConfig{URL: srv.URL + "/hang"}), Every: time.Second, Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, rn)
	f := waitFact(t, rn, "hang", "failing", func(f Fact) bool { return f.State == StateFailing })
	if !strings.Contains(f.Last.Err, "deadline exceeded") && !strings.Contains(f.Last.Err, "timeout") {
		t.Fatalf("runner error %q is not a timeout", f.Last.Err)
	}

	srv.Close()
	mustFail(t, runWithin(t, check(HTTPConfig{URL: srv.URL + "/health"}), 5*time.Second), "connection refused")

	for _, bad := range []HTTPConfig{{URL: "ftp://x/"}, {URL: "http://"}, {URL: "://"}, {URL: "http://x/", ExpectStatus: 42}, {URL: "http://x/", BodyRegexp: "("}} {
		if _, err := NewHTTP(bad); err == nil {
			t.Errorf("NewHTTP(%+v) accepted", bad)
		}
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls ok") }))
	defer srv.Close()
	strict, err := NewHTTP(HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, runWithin(t, strict, 5*time.Second), "certificate")
	lax, err := NewHTTP(HTTPConfig{URL: srv.URL, InsecureSkipVerify: true, BodyContains: "tls ok"})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, runWithin(t, lax, 5*time.Second))
}

func TestExec(t *testing.T) {
	newExec := func(argv ...string) *ExecCheck {
		t.Helper()
		c, err := NewExec(ExecConfig{Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r := runWithin(t, newExec("sh", "-c", "echo '  42.5 '"), 10*time.Second)
	mustOK(t, r)
	if r.Value != 42.5 || r.Text != "42.5" {
		t.Fatalf("stdout not parsed: %+v", r)
	}
	r = runWithin(t, newExec("sh", "-c", "echo replica lagging; echo 'fatal: lag too high' >&2; exit 3"), 10*time.Second)
	mustFail(t, r, "exit status 3: fatal: lag too high")
	if r.Text != "replica lagging" || r.Value != 0 {
		t.Fatalf("non-numeric stdout: %+v", r)
	}

	// Timeout kills the whole process group, including a background grandchild.
	pidfile := filepath.Join(t.TempDir(), "bg.pid")
	start := time.Now()
	r = runWithin(t, newExec("sh", "-c", "sleep 300 & echo $! > "+pidfile+"; wait"), 500*time.Millisecond)
	mustFail(t, r, "killed process group")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("exec with 500ms deadline took %s", el)
	}
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	bg, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	pc, _ := NewProcessByPidfile(pidfile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if alive, _, _ := pc.alive(bg); !alive {
			break
		}
		if time.Now().After(deadline) {
			syscallKill(bg)
			t.Fatalf("background child %d survived the process-group kill", bg)
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, bad := range [][]string{nil, {""}, {"/nonexistent/prog"}} {
		if _, err := NewExec(ExecConfig{Argv: bad}); err == nil {
			t.Errorf("NewExec(%q) accepted", bad)
		}
	}
}

// startNamed runs sleep under a chosen program name and returns the command.
func startNamed(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestProcess(t *testing.T) {
	short := fmt.Sprintf("hrp%08d", rand.IntN(1e8))           // 11 chars: fits comm
	long := fmt.Sprintf("harules-probe-%08d", rand.IntN(1e8)) // 22 chars: truncated comm
	cmd := startNamed(t, short)
	cmdLong := startNamed(t, long)

	pidfile := filepath.Join(t.TempDir(), "svc.pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	byPid, err := NewProcessByPidfile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := NewProcessByName(short)
	if err != nil {
		t.Fatal(err)
	}
	byLong, err := NewProcessByName(long)
	if err != nil {
		t.Fatal(err)
	}
	wrongLong, _ := NewProcessByName(long[:15] + "x") // same comm, other argv[0]

	r := runWithin(t, byPid, 5*time.Second)
	mustOK(t, r)
	if int(r.Value) != cmd.Process.Pid {
		t.Fatalf("pid = %v, want %d", r.Value, cmd.Process.Pid)
	}
	r = runWithin(t, byName, 5*time.Second)
	mustOK(t, r)
	if r.Value != 1 || r.Text != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("by name: %+v, want exactly pid %d", r, cmd.Process.Pid)
	}
	r = runWithin(t, byLong, 5*time.Second)
	mustOK(t, r)
	if r.Text != strconv.Itoa(cmdLong.Process.Pid) {
		t.Fatalf("long name found %q, want %d", r.Text, cmdLong.Process.Pid)
	}
	mustFail(t, runWithin(t, wrongLong, 5*time.Second), "no running process")

	// Kill it but do not reap it yet: a zombie is dead.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "process to become a zombie", func() bool {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		return procState(st) == "Z"
	})
	mustFail(t, runWithin(t, byPid, 5*time.Second), "is not running (state Z)")
	mustFail(t, runWithin(t, byName, 5*time.Second), "no running process named")
	cmd.Wait()
	mustFail(t, runWithin(t, byPid, 5*time.Second), "is not running (state gone)")

	os.WriteFile(pidfile, []byte("garbage"), 0o644)
	mustFail(t, runWithin(t, byPid, 5*time.Second), "not a pid")
	os.Remove(pidfile)
	mustFail(t, runWithin(t, byPid, 5*time.Second), "reading pidfile")

	for _, bad := range []string{"", "a/b"} {
		if _, err := NewProcessByName(bad); err == nil {
			t.Errorf("NewProcessByName(%q) accepted", bad)
		}
	}
	if _, err := NewProcessByPidfile("relative.pid"); err == nil {
		t.Error("relative pidfile accepted")
	}
}

func TestProcState(t *testing.T) {
	for in, want := range map[string]string{
		"123 (sleep) S 1 2 3":       "S",
		"123 (weird) Z name) R 1 2": "R",
		"123 (x) Z 1":               "Z",
		"garbage":                   "",
	} {
		if got := procState([]byte(in)); got != want {
			t.Errorf("procState(%q) = %q, want %q", in, got, want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
