package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMaintenanceAction switches this node's maintenance mode from the
// overview: a button, the confirmation page, the confirmed action.
func TestMaintenanceAction(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	reader := newBrowser(t, ts.URL)
	reader.login(readToken)
	if _, page := reader.get("/"); strings.Contains(page, `id="maintenance`) {
		t.Error("the overview offers maintenance mode to a reader")
	}
	if resp, _ := reader.get("/confirm?op=maintenance&on=true"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader confirm: want 403, got %s", resp.Status)
	}
	if resp, _ := reader.postForm("/action", url.Values{"csrf": {reader.csrf}, "op": {"maintenance"}, "on": {"true"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reader action: want 403, got %s", resp.Status)
	}

	b := newBrowser(t, ts.URL)
	b.login(operatorToken)
	_, page := b.get("/")
	if !strings.Contains(page, `id="maintenance-on" href="/confirm?op=maintenance&amp;on=true">enter maintenance mode (node1)</a>`) || strings.Contains(page, "MAINTENANCE") {
		t.Fatalf("overview out of maintenance: no button to enter it:\n%s", page)
	}
	resp, page := b.get("/confirm?op=maintenance&on=true")
	for _, want := range []string{"Put node node1 in maintenance mode?", "node1 keeps deciding but executes no action",
		"The groups node1 holds (web) stay where they are", `name="on" value="true"`} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("confirm page (%s) lacks %q", resp.Status, want)
		}
	}
	if resp, _ := b.postForm("/action", url.Values{"op": {"maintenance"}, "on": {"true"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action without CSRF: want 403, got %s", resp.Status)
	}
	if len(fb.callLog()) != 0 {
		t.Fatalf("the agent was called before a confirmed action: %v", fb.callLog())
	}
	resp, _ = b.postForm("/action", url.Values{"csrf": {b.csrf}, "op": {"maintenance"}, "on": {"true"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enter maintenance: %s", resp.Status)
	}
	_, page = b.get(resp.Header.Get("Location"))
	for _, want := range []string{"Put node node1 in maintenance mode: accepted", "MAINTENANCE: decisions are not executed",
		`id="maintenance-off" href="/confirm?op=maintenance&amp;on=false"`} {
		if !strings.Contains(page, want) {
			t.Errorf("overview in maintenance lacks %q", want)
		}
	}
	_, page = b.get("/confirm?op=maintenance&on=false")
	if !strings.Contains(page, "Take node node1 out of maintenance mode?") || !strings.Contains(page, "executes its decisions again") {
		t.Errorf("confirm leaving maintenance:\n%s", page)
	}
	resp, _ = b.postForm("/action", url.Values{"csrf": {b.csrf}, "op": {"maintenance"}, "on": {"false"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("leave maintenance: %s", resp.Status)
	}
	if _, page = b.get("/"); strings.Contains(page, "MAINTENANCE") || !strings.Contains(page, `id="maintenance-on"`) {
		t.Error("the overview still shows maintenance mode after leaving it")
	}
	if got, want := strings.Join(fb.callLog(), "; "), "maintenance   true; maintenance   false"; got != want {
		t.Fatalf("agent calls: got %q, want %q", got, want)
	}
}
