package agent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/version"
	"github.com/harules/harules/probes"
)

// Metrics holds the Prometheus instruments the agent updates as things
// happen: probe runs, executed actions, failovers and finished backups. The
// web console registers it next to the gauges it reads from the status
// (see web/metrics.go); docs/api.md lists every metric.
//
// Every label value comes from the policy (probe, group, job and store
// names) or from a fixed set (op, kind, result, type, outcome), never from
// requests, so label sets stay bounded.
type Metrics struct {
	self string
	now  func() time.Time

	probeUp       *prometheus.GaugeVec
	probeDuration *prometheus.HistogramVec
	probeChecks   *prometheus.CounterVec

	actionDuration *prometheus.HistogramVec
	actionFailures *prometheus.CounterVec
	actionRetries  *prometheus.CounterVec

	failovers         *prometheus.CounterVec
	failoverDuration  *prometheus.HistogramVec
	failoverLast      *prometheus.GaugeVec
	failoverDetection *prometheus.HistogramVec

	backupFailures *prometheus.CounterVec

	mu sync.Mutex
	// backups reports the runs of the executor, read at scrape time; nil
	// when the executor runs no backups.
	backups BackupReporter
	// attempts are groups being started on this node, by group.
	attempts map[string]*startAttempt
	// pointed is when placement last came to point a group at this node:
	// a switchover's outage starts there (the previous holder's stops
	// come before this node's starts).
	pointed map[string]time.Time
	// holders is each group's last non-empty holder list in a status.
	holders map[string][]string
	// lastHeard is the newest heartbeat from each peer on any path, as the
	// last status showed it.
	lastHeard map[string]time.Time
}

// startAttempt is a group coming up on this node: its start (and fence)
// actions, possibly spread over several decisions when one is retried.
type startAttempt struct {
	// decided is the time of the decision that ran the first of them (the
	// At of its record); zero until that record passed.
	decided time.Time
	// first is when the first of them began (the clock of the executor),
	// the start when no record says when it was decided.
	first time.Time
	// last is when the latest start that succeeded ended.
	last time.Time
	// from lists the peers declared dead the starts proceed without.
	from []string
}

// Failover types, the "type" label of harules_failovers_total.
const (
	FailoverTakeover   = "takeover"   // the previous holder was declared dead
	FailoverSwitchover = "switchover" // the previous holder stopped it (a move, a failback, a standby)
)

// Probe states as harules_probe_up shows them.
const (
	probeUpOK      = 1
	probeUpFailing = 0
	probeUpUnknown = -1 // no debounced result yet, or the check cannot run
)

var (
	// Probes run in milliseconds (ICMP, TCP) to seconds (SQL, exec).
	probeBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// Actions: adding a VIP takes a millisecond, promoting a database or
	// stopping a service with a long grace period takes seconds to minutes.
	actionBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// Failovers: 5 is a bucket bound so "longer than 5 s" is exact.
	failoverBuckets = []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300}
)

// NewMetrics returns the instruments of the agent of node self; now is the
// clock action and failover durations are measured with (nil: time.Now).
func NewMetrics(self string, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	return &Metrics{self: self, now: now,
		probeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "harules_probe_up",
			Help: "Debounced state of a probe run on this node: 1 ok, 0 failing, -1 unknown (no result yet, or the check cannot run)."}, []string{"probe"}),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "harules_probe_duration_seconds",
			Help: "How long each run of a probe took (its latency), successful or not.", Buckets: probeBuckets}, []string{"probe"}),
		probeChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_probe_checks_total",
			Help: "Probe runs on this node by raw result (ok, fail), before debouncing."}, []string{"probe", "result"}),
		actionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "harules_action_duration_seconds",
			Help:    "Duration of the actions this node executed, by operation (start, stop, fence) and resource kind, whatever their result.",
			Buckets: actionBuckets}, []string{"op", "kind"}),
		actionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_action_failures_total",
			Help: "Actions this node executed that failed (a refusal retried at the next decision is not a failure)."}, []string{"op", "kind"}),
		actionRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_action_retries_total",
			Help: "Actions refused for now and retried at the next decision (e.g. the previous holder still answers for the VIP)."}, []string{"op", "kind"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_failovers_total",
			Help: "Times a group came up on this node after another node held it, by type (takeover from a node declared dead, switchover)."},
			[]string{"group", "type"}),
		failoverDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "harules_failover_duration_seconds",
			Help:    "From the decision that started a group's first resource on this node to its last resource started, for failovers to this node.",
			Buckets: failoverBuckets}, []string{"group"}),
		failoverLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "harules_failover_last_duration_seconds",
			Help: "Duration of the group's latest failover to this node (see harules_failover_duration_seconds)."}, []string{"group"}),
		failoverDetection: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "harules_failover_detection_seconds",
			Help:    "For takeovers: from the last heartbeat heard from the previous holder to the decision to take the group over.",
			Buckets: failoverBuckets}, []string{"group"}),
		backupFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_backup_failures_total",
			Help: "Backup runs on this node that did not end well, by outcome (failed, refused: not enough free space for the headroom, unsafe: stored but a copy did not verify)."},
			[]string{"job", "outcome"}),
		attempts: map[string]*startAttempt{}, pointed: map[string]time.Time{}, holders: map[string][]string{}, lastHeard: map[string]time.Time{},
	}
}

