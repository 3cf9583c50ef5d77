package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one HA manager under test (harules or keepalived), driven the
// same way on the same topology.
type daemon interface {
	Name() string
	// Configure writes the configuration for one heartbeat interval.
	Configure(interval time.Duration) error
	Start(ctx context.Context, node string) error
	Running(node string) bool
	// KillAgent is the agent-only crash: kill -9 of the deciding process.
	KillAgent(ctx context.Context, node string) error
	// KillAll kills every process of the daemon on node with SIGKILL.
	KillAll(ctx context.Context, node string) error
	// Switchover moves the VIP from one node to the other as planned.
	Switchover(ctx context.Context, from, to string) error
	// Stop ends the daemon on node gracefully.
	Stop(ctx context.Context, node string) error
	// Steady reports (nil) whether the daemon is settled with holder
	// holding the VIP and the peer standing by.
	Steady(ctx context.Context, holder string) error
	// Home is where the VIP returns by itself after a failover ("" when it
	// stays where it moved).
	Home() string
	// PIDs lists every process of the daemon on node.
	PIDs(node string) []int
}

// proc is a daemon process started in a node namespace, in its own process
// group.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startProc(ns, logPath string, env []string, argv ...string) (*proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "\n=== %s start: %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// killGroup sends SIGKILL to the whole process group at once, so no process
// of the group sees another die first.
func (p *proc) killGroup() { _ = syscall.Kill(-p.pid(), syscall.SIGKILL) }

// wait waits for the process to end; on timeout it kills the group.
func (p *proc) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	p.killGroup()
	<-p.done
	return fmt.Errorf("%s did not end within %s; killed", p.cmd.Args[3], timeout)
}

// groupPIDs lists the live processes of the process group led by p.
func (p *proc) groupPIDs() []int {
	if !p.alive() {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == p.pid() {
			if st, err := readProcStat(pid); err == nil && st.state != "Z" {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// childPIDs lists the direct children of pid (of all its threads: a Go
// program forks from whichever thread it runs on).
func childPIDs(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

var errNotSteady = errors.New("not steady yet")
