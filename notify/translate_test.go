package notify

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/harules/harules/engine"
)

func translateAll(t *testing.T, tr *translator, recs ...engine.Record) string {
	t.Helper()
	var out []Event
	for _, r := range recs {
		out = append(out, tr.translate(r)...)
	}
	return names(out)
}

func TestTranslateRecords(t *testing.T) {
	p := loadPolicy(t, "")
	g := p.Group("web")
	vip, svc := g.Resources[0].ID(), g.Resources[1].ID()
	takeover := "web placed on node2: x; takeover from node1: declared dead over all heartbeat paths and no guard rule objected"
	act := func(text, reason, err string) engine.Record {
		return engine.Record{Node: "node2", Kind: engine.RecAction, Group: "web", Text: text, Reason: reason, Error: err}
	}
	cases := []struct {
		name string
		recs []engine.Record
		want string
	}{
		{"planned start is not a failover", []engine.Record{act("start "+vip+": add", "web placed on node2: preferred", ""), act("start "+svc+": run", "web placed on node2: preferred", "")}, "group-started"},
		{"planned stop", []engine.Record{act("stop "+svc+": kill", "web moves to node1: x", ""), act("stop "+vip+": del", "web moves to node1: x", "")}, "group-stopped"},
		{"fence then takeover", []engine.Record{act("fence node1: fence node1: /bin/true node1", "node1 is declared dead; it is fenced before web is taken over", ""),
			act("start "+vip+": add", takeover, ""), act("start "+svc+": run", takeover, "")}, "failover-started,failover-finished"},
		{"failed fence keeps the takeover open", []engine.Record{act("fence node1: x", "fenced before web", "exit status 1"), act("fence node1: x", "fenced before web", ""),
			act("start "+vip+": add", takeover, ""), act("start "+svc+": run", takeover, "")}, "failover-started,fence-failed,failover-finished"},
		{"failed takeover start and its rollback", []engine.Record{act("start "+vip+": add", takeover, ""), act("start "+svc+": run", takeover, "exit status 1"),
			act("stop "+vip+": del", "rolling back web after a failed start: exit status 1", "")}, "failover-started,failover-failed"},
		{"a start refused for now is retried", []engine.Record{act("start "+vip+": add", takeover, "vip still answers: "+engine.ErrRetry.Error()),
			act("start "+vip+": add", takeover, ""), act("start "+svc+": run", takeover, "")}, "failover-started,failover-finished"},
		{"an unfinished takeover ends when the group is placed elsewhere", []engine.Record{act("start "+vip+": add", takeover, "vip still answers: "+engine.ErrRetry.Error()),
			{Node: "node2", Kind: engine.RecPolicy, Group: "web", Text: "web should run on node1"},
			{Node: "node2", Kind: engine.RecPolicy, Group: "web", Text: "web should run on node2"},
			act("start "+vip+": add", takeover, ""), act("start "+svc+": run", takeover, "")}, "failover-started,failover-started,failover-finished"},
		{"maintenance", []engine.Record{act("maintenance: would start "+vip+": add", takeover, "")}, ""},
		{"monitor failure", []engine.Record{{Kind: engine.RecEvent, Group: "web", Text: svc + " failed on node2", Reason: "monitor", Error: "exited"}}, "resource-failed"},
		{"probes", []engine.Record{ProbeRecord(time.Time{}, "node2", "gw", true, "timeout"), ProbeRecord(time.Time{}, "node2", "gw", false, "")}, "probe-failed,probe-recovered"},
		{"alerts", []engine.Record{{Kind: engine.RecAlert, Text: "a [critical] m"}, {Kind: engine.RecClear, Text: "a cleared: m"}}, "alert-raised,alert-cleared"},
		{"backup failed once, reported by executor and engine", []engine.Record{
			{Kind: engine.RecBackup, Text: "backup nightly failed", Error: "bad params"},
			{Kind: engine.RecBackup, Text: "run backup nightly", Error: "bad params"}}, "backup-failed"},
		{"backup refused, unsafe, skipped", []engine.Record{
			{Kind: engine.RecBackup, Text: "backup nightly refused: not enough free space for the headroom", Error: "headroom"},
			{Kind: engine.RecBackup, Text: "backup nightly stored as 1 but its copy did not verify", Error: "copy"},
			{Kind: engine.RecBackup, Text: "run backup nightly", Error: "the previous run is still going"},
			{Kind: engine.RecBackup, Text: "backup nightly done: 1, 5 bytes"}}, "backup-refused,backup-unsafe,backup-failed"},
		{"policy reloads", []engine.Record{{Kind: engine.RecEvent, Text: "policy reloaded, hash abc"}, {Kind: engine.RecEvent, Text: "policy reload refused", Error: "x"}}, "policy-reloaded,policy-reload-refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := translateAll(t, newTranslator(p), c.recs...); got != c.want {
				t.Errorf("events %q, want %q", got, c.want)
			}
		})
	}
}

