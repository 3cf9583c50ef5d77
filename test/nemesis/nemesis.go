// Package nemesis is a randomized fault run (Jepsen's nemesis, Pacemaker's
// CTS) against real `harules run` agents in network namespaces.
//
// Run builds a cluster with internal/clustertest (two nodes on two
// heartbeat paths with the guards docs/policy.md recommends, or three nodes
// with quorum()), then applies a seeded random schedule of faults, each
// followed by heal and settle. A checker samples every 20 ms which nodes
// hold the VIP and run the service, watches ARP replies for two MACs, and
// sends client requests through the VIP; after every settle it checks that
// exactly one node holds the VIP, runs the service, and answers. Faults
// outside the documented guarantees are counted apart (see README.md).
package nemesis

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// Config shapes a run.
type Config struct {
	// Nodes is 2 (gateway guard, self-fence, takeover delay) or 3 (quorum).
	Nodes  int
	Faults int
	Seed   uint64
	// Interval and Misses of both heartbeat paths (default 100ms x 5, the
	// docs' example misses).
	Interval time.Duration
	Misses   int
	// FailureTimeout of the policy (default 10s).
	FailureTimeout time.Duration
	// SettleTimeout bounds the wait for a right state after a heal
	// (default 20s); StableFor is how long the state must stay right
	// (default 1s).
	SettleTimeout time.Duration
	StableFor     time.Duration
	// Kinds restricts the schedule to these fault kinds (default: all).
	Kinds []string
	// LogDir, when set, receives a copy of every agent's log at the end.
	LogDir string
	// Logf receives one line per fault (default: the test's Logf).
	Logf func(format string, args ...any)
}

func (c *Config) defaults(t testing.TB) {
	if c.Nodes == 0 {
		c.Nodes = 2
	}
	if c.Faults == 0 {
		c.Faults = 30
	}
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Misses == 0 {
		c.Misses = 5
	}
	if c.FailureTimeout == 0 {
		c.FailureTimeout = 10 * time.Second
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 20 * time.Second
	}
	if c.StableFor == 0 {
		c.StableFor = time.Second
	}
	if c.Logf == nil {
		c.Logf = t.Logf
	}
}

// Sampling intervals of the checker.
const (
	sampleEvery = 20 * time.Millisecond
	arpEvery    = 20 * time.Millisecond
	probeEvery  = 10 * time.Millisecond
)

// harnessAbort is the panic softTB raises instead of ending the test, so
// that a clustertest helper failing inside one fault (an agent that does
// not answer after a restart) is recorded for that fault and the run goes
// on.
type harnessAbort struct{ msg string }

// softTB passes everything to the test but turns Fatal into harnessAbort
// and Error into a log line.
type softTB struct{ testing.TB }

func (s softTB) Fatalf(format string, args ...any) { panic(harnessAbort{fmt.Sprintf(format, args...)}) }
func (s softTB) Fatal(args ...any)                 { panic(harnessAbort{fmt.Sprint(args...)}) }
func (s softTB) FailNow()                          { panic(harnessAbort{"FailNow"}) }
func (s softTB) Errorf(format string, args ...any) {
	s.TB.Logf("nemesis harness: "+format, args...)
}
func (s softTB) Error(args ...any) { s.TB.Log(append([]any{"nemesis harness:"}, args...)...) }

// catch runs fn and returns the harness error it raised, if any.
func catch(fn func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			if a, ok := v.(harnessAbort); ok {
				msg = a.msg
				return
			}
			panic(v)
		}
	}()
	fn()
	return ""
}

type run struct {
	t       testing.TB
	cfg     Config
	c       *clustertest.Cluster
	rng     *rand.Rand
	ctl     string
	loss    string // "netem" or "nft"
	sampler *clustertest.OwnershipSampler
	arp     *clustertest.ARPWatcher
	prober  *clustertest.Prober
	svc     *serviceSampler
	cur     *FaultResult
	// paused is the node whose processes are stopped (SIGSTOP), if any.
	paused atomic.Pointer[string]
}

func (r *run) isPaused(node string) bool {
	p := r.paused.Load()
	return p != nil && *p == node
}

