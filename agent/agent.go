// Package agent is the live harules node agent (`harules run`): it sends and
// receives authenticated heartbeats on every path, runs the policy's probes,
// feeds both into the same engine.Node loop the simulator uses, executes the
// node's actions for real (VIPs, services), persists its state, and answers
// a local control API (status, move, standby, online).
//
// One goroutine owns the engine state; heartbeats, probe results, monitor
// results and control requests reach it over channels, so decisions are
// serialised exactly as in the simulator.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/internal/atomicfile"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/probes"
	"github.com/harules/harules/rules"
)

// Config configures an agent.
type Config struct {
	PolicyPath string
	Node       string
	// StateDir holds state.json and the incarnation counter.
	StateDir string
	// ControlSocket is the unix socket of the local control API.
	ControlSocket string
	Logger        *slog.Logger
	// Executor overrides the real executor (tests, maintenance tooling).
	Executor engine.Executor
	// HandoverTimeout bounds the planned handover on shutdown.
	HandoverTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// WebListen is the web console's address (empty: no console); WebStart
	// serves it (cmd/harules passes web.Starter: package web imports agent).
	WebListen string
	WebStart  func(ctx context.Context, listen string, a *Agent) (stop func(), err error)
	// Systemd is what systemd told the process (TakeSystemdEnv): the agent
	// reports READY=1 after its loop's first pass and pets WatchdogSec=
	// while the loop makes progress (liveness.go).
	Systemd SystemdEnv
	// WatchdogDevice, when set, is armed (e.g. /dev/watchdog with softdog)
	// with WatchdogTimeout (0: DefaultWatchdogTimeout) and written to while
	// the loop makes progress (watchdog.go).
	WatchdogDevice  string
	WatchdogTimeout time.Duration
	// OnWedged replaces what the agent does when its decision loop made no
	// progress for the abort time (default: exit with WedgedExitCode).
	OnWedged func(stuck time.Duration)
	// Lock is the state directory's single-instance lock when the caller
	// already holds it (the supervisor of `harules run`); nil: Run takes it
	// (lock.go) and fails with a *LockedError, touching nothing, when
	// another run holds it.
	Lock *StateLock
}

// Defaults that fit a systemd service.
const (
	DefaultPolicyPath      = "/etc/harules/policy.star"
	DefaultStateDir        = "/var/lib/harules"
	DefaultControlSocket   = "/run/harules/harules.sock"
	DefaultHandoverTimeout = 30 * time.Second
)

// Agent is one running node agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	policy *policy.Policy
	node   *engine.Node
	exec   engine.Executor
	real   *Executor

	inbox chan heartbeat.Received
	// diskBeats carries heartbeats seen on shared-disk paths.
	diskBeats chan diskBeat
	control   chan controlRequest
	monitors  chan monitorResult
	// backupOK carries this node's good backup runs to the loop, which
	// gossips them (engine.Node.BackupSucceeded).
	backupOK chan backupOK
	reload   chan chan error
	// done carries the results of the jobs run by runJob.
	done chan engine.Result

	payload atomic.Pointer[[]byte]
	status  atomic.Pointer[Status]
	// statusSignal wakes the console when a new status is published.
	statusSignal signal
	senders      []*heartbeat.Sender
	eps          []*heartbeat.Endpoint
	prober       *probes.Runner
	peerRpts     map[string]peerReport
	// loss measures heartbeat loss per "peer/path" (loop goroutine only).
	loss    map[string]*lossMeter
	lastRpt *engine.Report
	saved   []byte
	records *recordLog

	// lastHeard is when each peer's last heartbeat arrived (reannounce.go).
	lastHeard map[string]time.Time
	// reannounce queues VIP announcements until after the next decision (reannounce.go).
	reannounce reannounces
	// notify sends the policy's notifications (notify.go).
	notify notifyHook
	// backupPeer receives other nodes' backup copies (backup_peer.go).
	backupPeer *peerReceiver
	// maintPeers are the saved reports of peers in maintenance (adopt_peers.go).
	maintPeers map[string]*engine.Report
	// metrics are updated as things happen (metrics.go).
	metrics *Metrics
	// wake fires when the last decision's time-dependent conditions
	// change (wake.go); armed by step.
	wake *wakeTimer
	// live is the running policy for other goroutines (the executor's
	// workers); a.policy is the loop's own copy. Both change on reload.
	live atomic.Pointer[policy.Policy]
	// dbpos: this node's and its peers' database positions (dbpositions.go).
	dbpos *dbPositions
	// progress tracks the decision loop's passes (liveness.go).
	progress *liveness
}

