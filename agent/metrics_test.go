package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/version"
	"github.com/harules/harules/policy"
)

// sample is one gathered series: a counter or gauge value, or a
// histogram's count and sum.
type sample struct {
	value, count, sum float64
}

// gather collects c through a pedantic registry (which also checks that
// what Collect sends matches what Describe promised) and returns every
// series as "name{l=v,...}", labels sorted by name.
func gather(t *testing.T, c prometheus.Collector) map[string]sample {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("register: %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]sample{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = sample{value: m.GetCounter().GetValue()}
			case dto.MetricType_GAUGE:
				out[key] = sample{value: m.GetGauge().GetValue()}
			case dto.MetricType_HISTOGRAM:
				out[key] = sample{count: float64(m.GetHistogram().GetSampleCount()), sum: m.GetHistogram().GetSampleSum()}
			}
		}
	}
	return out
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// slowExec takes a set time per resource (on the fake clock) and fails as
// told.
type slowExec struct {
	clock *fakeClock
	took  map[string]time.Duration // resource -> duration
	fail  map[string]error         // resource -> error
	calls []string
}

func (e *slowExec) Execute(_ context.Context, a engine.Action) error {
	e.calls = append(e.calls, a.Op+" "+a.Resource)
	e.clock.advance(e.took[a.Resource])
	return e.fail[a.Resource]
}

func (e *slowExec) Backup(context.Context, engine.BackupRun) error { return nil }

func TestTimedExecutorObservesEveryAction(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	inner := &slowExec{clock: clock,
		took: map[string]time.Duration{"vip:10": 30 * time.Millisecond, "service:app": 2 * time.Second, "fence:n2": 4 * time.Second},
		fail: map[string]error{}}
	m := NewMetrics("n1", clock.now)
	a := &Agent{metrics: m}
	exec := a.instrument(inner)
	ctx := context.Background()
	run := func(op, kind, res string) error {
		return exec.Execute(ctx, engine.Action{Node: "n1", Group: "web", Op: op, Kind: kind, Resource: res})
	}
	if err := run(engine.OpStart, "vip", "vip:10"); err != nil {
		t.Fatal(err)
	}
	_ = run(engine.OpStart, "service", "service:app")
	inner.fail["service:app"] = errors.New("exit status 1")
	if err := run(engine.OpStart, "service", "service:app"); err == nil {
		t.Fatal("the wrapped executor lost the error")
	}
	// A refusal for now (engine.ErrRetry wrapped) is a retry, not a failure.
	inner.fail["vip:10"] = fmt.Errorf("%w: held by 02:00:00:00:00:01 (%w)", ErrConflict, engine.ErrRetry)
	if err := run(engine.OpStart, "vip", "vip:10"); !errors.Is(err, engine.ErrRetry) {
		t.Fatalf("the wrapped executor changed the error: %v", err)
	}
	_ = run(engine.OpStop, "vip", "vip:10")
	_ = exec.Execute(ctx, engine.Action{Node: "n1", Group: "web", Op: engine.OpFence, Kind: "fence", Resource: "fence:n2"})

	got := gather(t, m)
	for key, want := range map[string]sample{
		"harules_action_duration_seconds{kind=vip,op=start}":     {count: 2, sum: 0.06},
		"harules_action_duration_seconds{kind=service,op=start}": {count: 2, sum: 4},
		"harules_action_duration_seconds{kind=vip,op=stop}":      {count: 1, sum: 0.03},
		"harules_action_duration_seconds{kind=fence,op=fence}":   {count: 1, sum: 4},
		"harules_action_failures_total{kind=service,op=start}":   {value: 1},
		"harules_action_retries_total{kind=vip,op=start}":        {value: 1},
	} {
		g, ok := got[key]
		if !ok || g.value != want.value || g.count != want.count || math.Abs(g.sum-want.sum) > 1e-9 {
			t.Errorf("%s = %+v (present %v), want %+v", key, g, ok, want)
		}
	}
	if _, ok := got["harules_action_failures_total{kind=vip,op=start}"]; ok {
		t.Error("a retried start was counted as a failure")
	}
	if strings.Join(inner.calls, ",") != "start vip:10,start service:app,start service:app,start vip:10,stop vip:10,fence fence:n2" {
		t.Errorf("calls reached the inner executor as %v", inner.calls)
	}
}

