package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// rssKB reads VmRSS of pid in kB.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
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

// idleUsage is what a daemon costs while nothing happens, per node.
type idleUsage struct {
	RSSKB int // all processes of one node, averaged over the nodes
	// CPUPercent is utime+stime of one node's processes over the window,
	// in % of one core; SchedPercent the same from schedstat.
	CPUPercent   float64
	SchedPercent float64
	Procs        int // processes per node
}

// measureIdle samples every daemon process of both nodes over window.
func measureIdle(ctx context.Context, d daemon, window time.Duration) (idleUsage, error) {
	ticks := func() (uint64, uint64, int, error) {
		var total, sched uint64
		n := 0
		for _, node := range nodeNames {
			for _, pid := range d.PIDs(node) {
				st, err := readProcStat(pid)
				if err != nil {
					return 0, 0, 0, err
				}
				ns, err := cpuNS(pid)
				if err != nil {
					return 0, 0, 0, err
				}
				total += st.utime + st.stim
				sched += ns
				n++
			}
		}
		return total, sched, n, nil
	}
	t0, s0, n0, err := ticks()
	if err != nil {
		return idleUsage{}, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return idleUsage{}, ctx.Err()
	}
	t1, s1, n1, err := ticks()
	if err != nil {
		return idleUsage{}, err
	}
	if n0 != n1 {
		return idleUsage{}, fmt.Errorf("%s: the number of processes changed while idle (%d -> %d)", d.Name(), n0, n1)
	}
	elapsed := time.Since(start).Seconds()
	rss := 0
	for _, node := range nodeNames {
		for _, pid := range d.PIDs(node) {
			kb, err := rssKB(pid)
			if err != nil {
				return idleUsage{}, err
			}
			rss += kb
		}
	}
	nodes := len(nodeNames)
	return idleUsage{RSSKB: rss / nodes, Procs: n1 / nodes,
		CPUPercent:   float64(t1-t0) / clockTicks / elapsed * 100 / float64(nodes),
		SchedPercent: float64(s1-s0) / 1e9 / elapsed * 100 / float64(nodes)}, nil
}
