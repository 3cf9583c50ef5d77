// Command failover measures the client-visible gap of a VIP failover with
// harules and with keepalived on the same network-namespace topology: two
// HA nodes and a client on a "lan" bridge, the nodes also on a "backnet"
// bridge. A UDP echo service runs on both nodes outside HA (as with
// keepalived); the client probes the VIP every millisecond and the gap of
// a run is the time between the last answer of the old holder and the
// first answer of the new one.
//
// Scenarios, each at every heartbeat interval (3 misses; keepalived: VRRPv3
// advert_int, which gives the same 3-advert master-down timer plus skew):
//
//	crash       the holder's links go down and its daemon is killed (a node crash)
//	agent-kill  kill -9 of the deciding process: harules' agent child (its
//	            supervisor stays), every keepalived process
//	switchover  planned: `harules move vip OTHER`; keepalived has no move, so
//	            SIGTERM of the master (it sends a priority 0 advert)
//
// An observer on the lan asks "who has the VIP" every 10 ms during each run
// and counts the MACs that answer after the new holder took over: two MACs
// mean the old node kept the address (keepalived after kill -9).
//
// Needs root, iproute2 and keepalived (apt-get install keepalived):
//
//	go run ./bench/failover -runs 10 -intervals 1s,100ms,10ms -out results.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scenario names.
const (
	scCrash      = "crash"
	scAgentKill  = "agent-kill"
	scSwitchover = "switchover"
)

type config struct {
	runs      int
	intervals []time.Duration
	scenarios []string
	daemons   []string
	out       string
	bin       string
	idle      time.Duration
	keep      bool
	logLevel  string
	// hold keeps each daemon running this long after its idle
	// measurement (PIDs logged), to attach perf or read /proc by hand.
	hold time.Duration
	// harulesEnv is added to the environment of `harules run`.
	harulesEnv []string
	// harulesFlags are added to the command line of `harules run`.
	harulesFlags []string
	// ipv6 runs the whole benchmark over IPv6 (useIPv6).
	ipv6 bool
}

func main() {
	var cfg config
	var intervals, scenarios, daemons string
	flag.IntVar(&cfg.runs, "runs", 10, "runs per cell (scenario x interval x daemon); 0 measures only the idle cost")
	flag.StringVar(&intervals, "intervals", "1s,100ms,10ms", "heartbeat / advert intervals, comma separated")
	flag.StringVar(&scenarios, "scenarios", "crash,agent-kill,switchover", "scenarios, comma separated")
	flag.StringVar(&daemons, "daemons", "harules,keepalived", "HA managers to measure, comma separated")
	flag.StringVar(&cfg.out, "out", "", "also write the markdown report to this file")
	flag.StringVar(&cfg.bin, "harules", "", "prebuilt harules binary (default: go build ./cmd/harules)")
	flag.DurationVar(&cfg.idle, "idle", 10*time.Second, "idle window for the CPU measurement")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (configs, daemon logs)")
	flag.StringVar(&cfg.logLevel, "harules-log-level", "info", "log level of harules run (debug shows the ARP probe's timing)")
	flag.DurationVar(&cfg.hold, "hold", 0, "after the idle window, keep the settled daemons running this long (PIDs are logged) for perf or /proc")
	var harulesEnv, harulesFlags string
	flag.StringVar(&harulesFlags, "harules-flags", "", "extra flags of harules run, comma separated (e.g. --web-listen=127.0.0.1:9100)")
	flag.StringVar(&harulesEnv, "harules-env", "", "extra environment of harules run, comma separated NAME=VALUE (e.g. GODEBUG=gctrace=1,HARULES_GOGC=off)")
	flag.BoolVar(&cfg.ipv6, "ipv6", false, "IPv6 everywhere: addresses in 2001:db8::/32, an IPv6 VIP (neighbour advertisements) and IPv6 heartbeats (harules only)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for _, s := range strings.Split(intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 10*time.Millisecond {
			fatal(fmt.Errorf("-intervals: %q is not a duration of at least 10ms (keepalived's floor)", s))
		}
		cfg.intervals = append(cfg.intervals, d)
	}
	for _, s := range strings.Split(scenarios, ",") {
		if !slices.Contains([]string{scCrash, scAgentKill, scSwitchover}, s) {
			fatal(fmt.Errorf("-scenarios: unknown scenario %q (crash, agent-kill, switchover)", s))
		}
		cfg.scenarios = append(cfg.scenarios, s)
	}
	for _, s := range strings.Split(daemons, ",") {
		if s != "harules" && s != "keepalived" {
			fatal(fmt.Errorf("-daemons: unknown daemon %q (harules, keepalived)", s))
		}
		cfg.daemons = append(cfg.daemons, s)
	}
	if cfg.ipv6 {
		if slices.Contains(cfg.daemons, "keepalived") {
			fatal(errors.New("-ipv6 measures harules only (the keepalived configuration here is IPv4): add -daemons harules"))
		}
		useIPv6()
	}
	if cfg.runs < 0 {
		fatal(errors.New("-runs must be at least 0"))
	}
	if harulesFlags != "" {
		cfg.harulesFlags = strings.Split(harulesFlags, ",")
	}
	if harulesEnv != "" {
		for _, kv := range strings.Split(harulesEnv, ",") {
			if !strings.Contains(kv, "=") {
				fatal(fmt.Errorf("-harules-env: %q is not NAME=VALUE", kv))
			}
			cfg.harulesEnv = append(cfg.harulesEnv, kv)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, os.Stdout); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/failover:", err)
	os.Exit(1)
}