type backupOK struct {
	job string
	at  time.Time
}

type peerReport struct {
	raw    []byte
	report *engine.Report
}

// New loads the policy and prepares the agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.PolicyPath == "" {
		cfg.PolicyPath = DefaultPolicyPath
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.ControlSocket == "" {
		cfg.ControlSocket = DefaultControlSocket
	}
	if cfg.HandoverTimeout == 0 {
		cfg.HandoverTimeout = DefaultHandoverTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := rules.Load(context.Background(), cfg.PolicyPath, rules.Options{Print: func(msg string) { cfg.Logger.Info("policy print", "msg", msg) }})
	if err != nil {
		return nil, fmt.Errorf("load policy %s:\n%w", cfg.PolicyPath, err)
	}
	if p.Node(cfg.Node) == nil {
		return nil, fmt.Errorf("node %q is not declared in %s (nodes: %s); pass --node with one of them", cfg.Node, cfg.PolicyPath, strings.Join(p.NodeNames(), ", "))
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.Node), now: cfg.Now, policy: p,
		inbox: make(chan heartbeat.Received, 1024), diskBeats: make(chan diskBeat, 64), control: make(chan controlRequest),
		monitors: make(chan monitorResult, 64), reload: make(chan chan error), backupOK: make(chan backupOK, 64),
		done:     make(chan engine.Result, 1024),
		peerRpts: map[string]peerReport{}, loss: map[string]*lossMeter{}, records: newRecordLog(500),
		metrics: NewMetrics(cfg.Node, cfg.Now), dbpos: newDBPositions(filepath.Join(cfg.StateDir, peerDBFile))}
	a.live.Store(p)
	return a, nil
}

