package statesvg

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

var now = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// cluster is n nodes seen from node1: every peer has a lan path (up, with
// an RTT) and a backnet path (down, 25% loss); group "web" is on node1,
// "db" on the last node.
func cluster(n int) *agent.Status {
	st := &agent.Status{Node: "node1", Cluster: "test", Now: now}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node%d", i)
		ns := agent.NodeStatus{Name: name, State: "alive", Since: now.Add(-time.Hour)}
		if i > 1 {
			ns.Paths = []agent.PathStatus{
				{Name: "lan", Up: true, LastSeen: now.Add(-100 * time.Millisecond)},
				{Name: "backnet", Up: false, Missed: 7, LastSeen: now.Add(-3 * time.Second), Loss: 0.25},
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	last := fmt.Sprintf("node%d", n)
	st.Groups = []agent.GroupStatus{
		{Name: "web", Target: "node1", Reason: "score 50", Holders: []string{"node1"}},
		{Name: "db", Target: last, Reason: "score 40", Holders: []string{last}},
	}
	st.Nodes[0].Holds = []string{"web"}
	st.Nodes[n-1].Holds = append(st.Nodes[n-1].Holds, "db")
	st.Heartbeats = []agent.HeartbeatStats{{Path: "lan"}, {Path: "backnet"}}
	for i := 2; i <= n; i++ {
		st.Heartbeats[0].RTT = append(st.Heartbeats[0].RTT, agent.PeerRTT{Peer: fmt.Sprintf("node%d", i), SmoothedSeconds: 0.000287})
	}
	st.Alerts = []engine.Alert{}
	return st
}

// elem is any XML element, kept whole for the assertions.
type elem struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []elem     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e *elem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e *elem) hasClass(c string) bool { return slices.Contains(strings.Fields(e.attr("class")), c) }

// all returns the elements under e (e included) with class c.
func (e *elem) all(c string) []*elem {
	var out []*elem
	var walk func(x *elem)
	walk = func(x *elem) {
		if x.hasClass(c) {
			out = append(out, x)
		}
		for i := range x.Children {
			walk(&x.Children[i])
		}
	}
	walk(e)
	return out
}

// text is all the character data under e.
func (e *elem) text() string {
	s := e.Text
	for i := range e.Children {
		s += e.Children[i].text()
	}
	return s
}

func (e *elem) float(t *testing.T, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(e.attr(name), 64)
	if err != nil {
		t.Fatalf("attribute %s of <%s>: %v", name, e.XMLName.Local, err)
	}
	return f
}

func parse(t *testing.T, svg []byte) *elem {
	t.Helper()
	var root elem
	if err := xml.Unmarshal(svg, &root); err != nil {
		t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v, want svg in the SVG namespace", root.XMLName)
	}
	return &root
}

func nodeByName(t *testing.T, root *elem, name string) *elem {
	t.Helper()
	for _, n := range root.all("st-node") {
		if n.attr("data-node") == name {
			return n
		}
	}
	t.Fatalf("no node box for %q", name)
	return nil
}

func boxOf(t *testing.T, node *elem) rect {
	t.Helper()
	boxes := node.all("st-box")
	if len(boxes) != 1 {
		t.Fatalf("node %s has %d boxes", node.attr("data-node"), len(boxes))
	}
	b := boxes[0]
	return rect{b.float(t, "x"), b.float(t, "y"), b.float(t, "width"), b.float(t, "height")}
}

// TestLayoutsDrawEveryNodeAndPathWithoutOverlap: 2 to 8 nodes, one box
// each, pairwise disjoint and inside the canvas, one line per peer path.
func TestLayoutsDrawEveryNodeAndPathWithoutOverlap(t *testing.T) {
	for _, c := range []struct{ n, self int }{{1, 1}, {2, 1}, {2, 2}, {3, 1}, {3, 2}, {5, 1}, {5, 4}, {8, 1}, {8, 8}} {
		n := c.n
		t.Run(fmt.Sprintf("%d nodes seen from node%d", n, c.self), func(t *testing.T) {
			st := cluster(n)
			// Seen from another node: it has no paths to itself, node1
			// gets the paths it had.
			selfName := fmt.Sprintf("node%d", c.self)
			st.Node = selfName
			st.Nodes[0].Paths, st.Nodes[c.self-1].Paths = st.Nodes[c.self-1].Paths, st.Nodes[0].Paths
			root := parse(t, Render(st, Options{}))
			width, height := root.float(t, "width"), root.float(t, "height")
			nodes := root.all("st-node")
			if len(nodes) != n {
				t.Fatalf("%d node boxes, want %d", len(nodes), n)
			}
			if self := root.all("st-self"); len(self) != 1 || self[0].attr("data-node") != selfName {
				t.Fatalf("this node marked on %d boxes, want %s only", len(self), selfName)
			}
			if !strings.Contains(nodeByName(t, root, selfName).text(), "this node") {
				t.Error("this node's box does not say so")
			}
			var boxes []rect
			for _, e := range nodes {
				b := boxOf(t, e)
				if b.x < 0 || b.y < 0 || b.x+b.w > width || b.y+b.h > height {
					t.Errorf("box of %s %+v outside the %vx%v canvas", e.attr("data-node"), b, width, height)
				}
				boxes = append(boxes, b)
			}
			for _, l := range root.all("st-label-box") {
				boxes = append(boxes, rect{l.float(t, "x"), l.float(t, "y"), l.float(t, "width"), l.float(t, "height")})
			}
			for i := range boxes {
				for j := i + 1; j < len(boxes); j++ {
					if boxes[i].overlaps(boxes[j], 0) {
						t.Errorf("boxes/labels %d %+v and %d %+v overlap", i, boxes[i], j, boxes[j])
					}
				}
			}
			if got, want := len(root.all("st-path")), 2*(n-1); got != want {
				t.Fatalf("%d path lines, want %d (two per peer)", got, want)
			}
			// Every line starts on this node's box edge and ends on the
			// peer's.
			self := boxOf(t, nodeByName(t, root, selfName))
			for _, l := range root.all("st-path") {
				if l.attr("data-peer") == selfName {
					t.Errorf("a path line from %s to itself", selfName)
				}
				peer := boxOf(t, nodeByName(t, root, l.attr("data-peer")))
				if !onEdge(self, l.float(t, "x1"), l.float(t, "y1")) || !onEdge(peer, l.float(t, "x2"), l.float(t, "y2")) {
					t.Errorf("line %s to %s does not run from box to box: %v", l.attr("data-path"), l.attr("data-peer"), l.Attrs)
				}
			}
		})
	}
}

func onEdge(r rect, x, y float64) bool {
	const eps = 0.2
	in := x >= r.x-eps && x <= r.x+r.w+eps && y >= r.y-eps && y <= r.y+r.h+eps
	edge := abs(x-r.x) < eps || abs(x-r.x-r.w) < eps || abs(y-r.y) < eps || abs(y-r.y-r.h) < eps
	return in && edge
}

func abs(f float64) float64 { return max(f, -f) }

// TestPathLinesColourAndLabels: up green with the RTT, down red with
// misses and loss, never heard grey.
func TestPathLinesColourAndLabels(t *testing.T) {
	st := cluster(3)
	st.Nodes[2].State = "unknown"
	st.Nodes[2].Paths = []agent.PathStatus{{Name: "lan"}}
	root := parse(t, Render(st, Options{}))
	find := func(class, peer, path string) *elem {
		t.Helper()
		var hit []*elem
		for _, e := range root.all(class) {
			if e.attr("data-peer") == peer && e.attr("data-path") == path {
				hit = append(hit, e)
			}
		}
		if len(hit) != 1 {
			t.Fatalf("%d %s for %s/%s, want 1", len(hit), class, peer, path)
		}
		return hit[0]
	}
	cases := []struct {
		peer, path, state, stroke string
		label                     []string
	}{
		{"node2", "lan", "up", colUp, []string{"lan: up, 287 µs, 0% loss"}},
		{"node2", "backnet", "down", colDown, []string{"backnet: DOWN, 7 missed, 25% loss"}},
		{"node3", "lan", "unknown", colUnknown, []string{"lan: unknown"}},
	}
	for _, c := range cases {
		line := find("st-path", c.peer, c.path)
		if !line.hasClass("st-"+c.state) || line.attr("stroke") != c.stroke {
			t.Errorf("%s/%s line: class %q stroke %q, want st-%s %s", c.peer, c.path, line.attr("class"), line.attr("stroke"), c.state, c.stroke)
		}
		label := find("st-path-label", c.peer, c.path)
		for _, want := range c.label {
			if got := label.text(); got != want {
				t.Errorf("%s/%s label %q, want %q", c.peer, c.path, got, want)
			}
		}
	}
	// A down path is also told apart without colour.
	if find("st-path", "node2", "backnet").attr("stroke-dasharray") == "" {
		t.Error("the down path is not dashed")
	}
}

// TestGroupsSplitBrainMovingAndStopped: a group held by two nodes is red
// on both, a group whose target is elsewhere points there, a group held by
// nobody is listed under the picture with its reason.
func TestGroupsSplitBrainMovingAndStopped(t *testing.T) {
	st := cluster(3)
	st.Groups = []agent.GroupStatus{
		{Name: "web", Target: "node1", Holders: []string{"node1", "node2"}},
		{Name: "db", Target: "node2", Reason: "operator pin", Holders: []string{"node3"}},
		{Name: "mail", Target: "node3", Wait: "the disk lease (held by node2 until 09:00:10)", Reason: "score 10"},
		{Name: "batch", Reason: "no eligible node: all in standby"},
	}
	st.Nodes[0].Holds, st.Nodes[1].Holds, st.Nodes[2].Holds = []string{"web"}, []string{"web"}, []string{"db"}
	root := parse(t, Render(st, Options{}))

	for _, holder := range []string{"node1", "node2"} {
		gs := nodeByName(t, root, holder).all("st-group")
		if len(gs) != 1 || gs[0].attr("data-group") != "web" || !gs[0].hasClass("st-split-brain") {
			t.Fatalf("%s: groups %v, want web marked split brain", holder, gs)
		}
		if fill := gs[0].Children[1].attr("fill"); fill != colSplit {
			t.Errorf("split-brain web on %s filled %s, want red %s", holder, fill, colSplit)
		}
		if !strings.Contains(gs[0].text(), "SPLIT BRAIN") {
			t.Errorf("split-brain web on %s says %q", holder, gs[0].text())
		}
	}
	db := nodeByName(t, root, "node3").all("st-group")
	if len(db) != 1 || !db[0].hasClass("st-moving") || !strings.Contains(db[0].text(), "db → node2") {
		t.Fatalf("db on node3 should show it moving to node2: %+v", db)
	}
	unplaced := root.all("st-unplaced")
	if len(unplaced) != 2 {
		t.Fatalf("%d groups listed as stopped/waiting, want mail and batch", len(unplaced))
	}
	if got := unplaced[0].text(); unplaced[0].attr("data-group") != "mail" || !unplaced[0].hasClass("st-waiting") ||
		got != "mail: waiting (should run on node3): the disk lease (held by node2 until 09:00:10)" {
		t.Errorf("mail listed as %q", got)
	}
	if got := unplaced[1].text(); !unplaced[1].hasClass("st-stopped") || got != "batch: stopped: no eligible node: all in standby" {
		t.Errorf("batch listed as %q", got)
	}
	if !strings.Contains(root.text(), "Stopped / waiting") {
		t.Error("no heading over the stopped groups")
	}
}

// TestNodeStatesAndModes: dead and unknown boxes, standby and maintenance
// said in words and as classes.
func TestNodeStatesAndModes(t *testing.T) {
	st := cluster(3)
	st.Nodes[1].State, st.Nodes[1].Standby = "dead", true
	st.Nodes[2].State, st.Nodes[2].Maintenance = "unknown", true
	root := parse(t, Render(st, Options{}))
	n2, n3 := nodeByName(t, root, "node2"), nodeByName(t, root, "node3")
	if !n2.hasClass("st-dead") || !n2.hasClass("st-standby") || !strings.Contains(n2.text(), "standby") || !strings.Contains(n2.text(), "dead for 60m") {
		t.Errorf("node2: class %q text %q", n2.attr("class"), n2.text())
	}
	if boxes := n2.all("st-box"); boxes[0].attr("stroke") != colDown {
		t.Errorf("dead node2 box stroke %s", boxes[0].attr("stroke"))
	}
	if !n3.hasClass("st-unknown") || !n3.hasClass("st-maintenance") || !strings.Contains(n3.text(), "maintenance") {
		t.Errorf("node3: class %q text %q", n3.attr("class"), n3.text())
	}
}

// TestAlertsUnderThePicture: critical in bold red, warning amber.
func TestAlertsUnderThePicture(t *testing.T) {
	st := cluster(2)
	root := parse(t, Render(st, Options{}))
	if len(root.all("st-no-alert")) != 1 {
		t.Fatal("no 'No active alert' line without alerts")
	}
	st.Alerts = []engine.Alert{
		{Name: "split-brain", Severity: "critical", Message: "web held by node1 and node2", Node: "node1"},
		{Name: "path-down", Severity: "warning", Message: "path backnet to node2 is down", Node: "node1"},
	}
	root = parse(t, Render(st, Options{}))
	alerts := root.all("st-alert")
	if len(alerts) != 2 {
		t.Fatalf("%d alerts drawn, want 2", len(alerts))
	}
	if a := alerts[0]; !a.hasClass("st-critical") || a.attr("fill") != colDownText || a.attr("font-weight") != "bold" ||
		a.text() != "[critical] split-brain: web held by node1 and node2 (node1)" {
		t.Errorf("critical alert: %+v", a)
	}
	if a := alerts[1]; !a.hasClass("st-warning") || a.attr("fill") != colWarning {
		t.Errorf("warning alert: %+v", a)
	}
	if len(root.all("st-no-alert")) != 0 {
		t.Error("'No active alert' shown with alerts")
	}
	// Alerts sit under the boxes.
	bottom := 0.0
	for _, n := range root.all("st-node") {
		b := boxOf(t, n)
		bottom = max(bottom, b.y+b.h)
	}
	if y := alerts[0].float(t, "y"); y <= bottom {
		t.Errorf("alert at y=%v, above the boxes' bottom %v", y, bottom)
	}
	// The console lists alerts in its own table: NoAlerts leaves them out.
	root = parse(t, Render(st, Options{NoAlerts: true}))
	if n := len(root.all("st-alert")) + len(root.all("st-no-alert")); n != 0 {
		t.Errorf("NoAlerts still draws %d alert lines", n)
	}
}

// TestHostileNamesAreEscaped: names come from the policy and messages
// from rules; none can inject markup.
func TestHostileNamesAreEscaped(t *testing.T) {
	const evil = `<script>alert("x")</script>&'`
	st := cluster(2)
	st.Cluster = evil
	st.Nodes[1].Name = evil
	st.Nodes[1].Paths[0].Name = evil
	st.Groups[1].Holders = []string{evil}
	st.Groups[1].Target = evil
	st.Nodes[1].Holds = []string{"db"}
	st.Groups = append(st.Groups, agent.GroupStatus{Name: "</svg><g onload=x>", Reason: evil})
	st.Alerts = []engine.Alert{{Name: evil, Severity: `"><script>`, Message: evil + "\x00\x1b"}}
	svg := Render(st, Options{ID: `x"onload="y`, Class: "a<b"})
	root := parse(t, svg)
	low := strings.ToLower(string(svg))
	for _, bad := range []string{"<script", "<g onload", `"onload=`, "\x00", "\x1b"} {
		if strings.Contains(low, bad) {
			t.Errorf("the SVG contains %q unescaped", bad)
		}
	}
	if root.attr("id") != `x"onload="y` || root.attr("class") != "a<b" {
		t.Errorf("options not kept as plain values: id %q class %q", root.attr("id"), root.attr("class"))
	}
	n := nodeByName(t, root, evil)
	if !strings.Contains(n.text(), `<script>`) {
		t.Errorf("the hostile node name is not shown as text: %q", n.text())
	}
	if !strings.Contains(root.text(), "</svg><g onload=x>: stopped") {
		t.Error("the hostile group name is not shown as text")
	}
	if len(root.all("st-path")) != 2 {
		t.Error("the hostile path lost its line")
	}
}

// TestNoScriptNoStyle: the picture must pass the console's CSP
// (style-src 'self', no script): no style attribute or element, no
// script, no event handler, no external reference.
func TestNoScriptNoStyle(t *testing.T) {
	st := cluster(5)
	st.Nodes[1].Standby = true
	st.Alerts = []engine.Alert{{Name: "a", Severity: "critical", Message: "m"}}
	root := parse(t, Render(st, Options{ID: "cluster-state", Class: "cluster-state"}))
	var walk func(e *elem)
	walk = func(e *elem) {
		switch e.XMLName.Local {
		case "style", "script", "foreignObject", "image", "use", "a":
			t.Errorf("element <%s> in the picture", e.XMLName.Local)
		}
		for _, a := range e.Attrs {
			if a.Name.Local == "style" || strings.HasPrefix(a.Name.Local, "on") || a.Name.Local == "href" {
				t.Errorf("attribute %s=%q on <%s>", a.Name.Local, a.Value, e.XMLName.Local)
			}
		}
		for i := range e.Children {
			walk(&e.Children[i])
		}
	}
	walk(root)
}

// TestDeterministic: the same status gives the same bytes, also after a
// round trip through JSON (the control socket's form).
func TestDeterministic(t *testing.T) {
	st := cluster(5)
	st.Groups = append(st.Groups, agent.GroupStatus{Name: "z", Holders: []string{"node2", "node3"}})
	st.Alerts = []engine.Alert{{Name: "a", Severity: "warning", Message: "m"}}
	first := Render(st, Options{})
	for range 20 {
		if again := Render(st, Options{}); !bytes.Equal(first, again) {
			t.Fatal("two renders of one status differ")
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back agent.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if again := Render(&back, Options{}); !bytes.Equal(first, again) {
		t.Fatal("the status read back from JSON renders differently")
	}
}

// TestLongNamesAreClipped: a long name is cut with "…" inside its box and
// kept whole in the tooltip.
func TestLongNamesAreClipped(t *testing.T) {
	st := cluster(2)
	long := strings.Repeat("n", 80)
	st.Nodes[1].Name = long
	st.Groups[1].Holders, st.Groups[1].Target = []string{long}, long
	root := parse(t, Render(st, Options{}))
	n := nodeByName(t, root, long)
	b := boxOf(t, n)
	name := n.all("st-node-name")[0].text()
	if !strings.HasSuffix(name, "…") || textW(name, 13) > b.w {
		t.Errorf("name %q (%v px) does not fit its %v px box", name, textW(name, 13), b.w)
	}
	if !strings.Contains(n.all("st-box")[0].text(), long) {
		t.Error("the tooltip lacks the whole name")
	}
}

func TestNilStatus(t *testing.T) {
	root := parse(t, Render(nil, Options{}))
	if !strings.Contains(root.text(), "not decided yet") {
		t.Errorf("nil status renders %q", root.text())
	}
}

func BenchmarkRender5(b *testing.B) {
	st := cluster(5)
	for b.Loop() {
		Render(st, Options{})
	}
}

func BenchmarkRender2(b *testing.B) {
	st := cluster(2)
	for b.Loop() {
		Render(st, Options{})
	}
}

func BenchmarkRender8(b *testing.B) {
	st := cluster(8)
	for b.Loop() {
		Render(st, Options{})
	}
}
