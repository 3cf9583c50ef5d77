package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

type procStat struct {
	state       string
	utime, stim uint64 // clock ticks
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces; fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return procStat{state: f[0], utime: ut, stim: st}, nil
}

// cpuNS is the CPU time of every thread of pid in nanoseconds, from
// /proc/PID/task/*/schedstat (finer than the 10 ms ticks of utime+stime).
func cpuNS(pid int) (uint64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseUint(f[0], 10, 64)
			total += ns
		}
	}
	return total, nil
}

// wakeupsOf counts the voluntary context switches of every thread of pid:
// a thread that blocks (to sleep until a timer, a packet or a futex wakes
// it) switches out voluntarily once, so the count is the daemon's wakeups,
// a measure of idle work that does not depend on how busy the machine is
// (preemptions by other processes are the nonvoluntary switches, left out).
func wakeupsOf(pid int) (uint64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		var vol int
		parseKB(string(b), map[string]*int{"voluntary_ctxt_switches:": &vol})
		total += uint64(vol)
	}
	return total, nil
}

// memInfo is the memory of one process in kB: VmRSS split into anonymous
// (heap, stacks: private to the process) and file-backed pages (the
// binary's text and data, shared libraries: shared with every process
// mapping the same file), and PSS, which divides shared pages among the
// processes that map them.
type memInfo struct {
	RSS, Anon, File, PSS int
}

// readMem reads /proc/PID/status and /proc/PID/smaps_rollup.
func readMem(pid int) (memInfo, error) {
	var m memInfo
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	parseKB(string(b), fields)
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		parseKB(string(b), map[string]*int{"Pss:": &m.PSS})
	}
	return m, nil
}

// parseKB fills the "Name:   123 kB" lines of text named in fields.
func parseKB(text string, fields map[string]*int) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if dst, ok := fields[f[0]]; ok {
			*dst, _ = strconv.Atoi(f[1])
		}
	}
}

func (m *memInfo) add(o memInfo) {
	m.RSS += o.RSS
	m.Anon += o.Anon
	m.File += o.File
	m.PSS += o.PSS
}

// procUsage is the idle cost of one process of a daemon.
type procUsage struct {
	Node string
	// Role is "parent" for the process the bench started (harules'
	// supervisor, keepalived's main process) and "child" otherwise
	// (harules' agent, keepalived's VRRP process).
	Role         string
	PID          int
	Mem          memInfo
	SchedPercent float64 // % of one core over the window, from schedstat
	// WakeupsPerSec is the wakeups of all threads per second (wakeupsOf).
	WakeupsPerSec float64
}

// idleUsage is what a daemon costs while nothing happens, per node.
type idleUsage struct {
	RSSKB int // all processes of one node, averaged over the nodes
	// Mem is the same split by kind (averaged over the nodes).
	Mem memInfo
	// CPUPercent is utime+stime of one node's processes over the window,
	// in % of one core; SchedPercent the same from schedstat.
	CPUPercent   float64
	SchedPercent float64
	// WakeupsPerSec is the wakeups of one node's threads per second
	// (see wakeupsOf).
	WakeupsPerSec float64
	Procs         int // processes per node
	// PerProc lists every process of both nodes.
	PerProc []procUsage
}

// measureIdle samples every daemon process of both nodes over window.
func measureIdle(ctx context.Context, d daemon, window time.Duration) (idleUsage, error) {
	type sample struct {
		node    string
		pid     int
		ticks   uint64
		ns      uint64
		wakeups uint64
	}
	take := func() ([]sample, error) {
		var out []sample
		for _, node := range nodeNames {
			for _, pid := range d.PIDs(node) {
				st, err := readProcStat(pid)
				if err != nil {
					return nil, err
				}
				ns, err := cpuNS(pid)
				if err != nil {
					return nil, err
				}
				sw, err := wakeupsOf(pid)
				if err != nil {
					return nil, err
				}
				out = append(out, sample{node, pid, st.utime + st.stim, ns, sw})
			}
		}
		return out, nil
	}
	s0, err := take()
	if err != nil {
		return idleUsage{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return idleUsage{}, ctx.Err()
	}
	s1, err := take()
	if err != nil {
		return idleUsage{}, err
	}
	elapsed := time.Since(start).Seconds()
	if len(s0) != len(s1) {
		return idleUsage{}, fmt.Errorf("%s: the number of processes changed while idle (%d -> %d)", d.Name(), len(s0), len(s1))
	}
	var u idleUsage
	var ticks, ns, wakeups uint64
	for i, b := range s1 {
		a := s0[i]
		if a.pid != b.pid {
			return idleUsage{}, fmt.Errorf("%s: a process was replaced while idle (%d -> %d)", d.Name(), a.pid, b.pid)
		}
		m, err := readMem(b.pid)
		if err != nil {
			return idleUsage{}, err
		}
		role := "child"
		if syscall.Getpgrp() != b.pid {
			if pgid, err := syscall.Getpgid(b.pid); err == nil && pgid == b.pid {
				role = "parent"
			}
		}
		u.PerProc = append(u.PerProc, procUsage{Node: b.node, Role: role, PID: b.pid, Mem: m,
			SchedPercent: float64(b.ns-a.ns) / 1e9 / elapsed * 100, WakeupsPerSec: float64(b.wakeups-a.wakeups) / elapsed})
		u.Mem.add(m)
		ticks += b.ticks - a.ticks
		ns += b.ns - a.ns
		wakeups += b.wakeups - a.wakeups
	}
	nodes := len(nodeNames)
	u.Procs = len(s1) / nodes
	u.Mem = memInfo{RSS: u.Mem.RSS / nodes, Anon: u.Mem.Anon / nodes, File: u.Mem.File / nodes, PSS: u.Mem.PSS / nodes}
	u.RSSKB = u.Mem.RSS
	u.CPUPercent = float64(ticks) / clockTicks / elapsed * 100 / float64(nodes)
	u.SchedPercent = float64(ns) / 1e9 / elapsed * 100 / float64(nodes)
	u.WakeupsPerSec = float64(wakeups) / elapsed / float64(nodes)
	return u, nil
}