// failoverDriver plays the agent's side of a decision: records, executed
// actions and the status published after it, on a fake clock.
type failoverDriver struct {
	t     *testing.T
	clock *fakeClock
	m     *Metrics
	exec  engine.Executor
	inner *slowExec
}

func newFailoverDriver(t *testing.T) *failoverDriver {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	inner := &slowExec{clock: clock, took: map[string]time.Duration{"vip:10": 100 * time.Millisecond, "service:app": 1400 * time.Millisecond}, fail: map[string]error{}}
	m := NewMetrics("n1", clock.now)
	return &failoverDriver{t: t, clock: clock, m: m, exec: (&Agent{metrics: m}).instrument(inner), inner: inner}
}

// step is one decision at the current time: placement changed (or not),
// this node runs the group's starts (each record follows its action, as
// in engine.Node), then the status shows holders and peers.
func (d *failoverDriver) step(placed bool, from []string, holders []string, peers ...NodeStatus) {
	now := d.clock.now()
	if placed {
		d.m.record(engine.Record{At: now, Kind: engine.RecPolicy, Group: "web", Target: "n1", Text: "web should run on n1"})
	}
	for _, res := range []string{"vip:10", "service:app"} {
		if holders == nil {
			break
		}
		a := engine.Action{Node: "n1", Group: "web", Op: engine.OpStart, Resource: res, Kind: strings.Split(res, ":")[0], Takeover: len(from) > 0, From: from}
		err := d.exec.Execute(context.Background(), a)
		r := engine.Record{At: now, Kind: engine.RecAction, Group: "web", Op: a.Op, Resource: res, TakeoverFrom: from}
		if err != nil {
			r.Error = err.Error()
		}
		d.m.record(r)
		if err != nil {
			if !errors.Is(err, engine.ErrRetry) {
				d.exec.Execute(context.Background(), engine.Action{Node: "n1", Group: "web", Op: engine.OpStop, Resource: "vip:10", Kind: "vip"})
			}
			holders = []string{}
			break
		}
	}
	d.status(holders, peers...)
}

func (d *failoverDriver) status(holders []string, peers ...NodeStatus) {
	st := &Status{Node: "n1", Now: d.clock.now(), Nodes: append([]NodeStatus{{Name: "n1", State: "alive"}}, peers...),
		Groups: []GroupStatus{{Name: "web", Holders: holders}}}
	d.m.observeStatus(st)
}

