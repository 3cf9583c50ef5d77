package web

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/harules/harules/notify"
)

// scrape fetches /metrics and returns every sample as "name{l=v,...}" ->
// value, labels sorted by name.
func scrape(t *testing.T, b *browser, bearer string) map[string]float64 {
	t.Helper()
	resp, body := b.call("GET", "/metrics", bearer, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[name+"{"+strings.Join(labels, ",")+"}"] = value(f.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

func TestMetricsMatchTheStatus(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	got := scrape(t, b, readToken)
	want := map[string]float64{
		"harules_agent_ready{}":                                        1,
		"harules_node_up{node=node1}":                                  1,
		"harules_node_up{node=node2}":                                  1,
		"harules_node_standby{node=node2}":                             0,
		"harules_path_up{path=lan,peer=node2}":                         1,
		"harules_path_up{path=backnet,peer=node2}":                     0,
		"harules_path_missed_heartbeats{path=lan,peer=node2}":          0,
		"harules_path_missed_heartbeats{path=backnet,peer=node2}":      3,
		"harules_path_loss_ratio{path=backnet,peer=node2}":             0.25,
		"harules_path_loss_ratio{path=lan,peer=node2}":                 0,
		"harules_path_last_seen_age_seconds{path=backnet,peer=node2}":  1.2,
		"harules_group_owner{group=web,node=node1}":                    1,
		"harules_group_owner{group=web,node=node2}":                    0,
		"harules_group_target{group=web,node=node1}":                   1,
		"harules_alerts_active{name=path-down,severity=warning}":       1,
		"harules_maintenance{}":                                        0,
		"harules_decisions_total{}":                                    1,
		"harules_records_total{kind=action}":                           1,
		"harules_records_total{kind=alert}":                            1,
		"harules_group_owner_changes_total{group=web}":                 0,
		"harules_policy_info{node=node1,policy_hash=0123abcd0123abcd}": 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// A move changes the owner gauges and counts one owner change and one
	// more placement decision.
	if resp, body := b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"web","node":"node2"}`); resp.StatusCode != 200 {
		t.Fatalf("move: %s", body)
	}
	got = scrape(t, b, readToken)
	for k, v := range map[string]float64{
		"harules_group_owner{group=web,node=node1}":                0,
		"harules_group_owner{group=web,node=node2}":                1,
		"harules_group_owner_changes_total{group=web}":             1,
		"harules_decisions_total{}":                                2,
		"harules_records_total{kind=event}":                        1,
		"harules_operator_requests_total{op=move,result=accepted}": 1,
	} {
		if got[k] != v {
			t.Errorf("after the move: %s = %v, want %v", k, got[k], v)
		}
	}
	// Records already counted are not counted again on the next change.
	if resp, body := b.call("POST", "/api/v1/standby", operatorToken, "", `{"node":"node2"}`); resp.StatusCode != 200 {
		t.Fatalf("standby: %s", body)
	}
	got = scrape(t, b, readToken)
	if got["harules_decisions_total{}"] != 2 || got["harules_node_standby{node=node2}"] != 1 {
		t.Errorf("after standby: decisions %v (want 2), node2 standby %v (want 1)", got["harules_decisions_total{}"], got["harules_node_standby{node=node2}"])
	}
}

func TestMetricsAuth(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	if resp, _ := newBrowser(t, ts.URL).get("/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: want 401, got %s", resp.Status)
	}
	pub, _, _ := newTestServer(t, Options{MetricsPublic: true})
	got := scrape(t, newBrowser(t, pub.URL), "")
	if got["harules_group_owner{group=web,node=node1}"] != 1 {
		t.Fatalf("public metrics: %v", got)
	}
	// Public metrics open /metrics only.
	if resp, _ := newBrowser(t, pub.URL).call("GET", "/api/v1/status", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status with public metrics: want 401, got %s", resp.Status)
	}
}

func TestMetricsNotifications(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	fb.mu.Lock()
	st := cloneStatus(fb.st)
	st.Notifications = []notify.Stats{{Name: "ops", Sent: 12, Failed: 2, Dropped: 1, Queued: 3}}
	fb.st = st
	fb.mu.Unlock()
	got := scrape(t, newBrowser(t, ts.URL), readToken)
	for k, v := range map[string]float64{
		"harules_notifications_total{notifier=ops,result=sent}":    12,
		"harules_notifications_total{notifier=ops,result=failed}":  2,
		"harules_notifications_total{notifier=ops,result=dropped}": 1,
		"harules_notifications_queued{notifier=ops}":               3,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