// Run runs the agent until ctx is cancelled, then hands over what it holds
// (a planned switchover when a peer is alive) and releases everything; in
// maintenance it leaves everything running instead (adopt.go).
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Lock == nil {
		// Another run on this state directory is reported first, whatever
		// the policy says (exit 4), and nothing is created yet.
		if err := ProbeStateLock(a.cfg.StateDir); err != nil {
			return err
		}
	}
	if err := a.preflight(); err != nil {
		return err // nothing touched yet: no release before this exit (preflight.go)
	}
	if a.cfg.Lock == nil {
		// Before anything is touched: a second run would release what the
		// first holds.
		lock, err := LockStateDir(a.cfg.StateDir)
		if err != nil {
			return err
		}
		defer lock.Close() // last: after the handover and the release
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	boot := a.now()
	incarnation, err := heartbeat.NextIncarnation(filepath.Join(a.cfg.StateDir, "incarnation"), a.now)
	if err != nil {
		return fmt.Errorf("incarnation: %w", err)
	}
	st, err := loadState(a.cfg.StateDir, incarnation)
	if err != nil {
		return err
	}
	a.exec = a.cfg.Executor
	if a.exec == nil {
		a.real = NewExecutor(a.cfg.Node, a.log)
		a.real.Incarnation = incarnation
		a.real.SetVerifyLog(StateVerifyLog(a.cfg.StateDir)) // backup(params={"verify": "after"}) records its checks there
		a.real.Policy = a.live.Load                         // read by job workers, so not a.node.Policy
		a.real.PeerPositions = a.PeerPositions              // a database start compares with them
		// A live holder answers an ARP probe within a millisecond on a LAN;
		// the window is kept short because it adds to every crash failover.
		if d := a.policy.DetectionTime() / 10; d > 0 {
			a.real.ProbeTimeout = min(max(d, 5*time.Millisecond), 50*time.Millisecond)
		}
		defer a.real.Close()
		a.exec = a.real
	}
	a.startNotify(incarnation)
	defer a.stopNotify() // after the handover: its events are sent too
	a.progress = newLiveness(a.log, a.now, a.policy, a.cfg.OnWedged)
	a.node = engine.NewNode(a.policy, a.cfg.Node, boot, st, a.instrument(a.exec), a.record)
	a.node.Dispatch = a.runJob
	if br, ok := a.exec.(interface{ OnBackupRecord(func(engine.Record)) }); ok {
		br.OnBackupRecord(a.record) // refused and failed backups show in the records
	}
	if bs, ok := a.exec.(interface {
		OnBackupSucceeded(func(string, time.Time))
	}); ok {
		bs.OnBackupSucceeded(func(job string, at time.Time) {
			select {
			case a.backupOK <- backupOK{job: job, at: at}:
			default: // the loop is far behind; the next good run says it again
			}
		})
	}
	a.log.Info("agent starting", "policy", a.cfg.PolicyPath, "policy_hash", a.policy.Hash, "incarnation", incarnation)

	// Whatever a previous run left behind (after a crash) is released
	// before this node may decide anything: it starts holding nothing. In
	// maintenance nothing is released and what still runs is adopted
	// (adopt.go).
	a.takeOverPreviousRun(ctx)

	loopCtx, stopLoop := context.WithCancel(context.Background())
	defer stopLoop()
	stopLiveness, err := a.startLiveness()
	if err != nil {
		return err
	}
	defer stopLiveness()
	if err := a.startHeartbeats(loopCtx, incarnation); err != nil {
		return err
	}
	// The startup grace counts from when this node can hear its peers: the
	// release above can take longer than a grace of interval x misses.
	a.node.View = engine.NewView(a.policy, a.cfg.Node, a.now())
	a.loadPeersInMaintenance()
	defer a.stopHeartbeats()
	if a.backupPeer, err = a.startBackupPeer(); err != nil {
		return err
	}
	defer a.backupPeer.close()
	a.startProbes(loopCtx)
	a.watchLinks(loopCtx) // carrier loss under a held VIP fails its group here (link.go)
	srv, err := a.serveControl()
	if err != nil {
		return err
	}
	defer srv.Close()
	stopWeb, err := a.startWeb(loopCtx)
	if err != nil {
		return err
	}
	defer stopWeb()

	err = a.loop(ctx)
	a.progress.shuttingDown(a.cfg.HandoverTimeout + shutdownGrace) // the handover below must be heard
	if a.node.State.Maintenance {
		a.leaveRunning() // maintenance means unmanaged: keep it all running (adopt.go)
	} else {
		a.handover()
	}
	return err
}

func (a *Agent) record(r engine.Record) {
	a.records.add(r)
	a.notifyRecord(r)
	a.metrics.record(r)
	attrs := []any{"kind", r.Kind, "at", r.At.Format(time.RFC3339Nano)}
	if r.Group != "" {
		attrs = append(attrs, "group", r.Group)
	}
	if r.Reason != "" {
		attrs = append(attrs, "reason", r.Reason)
	}
	if r.Error != "" {
		attrs = append(attrs, "error", r.Error)
		a.log.Warn(r.Text, attrs...)
		return
	}
	a.log.Info(r.Text, attrs...)
}

