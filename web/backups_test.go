package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/rules"
)

// backupFixture is the test policy with three backup jobs and a store
// holding a history for one of them.
type backupFixture struct {
	dir, policy, store string
	hash               string
}

func newBackupFixture(t *testing.T) backupFixture {
	t.Helper()
	dir := t.TempDir()
	base, err := os.ReadFile("testdata/policy.star")
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	jobs := `
backup("nightly", schedule = "0 2 * * *", group = "web", kind = "files", timezone = "Europe/Berlin",
       params = {"target": "` + store + `", "source": "` + src + `", "headroom_percent": "1", "copy_to": "` + filepath.Join(dir, "dr") + `"})
backup("hourly", schedule = "@every 1h", kind = "exec",
       params = {"target": "` + filepath.Join(dir, "not", "yet", "there") + `", "command": "/bin/true", "headroom_percent": "0"})
backup("full", schedule = "30 3 * * 0", kind = "files", params = {"target": "` + store + `", "source": "` + src + `"})
`
	path := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(path, append(base, jobs...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), path, rules.Options{})
	if err != nil {
		t.Fatalf("the fixture policy does not load: %v", err)
	}
	hist := []backup.Record{
		{ID: "20261124T010000.000Z-aaaaaa", Job: "nightly", Kind: "files", Node: "node1", Start: t0.Add(-55 * time.Hour),
			End: t0.Add(-55*time.Hour + time.Minute), Bytes: 3 << 20, SHA256: "ab", Outcome: backup.OutcomeOK,
			Want: []string{"dr"}, Copies: []backup.Copy{{Replica: "dr", Verified: true}}},
		{ID: "20261125T010000.000Z-bbbbbb", Job: "nightly", Kind: "files", Node: "node1", Start: t0.Add(-31 * time.Hour),
			End: t0.Add(-31*time.Hour + time.Minute), Bytes: 4 << 20, SHA256: "cd", Outcome: backup.OutcomeOK,
			Want: []string{"dr"}, Copies: []backup.Copy{{Replica: "dr", Verified: false, Error: "dr: checksum mismatch"}}},
		{ID: "20261126T010000.000Z-cccccc", Job: "nightly", Kind: "files", Node: "node2", Start: t0.Add(-7 * time.Hour),
			Outcome: backup.OutcomeRefused, Error: "insufficient storage headroom\nmore detail"},
	}
	b, _ := json.Marshal(hist)
	if err := os.MkdirAll(filepath.Join(store, "nightly"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "nightly", "history.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return backupFixture{dir: dir, policy: path, store: store, hash: p.Hash}
}

func fixedClock() time.Time { return t0 }

func TestAPIBackups(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{Now: fixedClock})
	fx := newBackupFixture(t)
	fb.setPolicyPath(fx.policy)
	fb.update(func(st *agent.Status) {
		st.Backups = []agent.BackupState{{Job: "full", Started: t0.Add(-time.Hour), Finished: t0.Add(-50 * time.Minute),
			Outcome: "failed", Error: "tar: disk error"}}
	})
	b := newBrowser(t, ts.URL)
	resp, body := b.call("GET", "/api/v1/backups", readToken, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/backups: %s %s", resp.Status, body)
	}
	var v backupsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("answer is not a backups view: %v\n%s", err, body)
	}
	if v.PolicyPath != fx.policy || v.PolicyHash != fx.hash || v.Running {
		t.Errorf("policy %q hash %q running %v: want %q, %q and not running (the fake runs another hash)", v.PolicyPath, v.PolicyHash, v.Running, fx.policy, fx.hash)
	}
	if len(v.Jobs) != 3 {
		t.Fatalf("want 3 jobs, got %d", len(v.Jobs))
	}
	nightly, hourly, full := v.Jobs[0], v.Jobs[1], v.Jobs[2]
	// 08:00 UTC is 09:00 in Berlin: the next 02:00 there is 01:00 UTC tomorrow.
	if want := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC); !nightly.NextRun.Equal(want) || nightly.Timezone != "Europe/Berlin" {
		t.Errorf("nightly next run %v (%s), want %v", nightly.NextRun, nightly.Timezone, want)
	}
	if want := t0.Add(time.Hour); !hourly.NextRun.Equal(want) {
		t.Errorf("hourly next run %v, want %v", hourly.NextRun, want)
	}
	if want := time.Date(2026, 11, 29, 3, 30, 0, 0, time.UTC); !full.NextRun.Equal(want) {
		t.Errorf("full next run %v, want %v (Sunday)", full.NextRun, want)
	}
	if nightly.Group != "web" || nightly.Kind != "files" || nightly.Target != fx.store || nightly.CopyTo == "" {
		t.Errorf("nightly: %+v", nightly)
	}
	// History newest first, safety from the copies.
	if len(nightly.History) != 3 {
		t.Fatalf("nightly history: want 3 runs, got %d", len(nightly.History))
	}
	h := nightly.History
	if h[0].Outcome != backup.OutcomeRefused || h[0].Safe || h[1].Outcome != backup.OutcomeOK || h[1].Safe || !h[2].Safe || h[2].Bytes != 3<<20 {
		t.Errorf("history (newest first): %+v", h)
	}
	if len(full.History) != 0 || len(hourly.History) != 0 {
		t.Errorf("jobs without a catalogue have a history: %+v %+v", full.History, hourly.History)
	}
	// The agent's state of its runs.
	if full.State == nil || full.State.Outcome != "failed" || nightly.State != nil {
		t.Errorf("states: full %+v nightly %+v", full.State, nightly.State)
	}
	// Free space against the headroom, checked with our own statfs.
	var st syscall.Statfs_t
	if err := syscall.Statfs(fx.store, &st); err != nil {
		t.Fatal(err)
	}
	total, free := st.Blocks*uint64(st.Bsize), st.Bavail*uint64(st.Bsize)
	for _, c := range []struct {
		job      backupJob
		path     string
		headroom float64
	}{{nightly, fx.store, 1}, {full, fx.store, 30}, {hourly, fx.dir, 0}} {
		sp := c.job.Space
		if sp == nil {
			t.Errorf("%s: no space (error %q)", c.job.Name, c.job.Error)
			continue
		}
		if sp.Path != c.path || sp.HeadroomPercent != c.headroom || sp.TotalBytes != total {
			t.Errorf("%s space %+v: want path %s, headroom %v%%, total %d", c.job.Name, sp, c.path, c.headroom, total)
		}
		// Other tests write meanwhile: the free space may move a little.
		if diff := int64(sp.FreeBytes) - int64(free); diff > 64<<20 || diff < -64<<20 {
			t.Errorf("%s free %d, statfs says %d", c.job.Name, sp.FreeBytes, free)
		}
		if want := float64(sp.FreeBytes) > c.headroom/100*float64(sp.TotalBytes); sp.Enough != want {
			t.Errorf("%s enough=%v with %d of %d free and headroom %v%%", c.job.Name, sp.Enough, sp.FreeBytes, sp.TotalBytes, c.headroom)
		}
	}
	// Running is true once the agent runs the file's hash.
	fb.update(func(st *agent.Status) { st.PolicyHash = fx.hash })
	_, body = b.call("GET", "/api/v1/backups", readToken, "", "")
	if err := json.Unmarshal([]byte(body), &v); err != nil || !v.Running {
		t.Errorf("with the same hash: running=%v (%v)", v.Running, err)
	}
	// A corrupt catalogue is reported on its job, not a failed request.
	if err := os.WriteFile(filepath.Join(fx.store, "nightly", "history.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body = b.call("GET", "/api/v1/backups", readToken, "", "")
	if err := json.Unmarshal([]byte(body), &v); resp.StatusCode != 200 || err != nil || !strings.Contains(v.Jobs[0].Error, "read history of nightly") {
		t.Errorf("corrupt history: %s %s", resp.Status, body)
	}
	// A policy that does not load: 503 with the reason.
	broken := filepath.Join(fx.dir, "broken.star")
	if err := os.WriteFile(broken, []byte("node(\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fb.setPolicyPath(broken)
	resp, body = b.call("GET", "/api/v1/backups", readToken, "", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "does not load") {
		t.Errorf("broken policy: want 503, got %s %s", resp.Status, body)
	}
}

func TestAPIBackupRun(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{Now: fixedClock})
	fx := newBackupFixture(t)
	fb.setPolicyPath(fx.policy)
	b := newBrowser(t, ts.URL)
	cases := []struct {
		token, body string
		code        int
		msg         string
	}{
		{readToken, `{"job":"nightly"}`, 403, "operator role"},
		{operatorToken, `{}`, 400, "job is required (jobs: nightly, hourly, full)"},
		{operatorToken, `{"job":"weekly"}`, 404, `unknown backup job "weekly"`},
		{operatorToken, `{"jbo":"nightly"}`, 400, `unknown field "jbo"`},
		{operatorToken, `{"job":`, 400, "malformed JSON"},
	}
	for _, c := range cases {
		resp, body := b.call("POST", "/api/v1/backups/run", c.token, "", c.body)
		var e apiError
		if resp.StatusCode != c.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.msg) {
			t.Errorf("run %s: want %d with %q, got %s %s", c.body, c.code, c.msg, resp.Status, body)
		}
	}
	if resp, body := b.call("GET", "/api/v1/backups/run", operatorToken, "", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET run: want 405, got %s %s", resp.Status, body)
	}
	if calls := fb.callLog(); len(calls) != 0 {
		t.Fatalf("bad requests reached the agent: %v", calls)
	}
	resp, body := b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"nightly"}`)
	var or operatorResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &or) != nil || or.Result != "started" ||
		!strings.Contains(strings.Join(or.Effects, " "), "bound to group web, which this node holds") {
		t.Fatalf("run nightly: %s %s", resp.Status, body)
	}
	if got := strings.Join(fb.callLog(), "; "); got != "backup nightly" {
		t.Fatalf("agent calls: %q", got)
	}
	// The agent's refusal is a 409 with its reason.
	fb.mu.Lock()
	fb.refuse = errors.New("backup nightly is already running")
	fb.mu.Unlock()
	resp, body = b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"nightly"}`)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already running") {
		t.Fatalf("refused run: want 409, got %s %s", resp.Status, body)
	}
}

