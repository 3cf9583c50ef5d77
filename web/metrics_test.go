package web

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/netnstest"
	"github.com/harules/harules/notify"
	policypkg "github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
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

// metricSample is one scraped series: a counter or gauge value, or a
// histogram's count and sum.
type metricSample struct {
	value, count, sum float64
}

// scrapeSamples fetches /metrics, parses it with expfmt and returns every
// series (histograms included) as "name{l=v,...}", labels sorted by name.
func scrapeSamples(t *testing.T, b *browser, bearer string) map[string]metricSample {
	t.Helper()
	resp, body := b.call("GET", "/metrics", bearer, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	out := map[string]metricSample{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			s := metricSample{value: value(f.GetType(), m)}
			if h := m.GetHistogram(); f.GetType() == dto.MetricType_HISTOGRAM && h != nil {
				s.count, s.sum = float64(h.GetSampleCount()), h.GetSampleSum()
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = s
		}
	}
	return out
}

// TestMetricsBackupStores reads the backup gauges of the test policy's jobs
// from a store with a history: the newest complete backup (a refused run
// after it does not count), jobs without one, free space and headroom.
func TestMetricsBackupStores(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{Now: fixedClock})
	fx := newBackupFixture(t)
	fb.setPolicyPath(fx.policy)
	got := scrapeSamples(t, newBrowser(t, ts.URL), readToken)
	newest := t0.Add(-31*time.Hour + time.Minute)
	for k, v := range map[string]float64{
		"harules_backup_last_success_timestamp_seconds{job=nightly}":                                                 float64(newest.Unix()),
		"harules_backup_last_size_bytes{job=nightly}":                                                                4 << 20,
		"harules_backup_last_duration_seconds{job=nightly}":                                                          60,
		"harules_backup_last_success_timestamp_seconds{job=hourly}":                                                  0,
		"harules_backup_last_success_timestamp_seconds{job=full}":                                                    0,
		"harules_backup_store_headroom_ratio{job=nightly,store=" + fx.store + "}":                                    0.01,
		"harules_backup_store_headroom_ratio{job=full,store=" + fx.store + "}":                                       0.3,
		"harules_backup_store_headroom_ratio{job=hourly,store=" + filepath.Join(fx.dir, "not", "yet", "there") + "}": 0,
	} {
		if g, ok := got[k]; !ok || g.value != v {
			t.Errorf("%s = %v (present %v), want %v", k, g.value, ok, v)
		}
	}
	if _, ok := got["harules_backup_last_size_bytes{job=full}"]; ok {
		t.Error("a job without a complete backup has a last size")
	}
	// Free space is what statfs says of the store's filesystem.
	var st syscall.Statfs_t
	if err := syscall.Statfs(fx.store, &st); err != nil {
		t.Fatal(err)
	}
	free := got["harules_backup_store_free_bytes{job=nightly,store="+fx.store+"}"].value
	if total := float64(st.Blocks * uint64(st.Bsize)); free <= 0 || free > total {
		t.Errorf("store free bytes %v, want within (0, %v]", free, total)
	}
	if r := got["harules_backup_store_free_ratio{job=nightly,store="+fx.store+"}"].value; r <= 0 || r > 1 {
		t.Errorf("store free ratio %v, want within (0, 1]", r)
	}
	// A policy file that does not load leaves the backup gauges out but
	// the rest of the scrape works.
	bad := filepath.Join(t.TempDir(), "policy.star")
	if err := os.WriteFile(bad, []byte("cluster(\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fb.setPolicyPath(bad)
	got = scrapeSamples(t, newBrowser(t, ts.URL), readToken)
	for k := range got {
		if strings.HasPrefix(k, "harules_backup_") {
			t.Errorf("broken policy file: %s still exported", k)
		}
	}
	if got["harules_agent_ready{}"].value != 1 {
		t.Errorf("broken policy file broke the scrape: %v", got)
	}
}

// collectingBackend is the fake backend with the agent's optional
// MetricsCollector.
type collectingBackend struct {
	*fakeBackend
	c prometheus.Collector
}

func (b collectingBackend) MetricsCollector() prometheus.Collector { return b.c }

// serveBackend serves a console over b on a loopback httptest server.
func serveBackend(t *testing.T, b Backend) *browser {
	t.Helper()
	srv, err := New(b, Options{TokenFile: writeTokenFile(t, 0o600), Logger: quietLogger(), LoginFailDelay: time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return newBrowser(t, ts.URL)
}

func TestMetricsRegistersTheAgentCollector(t *testing.T) {
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "harules_test_ops_total", Help: "test"}, []string{"op"})
	ops.WithLabelValues("x").Add(3)
	got := scrapeSamples(t, serveBackend(t, collectingBackend{newFakeBackend(t), ops}), readToken)
	if got["harules_test_ops_total{op=x}"].value != 3 || got["harules_agent_ready{}"].value != 1 {
		t.Errorf("the backend's collector is not served next to the status gauges: %v", got)
	}
	// An agent that has no collector (nil) is served without one.
	got = scrapeSamples(t, serveBackend(t, collectingBackend{newFakeBackend(t), nil}), readToken)
	if got["harules_agent_ready{}"].value != 1 {
		t.Errorf("no collector: %v", got)
	}
}

// slowResources stands in for the real executor's resource actions (the
// test's group must not add a VIP in the root namespace) and takes a few
// milliseconds per action, like a real one; backups run for real.
type slowResources struct{ *agent.Executor }

func (slowResources) Execute(ctx context.Context, _ engine.Action) error {
	select {
	case <-time.After(5 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestMetricsFromARealAgent runs a real agent in this process (its peer
// never runs, heartbeats stay on loopback) with two exec probes, a backup
// that stores and one that fails, and scrapes its console.
func TestMetricsFromARealAgent(t *testing.T) {
	dir := t.TempDir()
	src, store := filepath.Join(dir, "src"), filepath.Join(dir, "store")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.conf"), []byte(strings.Repeat("alpha\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(policy, []byte(`load("@stdlib//placement.star", "active_standby")
cluster(name = "metrics", secret_file = "secret", reevaluate = "200ms")
node("m1", address = "127.0.0.1")
node("m2", address = "127.0.0.2")
heartbeat("lan", interval = "100ms", misses = 3, port = 17946)
group("db", resources = [vip("198.51.100.40/24", interface = "lo"), service("dbsvc", command = "sleep 1000")],
      placement = active_standby(["m1"]))
probe("up", check.exec("true"), every = "100ms")
probe("down", check.exec("exit 3"), every = "100ms")
backup("conf", schedule = "0 3 * * *", kind = "files", params = {"target": "`+store+`", "source": "`+src+`", "headroom_percent": "1"})
backup("lost", schedule = "0 3 * * *", kind = "files", params = {"target": "`+store+`", "source": "`+filepath.Join(dir, "missing")+`", "headroom_percent": "0"})
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := agent.NewExecutor("m1", quietLogger())
	p, err := rules.Load(context.Background(), policy, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex.Policy = func() *policypkg.Policy { return p }
	_, b := startAgentConsole(t, agent.Config{PolicyPath: policy, Node: "m1", StateDir: filepath.Join(dir, "state"),
		ControlSocket: filepath.Join(dir, "ctl.sock"), Logger: quietLogger(), HandoverTimeout: time.Second,
		Executor: slowResources{ex}}, Options{})
	var got map[string]metricSample
	waitFor(t, "probes debounced and db started (after m2's startup grace)", func() bool {
		got = scrapeSamples(t, b, readToken)
		return got["harules_probe_up{probe=up}"].value == 1 && got["harules_probe_up{probe=down}"].value == 0 &&
			got["harules_action_duration_seconds{kind=service,op=start}"].count == 1
	})
	for _, k := range []string{"harules_action_duration_seconds{kind=vip,op=start}", "harules_action_duration_seconds{kind=service,op=start}"} {
		// slowResources waits 5 ms; anything over 10 s is a bug, not load.
		if g := got[k]; g.count != 1 || g.sum < 0.005 || g.sum > 10 {
			t.Errorf("%s: %+v, want one action of 5 ms to 10 s", k, g)
		}
	}
	if g := got["harules_probe_checks_total{probe=down,result=fail}"]; g.value < 1 {
		t.Errorf("failed checks of probe down: %+v", g)
	}
	if g := got["harules_probe_checks_total{probe=up,result=ok}"]; g.value < 1 {
		t.Errorf("ok checks of probe up: %+v", g)
	}
	if g := got["harules_probe_duration_seconds{probe=up}"]; g.count < 1 || g.sum <= 0 || g.sum/g.count > 5 {
		t.Errorf("probe latency: %+v, want runs of more than 0 and less than 5 s", g)
	}
	if g := got["harules_backup_last_success_timestamp_seconds{job=conf}"]; g.value != 0 {
		t.Errorf("before any run: last success %v, want 0", g.value)
	}

	before := time.Now()
	for _, job := range []string{"conf", "lost"} {
		if resp, body := b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"`+job+`"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("run %s: %s %s", job, resp.Status, body)
		}
	}
	// Running is read live from the agent, not from the status of its last
	// decision: a run ending makes no decision.
	waitFor(t, "conf stored and lost failed, neither running", func() bool {
		got = scrapeSamples(t, b, readToken)
		running, ok := got["harules_backup_running{job=conf}"]
		return got["harules_backup_last_success_timestamp_seconds{job=conf}"].value > 0 &&
			got["harules_backup_failures_total{job=lost,outcome=failed}"].value == 1 &&
			ok && running.value == 0 && got["harules_backup_running{job=lost}"].value == 0
	})
	if ts := got["harules_backup_last_success_timestamp_seconds{job=conf}"].value; ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last success of conf at %v, want between %v and now", ts, before.Unix())
	}
	if size := got["harules_backup_last_size_bytes{job=conf}"].value; size <= 0 {
		t.Errorf("size of conf's backup: %v", size)
	}
	if d := got["harules_backup_last_duration_seconds{job=conf}"].value; d < 0 || d > 30 {
		t.Errorf("duration of conf's backup: %v", d)
	}
	if g, ok := got["harules_backup_failures_total{job=conf,outcome=failed}"]; ok {
		t.Errorf("a good backup counted as failed: %+v", g)
	}
	if g := got["harules_backup_last_success_timestamp_seconds{job=lost}"]; g.value != 0 {
		t.Errorf("the failed job has a last success: %+v", g)
	}
	if r := got["harules_backup_store_headroom_ratio{job=conf,store="+store+"}"].value; r != 0.01 {
		t.Errorf("headroom of conf: %v, want 0.01", r)
	}
	_, body := b.call("GET", "/metrics", readToken, "", "")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "harules_probe_up") || strings.HasPrefix(line, "harules_probe_checks_total") || strings.HasPrefix(line, "harules_backup_") {
			t.Log(line)
		}
	}
}

// TestMetricsFailoverOnRealAgents runs a real two-node cluster in network
// namespaces; node1 serves the console. A group moved away and back is a
// switchover on node1, and taken back from a crashed node2 a takeover:
// node1's /metrics counts both, with their durations, the detection time of
// the takeover, and the durations of every start and stop node1 ran.
func TestMetricsFailoverOnRealAgents(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 2})
	tokens := filepath.Join(c.Dir, "web-tokens")
	if err := os.WriteFile(tokens, []byte("read:"+readToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.StateDir("node1"), 0o700); err != nil {
		t.Fatal(err)
	}
	listen := net.JoinHostPort(clustertest.LanAddr(1), "9444")
	c.StartDaemon("node1", "node1-agent", nil, c.Bin, "run", "--policy", c.PolicyPath, "--node", "node1",
		"--state-dir", c.StateDir("node1"), "--control", c.ControlSocket("node1"),
		"--web-listen", listen, "--web-tokens", tokens)
	c.WaitFor(30*time.Second, "node1's agent answers", func() bool { _, err := c.Status("node1"); return err == nil })
	c.Start("node2")
	clientNS := c.NS("client")
	b := &browser{t: t, base: "http://" + listen, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netnstest.DoIn(clientNS, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}}}}
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitFor(30*time.Second, "node1 sees node2 alive", func() bool {
		st, err := c.Status("node1")
		return err == nil && len(st.Nodes) == 2 && st.Nodes[1].State == "alive"
	})
	var got map[string]metricSample
	c.WaitFor(30*time.Second, "node1's console serves metrics", func() bool {
		resp, _ := b.call("GET", "/metrics", readToken, "", "")
		return resp.StatusCode == http.StatusOK
	})
	// The start at boot is no failover: nobody held web before.
	got = scrapeSamples(t, b, readToken)
	for k, v := range got {
		if strings.HasPrefix(k, "harules_failover") {
			t.Errorf("before any failover: %s = %+v", k, v)
		}
	}
	// Durations are real: more than 0, and a bound no working action nears.
	const bound = 30.0
	actions := func(when, op string, want float64) {
		t.Helper()
		for _, kind := range []string{"vip", "service"} {
			k := "harules_action_duration_seconds{kind=" + kind + ",op=" + op + "}"
			if g := got[k]; g.count != want || g.sum <= 0 || g.sum > want*bound {
				t.Errorf("%s: %s = %+v, want %v actions of more than 0 and less than %v s", when, k, g, want, bound)
			}
		}
	}
	actions("at boot", "start", 1)

	move := func(to string) {
		t.Helper()
		if err := c.Move("node1", clustertest.Group, to); err != nil {
			t.Fatalf("move to %s: %v", to, err)
		}
		c.WaitOwner("node1", clustertest.Group, to, 30*time.Second)
	}
	move("node2")
	move("node1")
	c.WaitFor(10*time.Second, "the switchover counted", func() bool {
		got = scrapeSamples(t, b, readToken)
		return got["harules_failovers_total{group=web,type=switchover}"].value == 1
	})
	actions("after the switchover", "start", 2)
	actions("after the switchover", "stop", 1)
	if g := got["harules_failover_duration_seconds{group=web}"]; g.count != 1 || g.sum <= 0 || g.sum > bound {
		t.Errorf("switchover duration: %+v, want one of more than 0 and less than %v s", g, bound)
	}
	if g := got["harules_failover_last_duration_seconds{group=web}"]; g.value != got["harules_failover_duration_seconds{group=web}"].sum {
		t.Errorf("last failover duration %v, want the only one observed", g.value)
	}
	if g, ok := got["harules_failover_detection_seconds{group=web}"]; ok {
		t.Errorf("a switchover has a detection time: %+v", g)
	}

	// node2 takes web and crashes: node1 takes it over after declaring
	// node2 dead, which takes 15 missed heartbeats of 100 ms.
	move("node2")
	crashAt := c.Crash("node2")
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	t.Logf("crash of node2 -> node1 reports holding web: %v", time.Since(crashAt).Round(time.Millisecond))
	c.WaitFor(10*time.Second, "the takeover counted", func() bool {
		got = scrapeSamples(t, b, readToken)
		return got["harules_failovers_total{group=web,type=takeover}"].value == 1
	})
	if got["harules_failovers_total{group=web,type=switchover}"].value != 1 {
		t.Errorf("switchovers after the takeover: %v, want still 1", got["harules_failovers_total{group=web,type=switchover}"].value)
	}
	if g := got["harules_failover_duration_seconds{group=web}"]; g.count != 2 || g.sum <= 0 || g.sum > 2*bound {
		t.Errorf("failover durations: %+v, want two of more than 0 and less than %v s", g, bound)
	}
	// No decision declares node2 dead before 1.5 s without a heartbeat.
	if g := got["harules_failover_detection_seconds{group=web}"]; g.count != 1 || g.sum < 1.0 || g.sum > bound {
		t.Errorf("takeover detection: %+v, want one of at least 1.5 s (15 x 100 ms) and less than %v s", g, bound)
	}
	actions("after the takeover", "start", 3)
	actions("after the takeover", "stop", 2)
	// The excerpt a reader of the report sees.
	resp, body := b.call("GET", "/metrics", readToken, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	for _, line := range strings.Split(body, "\n") {
		if (strings.HasPrefix(line, "harules_failover") || strings.HasPrefix(line, "harules_action_duration_seconds_sum") ||
			strings.HasPrefix(line, "harules_action_duration_seconds_count")) && !strings.Contains(line, "_bucket") {
			t.Log(line)
		}
	}
}

// BenchmarkMetricsGather measures one scrape's collection with three
// backup jobs (the policy file is loaded and each store's history read and
// statfs'd at every scrape, like the backups page does).
func BenchmarkMetricsGather(b *testing.B) {
	dir := b.TempDir()
	base, err := os.ReadFile("testdata/policy.star")
	if err != nil {
		b.Fatal(err)
	}
	jobs := ""
	for _, name := range []string{"a", "b", "c"} {
		jobs += `backup("` + name + `", schedule = "0 2 * * *", kind = "files", params = {"target": "` + filepath.Join(dir, "store") + `", "source": "` + dir + `"})` + "\n"
	}
	policy := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(policy, append(base, jobs...), 0o600); err != nil {
		b.Fatal(err)
	}
	fb := newFakeBackend(b)
	fb.setPolicyPath(policy)
	srv, err := New(fb, Options{TokenFile: writeTokenFileB(b), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		fams, err := srv.metrics.registry.Gather()
		if err != nil || len(fams) == 0 {
			b.Fatalf("gather: %d families, %v", len(fams), err)
		}
	}
}
