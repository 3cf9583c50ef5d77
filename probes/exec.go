package probes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxExecOutput bounds how much stdout/stderr an exec check keeps.
const maxExecOutput = 64 << 10

// ExecConfig configures an Exec check.
type ExecConfig struct {
	// Argv is the program and its arguments; no shell is involved.
	Argv []string
	// Env, if non-nil, replaces the environment ("KEY=value" entries).
	Env []string
	// Dir is the working directory ("" means the agent's).
	Dir string
}

// ExecCheck runs a command: exit status 0 passes. Stdout, trimmed, becomes
// Text and, when it is a number, Value. The command runs in its own process
// group, and the whole group is killed when the context ends, so a shell
// script's children do not outlive a timeout.
type ExecCheck struct {
	cfg ExecConfig
}

var _ Check = (*ExecCheck)(nil)

// NewExec validates cfg and returns the check.
func NewExec(cfg ExecConfig) (*ExecCheck, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("exec check: argv is empty")
	}
	if _, err := exec.LookPath(cfg.Argv[0]); err != nil {
		return nil, fmt.Errorf("exec check: program %q: %w", cfg.Argv[0], err)
	}
	cfg.Argv = append([]string(nil), cfg.Argv...)
	return &ExecCheck{cfg: cfg}, nil
}

// limitedBuffer keeps the first max bytes written and discards the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Run runs the command once.
func (c *ExecCheck) Run(ctx context.Context) Result {
	start := time.Now()
	cmd := exec.CommandContext(ctx, c.cfg.Argv[0], c.cfg.Argv[1:]...)
	cmd.Env = c.cfg.Env
	cmd.Dir = c.cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid addresses the process group created by Setpgid.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that escaped the group may hold the pipes open; do not
	// wait for it forever after the kill.
	cmd.WaitDelay = time.Second
	stdout := &limitedBuffer{max: maxExecOutput}
	stderr := &limitedBuffer{max: maxExecOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	err := cmd.Run()
	lat := time.Since(start)
	res := Result{Latency: lat, Text: strings.TrimSpace(stdout.buf.String())}
	if v, perr := strconv.ParseFloat(res.Text, 64); perr == nil {
		res.Value = v
	}
	if err == nil {
		res.OK = true
		return res
	}
	msg := err.Error()
	if ctx.Err() != nil {
		msg = fmt.Sprintf("killed process group: %v (%v)", context.Cause(ctx), err)
	}
	if se := strings.TrimSpace(stderr.buf.String()); se != "" {
		msg += ": " + lastLine(se)
	}
	res.Err = msg
	return res
}

// lastLine returns the last line of s, which usually holds the error.
func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