// A reload keeps an unchanged notifier (and its counters), starts a new one
// and lets a removed one finish.
func TestSetPolicyKeepsUnchangedNotifiers(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	p1 := loadPolicy(t, fmt.Sprintf("notify(\"a\", webhook = %q)\n", a.srv.URL))
	d := startDispatcher(t, p1)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	a.wait(t, 1)
	waitStats(t, d, func(s Stats) bool { return s.Sent == 1 })

	p2 := loadPolicy(t, fmt.Sprintf("\n\nnotify(\"a\", webhook = %q)\nnotify(\"b\", webhook = %q, events = [\"peer\"])\n", a.srv.URL, b.srv.URL))
	d.SetPolicy(p2)
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is alive"})
	if got := a.wait(t, 2); names(got) != "peer-dead,peer-alive" || got[1].Seq != 2 {
		t.Fatalf("a got %s (seq %d), want peer-dead,peer-alive with seq 2", names(got), got[len(got)-1].Seq)
	}
	if got := b.wait(t, 1); names(got) != "peer-alive" {
		t.Fatalf("b got %s", names(got))
	}
	// The receiver has the event before the sender has its answer.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s := d.Stats()
		if len(s) == 2 && s[0].Name == "a" && s[0].Sent == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want a kept with 2 sent", s)
		}
	}

	d.SetPolicy(loadPolicy(t, ""))
	if s := d.Stats(); len(s) != 0 {
		t.Errorf("stats after removing every notifier: %+v", s)
	}
	d.Record(engine.Record{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 2); len(got) != 2 {
		t.Errorf("a removed notifier still got events: %s", names(got))
	}
}

func TestNotifyDeclaration(t *testing.T) {
	p := loadPolicy(t, `
notify("ops", webhook = "https://hooks.example.invalid/ha", events = ["failover", "path-down"], timeout = "2s", retries = 5, backoff = "250ms", queue = 10)
notify("page", command = "logger -t harules")
`)
	if len(p.Notifiers) != 2 {
		t.Fatalf("%d notifiers, want 2", len(p.Notifiers))
	}
	ops, page := p.Notifiers[0], p.Notifiers[1]
	if ops.Webhook != "https://hooks.example.invalid/ha" || ops.Timeout != 2*time.Second || ops.Retries != 5 || ops.Backoff != 250*time.Millisecond || ops.Queue != 10 {
		t.Errorf("ops: %+v", ops)
	}
	if !ops.Wants("failover-started") || !ops.Wants("failover-finished") || !ops.Wants("path-down") || ops.Wants("path-up") || ops.Wants("peer-dead") {
		t.Errorf("ops.Events %v: category and exact names not applied", ops.Events)
	}
	if fmt.Sprint(page.Command) != "[/bin/sh -c logger -t harules]" || page.Timeout != 5*time.Second || page.Retries != 3 || page.Queue != 256 || !page.Wants("backup-failed") {
		t.Errorf("page (defaults): %+v", page)
	}
}