func TestFailoverCountAndDuration(t *testing.T) {
	d := newFailoverDriver(t)
	heard := d.clock.now()
	n2 := func(state string) NodeStatus {
		return NodeStatus{Name: "n2", State: state, Paths: []PathStatus{{Name: "lan", LastSeen: heard.Add(-time.Second)}, {Name: "backnet", LastSeen: heard}}}
	}
	// n2 holds web; a heartbeat from n2 was last heard at `heard`.
	d.status([]string{"n2"}, n2("alive"))
	// 1.5 s later n2 is declared dead; the decision takes web over: vip and
	// service take 0.1 + 1.4 s.
	d.clock.advance(1500 * time.Millisecond)
	d.status([]string{"n2"}, n2("alive"))
	d.step(true, []string{"n2"}, []string{"n1", "n2"}, n2("dead"))
	got := gather(t, d.m)
	want := map[string]sample{
		"harules_failovers_total{group=web,type=takeover}":       {value: 1},
		"harules_failover_duration_seconds{group=web}":           {count: 1, sum: 1.5},
		"harules_failover_last_duration_seconds{group=web}":      {value: 1.5},
		"harules_failover_detection_seconds{group=web}":          {count: 1, sum: 1.5},
		"harules_action_duration_seconds{kind=vip,op=start}":     {count: 1, sum: 0.1},
		"harules_action_duration_seconds{kind=service,op=start}": {count: 1, sum: 1.4},
	}
	check := func(when string, got, want map[string]sample) {
		t.Helper()
		for key, w := range want {
			g, ok := got[key]
			if !ok || g.value != w.value || g.count != w.count || math.Abs(g.sum-w.sum) > 1e-9 {
				t.Errorf("%s: %s = %+v (present %v), want %+v", when, key, g, ok, w)
			}
		}
	}
	check("after the takeover", got, want)

	// Held here: later decisions start nothing and count nothing.
	d.clock.advance(time.Second)
	d.status([]string{"n1"}, n2("dead"))
	// web moves back to n2 (n1 stops it), then an operator moves it to n1
	// again: n1 waits 2 s for n2 to stop it, and the first start is
	// refused for now (ErrRetry) once; the duration runs from the decision
	// that pointed placement here (the outage starts with n2's stops) to
	// the last start, the wait and retries included.
	d.exec.Execute(context.Background(), engine.Action{Node: "n1", Group: "web", Op: engine.OpStop, Resource: "service:app", Kind: "service"})
	d.status([]string{}, n2("alive"))
	d.status([]string{"n2"}, n2("alive"))
	d.clock.advance(time.Second)
	d.m.record(engine.Record{At: d.clock.now(), Kind: engine.RecPolicy, Group: "web", Target: "n1"})
	d.status([]string{"n2"}, n2("alive")) // n1 waits for n2 to stop
	d.clock.advance(2 * time.Second)
	d.inner.fail["vip:10"] = fmt.Errorf("still answered (%w)", engine.ErrRetry)
	d.step(false, nil, []string{"n1"}, n2("alive")) // retried
	d.clock.advance(500 * time.Millisecond)
	delete(d.inner.fail, "vip:10")
	d.step(false, nil, []string{"n1"}, n2("alive"))
	got = gather(t, d.m)
	// 2 s for n2's stop + 0.1 (refused vip) + 0.5 wait + 0.1 + 1.4 = 4.1 s
	check("after the switchover", got, map[string]sample{
		"harules_failovers_total{group=web,type=takeover}":   {value: 1},
		"harules_failovers_total{group=web,type=switchover}": {value: 1},
		"harules_failover_duration_seconds{group=web}":       {count: 2, sum: 1.5 + 4.1},
		"harules_failover_last_duration_seconds{group=web}":  {value: 4.1},
		"harules_failover_detection_seconds{group=web}":      {count: 1, sum: 1.5},
		"harules_action_retries_total{kind=vip,op=start}":    {value: 1},
	})
}

func TestFailoverNotCounted(t *testing.T) {
	d := newFailoverDriver(t)
	n2 := NodeStatus{Name: "n2", State: "alive"}
	// The first start of a group nobody held is no failover.
	d.status(nil, n2)
	d.step(true, nil, []string{"n1"}, n2)
	// A failed start is rolled back: the group does not come up here.
	d.inner.fail["service:app"] = errors.New("exit status 1")
	d.status([]string{"n2"}, n2)
	d.step(true, nil, []string{"n1"}, n2)
	d.status([]string{"n2"}, n2)
	// A start refused for now, then placement moves elsewhere: the attempt
	// is forgotten, so a start here much later is measured from its own
	// decision.
	delete(d.inner.fail, "service:app")
	d.inner.fail["vip:10"] = fmt.Errorf("not now (%w)", engine.ErrRetry)
	d.step(true, nil, []string{"n1"}, n2)
	d.m.record(engine.Record{At: d.clock.now(), Kind: engine.RecPolicy, Group: "web", Text: "web should run on n2"})
	got := gather(t, d.m)
	for key := range got {
		if strings.HasPrefix(key, "harules_failover") {
			t.Errorf("no failover happened, yet %s = %+v", key, got[key])
		}
	}
	d.clock.advance(time.Hour)
	delete(d.inner.fail, "vip:10")
	d.step(false, nil, []string{"n1"}, n2)
	got = gather(t, d.m)
	if g := got["harules_failover_duration_seconds{group=web}"]; g.count != 1 || math.Abs(g.sum-1.5) > 1e-9 {
		t.Errorf("the failover after a forgotten attempt: %+v, want one of 1.5 s", g)
	}
	if g := got["harules_failovers_total{group=web,type=switchover}"]; g.value != 1 {
		t.Errorf("failovers: %+v, want 1 switchover", got)
	}
}

