package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

type cellKey struct {
	daemon, scenario string
	interval         time.Duration
}

type idleKey struct {
	daemon   string
	interval time.Duration
}

// report collects the runs and renders the markdown tables.
type report struct {
	started, finished time.Time
	cfg               config
	cells             map[cellKey][]runResult
	idle              map[idleKey]idleUsage
}

func (r *report) add(daemon, scenario string, ivl time.Duration, res runResult) {
	if r.cells == nil {
		r.cells = map[cellKey][]runResult{}
	}
	k := cellKey{daemon, scenario, ivl}
	r.cells[k] = append(r.cells[k], res)
}

func (r *report) addIdle(daemon string, ivl time.Duration, u idleUsage) {
	if r.idle == nil {
		r.idle = map[idleKey]idleUsage{}
	}
	r.idle[idleKey{daemon, ivl}] = u
}

// gapStats summarises the successful runs of a cell.
type gapStats struct {
	n, failed, twoMACs, leftover int
	median, min, max             time.Duration
}

func summarize(rs []runResult) gapStats {
	var s gapStats
	var gaps []time.Duration
	for _, r := range rs {
		if r.Err != nil && r.Gap == 0 {
			s.failed++
			continue
		}
		gaps = append(gaps, r.Gap)
		if r.TwoMACs {
			s.twoMACs++
		}
		if r.Leftover {
			s.leftover++
		}
	}
	s.n = len(gaps)
	if s.n == 0 {
		return s
	}
	slices.Sort(gaps)
	s.min, s.max = gaps[0], gaps[s.n-1]
	if s.n%2 == 1 {
		s.median = gaps[s.n/2]
	} else {
		s.median = (gaps[s.n/2-1] + gaps[s.n/2]) / 2
	}
	return s
}

// ms formats a gap in milliseconds: one decimal below 100 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 100 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func (r *report) markdown() string {
	var b strings.Builder
	if r.cfg.runs > 0 {
		r.gapTables(&b)
	}
	r.idleTables(&b)
	if r.cfg.runs > 0 {
		r.runsList(&b)
	}
	fmt.Fprintf(&b, "\n## Environment\n\n%s", environment(r))
	return b.String()
}

func (r *report) gapTables(b *strings.Builder) {
	daemons := r.cfg.daemons
	fmt.Fprintf(b, "## Client-visible failover gap\n\n")
	if r.cfg.ipv6 {
		fmt.Fprintf(b, "IPv6 (-ipv6): VIP %s, heartbeats and client probes over IPv6, the observer asks with neighbour solicitations instead of ARP.\n\n", vipCIDR)
	}
	fmt.Fprintf(b, "Gap = last answer from the old holder to first answer from the new one, client probing the VIP every 1 ms (UDP echo served by both nodes). Heartbeat/advert interval with 3 misses.\n\n")
	head := "| scenario | interval |"
	sep := "|---|---|"
	for _, d := range daemons {
		head += fmt.Sprintf(" %s median | min | max | runs |", d)
		sep += "---:|---:|---:|---:|"
	}
	for _, d := range daemons {
		head += fmt.Sprintf(" %s 2 MACs / VIP left |", d)
		sep += "---|"
	}
	fmt.Fprintln(b, head)
	fmt.Fprintln(b, sep)
	for _, sc := range r.cfg.scenarios {
		for _, ivl := range r.cfg.intervals {
			row := fmt.Sprintf("| %s | %s |", sc, ivl)
			var extra string
			for _, d := range daemons {
				s := summarize(r.cells[cellKey{d, sc, ivl}])
				if s.n == 0 {
					row += fmt.Sprintf(" - | - | - | 0 (%d failed) |", s.failed)
					extra += " - |"
					continue
				}
				runs := fmt.Sprint(s.n)
				if s.failed > 0 {
					runs += fmt.Sprintf(" (+%d failed)", s.failed)
				}
				row += fmt.Sprintf(" %s | %s | %s | %s |", ms(s.median), ms(s.min), ms(s.max), runs)
				left := fmt.Sprint(s.leftover)
				if sc == scCrash {
					left = "n/a"
				}
				extra += fmt.Sprintf(" %d/%d / %s |", s.twoMACs, s.n, left)
			}
			fmt.Fprintln(b, row+extra)
		}
	}
	fmt.Fprintf(b, "\n\"2 MACs\": runs in which two MACs answered ARP for the VIP after the new holder's first answer (observer on the lan asking every 10 ms). \"VIP left\": runs in which the old holder still had the VIP configured when the run ended.\n")

}