// Run executes one nemesis run and returns its report. It fails t only
// when the cluster cannot be built or brought back; violations are in the
// report (see Report.Violations).
func Run(t testing.TB, cfg Config) *Report {
	t.Helper()
	cfg.defaults(t)
	if cfg.Nodes < 2 || cfg.Nodes > 3 {
		t.Fatalf("nemesis: Nodes=%d, want 2 or 3", cfg.Nodes)
	}
	r := &run{t: softTB{t}, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	rep := &Report{Nodes: cfg.Nodes, Seed: cfg.Seed, Interval: cfg.Interval, Misses: cfg.Misses, Started: time.Now()}
	if msg := catch(r.setup); msg != "" {
		t.Fatalf("nemesis: setup: %s", msg)
	}
	rep.LossMode = r.loss
	pol, _ := os.ReadFile(r.c.PolicyPath)
	rep.Policy = string(pol)
	defer r.stopObservers()

	kinds := faultKinds(cfg.Nodes)
	if len(cfg.Kinds) > 0 {
		kinds = slices.DeleteFunc(append(kinds, selfTestKinds...), func(k faultKind) bool { return !slices.Contains(cfg.Kinds, k.name) })
		if len(kinds) == 0 {
			t.Fatalf("nemesis: no fault kind matches %v", cfg.Kinds)
		}
	}
	// The schedule deals the kinds like cards, a fresh shuffle per round:
	// every kind comes once in each len(kinds) faults, in random order.
	// The deck has its own generator, so the order of kinds depends on the
	// seed alone, not on how many draws the faults made (those depend on
	// the cluster's state).
	deckRNG := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	var deck []faultKind
	for i := 1; i <= cfg.Faults; i++ {
		if len(deck) == 0 {
			deck = slices.Clone(kinds)
			deckRNG.Shuffle(len(deck), func(a, b int) { deck[a], deck[b] = deck[b], deck[a] })
		}
		k := deck[0]
		deck = deck[1:]
		f := r.fault(i, k)
		rep.Faults = append(rep.Faults, *f)
		cfg.Logf("%s", f.Line())
		if f.WrongFinal != "" {
			if msg := r.repair(); msg != "" {
				rep.Aborted = fmt.Sprintf("after fault #%d the cluster could not be brought back: %s", i, msg)
				break
			}
		}
	}
	rep.Duration = time.Since(rep.Started)
	rep.summarize()
	return rep
}

func (r *run) setup() {
	r.c = clustertest.New(r.t, clustertest.Options{Nodes: r.cfg.Nodes})
	script, ctl, err := writeServiceScript(r.c.Dir)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	r.ctl = ctl
	r.c.WritePolicy(policyText(r.cfg.Nodes, r.cfg, script))
	lns, err := startApps(r.c, ctl, r.isPaused)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	r.t.Cleanup(func() {
		for _, l := range lns {
			l.Close()
		}
	})
	if r.cfg.LogDir != "" {
		// Registered after clustertest's cleanup, so it runs before the
		// cluster's directory is removed.
		r.t.Cleanup(r.copyLogs)
	}
	r.loss = r.lossMode()
	r.c.StartAll()
	if msg := r.waitStable(30 * time.Second); msg != "" {
		r.t.Fatalf("the cluster did not settle after start: %s", msg)
	}
	r.sampler = r.c.StartSampler(sampleEvery)
	r.arp = r.c.StartARPWatcher(arpEvery)
	r.prober = r.c.StartProber(probeEvery)
	r.svc = startServiceSampler(r.c, ctl, sampleEvery)
	r.t.Cleanup(r.stopObservers)
}

// copyLogs copies every agent's log to LogDir as NODE-of-Nnodes.log.
func (r *run) copyLogs() {
	if err := os.MkdirAll(r.cfg.LogDir, 0o755); err != nil {
		r.t.Logf("nemesis: log dir: %v", err)
		return
	}
	for _, n := range r.c.Nodes() {
		b, err := os.ReadFile(r.c.LogPath(n))
		if err != nil {
			continue
		}
		dst := filepath.Join(r.cfg.LogDir, fmt.Sprintf("%s-of-%dnodes.log", n, r.cfg.Nodes))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			r.t.Logf("nemesis: copy log: %v", err)
		}
	}
}

func (r *run) stopObservers() {
	if r.svc != nil {
		r.svc.Stop()
	}
	if r.prober != nil {
		r.prober.Stop()
	}
	if r.arp != nil {
		r.arp.Stop()
	}
	if r.sampler != nil {
		r.sampler.Stop()
	}
}

// lossMode finds how packet loss can be injected here: tc netem when the
// kernel has sch_netem (loss and delay), else nftables' numgen (loss only).
func (r *run) lossMode() string {
	n := r.c.Nodes()[0]
	if _, err := r.c.Lab.Exec(n, "tc", "qdisc", "add", "dev", "eth1", "root", "netem", "loss", "1%"); err == nil {
		r.c.Lab.MustExec(n, "tc", "qdisc", "del", "dev", "eth1", "root")
		return "netem"
	}
	if _, err := r.c.Lab.Exec(n, "nft", "add table inet nemesis; delete table inet nemesis"); err == nil {
		return "nft"
	}
	return ""
}

