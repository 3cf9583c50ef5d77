package web

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

// metrics exports the status as Prometheus metrics. Gauges are read from
// the status at scrape time; counters count what the status poller saw
// change since the console started (records and ownership changes).
type metrics struct {
	s        *Server
	registry *prometheus.Registry
	handler  http.Handler

	mu        sync.Mutex
	lastAt    time.Time // newest record counted
	atLast    int       // records counted with At == lastAt
	owners    map[string]string
	decisions prometheus.Counter
	records   *prometheus.CounterVec
	failovers *prometheus.CounterVec
	requests  *prometheus.CounterVec
}

var (
	descNodeUp      = prometheus.NewDesc("harules_node_up", "1 if the node is alive as this agent sees it.", []string{"node"}, nil)
	descNodeStandby = prometheus.NewDesc("harules_node_standby", "1 if the node is in operator standby.", []string{"node"}, nil)
	descPathUp      = prometheus.NewDesc("harules_path_up", "1 if heartbeats from the peer arrive on the path.", []string{"peer", "path"}, nil)
	descPathMissed  = prometheus.NewDesc("harules_path_missed_heartbeats", "Heartbeats missed in a row from the peer on the path.", []string{"peer", "path"}, nil)
	descPathLoss    = prometheus.NewDesc("harules_path_loss_ratio", "Share of the peer's heartbeats lost on the path over the last minute.", []string{"peer", "path"}, nil)
	descPathAge     = prometheus.NewDesc("harules_path_last_seen_age_seconds", "Seconds since the last heartbeat from the peer on the path (at the last decision).", []string{"peer", "path"}, nil)
	descGroupOwner  = prometheus.NewDesc("harules_group_owner", "1 if the node holds the group.", []string{"group", "node"}, nil)
	descGroupTarget = prometheus.NewDesc("harules_group_target", "1 if the node is where the group should run.", []string{"group", "node"}, nil)
	descGroupWait   = prometheus.NewDesc("harules_group_waiting", "1 if a start of the group waits for something.", []string{"group"}, nil)
	descAlerts      = prometheus.NewDesc("harules_alerts_active", "Active alerts by name and severity.", []string{"name", "severity"}, nil)
	descMaintenance = prometheus.NewDesc("harules_maintenance", "1 if this node is in maintenance mode (decides but does not act).", nil, nil)
	descStatusAge   = prometheus.NewDesc("harules_status_age_seconds", "Seconds since the agent's last decision; a growing value means a stuck agent.", nil, nil)
	descStatusUp    = prometheus.NewDesc("harules_agent_ready", "1 once the agent has made its first decision.", nil, nil)
	descPolicy      = prometheus.NewDesc("harules_policy_info", "The running policy's hash (value always 1).", []string{"node", "policy_hash"}, nil)
	descPending     = prometheus.NewDesc("harules_plan_pending_actions", "Actions of the current plan that are not done yet.", nil, nil)
	descNotify      = prometheus.NewDesc("harules_notifications_total", "Notification events of a notify() notifier since the agent started, by result (sent, failed, dropped).", []string{"notifier", "result"}, nil)
	descNotifyQueue = prometheus.NewDesc("harules_notifications_queued", "Notification events waiting for delivery.", []string{"notifier"}, nil)
)

// metricsSource is implemented by backends that keep Prometheus
// instruments updated as things happen (*agent.Agent; see agent.Metrics).
type metricsSource interface {
	MetricsCollector() prometheus.Collector
}

var _ metricsSource = (*agent.Agent)(nil)

func newMetrics(s *Server) *metrics {
	m := &metrics{s: s, registry: prometheus.NewRegistry(), owners: map[string]string{},
		decisions: prometheus.NewCounter(prometheus.CounterOpts{Name: "harules_decisions_total",
			Help: "Placement decisions (a group's target node changed) seen since the console started."}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_records_total",
			Help: "Timeline records seen since the console started, by kind."}, []string{"kind"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_group_owner_changes_total",
			Help: "Times a group came to be held by a different node (failovers and moves) since the console started."}, []string{"group"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_operator_requests_total",
			Help: "Operator requests made through the console, by operation and result."}, []string{"op", "result"}),
	}
	m.registry.MustRegister(m, m.decisions, m.records, m.failovers, m.requests, backupCollector{s})
	// The agent's own instruments: histograms and counters of what happened
	// (probe runs, actions, failovers, backup failures), which a status
	// snapshot cannot give.
	if src, ok := s.b.(metricsSource); ok {
		if c := src.MetricsCollector(); c != nil {
			if err := m.registry.Register(c); err != nil {
				s.log.Error("web console: the agent's metrics cannot be served", "error", err.Error())
			}
		}
	}
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Describe sends nothing: the collector is unchecked, as its label sets
// follow the cluster.
func (m *metrics) Describe(chan<- *prometheus.Desc) {}

