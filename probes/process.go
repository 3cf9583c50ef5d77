package probes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// commLen is the kernel's limit for /proc/PID/comm (TASK_COMM_LEN - 1).
const commLen = 15

// ProcessCheck passes when a process is alive, found either through a
// pidfile or by its exact name. Zombies count as dead.
type ProcessCheck struct {
	pidfile string
	name    string
	proc    string // /proc mount point
}

var _ Check = (*ProcessCheck)(nil)

// NewProcessByPidfile checks the process whose pid is in path.
func NewProcessByPidfile(path string) (*ProcessCheck, error) {
	if path == "" {
		return nil, errors.New("process check: pidfile path is empty")
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("process check: pidfile %q must be an absolute path", path)
	}
	return &ProcessCheck{pidfile: path, proc: "/proc"}, nil
}

// NewProcessByName checks for at least one process named exactly name: its
// /proc/PID/comm, or for names longer than the kernel's 15-character comm,
// the base name of its argv[0].
func NewProcessByName(name string) (*ProcessCheck, error) {
	if name == "" || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("process check: name %q must be a non-empty base name without '/'", name)
	}
	return &ProcessCheck{name: name, proc: "/proc"}, nil
}

// Run looks the process up; Value is the pid (pidfile) or the number of
// matching processes (name), Text lists the pids.
func (c *ProcessCheck) Run(ctx context.Context) Result {
	start := time.Now()
	if c.pidfile != "" {
		return c.byPidfile(start)
	}
	return c.byName(ctx, start)
}

func (c *ProcessCheck) byPidfile(start time.Time) Result {
	data, err := os.ReadFile(c.pidfile)
	if err != nil {
		return failure(start, "reading pidfile", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return failure(start, fmt.Sprintf("pidfile %s is empty", c.pidfile), nil)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return failure(start, fmt.Sprintf("pidfile %s holds %q, not a pid", c.pidfile, fields[0]), nil)
	}
	alive, state, err := c.alive(pid)
	if err != nil {
		return failure(start, fmt.Sprintf("process %d from %s", pid, c.pidfile), err)
	}
	res := Result{Value: float64(pid), Text: strconv.Itoa(pid), Latency: time.Since(start)}
	if !alive {
		res.Err = fmt.Sprintf("process %d from %s is not running (state %s)", pid, c.pidfile, state)
		return res
	}
	res.OK = true
	return res
}

// alive reads /proc/PID/stat; a missing entry or a zombie is not alive.
func (c *ProcessCheck) alive(pid int) (bool, string, error) {
	stat, err := os.ReadFile(filepath.Join(c.proc, strconv.Itoa(pid), "stat"))
	if errors.Is(err, os.ErrNotExist) {
		return false, "gone", nil
	}
	if err != nil {
		return false, "", err
	}
	state := procState(stat)
	return state != "Z" && state != "X" && state != "", state, nil
}

// procState extracts the state letter from /proc/PID/stat. The command name
// is in parentheses and may itself contain ") ", so search from the right.
func procState(stat []byte) string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return ""
	}
	return string(stat[i+2])
}

func (c *ProcessCheck) byName(ctx context.Context, start time.Time) Result {
	entries, err := os.ReadDir(c.proc)
	if err != nil {
		return failure(start, "scanning "+c.proc, err)
	}
	var pids []string
	for _, e := range entries {
		if r, done := ctxErr(ctx, start); done {
			return r
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		if !c.nameMatches(pid) {
			continue
		}
		if ok, _, _ := c.alive(pid); ok {
			pids = append(pids, e.Name())
		}
	}
	res := Result{Value: float64(len(pids)), Text: strings.Join(pids, " "), Latency: time.Since(start)}
	if len(pids) == 0 {
		res.Err = fmt.Sprintf("no running process named %q", c.name)
		return res
	}
	res.OK = true
	return res
}

func (c *ProcessCheck) nameMatches(pid int) bool {
	dir := filepath.Join(c.proc, strconv.Itoa(pid))
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return false // the process exited while we scanned
	}
	comm = bytes.TrimSuffix(comm, []byte("\n"))
	if len(c.name) <= commLen {
		return string(comm) == c.name
	}
	// comm holds the first 15 bytes only; confirm with argv[0].
	if string(comm) != c.name[:commLen] {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(argv0)) == c.name
}
