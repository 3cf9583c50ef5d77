package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// outputTail is how much of a command's output is kept for messages.
const outputTail = 4096

// ActionError is the error of an action (start, stop, monitor, meta-data,
// validate-all) that did not succeed.
type ActionError struct {
	Service string
	Action  string
	// ExitCode is the command's exit code, -1 if it did not exit normally.
	// For an OCF agent it is an OCFCode: OCFCode(ExitCode).Hard() tells
	// whether retrying on this node is pointless.
	ExitCode int
	// OCF is true when ExitCode is an OCF exit code.
	OCF bool
	// TimedOut is true when the action was killed at its timeout.
	TimedOut bool
	// Reason is the OCF exit reason (a line "ocf-exit-reason:..."), if any.
	Reason string
	// Output is the tail of the command's stdout and stderr.
	Output string
	// Err is the underlying cause (ErrTimeout, an exec error, ...), if any.
	Err error
}

func (e *ActionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service %q: %s", e.Service, e.Action)
	switch {
	case e.TimedOut && e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	case e.OCF && e.ExitCode >= 0:
		fmt.Fprintf(&b, ": %s (exit %d)", OCFCode(e.ExitCode), e.ExitCode)
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	}
	switch {
	case e.Reason != "":
		b.WriteString(": " + e.Reason)
	case e.Output != "":
		b.WriteString(": " + lastLines(e.Output, 3))
	}
	return b.String()
}

func (e *ActionError) Unwrap() error { return e.Err }

// commandResult is what running one command to completion produced.
type commandResult struct {
	exitCode int    // -1 when killed or never started
	output   string // tail of stdout and stderr (only stderr when stdout was captured apart)
	stdout   string // all of stdout (up to maxStdout), when asked for
	timedOut bool
	err      error // start failure, timeout or cancellation; nil when it exited
}

// runCommand runs argv in its own process group with stdin from /dev/null
// and output to an unlinked temporary file, and kills the whole group with
// SIGKILL when timeout or ctx runs out.
//
// Output goes to a file rather than a pipe because init scripts and OCF
// agents start daemons that inherit stdout: with a pipe we would wait for
// the daemon to exit. Process-group members left behind by a command that
// exited normally are the service itself (a daemon), so they are not killed.
//
// With wantStdout, stdout is kept apart and returned whole (meta-data XML
// must not be mixed with warnings on stderr).
func runCommand(ctx context.Context, argv, env []string, dir string, timeout time.Duration, wantStdout bool) (res commandResult) {
	res = commandResult{exitCode: -1}
	out, err := unlinkedTempFile()
	if err != nil {
		res.err = err
		return res
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = out, out
	if wantStdout {
		stdout, err := unlinkedTempFile()
		if err != nil {
			res.err = err
			return res
		}
		defer func() {
			res.stdout = readTail(stdout, maxStdout)
			stdout.Close()
		}()
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl).Round(time.Millisecond) // the caller's deadline is the real limit
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cmd.Start(); err != nil {
		res.err = fmt.Errorf("run %s: %w", argv[0], err)
		return res
	}
	pgid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	select {
	case err = <-waited:
	case <-tctx.Done():
		// The group exists while its leader is unreaped, so this cannot hit
		// a recycled process group.
		_ = unix.Kill(-pgid, unix.SIGKILL)
		err = <-waited
		if errors.Is(ctx.Err(), context.Canceled) {
			res.err = fmt.Errorf("cancelled (process group %d killed): %w", pgid, ctx.Err())
		} else {
			res.timedOut = true
			res.err = fmt.Errorf("%w after %s (process group %d killed)", ErrTimeout, timeout, pgid)
		}
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && res.err == nil {
		res.err = fmt.Errorf("wait for %s: %w", argv[0], err)
	}
	if res.err == nil {
		res.exitCode = cmd.ProcessState.ExitCode()
		if res.exitCode < 0 { // killed by a signal nobody here sent
			res.err = fmt.Errorf("%s ended abnormally: %s", argv[0], cmd.ProcessState)
		}
	}
	res.output = readTail(out, outputTail)
	return res
}

// maxStdout bounds captured stdout (the largest agent meta-data is ~30 KiB).
const maxStdout = 1 << 20

// unlinkedTempFile returns an open temporary file that is already deleted,
// so nothing is left behind whatever happens.
func unlinkedTempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "harules-service-*.out")
	if err != nil {
		return nil, fmt.Errorf("create output file: %w", err)
	}
	os.Remove(f.Name())
	return f, nil
}

// readTail returns the last max bytes of f (cut at a line start when
// possible), trimmed of surrounding space.
func readTail(f *os.File, max int64) string {
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	s := string(buf[:n])
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
	}
	return strings.TrimSpace(s)
}

// messageLines is how many lines of output a Status message keeps.
const messageLines = 10

// messageTail keeps the last lines of a command's output for a Status.
func messageTail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > messageLines {
		lines = lines[len(lines)-messageLines:]
	}
	return strings.Join(lines, "\n")
}

// lastLines returns the last n non-empty lines of s joined by " | ", for
// one-line error messages.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