// Collect reads the current status.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.s.b.Status()
	if st == nil {
		ch <- prometheus.MustNewConstMetric(descStatusUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStatusUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descMaintenance, prometheus.GaugeValue, b2f(st.Maintenance))
	ch <- prometheus.MustNewConstMetric(descStatusAge, prometheus.GaugeValue, max(0, m.s.now().Sub(st.Now).Seconds()))
	ch <- prometheus.MustNewConstMetric(descPolicy, prometheus.GaugeValue, 1, st.Node, st.PolicyHash)
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(len(newOverview(st, false).Pending)))
	var nodes []string
	for _, n := range st.Nodes {
		nodes = append(nodes, n.Name)
		ch <- prometheus.MustNewConstMetric(descNodeUp, prometheus.GaugeValue, b2f(n.State == "alive"), n.Name)
		ch <- prometheus.MustNewConstMetric(descNodeStandby, prometheus.GaugeValue, b2f(n.Standby), n.Name)
		for _, p := range n.Paths {
			ch <- prometheus.MustNewConstMetric(descPathUp, prometheus.GaugeValue, b2f(p.Up), n.Name, p.Name)
			ch <- prometheus.MustNewConstMetric(descPathMissed, prometheus.GaugeValue, float64(p.Missed), n.Name, p.Name)
			ch <- prometheus.MustNewConstMetric(descPathLoss, prometheus.GaugeValue, p.Loss, n.Name, p.Name)
			if !p.LastSeen.IsZero() {
				ch <- prometheus.MustNewConstMetric(descPathAge, prometheus.GaugeValue, max(0, st.Now.Sub(p.LastSeen).Seconds()), n.Name, p.Name)
			}
		}
	}
	for _, g := range st.Groups {
		for _, n := range nodes {
			ch <- prometheus.MustNewConstMetric(descGroupOwner, prometheus.GaugeValue, b2f(slices.Contains(g.Holders, n)), g.Name, n)
			ch <- prometheus.MustNewConstMetric(descGroupTarget, prometheus.GaugeValue, b2f(g.Target == n), g.Name, n)
		}
		ch <- prometheus.MustNewConstMetric(descGroupWait, prometheus.GaugeValue, b2f(g.Wait != ""), g.Name)
	}
	type alertKey struct{ name, severity string }
	counts := map[alertKey]int{}
	var order []alertKey
	for _, a := range st.Alerts {
		k := alertKey{a.Name, a.Severity}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(counts[k]), k.name, k.severity)
	}
	for _, n := range st.Notifications {
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Sent), n.Name, "sent")
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Failed), n.Name, "failed")
		ch <- prometheus.MustNewConstMetric(descNotify, prometheus.CounterValue, float64(n.Dropped), n.Name, "dropped")
		ch <- prometheus.MustNewConstMetric(descNotifyQueue, prometheus.GaugeValue, float64(n.Queued), n.Name)
	}
}

// observe counts the records that are new in st and groups whose holder
// changed. The agent keeps its last 500 records; records are new when they
// are later than the newest one counted before.
func (m *metrics) observe(st *agent.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seenAtLast := 0
	for _, r := range st.Recent {
		switch {
		case r.At.Before(m.lastAt):
			continue
		case r.At.Equal(m.lastAt):
			seenAtLast++
			if seenAtLast <= m.atLast {
				continue
			}
		}
		m.count(r)
		if r.At.After(m.lastAt) {
			m.lastAt, seenAtLast = r.At, 1
		}
		m.atLast = seenAtLast
	}
	for _, g := range st.Groups {
		if len(g.Holders) == 0 {
			continue // a group in between owners is not a new owner yet
		}
		owner := g.Holders[0]
		if prev, ok := m.owners[g.Name]; ok && prev != owner {
			m.failovers.WithLabelValues(g.Name).Inc()
		} else if !ok {
			m.failovers.WithLabelValues(g.Name).Add(0)
		}
		m.owners[g.Name] = owner
	}
}

