package web

import (
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
	m.registry.MustRegister(m, m.decisions, m.records, m.failovers, m.requests)
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
	case "move", "standby", "online", "maintenance":
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