func run(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces and runs HA daemons in them")
	}
	for _, tool := range []string{"ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: apt-get install iproute2", tool)
		}
	}
	if slices.Contains(cfg.daemons, "keepalived") {
		if _, err := exec.LookPath("keepalived"); err != nil {
			return errors.New("keepalived is missing: apt-get install keepalived (or -daemons harules)")
		}
	}
	work, err := os.MkdirTemp("", "hrbf-")
	if err != nil {
		return err
	}
	if cfg.keep {
		log.Info("work directory kept", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	if slices.Contains(cfg.daemons, "harules") && cfg.bin == "" {
		cfg.bin = filepath.Join(work, "harules")
		log.Info("building harules", "out", cfg.bin)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", cfg.bin, "github.com/harules/harules/cmd/harules").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/harules: %v: %s", err, out)
		}
	}

	topo, err := newTopology(ctx)
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	defer topo.close()
	b := &bench{cfg: cfg, log: log, topo: topo}
	for i, node := range nodeNames {
		e, err := startEcho(topo.ns[node], byte(i))
		if err != nil {
			return err
		}
		defer e.close()
	}
	if b.prober, err = startProber(topo.ns["client"], time.Millisecond); err != nil {
		return err
	}
	defer b.prober.close()
	if b.arp, err = startObserver(topo.ns["observer"], 10*time.Millisecond); err != nil {
		return err
	}
	defer b.arp.close()

	rep := &report{started: time.Now().UTC(), cfg: cfg}
	for _, ivl := range cfg.intervals {
		for _, name := range cfg.daemons {
			var d daemon
			if name == "harules" {
				d = newHarules(cfg.bin, cfg.logLevel, cfg.harulesEnv, cfg.harulesFlags, filepath.Join(work, "harules"), topo)
			} else {
				d = newKeepalived(filepath.Join(work, "keepalived"), topo)
			}
			if err := b.measureDaemon(ctx, d, ivl, rep); err != nil {
				return fmt.Errorf("%s at %s: %w", name, ivl, err)
			}
		}
	}
	rep.finished = time.Now().UTC()
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	cfg    config
	log    *slog.Logger
	topo   *topology
	prober *prober
	arp    observer
}