var _ prometheus.Collector = (*Metrics)(nil)

var descBuildInfo = prometheus.NewDesc("harules_build_info",
	"Always 1; the labels say which build of harules runs (as harules version prints it).", []string{"version", "revision", "goversion"}, nil)

var descBackupRunning = prometheus.NewDesc("harules_backup_running",
	"1 while a run of the job is in progress on this node, 0 once it ended (jobs run since the agent started).", []string{"job"}, nil)

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.probeUp, m.probeDuration, m.probeChecks, m.actionDuration, m.actionFailures, m.actionRetries,
		m.failovers, m.failoverDuration, m.failoverLast, m.failoverDetection, m.backupFailures}
}

// Describe sends the descriptions of every instrument.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	ch <- descBackupRunning
	ch <- descBuildInfo
}

// Collect sends the current values of every instrument.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	bi := version.Get()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, bi.Version, bi.Revision, bi.GoVersion)
	m.mu.Lock()
	br := m.backups
	m.mu.Unlock()
	if br != nil {
		// Read now: the status the console polls is as old as the last
		// decision, and a run ending does not make one.
		for _, s := range br.BackupStates() {
			running := 0.0
			if s.Running {
				running = 1
			}
			ch <- prometheus.MustNewConstMetric(descBackupRunning, prometheus.GaugeValue, running, s.Job)
		}
	}
}

// MetricsCollector returns the agent's instruments for a Prometheus
// registry (nil for a nil agent).
func (a *Agent) MetricsCollector() prometheus.Collector {
	if a == nil || a.metrics == nil {
		return nil
	}
	return a.metrics
}

// instrument returns exec timed by the metrics, and makes a backup-running
// executor report finished runs to them. The agent keeps the bare executor
// for its optional interfaces (BackupReporter...); only the engine's calls
// go through the timed one.
func (a *Agent) instrument(exec engine.Executor) engine.Executor {
	if a.metrics == nil {
		return exec
	}
	if bo, ok := exec.(interface{ observeBackups(func(BackupState)) }); ok {
		bo.observeBackups(a.metrics.observeBackup)
	}
	if br, ok := exec.(BackupReporter); ok {
		a.metrics.mu.Lock()
		a.metrics.backups = br
		a.metrics.mu.Unlock()
	}
	return timedExecutor{Executor: exec, m: a.metrics}
}

// timedExecutor times every action of the engine's plans.
type timedExecutor struct {
	engine.Executor
	m *Metrics
}

var _ engine.Executor = timedExecutor{}

// Execute runs the action and observes how long it took and how it ended.
func (e timedExecutor) Execute(ctx context.Context, a engine.Action) error {
	start := e.m.now()
	err := e.Executor.Execute(ctx, a)
	e.m.observeAction(a, start, e.m.now(), err)
	return err
}

// actionLabels are an action's op and kind labels: both come from fixed
// sets (engine ops, policy resource kinds).
func actionLabels(a engine.Action) (op, kind string) {
	op, kind = a.Op, a.Kind
	if op == engine.OpFence {
		kind = "fence"
	}
	if kind == "" {
		kind = "none"
	}
	return op, kind
}