func (a *Agent) startHeartbeats(ctx context.Context, incarnation uint64) error {
	if len(a.policy.Nodes) < 2 {
		return nil
	}
	secretFile := a.policy.Cluster.SecretFile
	if secretFile == "" {
		return fmt.Errorf("cluster(secret_file=...) is required to run: heartbeats are authenticated with it")
	}
	if !filepath.IsAbs(secretFile) {
		secretFile = filepath.Join(filepath.Dir(a.cfg.PolicyPath), secretFile)
	}
	secret, err := heartbeat.LoadSecret(secretFile)
	if err != nil {
		return err
	}
	codec, err := heartbeat.NewCodec(a.policy.Cluster.Name, secret)
	if err != nil {
		return err
	}
	guard := heartbeat.NewReplayGuard()
	self := a.policy.Node(a.cfg.Node)
	// The first heartbeats carry a real report (holding nothing: everything
	// was released above), so a peer never has to guess what a payload-less
	// heartbeat of a new incarnation means.
	if err := a.publishReport(a.node.Report()); err != nil {
		return fmt.Errorf("initial report: %w", err)
	}
	byInterval := map[time.Duration][]*heartbeat.Endpoint{}
	var intervals []time.Duration
	for _, h := range a.policy.Paths {
		if h.Kind == "disk" {
			if err := a.startDiskHeartbeat(ctx, h, incarnation); err != nil {
				return err
			}
			continue
		}
		peers := map[string]netip.AddrPort{}
		for _, n := range a.policy.Nodes {
			if n.Name != self.Name {
				peers[n.Name] = netip.AddrPortFrom(n.AddressOn(h.Name), uint16(h.Port))
			}
		}
		ep, err := heartbeat.Listen(ctx, heartbeat.EndpointConfig{Path: h.Name, Listen: netip.AddrPortFrom(self.AddressOn(h.Name), uint16(h.Port)),
			Peers: peers, Codec: codec, Guard: guard, Now: a.now, Logger: a.log, Self: self.Name,
			Deliver: a.deliver})
		if err != nil {
			return fmt.Errorf("heartbeat path %s: listen on %s:%d: %w", h.Name, self.AddressOn(h.Name), h.Port, err)
		}
		a.eps = append(a.eps, ep)
		if byInterval[h.Interval] == nil {
			intervals = append(intervals, h.Interval)
		}
		byInterval[h.Interval] = append(byInterval[h.Interval], ep)
	}
	// One sender per interval: paths beating at the same rate share a timer
	// and a goroutine (fewer wakeups; the replay guard is per node and path,
	// so a shared sequence number is fine).
	for _, iv := range intervals {
		s, err := heartbeat.NewSender(heartbeat.SenderConfig{Node: self.Name, Incarnation: incarnation, Interval: iv,
			Endpoints: byInterval[iv], Payload: func() []byte { return *a.payload.Load() }, Now: a.now, Logger: a.log,
			Alive: a.progress.alive})
		if err != nil {
			return fmt.Errorf("heartbeat sender every %s: %w", iv, err)
		}
		a.senders = append(a.senders, s)
		go func() { _ = s.Run(ctx) }()
	}
	return nil
}

// deliver queues a received heartbeat for the loop. When the queue is full
// the oldest one is dropped, never the newest: decisions must not use a
// view older than the newest heartbeat that arrived.
func (a *Agent) deliver(r heartbeat.Received) {
	for {
		select {
		case a.inbox <- r:
			return
		default:
		}
		select {
		case <-a.inbox:
		default:
		}
	}
}

func (a *Agent) stopHeartbeats() {
	for _, ep := range a.eps {
		_ = ep.Close()
	}
}

// kick sends a heartbeat on every path now, so peers learn a change (a
// released group) without waiting for the next interval.
func (a *Agent) kick() {
	for _, s := range a.senders {
		s.Kick()
	}
}

