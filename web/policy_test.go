package web

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/rules"
)

// TestPolicyCheck shows `check` on the policy file: the summary of a valid
// one, every file:line:col error of a broken one.
func TestPolicyCheck(t *testing.T) {
	ts, _, fb := newTestServer(t, Options{})
	b := newBrowser(t, ts.URL)
	b.login(readToken)

	p, err := rules.Load(context.Background(), fb.PolicyPath(), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	detection := p.DetectionTime().Round(time.Millisecond).String()
	_, page := b.get("/policy")
	want := "check: ok: cluster webtest, 2 nodes, 2 heartbeat paths, 0 probes, 1 group, 0 rules, 0 backups (policy <code>" + p.Hash +
		"</code>); a dead peer is declared after " + detection
	if !strings.Contains(page, want) || strings.Contains(page, "check-failed") {
		t.Errorf("policy page of a valid policy lacks %q:\n%s", want, page)
	}
	resp, body := b.call("GET", "/api/v1/policy", readToken, "", "")
	var pr policyResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &pr) != nil || !pr.Check.OK || pr.Check.Summary == nil ||
		pr.Check.Summary.Nodes != 2 || pr.Check.Summary.Hash != p.Hash || len(pr.Check.Errors) != 0 {
		t.Errorf("GET /api/v1/policy check of a valid policy: %s %s", resp.Status, body)
	}

	// Two undefined names on the lines after the test policy's 17.
	base, err := os.ReadFile("testdata/policy.star")
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "policy.star")
	if err := os.WriteFile(broken, append(base, "x = nosuch(1)\ny = [other(2)]\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(string(base), "\n") + 1
	fb.setPolicyPath(broken)
	resp, body = b.call("GET", "/api/v1/policy", readToken, "", "")
	pr = policyResponse{}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &pr) != nil {
		t.Fatalf("GET /api/v1/policy of a broken policy: %s %s", resp.Status, body)
	}
	wantErrs := []checkError{
		{File: broken, Line: line, Col: 5, Message: "undefined: nosuch", Text: broken + ":" + strconv.Itoa(line) + ":5: undefined: nosuch"},
		{File: broken, Line: line + 1, Col: 6, Message: "undefined: other", Text: broken + ":" + strconv.Itoa(line+1) + ":6: undefined: other"},
	}
	if pr.Check.OK || pr.Check.Summary != nil || len(pr.Check.Errors) != 2 || pr.Check.Errors[0] != wantErrs[0] || pr.Check.Errors[1] != wantErrs[1] {
		t.Errorf("check of a broken policy: got %+v, want errors %+v", pr.Check, wantErrs)
	}
	_, page = b.get("/policy")
	for _, want := range []string{`id="check-failed"`, "2 errors, so a reload would be refused", "<code>" + wantErrs[0].Text + "</code>",
		"<code>" + wantErrs[1].Text + "</code>", "x = nosuch(1)"} {
		if !strings.Contains(page, want) {
			t.Errorf("policy page of a broken policy lacks %q", want)
		}
	}
	if strings.Contains(page, "check-ok") {
		t.Error("the policy page says ok for a broken policy")
	}
	// A policy file that is gone: the page says so, as a 503.
	fb.setPolicyPath(filepath.Join(t.TempDir(), "gone.star"))
	if resp, page := b.get("/policy"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "read the policy file") {
		t.Errorf("missing policy file: %s", resp.Status)
	}
}
