package e2enotify

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/notify"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// receiver is a webhook endpoint on the lab's client host that keeps every
// event in arrival order.
type receiver struct {
	mu     sync.Mutex
	events []notify.Event
	bad    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var e notify.Event
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := json.Unmarshal(body, &e); err != nil || r.Method != http.MethodPost || r.Header.Get("X-Harules-Event") != e.Event {
		rc.bad = append(rc.bad, fmt.Sprintf("%s %q: %v", r.Method, body, err))
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	rc.events = append(rc.events, e)
}

func (rc *receiver) snapshot() []notify.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notify.Event(nil), rc.events...)
}

// listenOnClient serves rc on the client host (ClientAddr) of the lab.
func listenOnClient(t *testing.T, c *clustertest.Cluster, rc *receiver) string {
	t.Helper()
	var ln net.Listener
	if err := c.Lab.Do("client", func() error {
		var err error
		ln, err = net.Listen("tcp4", clustertest.ClientAddr+":0")
		return err
	}); err != nil {
		t.Fatalf("webhook receiver on the client host: %v", err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/harules"
}

// TestCrashFailoverNotifications: node1 crashes; node2's agent sends
// path-down (both paths), peer-dead, failover-started and
// failover-finished, in that order, to a webhook on the client host.
func TestCrashFailoverNotifications(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	rc := &receiver{}
	url := listenOnClient(t, c, rc)
	c.WritePolicy(c.Policy(clustertest.PolicyOptions{
		Extra: fmt.Sprintf("notify(\"ops\", webhook = %q, timeout = \"2s\", retries = 5, backoff = \"100ms\")", url),
	}))
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)
	c.WaitFor(10*time.Second, "node1 notifies that it started the group", func() bool {
		return index(rc.snapshot(), "node1", "group-started", 0) >= 0
	})

	crashAt := c.Crash("node1")
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	c.WaitFor(15*time.Second, "node2 notifies failover-finished", func() bool {
		return index(rc.snapshot(), "node2", "failover-finished", 0) >= 0
	})

	events := rc.snapshot()
	var fromNode2 []notify.Event
	for _, e := range events {
		if e.Node == "node2" && !e.At.Before(crashAt.Add(-time.Second)) {
			fromNode2 = append(fromNode2, e)
		}
	}
	t.Logf("node2's events after the crash: %s", summary(fromNode2))
	var order []string
	for _, e := range fromNode2 {
		switch e.Event {
		case "path-down", "peer-dead", "failover-started", "failover-finished":
			order = append(order, e.Event+":"+e.Peer+e.Group)
		}
	}
	want := "path-down:node1,path-down:node1,peer-dead:node1,failover-started:node1web,failover-finished:node1web"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("node2's failover events %s, want %s", got, want)
	}
	// Every node numbers its events 1, 2, 3... per run: no gaps (nothing
	// dropped or lost) and the order they were sent in.
	last := map[string]uint64{}
	for _, e := range events {
		key := fmt.Sprintf("%s/%d", e.Node, e.Incarnation)
		if e.Seq != last[key]+1 {
			t.Errorf("%s: seq %d after %d (%s)", key, e.Seq, last[key], e.Event)
		}
		last[key] = e.Seq
		if e.Cluster != "e2e" {
			t.Errorf("event %+v: cluster %q, want e2e", e, e.Cluster)
		}
	}
	rc.mu.Lock()
	if len(rc.bad) > 0 {
		t.Errorf("malformed webhook requests: %v", rc.bad)
	}
	rc.mu.Unlock()
	st := c.MustStatus("node2")
	if len(st.Notifications) != 1 || st.Notifications[0].Name != "ops" || st.Notifications[0].Sent == 0 || st.Notifications[0].Failed+st.Notifications[0].Dropped != 0 {
		t.Errorf("node2's notification counters %+v: want ops with events sent, none failed or dropped", st.Notifications)
	}
}

func index(es []notify.Event, node, event string, from int) int {
	for i := max(from, 0); i < len(es); i++ {
		if es[i].Node == node && es[i].Event == event {
			return i
		}
	}
	return -1
}

func summary(es []notify.Event) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("#%d %s(%s%s)", e.Seq, e.Event, e.Peer, e.Group))
	}
	return strings.Join(s, " ")
}