// observeAction counts an executed action and follows the group's start on
// this node.
func (m *Metrics) observeAction(a engine.Action, start, end time.Time, err error) {
	op, kind := actionLabels(a)
	m.actionDuration.WithLabelValues(op, kind).Observe(max(0, end.Sub(start).Seconds()))
	switch {
	case errors.Is(err, engine.ErrRetry):
		m.actionRetries.WithLabelValues(op, kind).Inc()
	case err != nil:
		m.actionFailures.WithLabelValues(op, kind).Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch a.Op {
	case engine.OpStart, engine.OpFence:
		at := m.attempts[a.Group]
		if at == nil {
			at = &startAttempt{first: start}
			m.attempts[a.Group] = at
		}
		for _, p := range a.From {
			if !slices.Contains(at.from, p) {
				at.from = append(at.from, p)
			}
		}
		switch {
		case err == nil && a.Op == engine.OpStart:
			at.last = end
		case err != nil && a.Op == engine.OpStart && !errors.Is(err, engine.ErrRetry):
			// The engine rolls the group back and marks it failed here: it
			// does not come up on this node from this attempt. (A failed
			// fence is retried by the engine, so the attempt goes on.)
			delete(m.attempts, a.Group)
		}
	case engine.OpStop:
		delete(m.attempts, a.Group)
	}
}

// record sees every timeline record of the agent. A start action's record
// carries the time of the decision that ran it; a placement change ends
// any start attempt of the group still under way (it was for another
// decision).
func (m *Metrics) record(r engine.Record) {
	if m == nil || r.Group == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.Kind {
	case engine.RecPolicy:
		delete(m.attempts, r.Group)
		if r.Target == m.self {
			m.pointed[r.Group] = r.At
		} else {
			delete(m.pointed, r.Group)
		}
	case engine.RecAction:
		if at := m.attempts[r.Group]; at != nil && at.decided.IsZero() && (r.Op == engine.OpStart || r.Op == engine.OpFence) {
			at.decided = r.At
		}
	}
}

// observeStatus runs after every decision with the status it published. A
// group that now includes this node among its holders finished starting
// here; it was a failover when the last holders seen before were other
// nodes.
func (m *Metrics) observeStatus(st *Status) {
	if m == nil || st == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range st.Groups {
		if at := m.attempts[g.Name]; at != nil && slices.Contains(g.Holders, m.self) && !at.last.IsZero() {
			delete(m.attempts, g.Name)
			if prev := m.otherHolder(g.Name); prev != "" {
				m.observeFailover(g.Name, prev, at)
			}
		}
		if len(g.Holders) > 0 {
			m.holders[g.Name] = slices.Clone(g.Holders)
		}
	}
	// Remember last heard times after the failovers: a takeover is measured
	// against what was heard before it.
	for _, n := range st.Nodes {
		for _, p := range n.Paths {
			if p.LastSeen.After(m.lastHeard[n.Name]) {
				m.lastHeard[n.Name] = p.LastSeen
			}
		}
	}
}

// otherHolder is a node other than this one among the group's last known
// holders ("" when this node held it alone, or nobody was seen holding it).
func (m *Metrics) otherHolder(group string) string {
	for _, h := range m.holders[group] {
		if h != m.self {
			return h
		}
	}
	return ""
}

func (m *Metrics) observeFailover(group, prev string, at *startAttempt) {
	decided := at.decided
	if decided.IsZero() || decided.After(at.first) {
		decided = at.first
	}
	// The outage began when placement pointed here, before the previous
	// holder's stops and the waits for them (same instant for a takeover).
	began := decided
	if p, ok := m.pointed[group]; ok && p.Before(began) {
		began = p
	}
	took := max(0, at.last.Sub(began).Seconds())
	typ := FailoverSwitchover
	if slices.Contains(at.from, prev) {
		typ = FailoverTakeover
		if heard := m.lastHeard[prev]; !heard.IsZero() && decided.After(heard) {
			m.failoverDetection.WithLabelValues(group).Observe(decided.Sub(heard).Seconds())
		}
	}
	m.failovers.WithLabelValues(group, typ).Inc()
	m.failoverDuration.WithLabelValues(group).Observe(took)
	m.failoverLast.WithLabelValues(group).Set(took)
}

// declareProbe shows a probe of this node as unknown until its first
// result (and for good when its check cannot be built).
func (m *Metrics) declareProbe(name string) {
	if m == nil {
		return
	}
	m.probeUp.WithLabelValues(name).Set(probeUpUnknown)
}

// observeProbe sees every probe run (probes.Options.Observe).
func (m *Metrics) observeProbe(f probes.Fact) {
	if m == nil {
		return
	}
	up := probeUpUnknown
	switch f.State {
	case probes.StateOK:
		up = probeUpOK
	case probes.StateFailing:
		up = probeUpFailing
	}
	m.probeUp.WithLabelValues(f.Name).Set(float64(up))
	m.probeDuration.WithLabelValues(f.Name).Observe(f.Last.Latency.Seconds())
	result := "ok"
	if !f.Last.OK {
		result = "fail"
	}
	m.probeChecks.WithLabelValues(f.Name, result).Inc()
}

// observeBackup sees every finished backup run of this node.
func (m *Metrics) observeBackup(s BackupState) {
	if m == nil || s.Outcome == "" || s.Outcome == string(backup.OutcomeOK) {
		return
	}
	m.backupFailures.WithLabelValues(s.Job, s.Outcome).Inc()
}

// observeBackups makes finish report every finished run to f.
func (e *Executor) observeBackups(f func(BackupState)) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	e.bk.observe = f
}