func (m *metrics) count(r engine.Record) {
	m.records.WithLabelValues(r.Kind).Inc()
	if r.Kind == engine.RecPolicy {
		m.decisions.Inc()
	}
}

func (m *metrics) request(op string, err error) {
	switch op {
	case "move", "standby", "online", "maintenance", "cleanup":
	default:
		op = "invalid" // user input must not grow the label set
	}
	result := "accepted"
	if err != nil {
		result = "refused"
	}
	m.requests.WithLabelValues(op, result).Inc()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves /metrics: behind a token or session unless
// Options.MetricsPublic.
func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) {
	if !s.opts.MetricsPublic {
		if _, ok := s.authenticate(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="harules"`)
			http.Error(w, "authentication required: send Authorization: Bearer TOKEN (or set metrics_public)", http.StatusUnauthorized)
			return
		}
	}
	s.poll()
	s.metrics.handler.ServeHTTP(w, r)
}

var (
	descBackupLastOK       = prometheus.NewDesc("harules_backup_last_success_timestamp_seconds", "End of the newest complete backup of the job in its store (Unix time; 0 when the store holds none).", []string{"job"}, nil)
	descBackupLastSize     = prometheus.NewDesc("harules_backup_last_size_bytes", "Size of the newest complete backup of the job in its store.", []string{"job"}, nil)
	descBackupLastDuration = prometheus.NewDesc("harules_backup_last_duration_seconds", "How long the newest complete backup of the job took.", []string{"job"}, nil)
	descStoreFree          = prometheus.NewDesc("harules_backup_store_free_bytes", "Free space (for unprivileged users) on the filesystem of the job's store.", []string{"job", "store"}, nil)
	descStoreFreeRatio     = prometheus.NewDesc("harules_backup_store_free_ratio", "Free share of the filesystem of the job's store (0..1).", []string{"job", "store"}, nil)
	descStoreHeadroom      = prometheus.NewDesc("harules_backup_store_headroom_ratio", "Free share the job requires before it runs (its headroom, 0..1; 0 when the check is off).", []string{"job", "store"}, nil)
)

// backupCollector exports, at scrape time, what the backups page shows of
// each job of the policy file: the newest complete backup in its store (the
// store's history survives agent restarts, so "no backup for a day" holds
// across them) and the store's free space against the job's headroom. (The
// agent's collector tells whether a run is in progress.)
type backupCollector struct{ s *Server }

// Describe sends nothing: the jobs follow the policy file.
func (backupCollector) Describe(chan<- *prometheus.Desc) {}

func (c backupCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, err := c.s.backups(ctx)
	if err != nil {
		return // the policy file does not load; the backups page says why
	}
	for _, j := range v.Jobs {
		var newest *backupRun
		for i := range j.History { // newest first
			if r := &j.History[i]; r.Good() && r.PrunedAt.IsZero() {
				newest = r
				break
			}
		}
		if newest == nil {
			ch <- prometheus.MustNewConstMetric(descBackupLastOK, prometheus.GaugeValue, 0, j.Name)
		} else {
			ch <- prometheus.MustNewConstMetric(descBackupLastOK, prometheus.GaugeValue, unixSeconds(newest.End), j.Name)
			ch <- prometheus.MustNewConstMetric(descBackupLastSize, prometheus.GaugeValue, float64(newest.Bytes), j.Name)
			ch <- prometheus.MustNewConstMetric(descBackupLastDuration, prometheus.GaugeValue, max(0, newest.End.Sub(newest.Start).Seconds()), j.Name)
		}
		if sp := j.Space; sp != nil {
			ch <- prometheus.MustNewConstMetric(descStoreFree, prometheus.GaugeValue, float64(sp.FreeBytes), j.Name, j.Target)
			ch <- prometheus.MustNewConstMetric(descStoreFreeRatio, prometheus.GaugeValue, sp.FreePercent/100, j.Name, j.Target)
			ch <- prometheus.MustNewConstMetric(descStoreHeadroom, prometheus.GaugeValue, sp.HeadroomPercent/100, j.Name, j.Target)
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