// TestAgentMetrics runs a real agent on loopback (its peer b never runs;
// resources are not touched: noResources) with two exec probes and a backup job
// whose source is missing, and reads its collector.
func TestAgentMetrics(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	target := filepath.Join(dir, "store")
	src := `load("@stdlib//placement.star", "active_standby")
cluster(name = "metrics", secret_file = "secret", reevaluate = "200ms")
heartbeat("lan", interval = "100ms", misses = 3, port = 17945)
node("a", address = "127.0.0.1")
node("b", address = "127.0.0.2")
group("db", resources = [vip("198.51.100.40/24", interface = "lo")], placement = active_standby(["a"]))
probe("good", check.exec("true"), every = "100ms")
probe("bad", check.exec("false"), every = "100ms")
probe("never", check.exec("true"), every = "100ms", nodes = ["b"])
backup("site", schedule = "0 3 * * *", kind = "files", params = {"target": "` + target + `", "source": "` + filepath.Join(dir, "missing") + `", "headroom_percent": "0"})
`
	if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if (*Agent)(nil).MetricsCollector() != nil {
		t.Error("a nil agent has a collector")
	}
	ex := NewExecutor("a", quietLogger())
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: filepath.Join(dir, "state"), ControlSocket: filepath.Join(dir, "ctl.sock"),
		Logger: quietLogger(), Executor: noResources{ex}, HandoverTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ex.Policy = func() *policy.Policy { return a.policy }
	c := a.MetricsCollector()
	if c == nil {
		t.Fatal("no collector before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	})
	waitMetrics := func(what string, cond func(map[string]sample) bool) map[string]sample {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := gather(t, c)
			if cond(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never happened; metrics: %+v", what, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := waitMetrics("both probes debounced and db started", func(g map[string]sample) bool {
		return g["harules_probe_up{probe=good}"].value == 1 && g["harules_probe_up{probe=bad}"].value == 0 &&
			g["harules_probe_checks_total{probe=bad,result=fail}"].value >= 2 && g["harules_action_duration_seconds{kind=vip,op=start}"].count == 1
	})
	if _, ok := got["harules_probe_up{probe=never}"]; ok {
		t.Error("a probe of another node shows on this one")
	}
	if g := got["harules_probe_duration_seconds{probe=good}"]; g.count < 1 || g.sum <= 0 || g.sum/g.count > 5 {
		t.Errorf("good probe latency: %+v, want runs of more than 0 and less than 5 s", g)
	}
	if g := got["harules_probe_checks_total{probe=good,result=ok}"]; g.value < 1 {
		t.Errorf("good probe: %+v ok runs, want at least 1", g)
	}
	// A single node starting what nobody held is no failover.
	// b never ran, so db's start proceeds without it (a takeover), but
	// nobody held db before: no failover.
	for key, g := range got {
		if strings.HasPrefix(key, "harules_failover") {
			t.Errorf("first start counted as a failover: %s = %+v", key, g)
		}
	}
	if err := a.RunBackup(ctx, "site"); err != nil {
		t.Fatalf("run backup: %v", err)
	}
	waitMetrics("the failed backup counted and no longer running", func(g map[string]sample) bool {
		running, ok := g["harules_backup_running{job=site}"]
		return g["harules_backup_failures_total{job=site,outcome=failed}"].value == 1 && ok && running.value == 0
	})
}

// TestBuildInfoMetric: harules_build_info is 1 with the labels of the
// running build (internal/version), as harules version prints it.
func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewMetrics("a", nil)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	bi := version.Get()
	for _, mf := range mfs {
		if mf.GetName() != "harules_build_info" {
			continue
		}
		if len(mf.Metric) != 1 || mf.Metric[0].GetGauge().GetValue() != 1 {
			t.Fatalf("harules_build_info = %v, want one sample of 1", mf.Metric)
		}
		labels := map[string]string{}
		for _, l := range mf.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != bi.Version || labels["revision"] != bi.Revision || labels["goversion"] != bi.GoVersion {
			t.Fatalf("harules_build_info labels %v, want those of %+v", labels, bi)
		}
		return
	}
	t.Fatal("no harules_build_info metric")
}
