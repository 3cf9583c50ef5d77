package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCleanup: the API and the console's confirmation both reach the agent
// with a cleanup of one group or of every group; bad groups are 4xx.
func TestCleanup(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"group":"web"}`, http.StatusOK, "Clean up the failures of group web"},
		{`{"group":"*"}`, http.StatusOK, "every group"},
		{`{"group":"nope"}`, http.StatusNotFound, "unknown group"},
		{`{}`, http.StatusBadRequest, "group is required"},
	} {
		resp, body := b.call("POST", "/api/v1/cleanup", operatorToken, "", c.body)
		if resp.StatusCode != c.code || !strings.Contains(body, c.want) {
			t.Errorf("cleanup %s: want %d with %q, got %s %s", c.body, c.code, c.want, resp.Status, body)
		}
	}
	if resp, _ := b.call("POST", "/api/v1/cleanup", readToken, "", `{"group":"web"}`); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a read-only token cleaned up: %s", resp.Status)
	}
	b.login(operatorToken)
	_, page := b.get("/")
	if !strings.Contains(page, `href="/confirm?op=cleanup&amp;group=web"`) {
		t.Error("the overview has no clean-up button for web")
	}
	_, page = b.get("/confirm?op=cleanup&group=web")
	if !strings.Contains(page, "failure_timeout no longer keeps it away") {
		t.Errorf("the confirmation does not say what a cleanup does:\n%s", page)
	}
	resp, _ := b.postForm("/action", url.Values{"csrf": {b.csrf}, "op": {"cleanup"}, "group": {"web"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("cleanup form: %s", resp.Status)
	}
	if got, want := strings.Join(fb.callLog(), "; "), "cleanup web  false; cleanup *  false; cleanup web  false"; got != want {
		t.Errorf("agent calls: got %q, want %q", got, want)
	}
}
