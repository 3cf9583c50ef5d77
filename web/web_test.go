package web

import (
	"bufio"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/version"
)

func TestTokenFileMustBeOwnerOnly(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		path := writeTokenFile(t, mode)
		_, err := New(newFakeBackend(t), Options{TokenFile: path})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: want a refusal that says chmod 600, got %v", mode, err)
		}
	}
	if _, err := New(newFakeBackend(t), Options{}); err == nil {
		t.Error("New without a token file: want an error")
	}
	if _, err := New(newFakeBackend(t), Options{TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing token file: want an error")
	}
}

func TestTokenFileSyntax(t *testing.T) {
	bad := map[string]string{
		"no role":      "0123456789abcdef0123\n",
		"unknown role": "admin:0123456789abcdef0123\n",
		"short token":  "operator:short\n",
		"duplicate":    "operator:0123456789abcdef0123\nread:0123456789abcdef0123\n",
		"empty":        "# nothing\n\n",
	}
	for name, body := range bad {
		if _, err := parseTokens([]byte(body)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	toks, err := parseTokens([]byte("# c\n operator: " + operatorToken + " \nread:" + readToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := roleOf(toks, operatorToken); !ok || r != RoleOperator {
		t.Errorf("operator token: got %q %v", r, ok)
	}
	if r, ok := roleOf(toks, readToken); !ok || r != RoleRead {
		t.Errorf("read token: got %q %v", r, ok)
	}
	if _, ok := roleOf(toks, "operator-token-0123456789abcdeX"); ok {
		t.Error("a wrong token was accepted")
	}
}

// endpoints lists every route with a request that would succeed when
// authenticated.
var endpoints = []struct {
	method, path, body string
	api, page          bool
}{
	{"GET", "/", "", false, true},
	{"GET", "/events", "", false, true},
	{"GET", "/timeline", "", false, true},
	{"GET", "/policy", "", false, true},
	{"GET", "/simulate", "", false, true},
	{"GET", "/confirm?op=move&group=web&node=node2", "", false, true},
	{"GET", "/backups", "", false, true},
	{"GET", "/backups/restore?job=nightly&id=latest", "", false, true},
	{"POST", "/backups/verify", "job=nightly&id=latest", false, true},
	{"POST", "/backups/restore", "job=nightly&id=latest&dir=/tmp/harules-restore-test", false, true},
	{"GET", "/static/app.js", "", false, true},
	{"GET", "/static/style.css", "", false, true},
	{"POST", "/simulate", "file=node-crash.star", false, true},
	{"POST", "/action", "op=move&group=web&node=node2", false, true},
	{"POST", "/logout", "", false, true},
	{"GET", "/metrics", "", false, false},
	{"GET", "/api/v1/status", "", true, false},
	{"GET", "/api/v1/records", "", true, false},
	{"GET", "/api/v1/policy", "", true, false},
	{"GET", "/api/v1/scenarios", "", true, false},
	{"GET", "/api/v1/backups", "", true, false},
	{"POST", "/api/v1/backups/run", `{"job":"nightly"}`, true, false},
	{"POST", "/api/v1/backups/verify", `{"job":"nightly"}`, true, false},
	{"POST", "/api/v1/backups/restore", `{"job":"nightly","id":"latest","dir":"/tmp/harules-restore-test"}`, true, false},
	{"GET", "/api/v1/backups/verifications", "", true, false},
	{"POST", "/api/v1/simulate", `{"file":"node-crash.star"}`, true, false},
	{"POST", "/api/v1/move", `{"group":"web","node":"node2"}`, true, false},
	{"POST", "/api/v1/standby", `{"node":"node2"}`, true, false},
	{"POST", "/api/v1/online", `{"node":"node2"}`, true, false},
	{"POST", "/api/v1/maintenance", `{"on":true}`, true, false},
	{"POST", "/api/v1/cleanup", `{"group":"web"}`, true, false},
	{"GET", "/confirm?op=cleanup&group=web", "", false, true},
}

func TestEveryEndpointRefusesUnauthenticated(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	anon := newBrowser(t, ts.URL)
	for _, e := range endpoints {
		for _, bearer := range []string{"", "not-a-valid-token-at-all"} {
			req, _ := http.NewRequest(e.method, ts.URL+e.path, strings.NewReader(e.body))
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			if e.body != "" && !e.api {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, body := anon.do(req)
			switch {
			case e.page && e.method == "GET":
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
					t.Errorf("%s %s (bearer %q): want a redirect to /login, got %s", e.method, e.path, bearer, resp.Status)
				}
			default:
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s (bearer %q): want 401, got %s", e.method, e.path, bearer, resp.Status)
				}
			}
			if e.api && !strings.Contains(body, `"error"`) {
				t.Errorf("%s %s: want a JSON error, got %q", e.method, e.path, body)
			}
			for _, secret := range []string{"node1", "webtest", "policy.star"} {
				if strings.Contains(body, secret) {
					t.Errorf("%s %s unauthenticated: the answer leaks %q", e.method, e.path, secret)
				}
			}
		}
	}
	if calls := fb.callLog(); len(calls) != 0 {
		t.Errorf("unauthenticated requests reached the agent: %v", calls)
	}
}

func TestPostsNeedTheSessionCSRFToken(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(operatorToken)
	for _, e := range endpoints {
		if e.method != "POST" {
			continue
		}
		for _, csrf := range []string{"", "0000000000000000000000000000000000000000000000000000000000000000"} {
			var resp *http.Response
			if e.api {
				resp, _ = b.call("POST", e.path, "", csrf, e.body)
			} else {
				form, _ := url.ParseQuery(e.body)
				if csrf != "" {
					form.Set("csrf", csrf)
				}
				resp, _ = b.postForm(e.path, form)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s with CSRF %q: want 403, got %s", e.method, e.path, csrf, resp.Status)
			}
		}
	}
	if calls := fb.callLog(); len(calls) != 0 {
		t.Fatalf("requests without a valid CSRF token reached the agent: %v", calls)
	}
	// The same requests with the token go through.
	resp, body := b.call("POST", "/api/v1/move", "", b.csrf, `{"group":"web","node":"node2"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("move with CSRF header: %s %s", resp.Status, body)
	}
	resp, body = b.postForm("/action", url.Values{"csrf": {b.csrf}, "op": {"standby"}, "node": {"node2"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/?done=standby") {
		t.Fatalf("action form with CSRF: %s %s", resp.Status, body)
	}
	if _, page := b.get(resp.Header.Get("Location")); !strings.Contains(page, "Put node node2 in standby: accepted") {
		t.Errorf("the overview after the action does not confirm it")
	}
	if _, page := b.get("/?done=Session+expired:+log+in+at+evil.example"); strings.Contains(page, "evil") {
		t.Errorf("the overview shows text from a crafted link")
	}
	if got, want := strings.Join(fb.callLog(), "; "), "move web node2 false; standby  node2 false"; got != want {
		t.Fatalf("agent calls: got %q, want %q", got, want)
	}
	// Logging out ends the session.
	resp, _ = b.postForm("/logout", url.Values{"csrf": {b.csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout the overview answered %s", resp.Status)
	}
}

func TestLogin(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	// Without the login form's cookie (a cross-site post) the login fails.
	resp, _ := b.postForm("/login", url.Values{"csrf": {"abc"}, "token": {operatorToken}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the form's CSRF cookie: want 403, got %s", resp.Status)
	}
	resp, body := b.get("/login")
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf on the login page")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, loginCSSHash) || strings.Contains(csp, "unsafe") {
		t.Errorf("login CSP %q: want the style hash and nothing unsafe", csp)
	}
	resp, body = b.postForm("/login", url.Values{"csrf": {m[1]}, "token": {"wrong-token-0123456789abcdef"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong token") {
		t.Fatalf("wrong token: %s", resp.Status)
	}
	m = csrfInput.FindStringSubmatch(body)
	resp, _ = b.postForm("/login", url.Values{"csrf": {m[1]}, "token": {readToken}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure {
		t.Fatalf("session cookie over plain HTTP: want HttpOnly, SameSite=Strict, not Secure; got %+v", session)
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{TLS: true})
	resp, _ := newBrowser(t, ts.URL).get("/login")
	c := resp.Cookies()
	if len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookies under TLS: %+v", c)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS header under TLS")
	}
}

func TestReadOnlyRole(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	for _, op := range []struct{ path, body string }{
		{"/api/v1/move", `{"group":"web","node":"node2"}`}, {"/api/v1/standby", `{"node":"node2"}`},
		{"/api/v1/online", `{"node":"node2"}`}, {"/api/v1/maintenance", `{"on":true}`},
	} {
		resp, body := b.call("POST", op.path, readToken, "", op.body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "operator role") {
			t.Errorf("reader %s: want 403 naming the operator role, got %s %s", op.path, resp.Status, body)
		}
	}
	if resp, _ := b.call("GET", "/api/v1/status", readToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("reader status: %s", resp.Status)
	}
	b.login(readToken)
	_, page := b.get("/")
	if strings.Contains(page, "/confirm?") {
		t.Error("the overview offers actions to a reader")
	}
	if resp, _ := b.get("/confirm?op=move&group=web&node=node2"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader confirm page: want 403, got %s", resp.Status)
	}
	if resp, _ := b.postForm("/action", url.Values{"csrf": {b.csrf}, "op": {"move"}, "group": {"web"}, "node": {"node2"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader action: want 403, got %s", resp.Status)
	}
	if calls := fb.callLog(); len(calls) != 0 {
		t.Fatalf("a reader reached the agent: %v", calls)
	}
}

func TestAPIBadInput(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	cases := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/api/v1/move", `{"group":"web",`, 400, "malformed JSON"},
		{"POST", "/api/v1/move", ``, 400, "empty body"},
		{"POST", "/api/v1/move", `{"group":"web","node":"node2"} {}`, 400, "more than one value"},
		{"POST", "/api/v1/move", `{"grop":"web","node":"node2"}`, 400, `unknown field "grop"`},
		{"POST", "/api/v1/move", `{"group":"nope","node":"node2"}`, 404, `unknown group "nope" (groups: web)`},
		{"POST", "/api/v1/move", `{"group":"web","node":"node9"}`, 404, `unknown node "node9" (nodes: node1, node2)`},
		{"POST", "/api/v1/move", `{"node":"node2"}`, 400, "group is required"},
		{"POST", "/api/v1/move", `{"group":"web"}`, 400, "node is required"},
		{"POST", "/api/v1/move", `["web"]`, 400, "malformed JSON"},
		{"POST", "/api/v1/standby", `{"node":""}`, 400, "node is required"},
		{"POST", "/api/v1/online", `{"node":"ghost"}`, 404, "unknown node"},
		{"POST", "/api/v1/maintenance", `{}`, 400, "maintenance needs"},
		{"POST", "/api/v1/simulate", `{}`, 400, "no scenario"},
		{"POST", "/api/v1/simulate", `{"file":"../policy.star"}`, 404, "no scenario"},
		{"POST", "/api/v1/simulate", `{"file":"node-crash.star","scenario":"x"}`, 400, "not both"},
		{"POST", "/api/v1/simulate", `{"scenario":"scenario(name = \"x\", duration = \"10s\")\nat(\"1s\", crash(\"node7\"))"}`, 422, "node7"},
		{"POST", "/api/v1/simulate", `{"scenario":"this is not starlark("}`, 422, "scenario"},
		{"POST", "/api/v1/simulate", `{"scenario":"` + strings.Repeat("#", maxAPIBodyBytes) + `"}`, 413, "larger than"},
		{"GET", "/api/v1/records?kind=bogus", "", 400, "unknown kind"},
		{"GET", "/api/v1/records?limit=-3", "", 400, "limit must be"},
		{"GET", "/api/v1/move", "", 405, "use POST"},
		{"POST", "/api/v1/status", `{}`, 405, "use GET"},
		{"GET", "/api/v1/nothing", "", 404, "no such endpoint"},
	}
	for _, c := range cases {
		resp, body := b.call(c.method, c.path, operatorToken, "", c.body)
		var e apiError
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Errorf("%s %s %.40q: the answer is not JSON: %v: %s", c.method, c.path, c.body, err, body)
			continue
		}
		if resp.StatusCode != c.code || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s %s %.40q: want %d with %q, got %s %q", c.method, c.path, c.body, c.code, c.msg, resp.Status, e.Error)
		}
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/move", strings.NewReader("group=web"))
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "text/plain")
	if resp, _ := b.do(req); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: want 415, got %s", resp.Status)
	}
	if calls := fb.callLog(); len(calls) != 0 {
		t.Fatalf("bad requests reached the agent: %v", calls)
	}
	// The agent's own refusal is a 409 with its message, never a 500.
	fb.mu.Lock()
	fb.refuse = errors.New("node2 is fenced")
	fb.mu.Unlock()
	resp, body := b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"web","node":"node2"}`)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "node2 is fenced") {
		t.Fatalf("refused move: want 409 with the agent's reason, got %s %s", resp.Status, body)
	}
}

func TestAPIStatusMoveAndRecords(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	resp, body := b.call("GET", "/api/v1/status", operatorToken, "", "")
	var st agent.Status
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Groups[0].Holders[0] != "node1" {
		t.Fatalf("status: %s %s", resp.Status, body)
	}
	resp, body = b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"web","node":"node2"}`)
	var out operatorResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || out.Result != "accepted" {
		t.Fatalf("move: %s %s", resp.Status, body)
	}
	if !strings.Contains(strings.Join(out.Effects, " "), "node1 stops web") {
		t.Errorf("move effects do not say what happens: %q", out.Effects)
	}
	_, body = b.call("GET", "/api/v1/status", operatorToken, "", "")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Groups[0].Holders[0] != "node2" {
		t.Fatalf("status after move: %s", body)
	}
	if got := fb.callLog(); len(got) != 1 || got[0] != "move web node2 false" {
		t.Fatalf("agent calls: %v", got)
	}
	var recs recordsResponse
	_, body = b.call("GET", "/api/v1/records?group=web&kind=policy", operatorToken, "", "")
	if err := json.Unmarshal([]byte(body), &recs); err != nil {
		t.Fatal(err)
	}
	if recs.Total != 6 || len(recs.Records) != 2 || recs.Records[0].Text != "web should run on node2" || recs.Records[1].Text != "web should run on node1" {
		t.Fatalf("records filtered by group and kind, newest first: %s", body)
	}
	_, body = b.call("GET", "/api/v1/records?limit=1", operatorToken, "", "")
	if err := json.Unmarshal([]byte(body), &recs); err != nil || len(recs.Records) != 1 || recs.Records[0].Kind != "policy" {
		t.Fatalf("records limit=1: %s", body)
	}
	_, body = b.call("GET", "/api/v1/policy", readToken, "", "")
	var pol policyResponse
	if err := json.Unmarshal([]byte(body), &pol); err != nil || !strings.Contains(pol.Text, `cluster(name = "webtest"`) || pol.DiskHash == "" || pol.RunningHash != "0123abcd0123abcd" {
		t.Fatalf("policy: %s", body)
	}
}

