package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/statesvg"
)

// TestBrowserClusterStatePicture: in a real browser, under the console's
// CSP, the overview lays out the picture, the live stream redraws it
// when a path comes back, and the browser reports no CSP violation.
func TestBrowserClusterStatePicture(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{PollInterval: 200 * time.Millisecond})
	ctx := newChrome(t)
	start := time.Now()
	step := func(what string) { t.Logf("%-28s %v", what, time.Since(start).Round(time.Millisecond)) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), readToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("cluster-state")),
	); err != nil {
		t.Fatalf("log in and see the picture: %v", err)
	}
	step("logged in")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		window.cspViolations = [];
		document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));
		return true; })()`)); err != nil {
		t.Fatalf("listen for CSP violations: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("conn").textContent.includes("connected")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("live updates never connected: %v", err)
	}
	step("connected")
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("cluster-state").getBoundingClientRect().width`))
	if err != nil || width < 300 {
		t.Fatalf("the picture is %v px wide (%v): not laid out", width, err)
	}
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#cluster-state .st-node").length`))
	if err != nil || boxes != 2 {
		t.Fatalf("%d node boxes in the page (%v), want 2", boxes, err)
	}
	const backnet = `document.querySelector('#cluster-state line.st-path[data-path="backnet"]').getAttribute("class")`
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](backnet)); err != nil || got != "st-path st-down" {
		t.Fatalf("backnet line %q (%v), want down", got, err)
	}
	fb.setPath("node2", "backnet", true)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](backnet+` === "st-path st-up"`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the live stream never redrew backnet up: %v", err)
	}
	step("redrawn")
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.cspViolations`)); err != nil || len(got) != 0 {
		t.Fatalf("CSP violations on the overview: %v (%v)", got, err)
	}
}

// TestBrowserRendersStatusSVG opens what `harules status --svg` writes, as
// a standalone image/svg+xml document, in a real browser: it lays out at
// its own size with every box. The screenshot is docs/img/cluster-state.png
// (written with HARULES_UPDATE_SCREENSHOTS=1).
func TestBrowserRendersStatusSVG(t *testing.T) {
	svg := statesvg.Render(showcaseStatus(), statesvg.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Write(svg)
	}))
	t.Cleanup(srv.Close)
	ctx := newChrome(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/cluster-state.svg"), chromedp.WaitVisible(chromedp.CSS("svg .st-node"))); err != nil {
		t.Fatalf("open the picture: %v", err)
	}
	// An XML parse error would give Chromium's error page, not our root.
	root, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.namespaceURI + " " + document.documentElement.localName`))
	if err != nil || root != "http://www.w3.org/2000/svg svg" {
		t.Fatalf("document root %q (%v): the file did not parse as SVG", root, err)
	}
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".st-node").length`))
	if err != nil || boxes != 3 {
		t.Fatalf("%d node boxes laid out (%v), want 3", boxes, err)
	}
	// The texts fit their boxes with the browser's real font metrics.
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const out = [];
		for (const g of document.querySelectorAll(".st-node")) {
			const box = g.querySelector(".st-box").getBBox();
			for (const t of g.querySelectorAll("text")) {
				const b = t.getBBox();
				if (b.x + b.width > box.x + box.width + 1) out.push(t.textContent);
			}
		}
		return out; })()`))
	if err != nil || len(overflow) != 0 {
		t.Errorf("texts wider than their box: %q (%v)", overflow, err)
	}
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("svg")))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "cluster-state.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
	if os.Getenv("HARULES_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "img", "cluster-state.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(png), "\x89PNG") {
			t.Fatal("the screenshot is not a PNG")
		}
	}
}

// showcaseStatus is node1's view of three nodes just after a partition
// healed: node3 dead, db moving to node1 on an operator pin, api held by
// node1 and node2 at once, mail waiting for its disk lease.
func showcaseStatus() *agent.Status {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	return &agent.Status{Node: "node1", Cluster: "shop", Now: now,
		Nodes: []agent.NodeStatus{
			{Name: "node1", State: "alive", Since: now.Add(-3 * time.Hour), Holds: []string{"web", "api"}},
			{Name: "node2", State: "alive", Since: now.Add(-40 * time.Second), Holds: []string{"db", "api"}, Paths: []agent.PathStatus{
				{Name: "lan", Up: true, LastSeen: now.Add(-80 * time.Millisecond), Loss: 0},
				{Name: "backnet", Up: true, LastSeen: now.Add(-90 * time.Millisecond), Loss: 0.02},
			}},
			{Name: "node3", State: "dead", Since: now.Add(-2 * time.Minute), Paths: []agent.PathStatus{
				{Name: "lan", Missed: 240, LastSeen: now.Add(-2 * time.Minute), Loss: 1},
				{Name: "backnet", Missed: 240, LastSeen: now.Add(-2 * time.Minute), Loss: 1},
			}},
		},
		Groups: []agent.GroupStatus{
			{Name: "web", Target: "node1", Reason: "score 50", Holders: []string{"node1"}},
			{Name: "api", Target: "node1", Reason: "score 40", Holders: []string{"node1", "node2"}},
			{Name: "db", Target: "node1", Reason: "operator pin", Holders: []string{"node2"}},
			{Name: "mail", Target: "node1", Reason: "score 30", Wait: "the disk lease (node3's expires at 09:00:12)"},
		},
		Heartbeats: []agent.HeartbeatStats{
			{Path: "lan", RTT: []agent.PeerRTT{{Peer: "node2", SmoothedSeconds: 0.000287}}},
			{Path: "backnet", RTT: []agent.PeerRTT{{Peer: "node2", SmoothedSeconds: 0.000412}}},
		},
		Alerts: []engine.Alert{
			{Name: "split-brain", Severity: "critical", Message: "api is held by node1 and node2", Node: "node1", Rule: "dual-owner"},
			{Name: "node-dead", Severity: "warning", Message: "node3 is dead on every path", Node: "node1", Rule: "peer-alert"},
		},
	}
}
