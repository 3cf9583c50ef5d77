package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// newChrome starts a headless Debian chromium with a fresh profile. It
// fails loudly when chromium is missing.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skipf("SKIPPING the browser test: no chromium at %s (apt-get install chromium)", chromiumPath)
		}
		t.Fatalf("the browser test needs chromium at %s: apt-get install chromium (%v)", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 50*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	// Start the browser now, so a broken install fails here.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// saveScreenshot keeps a PNG under the test's temp dir, and in docs/img
// when HARULES_UPDATE_SCREENSHOTS=1.
func saveScreenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; below 100: JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
	if os.Getenv("HARULES_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "img", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowserConsole logs in with a real browser, sees both nodes and the
// owner, moves the group through the confirmation page and watches the
// overview change through the live stream, then runs a simulation and
// sees its chart.
func TestBrowserConsole(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{PollInterval: 200 * time.Millisecond})
	// Like a real agent, the new owner shows a moment after the request.
	fb.setDelay(300 * time.Millisecond)
	// Every heartbeat path up: no alert until the test cuts one.
	fb.setPath("node2", "backnet", true)
	ctx := newChrome(t)
	shots := t.TempDir()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}

	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), operatorToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("groups")),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
	nodes := text("#nodes")
	for _, want := range []string{"node1", "node2"} {
		if !strings.Contains(nodes, want) {
			t.Errorf("nodes table lacks %s: %q", want, nodes)
		}
	}
	if got := text(`tr[data-group="web"] .holders`); got != "node1" {
		t.Fatalf("web held by %q before the move, want node1", got)
	}
	// The script connects the live stream.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("conn").textContent.includes("connected")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("live updates never connected: %v (%q)", err, text("#conn"))
	}
	if got := text("#alerts"); !strings.Contains(got, "No active alert") {
		t.Fatalf("alerts with every path up: %q", got)
	}
	saveScreenshot(t, ctx, shots, "console-overview.png")

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("move-web-node2")),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	); err != nil {
		t.Fatalf("open the move confirmation: %v", err)
	}
	if effects := text("#effects"); !strings.Contains(effects, "node1 stops web") || !strings.Contains(effects, "then node2 starts it") {
		t.Fatalf("the confirmation does not say what will happen: %q", effects)
	}
	if len(fb.callLog()) != 0 {
		t.Fatal("the confirmation page acted before confirming")
	}
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("flash"))); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const c = document.querySelector('tr[data-group="web"] .holders'); return !!c && c.textContent.trim() === "node2"; })()`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the overview never showed node2 holding web: %v", err)
	}
	t.Logf("move confirmed -> page shows the new owner: %v (agent applies it after 300ms, status polled every 200ms)", time.Since(start).Round(time.Millisecond))
	if got := strings.Join(fb.callLog(), "; "); got != "move web node2 false" {
		t.Fatalf("agent calls: %q", got)
	}
	if flash := text("#flash"); !strings.Contains(flash, "Move group web to node2: accepted") {
		t.Errorf("flash after the move: %q", flash)
	}

	// The timeline's holder chart is inline SVG: the browser lays it out
	// under the page's CSP.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/timeline"), chromedp.WaitVisible(chromedp.CSS("#holder-chart rect.span"))); err != nil {
		t.Fatalf("timeline chart: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("holder-chart").getBoundingClientRect().width > 600`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("the holder chart is not laid out: %v", err)
	}
	saveScreenshot(t, ctx, shots, "console-timeline.png")

	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/simulate"),
		chromedp.WaitVisible(chromedp.ID("run")),
		chromedp.SetValue(chromedp.ID("scenario-file"), "node-crash.star"),
		chromedp.Click(chromedp.ID("run")),
		chromedp.WaitVisible(chromedp.CSS("#chart svg")),
	); err != nil {
		t.Fatalf("run a simulation: %v", err)
	}
	if v := text("#sim-verdict"); !strings.Contains(v, "all expectations hold") {
		t.Errorf("simulation verdict: %q", v)
	}
	if tl := text("#sim-text"); !strings.Contains(tl, "final placement") {
		t.Errorf("simulation text timeline: %q", tl)
	}
	saveScreenshot(t, ctx, shots, "console-simulate.png")

	// Back on the live overview, a heartbeat path is cut: the alert
	// appears on the open page (pushed by the live stream, no reload).
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("groups"))); err != nil {
		t.Fatalf("back to the overview: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("conn").textContent.includes("connected")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("live updates never connected: %v (%q)", err, text("#conn"))
	}
	if got := text("#alerts"); !strings.Contains(got, "No active alert") {
		t.Fatalf("alerts with every path up: %q", got)
	}
	fb.setPath("node2", "backnet", false)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const a = document.getElementById("alerts"); return !!a && a.textContent.includes("path-down") && a.textContent.includes("path backnet to node2 is down"); })()`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the path-down alert never appeared after cutting the path: %v (alerts: %q)", err, text("#alerts"))
	}
	if got := text("#alerts"); !strings.Contains(got, "warning") || !strings.Contains(got, "rule path-alert") {
		t.Errorf("alert row lacks severity or rule: %q", got)
	}
	saveScreenshot(t, ctx, shots, "console-alert.png")
}

// TestBrowserBackupVerifyRestore drives the backups page of a real agent
// in a browser: verify a stored backup with the history's button and see
// the last verify on the page, then restore it through the target form and
// the confirmation page into a new directory.
func TestBrowserBackupVerifyRestore(t *testing.T) {
	ba := startBackupAgent(t)
	h := ba.runBackup(t, "conf")
	ctx := newChrome(t)
	shots := t.TempDir()
	base := ba.b.base
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[id="` + id + `"]`) } // backup ids hold dots
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/backups"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), operatorToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("groups")),
		chromedp.Navigate(base+"/backups"),
		chromedp.WaitVisible(byID("verify-conf-"+h.ID)),
		chromedp.Click(byID("verify-conf-"+h.ID)),
		chromedp.WaitVisible(chromedp.ID("flash")),
	); err != nil {
		t.Fatalf("log in and press verify: %v", err)
	}
	// The page reloads itself while the verify runs; read it until done.
	var lastVerify string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/backups")); err != nil {
			t.Fatalf("load the backups page: %v", err)
		}
		var err error
		if lastVerify, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#job-conf .last-verify`))); err != nil {
			t.Fatalf("read the last verify: %v", err)
		}
		if strings.Count(lastVerify, "ok at") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed the verify of both stores: %q", lastVerify)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(lastVerify, h.ID+" in target") || !strings.Contains(lastVerify, "(console)") {
		t.Errorf("last verify on the page: %q", lastVerify)
	}
	saveScreenshot(t, ctx, shots, "console-backups-verify.png")

	into := filepath.Join(ba.dir, "restored-by-browser")
	if err := chromedp.Do(ctx,
		chromedp.Click(byID("restore-conf-"+h.ID)),
		chromedp.WaitVisible(chromedp.ID("dir")),
		chromedp.SendKeys(chromedp.ID("dir"), into),
		chromedp.Click(chromedp.ID("next")),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	); err != nil {
		t.Fatalf("open the restore confirmation: %v", err)
	}
	effects, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("effects")))
	if err != nil {
		t.Fatalf("read the effects: %v", err)
	}
	if !strings.Contains(effects, "extracted into "+into) || !strings.Contains(effects, "live data and the store stay as they are") {
		t.Fatalf("the confirmation does not say what will happen: %q", effects)
	}
	if _, err := os.Stat(into); !os.IsNotExist(err) {
		t.Fatalf("the restore started before the confirmation: %v", err)
	}
	saveScreenshot(t, ctx, shots, "console-backups-restore.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("flash"))); err != nil {
		t.Fatalf("confirm the restore: %v", err)
	}
	if op := ba.waitOp(t, "conf", "restore", h.ID); !op.OK {
		t.Fatalf("restore: %+v", op)
	}
	if got, want := treeOf(t, into), treeOf(t, ba.src); got != want {
		t.Fatalf("the restored tree differs:\n got %s\nwant %s", got, want)
	}
}