func TestAPISimulate(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	_, body := b.call("GET", "/api/v1/scenarios", readToken, "", "")
	if !strings.Contains(body, `"node-crash.star"`) {
		t.Fatalf("scenarios: %s", body)
	}
	resp, body := b.call("POST", "/api/v1/simulate", readToken, "", `{"file":"node-crash.star"}`)
	// simulate.Dur only marshals, so the client side reads what it needs.
	var sim struct {
		OK     bool `json:"ok"`
		Result struct {
			Name           string              `json:"name"`
			FinalPlacement map[string][]string `json:"final_placement"`
		} `json:"result"`
		Text string `json:"text"`
		SVG  string `json:"svg"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &sim) != nil {
		t.Fatalf("simulate: %s %.300s", resp.Status, body)
	}
	if !sim.OK || !strings.HasPrefix(sim.SVG, "<svg") || !strings.Contains(sim.Text, "final placement") ||
		len(sim.Result.FinalPlacement["web"]) != 1 || sim.Result.FinalPlacement["web"][0] != "node2" {
		t.Fatalf("simulate result: ok=%v svg=%.40q text=%.200q placement=%v", sim.OK, sim.SVG, sim.Text, sim.Result.FinalPlacement)
	}
	// A pasted scenario whose expectation fails runs and says so.
	pasted, _ := json.Marshal(simulateRequest{Scenario: "scenario(name = \"wrong guess\", duration = \"10s\")\nexpect_owner(\"web\", \"node2\", at = \"5s\")\n"})
	_, body = b.call("POST", "/api/v1/simulate", operatorToken, "", string(pasted))
	if err := json.Unmarshal([]byte(body), &sim); err != nil || sim.OK || sim.Result.Name != "wrong guess" {
		t.Fatalf("pasted scenario: %.300s", body)
	}
}

func TestPages(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(operatorToken)
	resp, page := b.get("/")
	for _, want := range []string{"Cluster webtest", `data-node="node1"`, `data-node="node2"`, `class="holders">node1<`,
		"path backnet to node2 is down", "1.2s ago", "25.0%", `<span class="bad">down</span>`, `href="/confirm?op=move&amp;group=web&amp;node=node2"`} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	_, page = b.get("/confirm?op=move&group=web&node=node2")
	for _, want := range []string{"Move group web to node2?", "node1 stops web", `name="csrf" value="` + b.csrf + `"`, `id="confirm"`} {
		if !strings.Contains(page, want) {
			t.Errorf("confirm page lacks %q:\n%s", want, page)
		}
	}
	if resp, page := b.get("/confirm?op=move&group=nope&node=node2"); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "unknown group") {
		t.Errorf("confirm with unknown group: %s", resp.Status)
	}
	if len(fb.callLog()) != 0 {
		t.Fatal("the confirmation page itself acted")
	}
	_, page = b.get("/timeline?kind=alert")
	if !strings.Contains(page, "path-down [warning]") || strings.Contains(page, "start vip") {
		t.Errorf("timeline filtered by kind=alert:\n%s", page)
	}
	_, page = b.get("/policy")
	if !strings.Contains(page, "cluster(name = &#34;webtest&#34;") {
		t.Errorf("policy page lacks the policy text")
	}
	resp, page = b.postForm("/simulate", url.Values{"csrf": {b.csrf}, "file": {"node-crash.star"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<svg") || !strings.Contains(page, "all expectations hold") {
		t.Errorf("simulate page: %s", resp.Status)
	}
	resp, page = b.postForm("/simulate", url.Values{"csrf": {b.csrf}, "scenario": {"oops("}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "sim-error") {
		t.Errorf("simulate with a broken scenario: %s", resp.Status)
	}
	if resp, _ := b.get("/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page: %s", resp.Status)
	}
}

// TestLiveUpdates reads the event stream: the first event is the current
// overview, the next one comes when the status changes.
func TestLiveUpdates(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(operatorToken)
	req, _ := http.NewRequest("GET", ts.URL+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events content type %q", ct)
	}
	events := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line == "" && ev.Len() > 0 {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(line + "\n")
		}
		close(events)
	}()
	next := func() string {
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return ""
	}
	first := next()
	if !strings.HasPrefix(first, "event: overview\nid: ") || !strings.Contains(first, `class="holders">node1<`) {
		t.Fatalf("first event:\n%s", first)
	}
	fb.setDelay(50 * time.Millisecond)
	if resp, body := b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"web","node":"node2"}`); resp.StatusCode != 200 {
		t.Fatalf("move: %s", body)
	}
	second := next()
	if !strings.Contains(second, `class="holders">node2<`) {
		t.Fatalf("event after the move does not show node2 holding web:\n%s", second)
	}
	// Logging out ends the stream at the next change.
	if resp, _ := b.postForm("/logout", url.Values{"csrf": {b.csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if resp, body := b.call("POST", "/api/v1/standby", operatorToken, "", `{"node":"node2"}`); resp.StatusCode != 200 {
		t.Fatalf("standby: %s", body)
	}
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-deadline:
			t.Fatal("the event stream outlived its session")
		}
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{"8080": "127.0.0.1:8080", "[::1]:9000": "[::1]:9000", ":8443": ":8443", "10.0.0.1:80": "10.0.0.1:80"} {
		if got, err := ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ListenAddr("localhost"); err == nil {
		t.Error("ListenAddr(localhost): want an error")
	}
}

// TestOverviewPageWeight keeps the overview small: HTML, script and style
// together under a budget (no framework, no CDN).
func TestOverviewPageWeight(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	total := 0
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		t.Logf("%-18s %6d bytes", path, len(body))
		total += len(body)
	}
	t.Logf("overview page weight: %d bytes", total)
	if total > 32<<10 {
		t.Fatalf("overview page weight %d bytes is over the 32 KiB budget", total)
	}
}

// BenchmarkStatusChange is the console's cost of one status change: the
// change check (JSON of the status with 500 records) and one rendering of
// the live overview for a page.
func BenchmarkStatusChange(b *testing.B) {
	fb := newFakeBackend(b)
	st := fb.Status()
	for len(st.Recent) < 500 {
		st.Recent = append(st.Recent, st.Recent[len(st.Recent)%4])
	}
	srv, err := New(fb, Options{TokenFile: writeTokenFileB(b), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		next := cloneStatus(st)
		next.Incarnation = uint64(i)
		if !srv.hub.update(next) {
			b.Fatal("no change seen")
		}
		var sb strings.Builder
		if err := srv.pages["overview"].ExecuteTemplate(&sb, "overview_body", newOverview(next, true)); err != nil {
			b.Fatal(err)
		}
	}
}

func writeTokenFileB(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "web-tokens")
	if err := os.WriteFile(path, []byte("operator:"+operatorToken+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// TestFooterShowsTheVersion: every page names the build, as harules
// version prints it, so a screenshot says which release it shows.
func TestFooterShowsTheVersion(t *testing.T) {
	ts, _, _ := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(readToken)
	want := "<footer>harules " + template.HTMLEscapeString(version.Get().String()) + "</footer>"
	for _, path := range []string{"/", "/timeline", "/backups", "/policy"} {
		if _, page := b.get(path); !strings.Contains(page, want) {
			t.Errorf("%s has no footer %q", path, want)
		}
	}
}
