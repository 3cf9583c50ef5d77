package service

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newProcessRunner(t *testing.T, spec Spec) *ProcessRunner {
	t.Helper()
	spec.Kind = KindProcess
	if spec.Name == "" {
		spec.Name = "proc"
	}
	r, err := New(spec, testOptions(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pr := r.(*ProcessRunner)
	t.Cleanup(func() {
		// Whatever the test did, leave no process behind.
		if err := pr.Stop(testCtx(t)); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})
	return pr
}

func mustStatus(t *testing.T, r Runner, want State) Status {
	t.Helper()
	st, err := r.Monitor(testCtx(t))
	if err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	if st.State != want {
		t.Fatalf("Monitor = %v, want %v", st, want)
	}
	return st
}

func TestProcessStartMonitorStopIdempotent(t *testing.T) {
	ctx := testCtx(t)
	r := newProcessRunner(t, Spec{Argv: []string{"sleep", "1000"}})

	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start (must succeed): %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := r.cur.pgid
	if !alive(pid) {
		t.Fatalf("sleep %d is not running after Start", pid)
	}
	mustStatus(t, r, StateRunning)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("second Start (must succeed): %v", err)
	}
	if r.cur.pgid != pid {
		t.Fatalf("second Start started another process (%d, first %d)", r.cur.pgid, pid)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(pid) {
		t.Fatalf("sleep %d still runs after Stop", pid)
	}
	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop (must succeed): %v", err)
	}
}

// TestProcessStopKillsWholeGroup starts a shell with children and a
// grandchild whose parent has exited (reparented away from the service), and
// checks Stop leaves no member of the group alive.
func TestProcessStopKillsWholeGroup(t *testing.T) {
	ctx := testCtx(t)
	pidFile := filepath.Join(t.TempDir(), "pids")
	r := newProcessRunner(t, Spec{Argv: []string{"sh", "-c", `
		sleep 1000 & echo $! >> "$PIDS"
		sh -c 'sleep 1000 & echo $! >> "$PIDS"; wait' &
		(sleep 1000 & echo $! >> "$PIDS") # parent subshell exits at once
		wait`}, Env: map[string]string{"PIDS": pidFile}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pgid := r.cur.pgid
	killOnCleanup(t, func() []int { pids, _ := liveGroupMembers(pgid); return pids })
	var sleeps []int
	waitFor(t, "the script to start its three sleeps", func() bool {
		data, _ := os.ReadFile(pidFile)
		return len(strings.Fields(string(data))) == 3
	})
	sleeps = readPIDs(t, pidFile)
	members, err := liveGroupMembers(pgid)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) < 5 { // sh, 3 sleeps, inner sh
		t.Fatalf("process group %d has members %v, want at least 5", pgid, members)
	}
	killOnCleanup(t, func() []int { return members })

	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if left, _ := liveGroupMembers(pgid); len(left) > 0 {
		t.Fatalf("process group %d still has %v after Stop", pgid, left)
	}
	for _, pid := range append(sleeps, members...) {
		if alive(pid) {
			t.Errorf("process %d survived Stop", pid)
		}
	}
}

func TestProcessKilledExternallyIsFailed(t *testing.T) {
	ctx := testCtx(t)
	pidFile := filepath.Join(t.TempDir(), "child")
	r := newProcessRunner(t, Spec{Argv: []string{"sh", "-c", `echo starting >&2; sleep 1000 & echo $! > "$CHILD"; wait`},
		Env: map[string]string{"CHILD": pidFile}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, "the child pid file", func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
	child := readPIDs(t, pidFile)[0]
	killOnCleanup(t, func() []int { return []int{child} })

	if err := syscall.Kill(r.cur.pgid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var st Status
	waitFor(t, "Monitor to notice the kill", func() bool {
		var err error
		st, err = r.Monitor(ctx)
		if err != nil {
			t.Fatalf("Monitor: %v", err)
		}
		return st.State != StateRunning
	})
	// The output is copied by a goroutine; on a busy machine it may lag.
	waitFor(t, "the output in the message", func() bool { st, _ = r.Monitor(ctx); return strings.Contains(st.Message, "starting") })
	if st.State != StateFailed || !strings.Contains(st.Message, "killed by signal 9") {
		t.Fatalf("Monitor after external kill = %v; want failed, killed by signal 9, with the output", st)
	}
	if !alive(child) {
		t.Fatalf("test premise: the grandchild %d should outlive its parent", child)
	}
	// Start again cleans up the leftover child and starts afresh.
	old := r.cur.pgid
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after failure: %v", err)
	}
	if alive(child) {
		t.Fatalf("leftover child %d of the failed run survived the restart", child)
	}
	if r.cur.pgid == old {
		t.Fatalf("restart did not start a new process")
	}
	mustStatus(t, r, StateRunning)
}

func TestProcessExitCodeAndOutputInStatus(t *testing.T) {
	ctx := testCtx(t)
	r := newProcessRunner(t, Spec{Argv: []string{"sh", "-c", "echo 'config file /etc/x missing' >&2; exit 3"}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var st Status
	waitFor(t, "the process to exit", func() bool { st, _ = r.Monitor(ctx); return st.State == StateFailed })
	waitFor(t, "its output", func() bool { st, _ = r.Monitor(ctx); return strings.Contains(st.Message, "missing") })
	if !strings.Contains(st.Message, "exited with status 3") || !strings.Contains(st.Message, "config file /etc/x missing") {
		t.Fatalf("Status = %q; want the exit status and the stderr tail", st.Message)
	}
}

func TestProcessIgnoringSIGTERMIsKilledAfterStopTimeout(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	const grace = 400 * time.Millisecond
	// SIGTERM stays ignored across fork and exec, so the sleeps ignore it too.
	r := newProcessRunner(t, Spec{StopTimeout: grace, Argv: []string{"sh", "-c",
		`trap '' TERM; sleep 1000 & echo $! > "$D/pid"; touch "$D/ready"; wait; wait; wait`},
		Env: map[string]string{"D": dir}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, "the script to be ready", func() bool { _, err := os.Stat(filepath.Join(dir, "ready")); return err == nil })
	pgid, sleep := r.cur.pgid, readPIDs(t, filepath.Join(dir, "pid"))[0]
	killOnCleanup(t, func() []int { return []int{pgid, sleep} })

	began := time.Now()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// A lower bound only: the group ignores SIGTERM, so it cannot be gone
	// before the SIGKILL that follows the grace period.
	if took := time.Since(began); took < grace {
		t.Fatalf("Stop took %s, less than StopTimeout %s: SIGTERM should have been ignored", took, grace)
	}
	if alive(pgid) || alive(sleep) {
		t.Fatalf("processes survived Stop (sh %v, sleep %v)", alive(pgid), alive(sleep))
	}
}

func TestProcessHangingHealthCheckTimesOut(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	flag := filepath.Join(dir, "hang")
	r := newProcessRunner(t, Spec{Argv: []string{"sleep", "1000"}, MonitorTimeout: 2 * time.Second,
		Monitor: []string{"sh", "-c", `[ -e "$D/hang" ] || exit 0; sleep 1000 & echo $! > "$D/monpid"; wait`},
		Env:     map[string]string{"D": dir}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustStatus(t, r, StateRunning)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := r.Monitor(ctx)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Monitor with a hanging check: err = %v, want ErrTimeout", err)
	}
	var ae *ActionError
	if !errors.As(err, &ae) || !ae.TimedOut {
		t.Fatalf("want an *ActionError with TimedOut, got %#v", err)
	}
	if st.State != StateFailed {
		t.Fatalf("state after a hanging check = %v, want failed", st.State)
	}
	monSleep := readPIDs(t, filepath.Join(dir, "monpid"))[0]
	killOnCleanup(t, func() []int { return []int{monSleep} })
	waitFor(t, "the hanging check's child to be killed", func() bool { return !alive(monSleep) })
}

func TestProcessStartWaitsForHealthCheck(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	// The service becomes healthy a moment after it starts.
	r := newProcessRunner(t, Spec{
		Argv:    []string{"sh", "-c", `sleep 0.3; touch "$D/up"; exec sleep 1000`},
		Monitor: []string{"test", "-e", filepath.Join(dir, "up")},
		Env:     map[string]string{"D": dir}})
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "up")); err != nil {
		t.Fatalf("Start returned before the health check passed: %v", err)
	}

	// A service that never becomes healthy: Start fails and leaves nothing.
	r2 := newProcessRunner(t, Spec{Name: "never-healthy", StartTimeout: 500 * time.Millisecond,
		Argv: []string{"sleep", "1000"}, Monitor: []string{"false"}})
	err := r2.Start(ctx)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Start of a never-healthy service: %v, want ErrTimeout", err)
	}
	mustStatus(t, r2, StateStopped)
}

// TestProcessKillWithAgent runs a tiny agent (this test binary), lets it start
// a service, kills the agent with SIGKILL and checks the service dies with it
// (KillWithAgent, the default) or survives (KillWithAgent false).
func TestProcessKillWithAgent(t *testing.T) {
	for _, tc := range []struct {
		mode        string
		wantSurvive bool
	}{{"kill-with-agent", false}, {"keep", true}} {
		t.Run(tc.mode, func(t *testing.T) {
			agent := exec.Command(os.Args[0], "-test.run=^$")
			agent.Env = append(os.Environ(), "HARULES_SERVICE_TEST_AGENT="+tc.mode)
			out, err := agent.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := agent.Start(); err != nil {
				t.Fatal(err)
			}
			defer agent.Wait()
			defer agent.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("read the agent's output: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("agent said %q", line)
			}
			killOnCleanup(t, func() []int { return []int{pid} })
			if !alive(pid) {
				t.Fatalf("service %d is not running under the agent", pid)
			}
			if err := agent.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = agent.Wait()
			if tc.wantSurvive {
				time.Sleep(200 * time.Millisecond)
				if !alive(pid) {
					t.Fatalf("service %d died with the agent although KillWithAgent is false", pid)
				}
				return
			}
			waitFor(t, "the service to die with its agent", func() bool { return !alive(pid) })
		})
	}
}

func TestProcessSpecValidation(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Kind: KindProcess, Argv: []string{"x"}}, "name is empty"},
		{"bad name", Spec{Name: "a b", Kind: KindProcess, Argv: []string{"x"}}, "may only contain"},
		{"no kind", Spec{Name: "a", Argv: []string{"x"}}, `unknown kind ""`},
		{"no argv", Spec{Name: "a", Kind: KindProcess}, "Argv is empty"},
		{"empty program", Spec{Name: "a", Kind: KindProcess, Argv: []string{""}}, "Argv[0] (the program) is empty"},
		{"relative dir", Spec{Name: "a", Kind: KindProcess, Argv: []string{"x"}, Dir: "srv"}, `Dir "srv" must be an absolute path`},
		{"stray field", Spec{Name: "a", Kind: KindProcess, Argv: []string{"x"}, Unit: "x.service"}, `Unit is set but only applies to kind "systemd"`},
		{"stray kill", Spec{Name: "a", Kind: KindCommands, Start: []string{"a"}, Stop: []string{"b"}, Monitor: []string{"c"}, KillWithAgent: &no}, "KillWithAgent is set"},
		{"negative timeout", Spec{Name: "a", Kind: KindProcess, Argv: []string{"x"}, StopTimeout: -time.Second}, "StopTimeout is negative"},
		{"bad env", Spec{Name: "a", Kind: KindProcess, Argv: []string{"x"}, Env: map[string]string{"A=B": "c"}}, "not a valid variable name"},
		{"commands missing", Spec{Name: "a", Kind: KindCommands, Start: []string{"a"}}, "Stop is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.spec, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want an error containing %q", tc.spec, err, tc.want)
			}
		})
	}
}