// fault applies one fault, heals it, waits for the settle and measures.
func (r *run) fault(i int, kind faultKind) *FaultResult {
	f := &FaultResult{Index: i, Kind: kind.name, Inside: true, Start: time.Now()}
	r.cur = f
	f.Holder = r.holder()
	var heal func()
	if msg := catch(func() { heal = kind.apply(r, f) }); msg != "" {
		f.Harness = append(f.Harness, "apply: "+msg)
	}
	if msg := catch(func() {
		if heal != nil {
			heal()
		}
		r.healAll()
	}); msg != "" {
		f.Harness = append(f.Harness, "heal: "+msg)
	}
	f.Healed = time.Now()
	var wrong string
	if msg := catch(func() { wrong = r.waitStable(r.cfg.SettleTimeout) }); msg != "" {
		wrong = "harness: " + msg
	}
	f.WrongFinal = wrong
	f.End = time.Now()
	r.measure(f)
	return f
}

// healAll undoes what any fault may have left: switch files, standby,
// stopped agents, crashed nodes.
func (r *run) healAll() {
	r.clearSwitches()
	for _, n := range r.c.Nodes() {
		if r.c.Crashed(n) {
			r.reboot(n)
		}
	}
	for _, n := range r.c.Nodes() {
		if !r.c.Running(n) {
			r.c.Start(n)
		}
	}
	for _, n := range r.c.Nodes() {
		if err := r.c.Online(n, n); err != nil {
			r.cur.Harness = append(r.cur.Harness, fmt.Sprintf("online %s: %v", n, err))
		}
	}
}

// reboot brings a crashed node back: a rebooted machine runs no service.
func (r *run) reboot(n string) {
	_ = os.Remove(filepath.Join(r.ctl, n, "running"))
	r.c.Recover(n)
}

func (r *run) clearSwitches() {
	for _, n := range r.c.Nodes() {
		for _, s := range []string{"slow-start", "slow-stop", "fail-start", "fail-stop"} {
			_ = os.Remove(filepath.Join(r.ctl, n, s))
		}
	}
}