func TestBackupsPageAndRunNow(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{Now: fixedClock})
	fx := newBackupFixture(t)
	fb.setPolicyPath(fx.policy)
	fb.update(func(st *agent.Status) { st.Groups[0].Holders = []string{"node2"} })

	reader := newBrowser(t, ts.URL)
	reader.login(readToken)
	resp, page := reader.get("/backups")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/backups: %s", resp.Status)
	}
	for _, want := range []string{`id="job-nightly"`, `id="job-hourly"`, "0 2 * * * (Europe/Berlin)", "2026-11-27 02:00 CET (in 17h0m0s)",
		"20261126T010000.000Z-cccccc", "insufficient storage headroom", "dr NOT verified: dr: checksum mismatch", "4.0 MiB",
		"headroom 1%", "headroom check off", "the target does not exist yet", `id="not-running"`, "no run since the agent started"} {
		if !strings.Contains(page, want) {
			t.Errorf("backups page lacks %q", want)
		}
	}
	if strings.Contains(page, "more detail") {
		t.Error("the page shows more than the first line of a run's error")
	}
	if strings.Contains(page, "/confirm?op=backup") {
		t.Error("the backups page offers run now to a reader")
	}
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("the backups page reloads itself although no run is in progress")
	}
	if resp, _ := reader.get("/confirm?op=backup&job=nightly"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader confirm: want 403, got %s", resp.Status)
	}
	if resp, _ := reader.postForm("/action", url.Values{"csrf": {reader.csrf}, "op": {"backup"}, "job": {"nightly"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader action: want 403, got %s", resp.Status)
	}

	op := newBrowser(t, ts.URL)
	op.login(operatorToken)
	_, page = op.get("/backups")
	if !strings.Contains(page, `href="/confirm?op=backup&amp;job=nightly"`) {
		t.Fatal("the backups page offers no run now to an operator")
	}
	resp, page = op.get("/confirm?op=backup&job=nightly")
	for _, want := range []string{"Run backup job nightly now?", "does not hold (held by node2): the agent will refuse",
		`name="job" value="nightly"`, `href="/backups" class="button" id="cancel"`} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("confirm page (%s) lacks %q", resp.Status, want)
		}
	}
	if resp, page := op.get("/confirm?op=backup&job=nope"); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "unknown backup job") {
		t.Errorf("confirm unknown job: %s", resp.Status)
	}
	if resp, _ := op.get("/confirm?op=backup"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("confirm without job: want 400, got %s", resp.Status)
	}
	if resp, _ := op.postForm("/action", url.Values{"op": {"backup"}, "job": {"nightly"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action without CSRF: want 403, got %s", resp.Status)
	}
	if len(fb.callLog()) != 0 {
		t.Fatalf("the agent was called before a confirmed action: %v", fb.callLog())
	}
	resp, _ = op.postForm("/action", url.Values{"csrf": {op.csrf}, "op": {"backup"}, "job": {"hourly"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/backups?started=hourly" {
		t.Fatalf("run hourly: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	_, page = op.get(resp.Header.Get("Location"))
	for _, want := range []string{"Backup job hourly started", "running since 08:00:00 (0s): 256.0 MiB of ~1.0 GiB (25%)", `<progress max="1073741824" value="268435456">`,
		`<meta http-equiv="refresh" content="2">`} {
		if !strings.Contains(page, want) {
			t.Errorf("backups page after run now lacks %q", want)
		}
	}
	if _, page := op.get("/backups?started=<b>evil</b>"); strings.Contains(page, "evil") {
		t.Error("the backups page shows text from a crafted link")
	}
	if got := strings.Join(fb.callLog(), "; "); got != "backup hourly" {
		t.Fatalf("agent calls: %q", got)
	}
}
