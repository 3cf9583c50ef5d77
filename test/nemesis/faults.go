package nemesis

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// faultKind is one kind of fault. apply injects it (and holds it for its
// duration), fills in the result's target, detail and classification, and
// returns what heals it (nil when nothing is left to heal).
type faultKind struct {
	name  string
	apply func(r *run, f *FaultResult) (heal func())
}

// selfTestKinds are not faults of harules but checks of the checker; they
// run only when named in Config.Kinds.
var selfTestKinds = []faultKind{{"inject-dual", injectDual}}

// faultKinds lists the kinds for a cluster size; the schedule draws from
// it uniformly.
func faultKinds(nodes int) []faultKind {
	kinds := []faultKind{
		{"kill-agent", killAgent},
		{"crash", crash},
		{"pause", pause},
		{"slow-start", slowStart},
		{"slow-stop", slowStop},
		{"fail-start", failStart},
		{"fail-stop", failStop},
		{"announce-fail", announceFail},
		{"restart", restart},
		{"second-run", secondRun},
		{"path-down", pathDown},
		{"isolate", isolate},
		{"isolate-gw", isolateKeepGateway},
		{"loss", loss},
		{"operator", operatorOnly},
	}
	if nodes >= 3 {
		kinds = append(kinds, faultKind{"partial", partialPartition})
	}
	return kinds
}

// detection is the documented detection time (misses x interval).
func (r *run) detection() time.Duration { return time.Duration(r.cfg.Misses) * r.cfg.Interval }

// killAgent: kill -9 of the agent child; its supervisor stays and must
// release, the peer takes over. Heal: start the agent again.
func killAgent(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	r.c.KillAgent(f.Target)
	r.hold(r.between(500*time.Millisecond, 3*time.Second))
	return func() {
		if err := r.c.WaitExit(f.Target, 20*time.Second); err == nil {
			f.Harness = append(f.Harness, "supervisor exited cleanly after its agent was killed")
		}
		r.c.Start(f.Target)
	}
}

// crash: power loss (links down, kill -9 of the whole process tree, the
// VIP left in the dead namespace). Heal: reboot and start.
func crash(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	r.c.Crash(f.Target)
	r.hold(r.between(time.Second, 4*time.Second))
	return func() {
		r.reboot(f.Target)
		r.c.Start(f.Target)
	}
}