func (r *report) idleTables(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Idle cost per node (both daemons settled, %s window)\n\n", r.cfg.idle)
	fmt.Fprintln(b, "RSS is VmRSS summed over the node's processes: anon = heap and stacks (private), file = the binary and libraries (shared page cache: counted once per process here); PSS splits shared pages among the processes mapping them.")
	fmt.Fprintln(b)
	fmt.Fprintln(b, "| daemon | interval | processes | RSS (VmRSS, sum) | anon | file | PSS | CPU utime+stime (% of one core) | CPU schedstat (% of one core) | wakeups/s |")
	fmt.Fprintln(b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, ivl := range r.cfg.intervals {
		for _, d := range r.cfg.daemons {
			u, ok := r.idle[idleKey{d, ivl}]
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s | %s | %.2f %% | %.3f %% | %.0f |\n", d, ivl, u.Procs, mb(u.Mem.RSS), mb(u.Mem.Anon), mb(u.Mem.File), mb(u.Mem.PSS), u.CPUPercent, u.SchedPercent, u.WakeupsPerSec)
		}
	}
	fmt.Fprintf(b, "\nPer process (node1 and node2):\n\n")
	fmt.Fprintln(b, "| daemon | interval | node | process | RSS | anon | file | PSS | CPU schedstat | wakeups/s |")
	fmt.Fprintln(b, "|---|---|---|---|---:|---:|---:|---:|---:|---:|")
	for _, ivl := range r.cfg.intervals {
		for _, d := range r.cfg.daemons {
			for _, p := range r.idle[idleKey{d, ivl}].PerProc {
				fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.3f %% | %.0f |\n", d, ivl, p.Node, p.Role, mb(p.Mem.RSS), mb(p.Mem.Anon), mb(p.Mem.File), mb(p.Mem.PSS), p.SchedPercent, p.WakeupsPerSec)
			}
		}
	}
}

func (r *report) runsList(b *strings.Builder) {
	daemons := r.cfg.daemons
	fmt.Fprintf(b, "\n## Runs\n\n")
	for _, sc := range r.cfg.scenarios {
		for _, ivl := range r.cfg.intervals {
			for _, d := range daemons {
				var vals []string
				for _, res := range r.cells[cellKey{d, sc, ivl}] {
					if res.Err != nil && res.Gap == 0 {
						vals = append(vals, "FAILED("+res.Err.Error()+")")
						continue
					}
					vals = append(vals, fmt.Sprintf("%.1f", float64(res.Gap)/float64(time.Millisecond)))
				}
				fmt.Fprintf(b, "- %s %s %s (ms): %s\n", d, sc, ivl, strings.Join(vals, " "))
			}
		}
	}
}

// mb formats kB as MB with one decimal.
func mb(kb int) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func environment(r *report) string {
	var b strings.Builder
	cmdOut := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	fmt.Fprintf(&b, "- date: %s to %s (UTC)\n", r.started.Format(time.RFC3339), r.finished.Format(time.RFC3339))
	fmt.Fprintf(&b, "- command: `%s`\n", strings.Join(append([]string{"go run ./bench/failover"}, os.Args[1:]...), " "))
	fmt.Fprintf(&b, "- machine: %s, %d CPUs, kernel %s\n", cpu, runtime.NumCPU(), cmdOut("uname", "-r"))
	fmt.Fprintf(&b, "- harules: %s (%s)\n", cmdOut("git", "describe", "--always", "--dirty"), runtime.Version())
	if slices.Contains(r.cfg.daemons, "keepalived") {
		fmt.Fprintf(&b, "- keepalived: %s\n", cmdOut("keepalived", "--version"))
	}
	return b.String()
}
