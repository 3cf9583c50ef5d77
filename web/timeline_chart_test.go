package web

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

// failoverRecords are node1's records of a move of web to node2, node2's
// death with a failed then a good start of web on node1, and db placed on
// node2 then nowhere.
func failoverRecords() []engine.Record {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// Records carry the structured fields the engine writes; the chart
	// reads those, not the text.
	rec := func(s int, node, kind, group, text, errText string) engine.Record {
		return engine.Record{At: at(s), Node: node, Kind: kind, Group: group, Text: text, Error: errText}
	}
	target := func(r engine.Record, node string) engine.Record { r.Target = node; return r }
	act := func(r engine.Record, op, resource string) engine.Record { r.Op, r.Resource = op, resource; return r }
	peer := func(r engine.Record, name, state string) engine.Record { r.Peer, r.State = name, state; return r }
	dry := func(r engine.Record) engine.Record { r.DryRun = true; return r }
	return []engine.Record{
		target(rec(-60, "node1", engine.RecPolicy, "web", "web should run on node1", ""), "node1"),
		act(rec(-60, "node1", engine.RecAction, "web", "start vip:198.51.100.10: add", ""), engine.OpStart, "vip:198.51.100.10"),
		dry(act(rec(-55, "node1", engine.RecAction, "web", "maintenance: would stop vip:198.51.100.10: del", ""), engine.OpStop, "vip:198.51.100.10")),
		target(rec(-50, "node1", engine.RecPolicy, "web", "web should run on node2", ""), "node2"),
		act(rec(-50, "node1", engine.RecAction, "web", "stop vip:198.51.100.10: del", ""), engine.OpStop, "vip:198.51.100.10"),
		act(rec(-50, "node1", engine.RecAction, "web", "stop fs:/srv: umount", ""), engine.OpStop, "fs:/srv"),
		act(rec(-45, "node2", engine.RecAction, "web", "start vip:198.51.100.10: add", ""), engine.OpStart, "vip:198.51.100.10"), // a peer's record: not ours
		peer(rec(-40, "node1", engine.RecPeer, "", "node2 is dead", ""), "node2", "dead"),
		target(rec(-40, "node1", engine.RecPolicy, "web", "web should run on node1", ""), "node1"),
		act(rec(-38, "node1", engine.RecAction, "web", "start vip:198.51.100.10: add", "address in use"), engine.OpStart, "vip:198.51.100.10"),
		act(rec(-36, "node1", engine.RecAction, "web", "start vip:198.51.100.10: add", ""), engine.OpStart, "vip:198.51.100.10"),
		target(rec(-30, "node1", engine.RecPolicy, "db", "db should run on node2", ""), "node2"),
		rec(-20, "node1", engine.RecPolicy, "db", "db should run on nowhere (stopped)", ""),
	}
}
func TestHolderSpans(t *testing.T) {
	st := &agent.Status{Node: "node1", Now: t0, Nodes: []agent.NodeStatus{{Name: "node1"}, {Name: "node2"}}}
	spans, windows := holderSpans(st, failoverRecords())
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	want := []holderSpan{
		{Group: "db", Node: "node2", From: at(-30), To: at(-20)},
		{Group: "db", Node: "", From: at(-20), To: t0},
		{Group: "web", Node: "node1", From: at(-60), To: at(-50), Seen: true},
		{Group: "web", Node: "node2", From: at(-50), To: at(-40)},
		{Group: "web", Node: "", From: at(-40), To: at(-36)},
		{Group: "web", Node: "node1", From: at(-36), To: t0, Seen: true},
	}
	slices.SortFunc(spans, func(a, b holderSpan) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return a.From.Compare(b.From)
	})
	if !slices.Equal(spans, want) {
		t.Errorf("spans:\n got %+v\nwant %+v", spans, want)
	}
	wantW := []failoverWindow{
		{Group: "web", From: "node2", To: "node1", Start: at(-40), End: at(-36)},
		{Group: "db", From: "node2", To: "", Start: at(-20), End: t0},
	}
	if !slices.Equal(windows, wantW) {
		t.Errorf("windows:\n got %+v\nwant %+v", windows, wantW)
	}
	if s, w := holderSpans(st, nil); len(s) != 0 || len(w) != 0 || holderChart(st, s) != "" {
		t.Errorf("no records: spans %v windows %v", s, w)
	}
}

func TestTimelineChart(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	fb.update(func(st *agent.Status) {
		st.Recent = failoverRecords()
		st.Groups = append(st.Groups, agent.GroupStatus{Name: "db"})
	})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	_, page := b.get("/timeline")
	for _, want := range []string{`<svg xmlns="http://www.w3.org/2000/svg" id="holder-chart"`, `data-group="web" data-holder="node2"`,
		`data-group="web" data-holder=""`, `data-group="db" data-holder=""`, `<table id="failovers">`,
		"<td>web</td><td class=\"nowrap\">07:59:20.000</td><td class=\"nowrap\">07:59:24.000</td><td>4s</td><td>node2</td><td>node1</td>",
		`<span class="bad">20s so far</span>`, "no holder (failover window), 07:59:20.000 – 07:59:24.000 (4s)"} {
		if !strings.Contains(page, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// Every rectangle lies inside the chart and has a positive width.
	spanRect := regexp.MustCompile(`class="span" data-group="[a-z]+" data-holder="[a-z0-9]*" x="([0-9.]+)" y="[0-9]+" width="([0-9.]+)"`)
	rects := spanRect.FindAllStringSubmatch(page, -1)
	if len(rects) != 6 {
		t.Fatalf("want 6 spans in the chart, got %d", len(rects))
	}
	for _, m := range rects {
		x, err1 := strconv.ParseFloat(m[1], 64)
		w, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil || x < chartLeft || w < minSpanUnit || x+w > chartWidth-chartRight+minSpanUnit {
			t.Errorf("span at x=%s width=%s is outside the plot", m[1], m[2])
		}
	}
	// The group filter narrows the chart.
	_, page = b.get("/timeline?group=db")
	if strings.Contains(page, `data-group="web"`) || !strings.Contains(page, `data-group="db"`) || strings.Contains(page, "<td>web</td>") {
		t.Error("timeline?group=db still charts web")
	}
	// No failover in the fake's own records: one lane, no window.
	fb.update(func(st *agent.Status) { st.Recent = newFakeBackend(t).Status().Recent })
	_, page = b.get("/timeline")
	if !strings.Contains(page, `id="no-failover"`) || strings.Count(page, `class="span"`) != 1 {
		t.Errorf("timeline without a failover: want one span and no window")
	}
}