// nsPIDs lists the processes of a node's namespace.
func (r *run) nsPIDs(node string) []int {
	out, err := exec.Command("ip", "netns", "pids", r.c.NS(node)).Output()
	if err != nil {
		r.t.Fatalf("ip netns pids %s: %v", node, err)
	}
	var pids []int
	for _, s := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(s); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// guardDelay is how long after declaring a peer dead the guards hold the
// takeover back: on two nodes the delay takeover_delay_guard derives (the
// gateway probe's fall x every + every + timeout, the default timeout being
// min(every, 1s), plus one heartbeat interval), quorum's settle on three.
func (r *run) guardDelay() time.Duration {
	if r.cfg.Nodes == 2 {
		return gatewayProbeFall*gatewayProbeEvery + gatewayProbeEvery + min(gatewayProbeEvery, time.Second) + r.cfg.Interval
	}
	return quorumSettle
}

// pause: SIGSTOP of every process of the node (a VM paused for a
// snapshot) for 0.2-5 s. docs/operations.md ("agent was paused") says a
// holder paused for longer than the detection time is taken over from and
// keeps the VIP until it wakes: outside the guarantees. The guards hold a
// takeover back for guardDelay after the detection, so only a pause longer
// than detection + guard delay - one interval (the last heartbeat can
// precede the pause by one interval) counts outside.
func pause(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	d := r.between(200*time.Millisecond, 5*time.Second)
	f.Detail = "paused " + d.Round(time.Millisecond).String()
	if limit := r.detection() + r.guardDelay() - r.cfg.Interval; f.Target == f.Holder && d > limit {
		f.Inside = false
		f.Outside = fmt.Sprintf("holder paused %s, longer than detection + guard delay %s", d.Round(time.Millisecond), limit)
	}
	pids := r.nsPIDs(f.Target)
	r.paused.Store(&f.Target)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
	time.Sleep(d)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	r.paused.Store(nil)
	return nil
}

// slowAction makes the service's start (on the move target) or stop (on
// the holder) take 1-3 s, moves the group, and queues more operator
// requests while the action runs.
func slowAction(r *run, f *FaultResult, action string) func() {
	src := f.Holder
	if src == "" {
		src = r.pick(r.c.Nodes())
	}
	dst := r.pick(r.others(src))
	f.Target = dst
	if action == "stop" {
		f.Target = src
	}
	d := r.between(time.Second, 3*time.Second)
	r.setSwitch(f.Target, "slow-"+action, strconv.FormatFloat(d.Seconds(), 'f', 2, 64))
	f.Detail = fmt.Sprintf("%s takes %s, move %s->%s", action, d.Round(10*time.Millisecond), src, dst)
	op := "move->" + dst
	if err := r.c.Move(r.pick(r.c.Nodes()), clustertest.Group, dst); err != nil {
		op += " (" + firstLine(err.Error()) + ")"
	}
	f.Operator = append(f.Operator, op)
	// Operator requests queue up while the action runs (the decision
	// loop may be blocked in it): mostly moves, back and forth.
	end := time.Now().Add(d)
	for range 1 + r.rng.IntN(3) {
		time.Sleep(r.between(100*time.Millisecond, d/2))
		if r.rng.IntN(3) > 0 {
			to := r.pick(r.c.Nodes())
			op := "move->" + to
			if err := r.c.Move(r.pick(r.c.Nodes()), clustertest.Group, to); err != nil {
				op += " (" + firstLine(err.Error()) + ")"
			}
			f.Operator = append(f.Operator, op)
		} else {
			r.operator()
		}
	}
	r.hold(time.Until(end) + time.Second)
	return r.clearSwitches
}

func slowStart(r *run, f *FaultResult) func() { return slowAction(r, f, "start") }
func slowStop(r *run, f *FaultResult) func()  { return slowAction(r, f, "stop") }

// failAction makes the service's start on the move target, or its stop on
// the holder, exit 1, and moves the group.
func failAction(r *run, f *FaultResult, action string) func() {
	src := f.Holder
	if src == "" {
		src = r.pick(r.c.Nodes())
	}
	dst := r.pick(r.others(src))
	f.Target = dst
	if action == "stop" {
		f.Target = src
	}
	r.setSwitch(f.Target, "fail-"+action, "1")
	f.Detail = fmt.Sprintf("%s fails, move %s->%s", action, src, dst)
	op := "move->" + dst
	if err := r.c.Move(r.pick(r.c.Nodes()), clustertest.Group, dst); err != nil {
		op += " (" + firstLine(err.Error()) + ")"
	}
	f.Operator = append(f.Operator, op)
	r.hold(r.between(2*time.Second, 4*time.Second))
	return r.clearSwitches
}

func failStart(r *run, f *FaultResult) func() { return failAction(r, f, "start") }
func failStop(r *run, f *FaultResult) func()  { return failAction(r, f, "stop") }

// announceFail: the move target's lan link goes down just before the
// group is moved there, so adding the VIP works but announcing it fails
// (a failed VIP start); the link comes back 1-2 s later.
func announceFail(r *run, f *FaultResult) func() {
	src := f.Holder
	if src == "" {
		src = r.pick(r.c.Nodes())
	}
	f.Target = r.pick(r.others(src))
	f.Detail = fmt.Sprintf("eth0 of %s down, move %s->%s", f.Target, src, f.Target)
	r.c.SetLink(f.Target, "eth0", false)
	op := "move->" + f.Target
	if err := r.c.Move(f.Target, clustertest.Group, f.Target); err != nil {
		op += " (" + firstLine(err.Error()) + ")"
	}
	f.Operator = append(f.Operator, op)
	r.hold(r.between(time.Second, 2*time.Second))
	return func() { r.c.SetLink(f.Target, "eth0", true) }
}

// injectDual (checker self-test): the VIP is added by hand on a node that
// does not hold it, for 400 ms, so the checker must count split-brain
// samples and dual-MAC rounds.
func injectDual(r *run, f *FaultResult) func() {
	f.Target = r.pick(r.others(f.Holder))
	r.c.Lab.MustExec(f.Target, "ip", "addr", "add", clustertest.VIPPrefix, "dev", "eth0")
	time.Sleep(400 * time.Millisecond)
	return func() {
		_, _ = r.c.Lab.Exec(f.Target, "ip", "addr", "del", clustertest.VIPPrefix, "dev", "eth0")
	}
}

// restart: a graceful stop (SIGTERM, planned handover) and a start.
func restart(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	r.c.Stop(f.Target, 30*time.Second)
	r.hold(r.between(200*time.Millisecond, 2*time.Second))
	return func() { r.c.Start(f.Target) }
}

// secondRun starts a second `harules run` with the same arguments on a node
// whose agent runs; it must leave the first one alone.
func secondRun(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	n := f.Target
	logf, err := os.OpenFile(r.c.LogPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatalf("log file: %v", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "===== nemesis: second harules run on %s at %s =====\n", n, time.Now().Format(time.RFC3339Nano))
	cmd := r.c.Lab.Command(n, r.c.Bin, "run", "--policy", r.c.PolicyPath, "--node", n,
		"--state-dir", r.c.StateDir(n), "--control", r.c.ControlSocket(n))
	cmd.Env = append(os.Environ(), "HARULES_NODE="+n)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("second run on %s: %v", n, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		f.Detail = fmt.Sprintf("second run exited: %v", err)
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		f.Detail = "second run still running after 5s (killed)"
	}
	r.hold(r.between(200*time.Millisecond, time.Second))
	return nil
}

// cutBetween drops the heartbeat traffic between a and b on the given
// paths (blackhole routes both ways; ARP and the rest of the lan keep
// working). It returns the undo.
func (r *run) cutBetween(a, b string, lan, backnet bool) func() {
	addrs := func(n string) []string {
		i := nodeIndex(n)
		var out []string
		if lan {
			out = append(out, clustertest.LanAddr(i))
		}
		if backnet {
			out = append(out, clustertest.BacknetAddr(i))
		}
		return out
	}
	for _, x := range addrs(b) {
		r.c.Blackhole(a, x, true)
	}
	for _, x := range addrs(a) {
		r.c.Blackhole(b, x, true)
	}
	return func() {
		for _, x := range addrs(b) {
			r.c.Blackhole(a, x, false)
		}
		for _, x := range addrs(a) {
			r.c.Blackhole(b, x, false)
		}
	}
}

func nodeIndex(n string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(n, "node"))
	if err != nil {
		panic("nemesis: node name " + n)
	}
	return i
}

// pathDown: one heartbeat path of a node down (its backnet link, or the
// lan path to its peers); the other path keeps the cluster whole.
func pathDown(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	d := r.between(time.Second, 4*time.Second)
	if r.rng.IntN(2) == 0 {
		f.Detail = "backnet link down"
		r.c.SetLink(f.Target, "eth1", false)
		r.hold(d)
		return func() { r.c.SetLink(f.Target, "eth1", true) }
	}
	f.Detail = "lan heartbeats to the peers cut"
	undo := r.cutFromPeers(f.Target, true, false)
	r.hold(d)
	return undo
}

// isolate: a node cut off entirely (both links down): no peer, no
// gateway. Inside the guarantees (self-fence and takeover delay on two
// nodes, quorum on three).
func isolate(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	d := r.between(time.Second, 6*time.Second)
	f.Detail = "isolated " + d.Round(time.Millisecond).String()
	r.c.SetLink(f.Target, "eth0", false)
	r.c.SetLink(f.Target, "eth1", false)
	r.hold(d)
	return func() {
		r.c.SetLink(f.Target, "eth0", true)
		r.c.SetLink(f.Target, "eth1", true)
	}
}

// isolateKeepGateway: a node's heartbeats to every peer cut on both paths
// while it still reaches the gateway. On two nodes without fencing this
// is the documented limit of the guards (docs/policy.md: "None of this
// helps when both sides still reach their gateway"): counted outside the
// guarantees. On three nodes it is a minority split, inside them.
func isolateKeepGateway(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	d := r.between(time.Second, 6*time.Second)
	f.Detail = "heartbeats cut " + d.Round(time.Millisecond).String() + ", gateway reachable"
	if r.cfg.Nodes == 2 {
		f.Inside = false
		f.Outside = "heartbeat network cut while both sides reach the gateway, no fencing"
	}
	undo := r.cutFromPeers(f.Target, true, true)
	r.hold(d)
	return undo
}

// partialPartition (three nodes): the link between two nodes breaks, both
// still hear the third.
func partialPartition(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	other := r.pick(r.others(f.Target))
	d := r.between(time.Second, 6*time.Second)
	f.Detail = fmt.Sprintf("%s<->%s cut %s", f.Target, other, d.Round(time.Millisecond))
	undo := r.cutBetween(f.Target, other, true, true)
	r.hold(d)
	return undo
}

// loss: random packet loss (and delay with netem) on both links of a node.
func loss(r *run, f *FaultResult) func() {
	f.Target = r.pickTarget(f.Holder)
	pct := 10 + r.rng.IntN(31)
	d := r.between(2*time.Second, 5*time.Second)
	n := f.Target
	switch r.loss {
	case "netem":
		delay := r.rng.IntN(51)
		f.Detail = fmt.Sprintf("netem loss %d%% delay %dms", pct, delay)
		for _, ifname := range []string{"eth0", "eth1"} {
			r.c.Lab.MustExec(n, "tc", "qdisc", "add", "dev", ifname, "root", "netem",
				"loss", fmt.Sprintf("%d%%", pct), "delay", fmt.Sprintf("%dms", delay))
		}
	case "nft":
		f.Detail = fmt.Sprintf("nft loss %d%% in and out (no sch_netem in this kernel)", pct)
		r.c.Lab.MustExec(n, "nft", fmt.Sprintf("add table inet nemesis; "+
			"add chain inet nemesis in { type filter hook input priority 0 ; }; "+
			"add chain inet nemesis out { type filter hook output priority 0 ; }; "+
			"add rule inet nemesis in numgen random mod 100 < %d drop; "+
			"add rule inet nemesis out numgen random mod 100 < %d drop", pct, pct))
	default:
		f.Detail = "no way to inject loss here (neither sch_netem nor nft): skipped"
		return nil
	}
	r.hold(d)
	return r.clearLoss
}

// clearLoss removes any loss injection from every node (idempotent).
func (r *run) clearLoss() {
	for _, n := range r.c.Nodes() {
		switch r.loss {
		case "netem":
			for _, ifname := range []string{"eth0", "eth1"} {
				_, _ = r.c.Lab.Exec(n, "tc", "qdisc", "del", "dev", ifname, "root")
			}
		case "nft":
			_, _ = r.c.Lab.Exec(n, "nft", "delete table inet nemesis")
		}
	}
}

// operatorOnly: a burst of 1-3 operator requests (move, standby, online)
// with no other fault.
func operatorOnly(r *run, f *FaultResult) func() {
	f.Target = "-"
	n := 1 + r.rng.IntN(3)
	for range n {
		r.operator()
		time.Sleep(r.between(100*time.Millisecond, time.Second))
	}
	return nil
}

// cutFromPeers cuts node from every peer (cutBetween's lan and backnet
// switches) and returns what undoes all of it.
func (r *run) cutFromPeers(node string, lan, backnet bool) func() {
	var undo []func()
	for _, p := range r.others(node) {
		undo = append(undo, r.cutBetween(node, p, lan, backnet))
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}
