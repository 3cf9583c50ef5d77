package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds how long Stop waits for a process group to vanish after
// SIGKILL (a process in uninterruptible sleep can take a while).
const killWait = 10 * time.Second

// ProcessRunner supervises a foreground command (kind "process").
//
// The command runs in its own process group; Stop sends SIGTERM to the group,
// waits StopTimeout for every member to exit, then sends SIGKILL. Members
// that leave the group (setsid, setpgid) escape this; supervising those needs
// cgroups. With KillWithAgent the kernel kills the main process when the
// agent dies (Pdeathsig); its own children are not signalled by the kernel,
// so a service that forks workers should end them when its main process dies
// (most daemons in foreground mode do); with Options.Owner set, the runner
// of the next agent finds and ends such leftovers (see Options.Owner).
type ProcessRunner struct {
	spec  Spec
	opts  Options
	log   *slog.Logger
	slots chan struct{} // one action (start/stop) at a time
	// marker is the HARULES_SERVICE value of this service's processes.
	marker string

	mu  sync.Mutex
	cur *processInstance // nil when nothing was started or it was stopped
}

var _ Runner = (*ProcessRunner)(nil)

// processInstance is one run of the command.
type processInstance struct {
	cmd    *exec.Cmd
	pgid   int
	output *tailBuffer
	exited chan struct{} // closed when the leader has exited (it stays unreaped)
	how    string        // how it exited; set before exited is closed
}

func (p *processInstance) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func newProcess(spec Spec, opts Options) (*ProcessRunner, error) {
	if err := checkArgv("Argv", spec.Argv); err != nil {
		return nil, fmt.Errorf("service %q: %w", spec.Name, err)
	}
	if len(spec.Monitor) > 0 {
		if err := checkArgv("Monitor", spec.Monitor); err != nil {
			return nil, fmt.Errorf("service %q: %w", spec.Name, err)
		}
	}
	spec.StartTimeout = orDefault(spec.StartTimeout, DefaultTimeout)
	spec.StopTimeout = orDefault(spec.StopTimeout, DefaultTimeout)
	spec.MonitorTimeout = orDefault(spec.MonitorTimeout, DefaultTimeout)
	return &ProcessRunner{
		spec:   spec,
		opts:   opts,
		log:    opts.Logger.With("service", spec.Name, "kind", KindProcess),
		slots:  make(chan struct{}, 1),
		marker: opts.Owner + "/" + spec.Name,
	}, nil
}

func (r *ProcessRunner) killWithAgent() bool {
	return r.spec.KillWithAgent == nil || *r.spec.KillWithAgent
}

func (r *ProcessRunner) acquire(ctx context.Context, action string) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service %q: %s: waiting for the previous action: %w", r.spec.Name, action, ctx.Err())
	}
}

func (r *ProcessRunner) release() { <-r.slots }

// Start runs the command unless it is already running. A previous run that
// ended on its own is cleaned up first (its leftover group members killed).
// With a Monitor health check, Start waits until it passes; if it does not
// pass within StartTimeout the process is stopped and Start fails, so a
// failed start leaves nothing running.
func (r *ProcessRunner) Start(ctx context.Context) error {
	if err := r.acquire(ctx, "start"); err != nil {
		return err
	}
	defer r.release()
	began := r.opts.Now()

	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur != nil && !cur.hasExited() {
		return nil
	}
	if cur != nil {
		if err := r.terminate(ctx, cur); err != nil {
			return fmt.Errorf("service %q: start: clean up the previous run: %w", r.spec.Name, err)
		}
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
	}
	if err := r.killOrphans(ctx); err != nil {
		return &ActionError{Service: r.spec.Name, Action: "start", ExitCode: -1, Err: err}
	}

	inst, err := r.spawn()
	if err != nil {
		return &ActionError{Service: r.spec.Name, Action: "start", ExitCode: -1, Err: err}
	}
	r.mu.Lock()
	r.cur = inst
	r.mu.Unlock()
	r.log.Info("service started", "pid", inst.pgid, "argv", r.spec.Argv)

	if len(r.spec.Monitor) > 0 {
		if err := r.waitHealthy(ctx, inst); err != nil {
			if stopErr := r.terminate(context.WithoutCancel(ctx), inst); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			r.mu.Lock()
			r.cur = nil
			r.mu.Unlock()
			return err
		}
		r.log.Info("service healthy", "after", r.opts.Now().Sub(began))
	}
	return nil
}