func (a *Agent) startProbes(ctx context.Context) {
	if len(a.policy.Probes) == 0 {
		return
	}
	a.prober = probes.NewRunner(probes.Options{Now: a.now, Logger: a.log, Observe: a.metrics.observeProbe})
	for _, pr := range a.policy.Probes {
		if len(pr.Nodes) > 0 && !contains(pr.Nodes, a.cfg.Node) {
			continue
		}
		a.metrics.declareProbe(pr.Name)
		chk, err := buildCheck(pr.Check)
		if err != nil {
			a.log.Error("probe cannot run; it stays unknown", "probe", pr.Name, "error", err)
			continue
		}
		if err := a.prober.Add(probes.Spec{Name: pr.Name, Check: chk, Every: pr.Every, Timeout: pr.Timeout, Rise: pr.Rise, Fall: pr.Fall}); err != nil {
			a.log.Error("probe cannot run; it stays unknown", "probe", pr.Name, "error", err)
		}
	}
	go func() { _ = a.prober.Run(ctx) }()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// loop is the single owner of the engine state. Deciding never waits on an
// action: the engine hands each group's actions to a worker (runJob) whose
// result comes back on a.done. Whatever woke the loop, the heartbeats that
// arrived meanwhile and the pause guard are processed before the decision,
// so no decision uses a view older than the newest heartbeat.
func (a *Agent) loop(ctx context.Context) error {
	tick := a.policy.Cluster.Reevaluate
	for _, h := range a.policy.Paths {
		tick = min(tick, h.Interval)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	var probeCh <-chan probes.Fact
	if a.prober != nil {
		probeCh = a.prober.Changes()
	}
	monitorTicker := time.NewTicker(time.Second)
	defer monitorTicker.Stop()
	// A start refused for now (a disk waiting for a dead holder's lease)
	// is due again at a known instant, which may fall between ticks.
	var retryCh <-chan struct{}
	if w, ok := a.exec.(RetryWaiter); ok {
		retryCh = w.Wake()
	}
	lastStep := time.Time{}
	detect := newDetectionTimer()
	pause := newPauseGuard(a.policy, tick)
	defer detect.stop()
	a.wake = newWakeTimer()
	defer a.wake.stop()
	a.step(ctx)
	a.progress.passed(a.now())
	for {
		dirty := false
		timed := false // a timer woke the loop: the view may age
		select {
		case <-ctx.Done():
			return nil
		case r := <-a.inbox:
			dirty = a.heartbeat(r)
			detect.seen(a.policy, r.Message.From, r.Path, r.At)
		case <-detect.timer.C:
			// A path's last heartbeat just aged past interval x misses.
			// Fired late (this process was starved): heartbeats may wait
			// unread in the sockets; judge after confirmWait instead.
			timed = detect.fired(a.now())
		case b := <-a.diskBeats:
			a.countHeartbeat(b.peer, b.path, b.at)
			dirty = a.node.View.Heartbeat(b.peer, b.path, b.at, nil)
			detect.seen(a.policy, b.peer, b.path, b.at)
		case f := <-probeCh:
			a.recordProbe(f)
			dirty = a.node.View.SetProbe(probeFact(f))
		case <-ticker.C:
			timed = true
			dirty = a.now().Sub(lastStep) >= a.policy.Cluster.Reevaluate
		case <-monitorTicker.C:
			a.monitorHeld(ctx)
			a.reconcile(ctx)
		case <-retryCh:
			dirty = true
		case res := <-a.done:
			a.node.Complete(res)
			if res.Failed != nil {
				a.reconcile(ctx) // what did the failed job leave behind?
			}
			dirty = true
		case <-a.wake.C():
			// A time-dependent rule condition (down_for < 2s, a for_
			// timer, ...) changes its answer now.
			a.wake.fired()
			timed = true
			dirty = true
		case m := <-a.monitors:
			// In maintenance a failed monitor is not acted on (unmanaged);
			// the first monitor after leaving it sees the state then. A
			// group whose start or stop runs is judged once it is done.
			if _, held := a.node.State.Holds[m.group]; held && m.err != nil && !a.node.State.Maintenance && !a.node.Busy(m.group) {
				a.node.ResourceFailed(a.now(), m.group, m.resource, m.err)
				dirty = true
			}
		case ok := <-a.backupOK:
			a.node.BackupSucceeded(ok.job, ok.at)
			dirty = true
		case req := <-a.control:
			req.reply <- a.handleControl(req)
			dirty = true
		case reply := <-a.reload:
			reply <- a.reloadPolicy()
			dirty = true
		}
		// Before any decision: every heartbeat that arrived, then the
		// failure detector. After a pause of this process the view holds
		// instead of judging peers by our own silence.
		now := a.now()
		paused := a.checkPause(pause, detect, now)
		dirty = a.drainInbox(detect) || dirty
		if timed && !paused {
			dirty = a.node.View.Update(now) || dirty
			detect.judged(now)
		}
		if dirty {
			a.step(ctx)
			lastStep = a.now()
		}
		a.progress.passed(a.now())
	}
}

// runJob runs one group's job on a worker goroutine and hands its result
// back to the loop (engine.Dispatcher). a.done has room for one job per
// group, and a group has at most one job in flight, so the send never
// blocks.
func (a *Agent) runJob(j *engine.Job) {
	go func() {
		// Not cancelled with the loop: a job runs to its end, and the
		// handover waits for it, so nothing is left half started.
		a.done <- engine.RunJob(context.Background(), a.node.Exec, j, a.now)
	}()
}

func (a *Agent) heartbeat(r heartbeat.Received) bool {
	prev := a.peerRpts[r.Message.From]
	rep := prev.report
	if rep != nil && r.Message.Incarnation < rep.Incarnation {
		// A datagram of the peer's previous run (the shared replay guard
		// rejects these on every path, as old_incarnation): it must not
		// bring the old run's report back.
		return false
	}
	a.peerBack(r.Message.From, r.At)
	if rep != nil && rep.Incarnation != r.Message.Incarnation {
		// The peer restarted and released everything its previous run
		// held: the old report must not speak for the new run (it would
		// say the peer still holds its old groups).
		rep = &engine.Report{Node: r.Message.From, Incarnation: r.Message.Incarnation}
		prev = peerReport{report: rep}
		a.peerRpts[r.Message.From] = prev
	}
	if !bytes.Equal(prev.raw, r.Message.Payload) {
		var fresh engine.Report
		if err := json.Unmarshal(r.Message.Payload, &fresh); err != nil || fresh.Node != r.Message.From {
			a.log.Warn("heartbeat payload unreadable; keeping the peer's previous view", "peer", r.Message.From, "error", err)
		} else if a.takePeerPositions(&fresh, rep) {
			// Only its database positions changed: no news for the engine.
			a.peerRpts[r.Message.From] = peerReport{raw: bytes.Clone(r.Message.Payload), report: rep}
		} else {
			a.reannounceReleased(rep, &fresh)
			rep = &fresh
			a.peerRpts[r.Message.From] = peerReport{raw: bytes.Clone(r.Message.Payload), report: rep}
		}
	}
	a.countHeartbeat(r.Message.From, r.Path, r.At)
	return a.node.View.Heartbeat(r.Message.From, r.Path, r.At, rep)
}

// countHeartbeat feeds the loss meter of a peer's path.
func (a *Agent) countHeartbeat(peer, path string, at time.Time) {
	key := peer + "/" + path
	m := a.loss[key]
	if m == nil {
		h := a.policy.Path(path)
		if h == nil {
			return
		}
		m = &lossMeter{interval: h.Interval}
		a.loss[key] = m
	}
	m.seen(at)
}

func probeFact(f probes.Fact) facts.Probe {
	state := facts.ProbeUnknown
	switch f.State {
	case probes.StateOK:
		state = facts.ProbeOK
	case probes.StateFailing:
		state = facts.ProbeFailing
	}
	text := f.Last.Text
	if f.Last.Err != "" {
		text = f.Last.Err
	}
	return facts.Probe{Probe: f.Name, State: state, Since: f.Since, Value: f.Last.Value, Text: text}
}

// step decides and acts once, then publishes what changed.
func (a *Agent) step(ctx context.Context) {
	now := a.now()
	d := a.node.Step(ctx, now)
	a.announceHeld() // only what is still held after this decision (reannounce.go)
	if a.wake != nil {
		a.wake.arm(a.now(), d.WakeAt)
	}
	a.keepRetryWaits(d)
	rep := a.node.Report()
	if rep != a.lastRpt {
		a.lastRpt = rep
		if err := a.publishReport(rep); err != nil {
			a.log.Error("cannot publish the report", "error", err)
		}
		a.kick()
	}
	a.publishStatus(now, d)
	a.metrics.observeStatus(a.Status())
	a.saveState()
	a.trackPeersInMaintenance()
}

func (a *Agent) saveState() {
	b, err := json.MarshalIndent(a.node.State, "", "  ")
	if err != nil || bytes.Equal(b, a.saved) {
		return
	}
	if err := atomicfile.Write(filepath.Join(a.cfg.StateDir, "state.json"), b, 0o600); err != nil {
		a.log.Error("cannot save state", "error", err)
		return
	}
	a.saved = b
}

// reloadPolicy swaps in a new policy only if it passes check; otherwise the
// running policy stays in force.
func (a *Agent) reloadPolicy() error {
	p, err := rules.Load(context.Background(), a.cfg.PolicyPath, rules.Options{})
	if err != nil {
		a.log.Error("policy reload refused; the running policy stays in force", "policy", a.cfg.PolicyPath, "error", err.Error())
		a.record(engine.Record{At: a.now(), Node: a.cfg.Node, Kind: engine.RecEvent, Text: "policy reload refused", Error: err.Error()})
		return err
	}
	if p.Node(a.cfg.Node) == nil {
		err := fmt.Errorf("the new policy does not declare node %q", a.cfg.Node)
		a.log.Error("policy reload refused; the running policy stays in force", "error", err)
		return err
	}
	a.policy = p
	a.live.Store(p)
	a.node.SetPolicy(p)
	a.progress.setPolicy(p)
	a.notifyPolicy()
	a.backupPeer.setPolicy(p)
	a.record(engine.Record{At: a.now(), Node: a.cfg.Node, Kind: engine.RecEvent, Text: "policy reloaded, hash " + p.Hash})
	return nil
}

// Reload asks the running agent to reload its policy (SIGHUP).
func (a *Agent) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case a.reload <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handover gives away what this node holds: peers see it leaving and take
// over; whatever is still held when the timeout passes is stopped anyway.
// Jobs still running are waited for (within the timeout) before the final
// release, so nothing is started behind it.
func (a *Agent) handover() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HandoverTimeout)
	defer cancel()
	a.node.State.Leaving = true
	a.log.Info("shutting down: handing over held groups", "holds", a.node.State.HeldGroups())
	detect := newDetectionTimer()
	defer detect.stop()
	for (len(a.node.State.Holds) > 0 || a.node.InFlight() > 0) && ctx.Err() == nil {
		a.drainInbox(detect)
		a.step(ctx)
		if len(a.node.State.Holds) == 0 && a.node.InFlight() == 0 {
			break
		}
		select {
		case r := <-a.inbox:
			a.heartbeat(r)
		case res := <-a.done:
			a.node.Complete(res)
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	// Tell peers at once that nothing is held here any more. The last
	// job's completion ends the loop above without a step, so the report
	// (the heartbeat payload) would still list the group: step once more.
	a.step(ctx)
	a.kick()
	time.Sleep(5 * time.Millisecond)
	a.releaseAll(context.Background(), "agent stop: release everything")
	a.node.State.Holds = map[string]time.Time{}
	a.saveState()
}

// releaseAll stops every resource of every group of the policy on this node
// and returns what could not be released.
func (a *Agent) releaseAll(ctx context.Context, why string) error {
	if a.real == nil {
		return nil
	}
	var errs []error
	for _, g := range a.policy.Groups {
		for i := len(g.Resources) - 1; i >= 0; i-- {
			r := g.Resources[i]
			if err := a.real.Release(ctx, r); err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", g.Name, r.ID(), err))
			}
		}
	}
	if err := a.real.ReleaseStaleVIPs(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Error(why+": some resources could not be released", "error", err)
		return err
	}
	a.log.Info(why)
	return nil
}

// Release stops every resource of the policy's groups on this node and
// removes every VIP carrying harules' label. The supervisor runs it when the
// agent process dies, and systemd's ExecStopPost does too, so a crashed agent
// never leaves a VIP configured that the peer is about to take over. What
// could not be released is logged; only a policy that cannot be loaded is
// an error.
func Release(ctx context.Context, policyPath, node string, log *slog.Logger) error {
	p, err := rules.Load(ctx, policyPath, rules.Options{})
	if err != nil {
		return fmt.Errorf("load policy %s:\n%w", policyPath, err)
	}
	_ = ReleasePolicy(ctx, p, node, log) // logged there
	return nil
}

// ReleasePolicy is Release with the policy already loaded; the error lists
// the resources that could not be released.
func ReleasePolicy(ctx context.Context, p *policy.Policy, node string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: Config{Node: node}, log: log, policy: p, real: NewExecutor(node, log)}
	a.real.Policy = func() *policy.Policy { return p }
	defer a.real.Close()
	return a.releaseAll(ctx, "released everything after the agent stopped")
}
