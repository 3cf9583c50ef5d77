package web

import (
	"bufio"
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/harules/harules/agent"
)

// svgElem is any element of the inline picture.
type svgElem struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgElem  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e *svgElem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e *svgElem) text() string {
	s := e.Text
	for i := range e.Children {
		s += e.Children[i].text()
	}
	return s
}

// find returns the elements with class c and, when attr != "", that
// attribute equal to val.
func (e *svgElem) find(c, attr, val string) []*svgElem {
	var out []*svgElem
	var walk func(x *svgElem)
	walk = func(x *svgElem) {
		if slices.Contains(strings.Fields(x.attr("class")), c) && (attr == "" || x.attr(attr) == val) {
			out = append(out, x)
		}
		for i := range x.Children {
			walk(&x.Children[i])
		}
	}
	walk(e)
	return out
}

// picture cuts the inline cluster-state SVG out of an overview body and
// parses it.
func picture(t *testing.T, body string) *svgElem {
	t.Helper()
	start := strings.Index(body, `<svg xmlns="http://www.w3.org/2000/svg" id="cluster-state"`)
	end := strings.Index(body, "</svg>")
	if start < 0 || end < start {
		t.Fatalf("no cluster-state picture in:\n%.2000s", body)
	}
	var root svgElem
	if err := xml.Unmarshal([]byte(body[start:end+len("</svg>")]), &root); err != nil {
		t.Fatalf("the inline picture is not well-formed: %v", err)
	}
	return &root
}

// checkCSPSafe fails on anything in an HTML page that the console's CSP
// (default-src 'none'; script-src 'self'; style-src 'self') would block:
// style attributes and elements, inline scripts, event handlers.
func checkCSPSafe(t *testing.T, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if tok.Data == "style" {
			t.Errorf("a <style> element: blocked by style-src 'self'")
		}
		hasSrc := false
		for _, a := range tok.Attr {
			switch {
			case a.Key == "style":
				t.Errorf("<%s style=%q>: inline style is blocked by style-src 'self'", tok.Data, a.Val)
			case strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s %s=...>: event handlers are blocked by script-src 'self'", tok.Data, a.Key)
			case a.Key == "src":
				hasSrc = true
			}
		}
		if tok.Data == "script" && !hasSrc {
			t.Errorf("an inline <script>: blocked by script-src 'self'")
		}
	}
}

// TestOverviewDrawsTheClusterState: the overview page shows the picture
// above the tables, with the RTT the backend measured, and nothing in the
// page needs more than the console's CSP allows.
func TestOverviewDrawsTheClusterState(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	resp, page := b.get("/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	checkCSPSafe(t, page)
	pic, alerts := strings.Index(page, `id="cluster-picture"`), strings.Index(page, "<h2>Alerts</h2>")
	if pic < 0 || alerts < 0 || pic > alerts {
		t.Fatalf("the picture is not above the tables (picture at %d, alerts at %d)", pic, alerts)
	}
	root := picture(t, page)
	if root.attr("class") != "cluster-state" {
		t.Errorf("picture class %q: style.css sizes .cluster-state", root.attr("class"))
	}
	if n := len(root.find("st-node", "", "")); n != 2 {
		t.Fatalf("%d node boxes, want node1 and node2", n)
	}
	if self := root.find("st-self", "", ""); len(self) != 1 || self[0].attr("data-node") != "node1" {
		t.Errorf("this node should be node1, marked once")
	}
	web := root.find("st-group", "data-group", "web")
	if len(web) != 1 || !slices.Contains(strings.Fields(web[0].attr("class")), "st-held") {
		t.Errorf("web should be drawn once, held: %+v", web)
	}
	lan := root.find("st-path-label", "data-path", "lan")
	if len(lan) != 1 || lan[0].text() != "lan: up, 287 µs, 0% loss" {
		t.Errorf("lan label %+v: want the RTT of the backend's HeartbeatStats", lan)
	}
	if bn := root.find("st-path", "data-path", "backnet"); len(bn) != 1 || bn[0].attr("class") != "st-path st-down" {
		t.Errorf("backnet line %+v, want down", bn)
	}
	// The alerts table sits right under the picture: the picture does not
	// list them a second time.
	if al := root.find("st-alert", "data-alert", "path-down"); len(al) != 0 {
		t.Errorf("the picture repeats the alerts of the table under it: %+v", al)
	}
}

// TestOverviewPictureEscapesNames: names from the policy cannot put
// markup into the console through the picture.
func TestOverviewPictureEscapesNames(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	const evil = `<script src="/x.js"></script><img src=x onerror=alert(1)>`
	fb.update(func(st *agent.Status) {
		st.Now = st.Now.Add(time.Second)
		st.Nodes[1].Name = evil
		st.Groups = append(st.Groups, agent.GroupStatus{Name: evil, Reason: evil})
	})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	_, page := b.get("/")
	if strings.Contains(page, "<img") || strings.Contains(page, `<script src="/x.js">`) {
		t.Fatal("a hostile name reached the page as markup")
	}
	checkCSPSafe(t, page)
	root := picture(t, page)
	if len(root.find("st-node", "data-node", evil)) != 1 || len(root.find("st-unplaced", "data-group", evil)) != 1 {
		t.Error("the hostile node and group are not drawn as text")
	}
}

// TestLiveOverviewRedrawsThePicture: the live stream carries the picture,
// redrawn when the status changes.
func TestLiveOverviewRedrawsThePicture(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	req, err := http.NewRequest("GET", ts.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 8)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var data []string
		for sc.Scan() {
			line := sc.Text()
			if line == "" && data != nil {
				events <- strings.Join(data, "\n")
				data = nil
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				data = append(data, d)
			}
		}
	}()
	backnet := func() string {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			checkCSPSafe(t, ev)
			lines := picture(t, ev).find("st-path", "data-path", "backnet")
			if len(lines) != 1 {
				t.Fatalf("%d backnet lines in the live picture", len(lines))
			}
			return lines[0].attr("class") + " " + lines[0].attr("stroke")
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return ""
	}
	if got := backnet(); got != "st-path st-down #dc2626" {
		t.Fatalf("first live picture: backnet %q, want down and red", got)
	}
	fb.setPath("node2", "backnet", true)
	if got := backnet(); got != "st-path st-up #16a34a" {
		t.Fatalf("live picture after the path came back: backnet %q, want up and green", got)
	}
}