// TestReloadAddsNotifiersAndPathCutIsReported: notifiers added by a policy
// reload (SIGHUP) take effect on the running agents; cutting one heartbeat
// path makes both nodes report path-down and the path-down alert, to the
// webhook and to a command hook; restoring it reports path-up and the
// alert cleared. The group does not move.
func TestReloadAddsNotifiersAndPathCutIsReported(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	rc := &receiver{}
	url := listenOnClient(t, c, rc)
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)

	hookDir := t.TempDir()
	c.WritePolicy(c.Policy(clustertest.PolicyOptions{Extra: fmt.Sprintf(`
notify("ops", webhook = %q, events = ["path", "alert", "policy"], timeout = "2s", backoff = "100ms")
notify("hook", command = ["/bin/sh", "-c", "cat > %s/$HARULES_EVENT_NODE-$HARULES_EVENT_NAME-$HARULES_EVENT_SEQ.json"], events = ["path-down"])
`, url, hookDir)}))
	c.Reload("node1")
	c.Reload("node2")
	c.WaitFor(15*time.Second, "both nodes notify policy-reloaded", func() bool {
		es := rc.snapshot()
		return index(es, "node1", "policy-reloaded", 0) >= 0 && index(es, "node2", "policy-reloaded", 0) >= 0
	})

	c.SetLink("node1", "eth1", false)
	reported := func(node, event string) bool {
		es := rc.snapshot()
		return index(es, node, event, index(es, node, "policy-reloaded", 0)) >= 0
	}
	c.WaitFor(20*time.Second, "both nodes notify path-down and the alert", func() bool {
		es := rc.snapshot()
		return reported("node1", "path-down") && reported("node2", "path-down") &&
			indexText(es, "node1", "alert-raised", "path-down", 0) >= 0 && indexText(es, "node2", "alert-raised", "path-down", 0) >= 0
	})
	c.SetLink("node1", "eth1", true)
	c.WaitFor(20*time.Second, "both nodes notify path-up and the alert cleared", func() bool {
		es := rc.snapshot()
		for _, n := range []string{"node1", "node2"} {
			down := index(es, n, "path-down", 0)
			if down < 0 || index(es, n, "path-up", down) < 0 || indexText(es, n, "alert-cleared", "path-down", down) < 0 {
				return false
			}
		}
		return true
	})

	es := rc.snapshot()
	t.Logf("events: %s", summaryWithNodes(es))
	for _, n := range []string{"node1", "node2"} {
		peer := map[string]string{"node1": "node2", "node2": "node1"}[n]
		reload := index(es, n, "policy-reloaded", 0)
		down := index(es, n, "path-down", reload)
		// (A policy-mismatch alert comes and goes while the nodes reload.)
		alert := indexText(es, n, "alert-raised", "path-down", reload)
		if !(reload < down && down < alert) {
			t.Errorf("%s: policy-reloaded #%d, path-down #%d, alert-raised #%d: want that order", n, reload, down, alert)
		}
		if e := es[down]; e.Peer != peer || !strings.Contains(e.Text, "path backnet to "+peer+" down") {
			t.Errorf("%s: path-down event %+v: want path backnet to %s", n, e, peer)
		}
		if e := es[alert]; !strings.Contains(e.Text, "heartbeat path backnet to "+peer+" is down") {
			t.Errorf("%s: alert event text %q", n, e.Text)
		}
		// The command hook got the same path-down event on its stdin.
		var hook notify.Event
		b, err := os.ReadFile(fmt.Sprintf("%s/%s-path-down-%d.json", hookDir, n, es[down].Seq))
		if err == nil {
			err = json.Unmarshal(b, &hook)
		}
		if err != nil || hook.Event != "path-down" || hook.Seq != es[down].Seq || hook.Peer != peer {
			t.Errorf("%s: command hook's event %+v (%v), want the webhook's path-down seq %d", n, hook, err, es[down].Seq)
		}
	}
	if owners := c.Owners("node2", clustertest.Group); len(owners) != 1 || owners[0] != "node1" {
		t.Errorf("group owners %v after the path cut, want node1 only", owners)
	}
}

// indexText is index for events whose text contains text.
func indexText(es []notify.Event, node, event, text string, from int) int {
	for i := max(from, 0); i < len(es); i++ {
		if es[i].Node == node && es[i].Event == event && strings.Contains(es[i].Text, text) {
			return i
		}
	}
	return -1
}

func summaryWithNodes(es []notify.Event) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%s#%d:%s(%s%s)", e.Node, e.Seq, e.Event, e.Peer, e.Group))
	}
	return strings.Join(s, " ")
}

// TestPlannedMoveAndProbeNotifications: an operator move reports
// group-stopped on the old node and group-started on the new one (no
// failover events); a gateway probe that starts failing on one node
// reports probe-failed, and probe-recovered once the gateway answers.
func TestPlannedMoveAndProbeNotifications(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	rc := &receiver{}
	url := listenOnClient(t, c, rc)
	c.WritePolicy(c.Policy(clustertest.PolicyOptions{GatewayGuard: true,
		Extra: fmt.Sprintf("notify(\"ops\", webhook = %q, events = [\"group\", \"failover\", \"probe\"], timeout = \"2s\", backoff = \"100ms\")", url)}))
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)

	if err := c.Move("node1", clustertest.Group, "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.WaitFor(20*time.Second, "node1 reports group-stopped and node2 group-started", func() bool {
		es := rc.snapshot()
		return index(es, "node1", "group-stopped", 0) >= 0 && index(es, "node2", "group-started", 0) >= 0
	})

	c.Blackhole("node1", clustertest.GatewayAddr, true)
	c.WaitFor(20*time.Second, "node1 reports probe-failed", func() bool { return index(rc.snapshot(), "node1", "probe-failed", 0) >= 0 })
	c.Blackhole("node1", clustertest.GatewayAddr, false)
	c.WaitFor(20*time.Second, "node1 reports probe-recovered", func() bool {
		es := rc.snapshot()
		return index(es, "node1", "probe-recovered", index(es, "node1", "probe-failed", 0)) >= 0
	})

	es := rc.snapshot()
	t.Logf("events: %s", summaryWithNodes(es))
	for _, e := range es {
		if strings.HasPrefix(e.Event, "failover-") {
			t.Errorf("a planned move and a failing probe reported %s: %+v", e.Event, e)
		}
		if e.Event == "probe-failed" && e.Node != "node1" {
			t.Errorf("probe-failed from %s, only node1's gateway was cut: %+v", e.Node, e)
		}
	}
	if e := es[index(es, "node1", "probe-failed", 0)]; !strings.Contains(e.Text, "probe gateway failing") || e.Reason == "" {
		t.Errorf("probe-failed event %+v: want the probe's name and the failing result", e)
	}
	if e := es[index(es, "node2", "group-started", 0)]; e.Group != clustertest.Group {
		t.Errorf("group-started event %+v: want group %s", e, clustertest.Group)
	}
}