func TestProcessStartOfMissingProgramFails(t *testing.T) {
	r := newProcessRunner(t, Spec{Argv: []string{"/nonexistent/harules-test-daemon"}})
	err := r.Start(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/harules-test-daemon") {
		t.Fatalf("Start of a missing program = %v, want an error naming it", err)
	}
	mustStatus(t, r, StateStopped)
}

// TestProcessOrphansOfCrashedAgent lets a tiny agent start a service whose
// main process has a worker, kills the agent (Pdeathsig ends only the main
// process), and checks that a new agent with the same Owner sees the
// leftover worker as a failed service and that Stop ends it.
func TestProcessOrphansOfCrashedAgent(t *testing.T) {
	owner := "node-" + strconv.Itoa(os.Getpid())
	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), "HARULES_SERVICE_TEST_AGENT=owner:"+owner)
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Wait()
	defer agent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the agent's output: %v", err)
	}
	leader, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("agent said %q", line)
	}
	var members []int
	waitFor(t, "the service's worker", func() bool { members, _ = liveGroupMembers(leader); return len(members) == 2 })
	killOnCleanup(t, func() []int { return members })
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	waitFor(t, "the main process to die with the agent", func() bool { return !alive(leader) })
	worker := members[0]
	if worker == leader {
		worker = members[1]
	}
	if !alive(worker) {
		t.Fatalf("test premise: the worker %d should outlive the agent", worker)
	}

	opts := testOptions(t)
	opts.Owner = "someone-else"
	other, err := New(Spec{Name: "orphan-check", Kind: KindProcess, Argv: []string{"true"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, other, StateStopped) // another agent's processes are not its business
	if err := other.Stop(testCtx(t)); err != nil || !alive(worker) {
		t.Fatalf("Stop by another owner: err %v, worker alive %v; want nil, true", err, alive(worker))
	}

	opts.Owner = owner
	r, err := New(Spec{Name: "orphan-check", Kind: KindProcess, Argv: []string{"true"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, r, StateFailed)
	if !strings.Contains(st.Message, strconv.Itoa(worker)) {
		t.Fatalf("Monitor message %q does not name the orphan %d", st.Message, worker)
	}
	if err := r.Stop(testCtx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(worker) {
		t.Fatalf("orphan %d survived Stop", worker)
	}
	mustStatus(t, r, StateStopped)
}

// TestProcessStopWithOwnerEndsEscapedProcesses checks that a process which
// left the service's process group (setsid) is still ended by Stop when
// Options.Owner is set, through its inherited marker.
func TestProcessStopWithOwnerEndsEscapedProcesses(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	opts := testOptions(t)
	opts.Owner = "node-" + strconv.Itoa(os.Getpid())
	r, err := New(Spec{Name: "escaper", Kind: KindProcess, Env: map[string]string{"D": dir},
		Argv: []string{"sh", "-c", `setsid sleep 1000 & echo $! > "$D/pid"; wait`}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pgid := r.(*ProcessRunner).cur.pgid
	waitFor(t, "the escaped process", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "pid"))
		return len(b) > 0
	})
	escaped := readPIDs(t, filepath.Join(dir, "pid"))[0]
	killOnCleanup(t, func() []int { return []int{escaped} })
	waitFor(t, "setsid to take effect", func() bool { _, pg, ok := procStat(escaped); return ok && pg != pgid })
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(escaped) {
		t.Fatalf("process %d escaped the group and survived Stop", escaped)
	}
}