func (r *ProcessRunner) spawn() (*processInstance, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create output pipe: %w", err)
	}
	cmd := exec.Command(r.spec.Argv[0], r.spec.Argv[1:]...)
	cmd.Env = append(environ(r.spec.Env), markerVar+"="+r.marker)
	cmd.Dir = r.spec.Dir
	cmd.Stdout, cmd.Stderr = wr, wr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.killWithAgent() {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	err = startOnStableThread(cmd)
	wr.Close() // the child holds its own copy
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("run %q: %w", r.spec.Argv[0], err)
	}
	inst := &processInstance{
		cmd:    cmd,
		pgid:   cmd.Process.Pid,
		output: &tailBuffer{max: outputTail},
		exited: make(chan struct{}),
	}
	go func() {
		defer rd.Close()
		var dst io.Writer = inst.output
		if r.opts.Output != nil {
			dst = io.MultiWriter(inst.output, r.opts.Output)
		}
		_, _ = io.Copy(dst, rd)
	}()
	go func() {
		inst.how = waitExitNoReap(inst.pgid)
		close(inst.exited)
	}()
	return inst, nil
}

// waitHealthy polls the health check until it passes, the process exits, or
// StartTimeout runs out.
func (r *ProcessRunner) waitHealthy(ctx context.Context, inst *processInstance) error {
	ctx, cancel := context.WithTimeout(ctx, r.spec.StartTimeout)
	defer cancel()
	// Each round runs a command: poll less eagerly than for a group's exit.
	tick := time.NewTicker(max(r.opts.PollInterval, 250*time.Millisecond))
	defer tick.Stop()
	for {
		st, err := r.check(ctx, inst)
		if err == nil && st.State == StateRunning {
			return nil
		}
		if inst.hasExited() {
			return &ActionError{Service: r.spec.Name, Action: "start", ExitCode: -1,
				Err: errors.New("process " + inst.how), Output: inst.output.String()}
		}
		select {
		case <-ctx.Done():
			e := &ActionError{Service: r.spec.Name, Action: "start", ExitCode: st.ExitCode,
				Output: st.Message, TimedOut: true,
				Err: fmt.Errorf("%w after %s: health check never passed", ErrTimeout, r.spec.StartTimeout)}
			return e
		case <-tick.C:
		case <-inst.exited:
		}
	}
}

// Monitor reports Stopped when nothing runs (never started, or stopped),
// Failed when the process ended on its own or its health check fails, and
// Running otherwise.
func (r *ProcessRunner) Monitor(ctx context.Context) (Status, error) {
	r.mu.Lock()
	inst := r.cur
	r.mu.Unlock()
	if inst == nil {
		if r.opts.Owner != "" {
			pids, err := findMarked(r.marker, 0)
			if err != nil {
				return Status{State: StateFailed, ExitCode: -1}, &ActionError{Service: r.spec.Name, Action: "monitor", ExitCode: -1, Err: err}
			}
			if len(pids) > 0 {
				return Status{State: StateFailed, ExitCode: -1, Message: fmt.Sprintf(
					"processes %v carry %s=%s but this agent did not start them (left by a previous agent?); Stop ends them",
					pids, markerVar, r.marker)}, nil
			}
		}
		return Status{State: StateStopped, ExitCode: -1, Message: "not started"}, nil
	}
	return r.check(ctx, inst)
}

// killOrphans ends processes carrying this service's marker that no live
// run of ours owns (only when Options.Owner is set).
func (r *ProcessRunner) killOrphans(ctx context.Context) error {
	if r.opts.Owner == "" {
		return nil
	}
	pids, err := killMarked(ctx, r.marker, 0, r.spec.StopTimeout, r.opts.PollInterval)
	if len(pids) > 0 {
		r.log.Warn("killed orphaned service processes", "pids", pids, "marker", r.marker)
	}
	if err != nil {
		return fmt.Errorf("end orphaned processes: %w", err)
	}
	return nil
}

