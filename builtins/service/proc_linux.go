package service

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// liveGroupMembers lists the processes of process group pgid that are not
// zombies, by scanning /proc. Zombies count as gone: they run nothing, and a
// zombie grandchild may never be reaped when PID 1 does not reap.
func liveGroupMembers(pgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, pgrp, ok := procStat(pid)
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procStat reads a process's state letter and process group from
// /proc/PID/stat; ok is false when the process is gone.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid pgrp ...": comm may contain spaces and ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 3 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(string(fields[2]))
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], pgrp, true
}

// waitExitNoReap blocks until process pid exits and describes how, without
// reaping it (WNOWAIT). Leaving the leader a zombie until the group has been
// killed keeps its PID, and so its process-group ID, from being reused: a
// later kill(-pgid) can never reach an unrelated process.
func waitExitNoReap(pid int) string {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Sprintf("process %d ended (%v)", pid, err)
		}
		return describeExit(&info)
	}
}

// describeExit decodes the SIGCHLD fields of a siginfo_t (si_code and
// si_status; the layout is the same on every 64-bit Linux).
func describeExit(info *unix.Siginfo) string {
	raw := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	status := int32(binary.NativeEndian.Uint32(raw[24:28]))
	switch info.Code {
	case 1: // CLD_EXITED
		return fmt.Sprintf("exited with status %d", status)
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return fmt.Sprintf("killed by signal %d (%s)", status, unix.SignalName(unix.Signal(status)))
	}
	return fmt.Sprintf("ended (si_code %d, status %d)", info.Code, status)
}

// stableThread starts commands from one goroutine locked to its OS thread
// for the life of the program. Pdeathsig fires when the *thread* that forked
// the child exits, not the process; a Go thread exits when a goroutine that
// called runtime.LockOSThread (netns code does) ends without unlocking, which
// would kill a service started from it. This thread never exits.
var stableThread struct {
	once sync.Once
	reqs chan startRequest
}

type startRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startOnStableThread(cmd *exec.Cmd) error {
	stableThread.once.Do(func() {
		stableThread.reqs = make(chan startRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the agent
			for req := range stableThread.reqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	stableThread.reqs <- startRequest{cmd, done}
	return <-done
}