// setSwitch writes a switch file the service script reads (see
// serviceScript).
func (r *run) setSwitch(node, name, content string) {
	d := filepath.Join(r.ctl, node)
	if err := os.MkdirAll(d, 0o755); err != nil {
		r.t.Fatalf("switch dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(d, name), []byte(content+"\n"), 0o644); err != nil {
		r.t.Fatalf("switch %s on %s: %v", name, node, err)
	}
}

// holder is the single node serving the VIP now, or "" when none or
// several.
func (r *run) holder() string {
	var h string
	if catch(func() {
		if v := r.c.VIPHolders(); len(v) == 1 {
			h = v[0]
		}
	}) != "" {
		return ""
	}
	return h
}

// state describes what is wrong with the cluster now, or "" when exactly
// one node holds the VIP and runs the service, every agent agrees, and the
// client's last requests were answered by that node.
func (r *run) state() string {
	nodes := r.c.Nodes()
	for _, n := range nodes {
		if !r.c.Running(n) {
			return "agent on " + n + " not running"
		}
	}
	vip := r.c.VIPHolders()
	if len(vip) != 1 {
		return fmt.Sprintf("VIP configured on %v", vip)
	}
	h := vip[0]
	var running []string
	for _, n := range nodes {
		if markerRunning(r.ctl, n) {
			running = append(running, n)
		}
	}
	if len(running) != 1 || running[0] != h {
		return fmt.Sprintf("VIP on %s, service running on %v", h, running)
	}
	for _, n := range nodes {
		if o := r.c.Owners(n, clustertest.Group); len(o) != 1 || o[0] != h {
			return fmt.Sprintf("VIP on %s, but %s reports holders %v", h, n, o)
		}
	}
	if r.prober != nil {
		s := r.prober.Samples()
		if len(s) < 3 {
			return "no client requests yet"
		}
		for _, x := range s[len(s)-3:] {
			if x.Node != h {
				return fmt.Sprintf("VIP on %s, client got %q (%s)", h, x.Node, x.Err)
			}
		}
	}
	return ""
}

// waitStable waits until state() stays right for StableFor; it returns the
// last wrong state when timeout passes first.
func (r *run) waitStable(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	var okSince time.Time
	last := "never checked"
	for {
		if s := r.state(); s == "" {
			if okSince.IsZero() {
				okSince = time.Now()
			}
			if time.Since(okSince) >= r.cfg.StableFor {
				return ""
			}
		} else {
			okSince, last = time.Time{}, s
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// repair brings a cluster left in a wrong state back to a known one (every
// node "rebooted", agents started) so the next fault starts clean. It
// returns an error message when even that does not settle.
func (r *run) repair() string {
	return catch(func() {
		for _, n := range r.c.Nodes() {
			r.c.Crash(n)
		}
		for _, n := range r.c.Nodes() {
			r.reboot(n)
			r.c.Lab.MustExec(n, "ip", "route", "flush", "type", "blackhole")
		}
		r.clearLoss()
		for _, n := range r.c.Nodes() {
			r.c.Start(n)
		}
		if msg := r.waitStable(60 * time.Second); msg != "" {
			r.t.Fatalf("%s", msg)
		}
	})
}

// measure counts what the checker saw between the fault's start and the
// end of its settle.
func (r *run) measure(f *FaultResult) {
	for _, s := range r.sampler.Report().Samples {
		if s.At.Before(f.Start) || s.At.After(f.End) {
			continue
		}
		if len(s.Serving()) > 1 {
			f.SplitBrain++
		}
		if len(s.Holders()) > 1 {
			f.DualConfigured++
		}
	}
	rounds := map[int]map[string]bool{}
	for _, x := range r.arp.Report().Replies {
		if x.Gratuitous || x.Round == 0 || x.At.Before(f.Start) || x.At.After(f.End) {
			continue
		}
		if rounds[x.Round] == nil {
			rounds[x.Round] = map[string]bool{}
		}
		rounds[x.Round][x.MAC] = true
	}
	for _, macs := range rounds {
		if len(macs) > 1 {
			f.DualMAC++
		}
	}
	for _, s := range r.svc.between(f.Start, f.End) {
		if len(s.Running) > 1 {
			f.DualService++
		}
	}
	f.Outage = outage(r.prober.Samples(), f.Start, f.End)
}

// outage is the longest time in [from, to] between two answered client
// requests (from the last answer before from, up to to).
func outage(samples []clustertest.Sample, from, to time.Time) time.Duration {
	prev := from
	for _, s := range samples {
		if s.Node != "" && !s.At.After(from) {
			prev = s.At
		}
	}
	var worst time.Duration
	for _, s := range samples {
		if s.Node == "" || !s.At.After(from) || s.At.After(to) {
			continue
		}
		worst = max(worst, s.At.Sub(prev))
		prev = s.At
	}
	return max(worst, to.Sub(prev))
}

// others returns the nodes except n.
func (r *run) others(n string) []string {
	return slices.DeleteFunc(r.c.Nodes(), func(x string) bool { return x == n })
}

func (r *run) pick(nodes []string) string { return nodes[r.rng.IntN(len(nodes))] }

// pickTarget prefers the holder (most faults matter most there).
func (r *run) pickTarget(holder string) string {
	if holder != "" && r.rng.Float64() < 0.6 {
		return holder
	}
	return r.pick(r.c.Nodes())
}

// between returns a random duration in [lo, hi] (lo when hi <= lo).
func (r *run) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)+1))
}

// operator sends one random operator request (move, standby, online)
// through a random running node and records it.
func (r *run) operator() {
	nodes := r.c.Nodes()
	var via []string
	for _, n := range nodes {
		if r.c.Running(n) && !r.c.Crashed(n) {
			via = append(via, n)
		}
	}
	if len(via) == 0 {
		return
	}
	v := r.pick(via)
	n := r.pick(nodes)
	var op string
	var err error
	switch r.rng.IntN(3) {
	case 0:
		op, err = "move->"+n, r.c.Move(v, clustertest.Group, n)
	case 1:
		op, err = "standby "+n, r.c.Standby(v, n)
	default:
		op, err = "online "+n, r.c.Online(v, n)
	}
	if err != nil {
		op += " (" + firstLine(err.Error()) + ")"
	}
	r.cur.Operator = append(r.cur.Operator, op+" via "+v)
}

// hold lets a fault last d; with probability 0.3 an operator request is
// sent at a random moment of it.
func (r *run) hold(d time.Duration) {
	// A fault whose own steps took longer than planned (operator requests
	// that waited on a blocked agent) holds no more.
	d = max(d, 0)
	if r.rng.Float64() < 0.3 {
		first := r.between(0, d)
		time.Sleep(first)
		r.operator()
		time.Sleep(d - first)
		return
	}
	time.Sleep(d)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