func (r *ProcessRunner) check(ctx context.Context, inst *processInstance) (Status, error) {
	if inst.hasExited() {
		msg := "process " + inst.how
		if out := messageTail(inst.output.String()); out != "" {
			msg += ": " + out
		}
		return Status{State: StateFailed, ExitCode: -1, Message: msg}, nil
	}
	if len(r.spec.Monitor) == 0 {
		return Status{State: StateRunning, ExitCode: -1}, nil
	}
	res := runCommand(ctx, r.spec.Monitor, environ(r.spec.Env), r.spec.Dir, r.spec.MonitorTimeout, false)
	if res.err != nil {
		return Status{State: StateFailed, ExitCode: -1, Message: messageTail(res.output)},
			&ActionError{Service: r.spec.Name, Action: "monitor", ExitCode: -1, TimedOut: res.timedOut, Output: res.output, Err: res.err}
	}
	if res.exitCode == 0 {
		return Status{State: StateRunning, ExitCode: 0, Message: messageTail(res.output)}, nil
	}
	return Status{State: StateFailed, ExitCode: res.exitCode,
		Message: fmt.Sprintf("health check exited with %d: %s", res.exitCode, messageTail(res.output))}, nil
}

// Stop ends the whole process group: SIGTERM, then SIGKILL after
// StopTimeout (or when ctx ends first); with Options.Owner set, also every
// other process carrying the service's marker. Stopping what is not running
// succeeds.
func (r *ProcessRunner) Stop(ctx context.Context) error {
	if err := r.acquire(ctx, "stop"); err != nil {
		return err
	}
	defer r.release()
	r.mu.Lock()
	inst := r.cur
	r.mu.Unlock()
	if inst != nil {
		if err := r.terminate(ctx, inst); err != nil {
			return &ActionError{Service: r.spec.Name, Action: "stop", ExitCode: -1, Err: err}
		}
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
	}
	if err := r.killOrphans(ctx); err != nil {
		return &ActionError{Service: r.spec.Name, Action: "stop", ExitCode: -1, Err: err}
	}
	return nil
}

// terminate kills inst's process group and reaps its leader. It escalates
// to SIGKILL even when ctx is already done: giving up would orphan the
// group.
func (r *ProcessRunner) terminate(ctx context.Context, inst *processInstance) error {
	began := r.opts.Now()
	grace, cancel := context.WithTimeout(ctx, r.spec.StopTimeout)
	defer cancel()
	if err := unix.Kill(-inst.pgid, unix.SIGTERM); err != nil && err != unix.ESRCH {
		return fmt.Errorf("SIGTERM process group %d: %w", inst.pgid, err)
	}
	gone, err := r.waitGroupGone(grace, inst.pgid)
	if err != nil {
		return err
	}
	killed := false
	if !gone {
		killed = true
		if err := unix.Kill(-inst.pgid, unix.SIGKILL); err != nil && err != unix.ESRCH {
			return fmt.Errorf("SIGKILL process group %d: %w", inst.pgid, err)
		}
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
		defer kcancel()
		if gone, err = r.waitGroupGone(kctx, inst.pgid); err != nil {
			return err
		}
		if !gone {
			pids, _ := liveGroupMembers(inst.pgid)
			return fmt.Errorf("process group %d still has processes %v %s after SIGKILL", inst.pgid, pids, killWait)
		}
	}
	// Every member is gone; only now is the leader reaped and its PID freed.
	_ = inst.cmd.Wait()
	r.log.Info("service stopped", "pid", inst.pgid, "needed_sigkill", killed, "took", r.opts.Now().Sub(began))
	return nil
}

// waitGroupGone polls until no live process is left in group pgid (true) or
// ctx ends (false).
func (r *ProcessRunner) waitGroupGone(ctx context.Context, pgid int) (bool, error) {
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	for {
		pids, err := liveGroupMembers(pgid)
		if err != nil {
			return false, err
		}
		if len(pids) == 0 {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-tick.C:
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