// runResult is one measured failover.
type runResult struct {
	Gap time.Duration
	// TwoMACs: more than one MAC answered ARP for the VIP after the new
	// holder's first answer.
	TwoMACs bool
	// MACs is how many distinct MACs answered the observer after the new
	// holder's first answer (1 when the observer works and all is well).
	MACs int
	// Leftover: the old holder still had the VIP configured at the end of
	// the run (not meaningful for a crash: that node is gone).
	Leftover bool
	Err      error
}

func (b *bench) measureDaemon(ctx context.Context, d daemon, ivl time.Duration, rep *report) error {
	log := b.log.With("daemon", d.Name(), "interval", ivl)
	if err := d.Configure(ivl); err != nil {
		return err
	}
	defer b.stopAll(d)
	for _, node := range nodeNames {
		if err := b.topo.dropVIP(ctx, node); err != nil {
			return err
		}
		if err := d.Start(ctx, node); err != nil {
			return err
		}
	}
	if _, err := b.waitSteady(ctx, d, ivl); err != nil {
		return err
	}
	usage, err := measureIdle(ctx, d, b.cfg.idle)
	if err != nil {
		return err
	}
	log.Info("idle", "rss_kb_per_node", usage.RSSKB, "cpu_percent_per_node", fmt.Sprintf("%.2f", usage.CPUPercent), "cpu_sched_percent_per_node", fmt.Sprintf("%.3f", usage.SchedPercent))
	for _, p := range usage.PerProc {
		log.Info("idle process", "node", p.Node, "role", p.Role, "pid", p.PID, "rss_kb", p.Mem.RSS, "anon_kb", p.Mem.Anon,
			"file_kb", p.Mem.File, "pss_kb", p.Mem.PSS, "cpu_sched_percent", fmt.Sprintf("%.3f", p.SchedPercent), "wakeups_per_sec", fmt.Sprintf("%.0f", p.WakeupsPerSec))
	}
	rep.addIdle(d.Name(), ivl, usage)
	if b.cfg.hold > 0 {
		log.Info("holding the settled daemons", "for", b.cfg.hold)
		select {
		case <-time.After(b.cfg.hold):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, sc := range b.cfg.scenarios {
		for i := 0; i < b.cfg.runs; i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r := b.runOnce(ctx, d, sc, ivl)
			if r.Err != nil {
				log.Error("run failed; restarting both nodes", "scenario", sc, "run", i+1, "error", r.Err)
				if err := b.resetAll(ctx, d); err != nil {
					return fmt.Errorf("reset after a failed run: %w", err)
				}
			} else {
				log.Info("run", "scenario", sc, "run", i+1, "gap", r.Gap, "two_macs", r.TwoMACs, "answering_macs", r.MACs, "leftover", r.Leftover)
			}
			rep.add(d.Name(), sc, ivl, r)
		}
	}
	return nil
}

func peerOf(node string) string {
	if node == nodeNames[0] {
		return nodeNames[1]
	}
	return nodeNames[0]
}

func nodeIndex(node string) int { return slices.Index(nodeNames, node) }

// waitSteady waits until exactly one node holds the VIP (the daemon's home
// node if it has one), the client gets answers from it, and the daemon
// reports itself settled, continuously for a few heartbeat intervals.
func (b *bench) waitSteady(ctx context.Context, d daemon, ivl time.Duration) (string, error) {
	settle := max(3*ivl, 300*time.Millisecond)
	deadline := time.Now().Add(90*time.Second + 20*ivl)
	var since time.Time
	var stableHolder string
	lastErr := errNotSteady
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		holder, err := b.steadyOnce(ctx, d)
		if err != nil || holder != stableHolder {
			since, stableHolder = time.Time{}, holder
			if err != nil {
				lastErr = err
			}
		} else if since.IsZero() {
			since = time.Now()
		} else if time.Since(since) >= settle {
			return holder, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("%s did not settle: %w", d.Name(), lastErr)
}

func (b *bench) steadyOnce(ctx context.Context, d daemon) (string, error) {
	holders, err := b.topo.vipHolders(ctx)
	if err != nil {
		return "", err
	}
	if len(holders) != 1 {
		return "", fmt.Errorf("%w: VIP held by %v", errNotSteady, holders)
	}
	h := holders[0]
	if d.Home() != "" && h != d.Home() {
		return "", fmt.Errorf("%w: VIP on %s, waiting for it to return to %s", errNotSteady, h, d.Home())
	}
	if err := d.Steady(ctx, h); err != nil {
		return "", err
	}
	last, ok := b.prober.last()
	if !ok || last.node != nodeIndex(h) || time.Since(last.at) > 50*time.Millisecond {
		return "", fmt.Errorf("%w: the client gets no answers from %s", errNotSteady, h)
	}
	return h, nil
}

func (b *bench) runOnce(ctx context.Context, d daemon, sc string, ivl time.Duration) runResult {
	holder, err := b.waitSteady(ctx, d, ivl)
	if err != nil {
		return runResult{Err: err}
	}
	other := peerOf(holder)
	b.prober.reset()
	b.arp.reset()
	time.Sleep(50 * time.Millisecond) // answers from the holder before the event

	switch sc {
	case scCrash:
		err = b.topo.setLinks(ctx, holder, false)
		if err == nil {
			err = d.KillAll(ctx, holder)
		}
	case scAgentKill:
		err = d.KillAgent(ctx, holder)
	case scSwitchover:
		err = d.Switchover(ctx, holder, other)
	}
	if err != nil {
		return runResult{Err: fmt.Errorf("%s on %s: %w", sc, holder, err)}
	}
	// Wait for the new holder's first answer, then watch a little longer
	// for a second MAC answering ARP.
	deadline := time.Now().Add(30*time.Second + 30*ivl)
	for {
		if last, ok := b.prober.last(); ok && last.node == nodeIndex(other) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return runResult{Err: fmt.Errorf("%s: no answer from %s within %s", sc, other, 30*time.Second+30*ivl)}
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(max(300*time.Millisecond, 2*ivl))
	gap, firstNew, ok := clientGap(b.prober.snapshot(), nodeIndex(holder), nodeIndex(other))
	if !ok {
		return runResult{Err: fmt.Errorf("%s: no switch from %s to %s in the client's answers", sc, holder, other)}
	}
	macs := len(b.arp.macsSince(firstNew))
	res := runResult{Gap: gap, TwoMACs: macs > 1, MACs: macs}
	if sc != scCrash {
		res.Leftover, _ = b.topo.hasVIP(ctx, holder)
	}
	res.Err = b.recoverNode(ctx, d, sc, holder)
	return res
}

// recoverNode brings the node that lost the VIP back as a standby: a crashed
// node reboots (no VIP, links up, daemon started), a killed daemon is
// restarted after the VIP it may have left is removed, a stopped keepalived
// is started again.
func (b *bench) recoverNode(ctx context.Context, d daemon, sc, node string) error {
	if sc == scSwitchover && d.Running(node) {
		return nil // harules: the old holder stays up as the standby
	}
	if d.Running(node) {
		if err := d.KillAll(ctx, node); err != nil {
			return err
		}
	}
	if err := b.topo.dropVIP(ctx, node); err != nil {
		return err
	}
	if sc == scCrash {
		if err := b.topo.setLinks(ctx, node, true); err != nil {
			return err
		}
	}
	return d.Start(ctx, node)
}

// resetAll restarts both nodes from scratch after a failed run.
func (b *bench) resetAll(ctx context.Context, d daemon) error {
	b.stopAll(d)
	for _, node := range nodeNames {
		if err := b.topo.dropVIP(ctx, node); err != nil {
			return err
		}
		if err := b.topo.setLinks(ctx, node, true); err != nil {
			return err
		}
		if err := d.Start(ctx, node); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) stopAll(d daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, node := range nodeNames {
		if d.Running(node) {
			if err := d.Stop(ctx, node); err != nil {
				b.log.Warn("stop", "daemon", d.Name(), "node", node, "error", err)
			}
		}
		_ = b.topo.dropVIP(ctx, node)
	}
}
