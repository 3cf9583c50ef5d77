package service

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// markerVar names the environment variable that marks a process service's
// processes as Owner/Name; children inherit it, even across setsid.
const markerVar = "HARULES_SERVICE"

// findMarked lists live processes whose environment holds marker, except
// those in process group skipPgid (the run we supervise; 0 for none).
func findMarked(marker string, skipPgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	want := []byte(markerVar + "=" + marker + "\x00")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		state, pgrp, ok := procStat(pid)
		if !ok || state == 'Z' || state == 'X' || (skipPgid != 0 && pgrp == skipPgid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue // gone, or a kernel thread
		}
		if bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killMarked ends every process carrying marker outside group skipPgid:
// SIGTERM, then SIGKILL after grace. Each round signals only what a fresh
// scan found, so a recycled PID is never signalled on stale information.
func killMarked(ctx context.Context, marker string, skipPgid int, grace, poll time.Duration) ([]int, error) {
	first, err := findMarked(marker, skipPgid)
	if err != nil || len(first) == 0 {
		return nil, err
	}
	signalAll := func(sig unix.Signal) (bool, error) {
		pids, err := findMarked(marker, skipPgid)
		if err != nil {
			return false, err
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		return len(pids) == 0, nil
	}
	waitGone := func(ctx context.Context, sig unix.Signal) (bool, error) {
		if _, err := signalAll(sig); err != nil {
			return false, err
		}
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			pids, err := findMarked(marker, skipPgid)
			if err != nil || len(pids) == 0 {
				return err == nil, err
			}
			select {
			case <-ctx.Done():
				return false, nil
			case <-tick.C:
			}
		}
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if gone, err := waitGone(gctx, unix.SIGTERM); err != nil || gone {
		return first, err
	}
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer kcancel()
	gone, err := waitGone(kctx, unix.SIGKILL)
	if err != nil {
		return first, err
	}
	if !gone {
		left, _ := findMarked(marker, skipPgid)
		return first, fmt.Errorf("processes %v marked %s=%s survive SIGKILL", left, markerVar, marker)
	}
	return first, nil
}
