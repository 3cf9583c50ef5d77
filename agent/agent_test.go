package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/atomicfile"
	"github.com/harules/harules/policy"
)

func TestBuildCheckCoversEveryDeclaredKind(t *testing.T) {
	cases := []policy.Check{
		{Kind: "tcp", Params: map[string]string{"address": "127.0.0.1:5432"}},
		{Kind: "http", Params: map[string]string{"url": "http://127.0.0.1:8080/health", "status": "200", "body": "ok"}},
		{Kind: "exec", Params: map[string]string{"command": "true"}},
		{Kind: "exec", Params: map[string]string{"command": "/bin/test\x00-f\x00/etc/passwd"}},
		{Kind: "process", Params: map[string]string{"name": "sshd"}},
		{Kind: "process", Params: map[string]string{"pidfile": "/run/app.pid"}},
		{Kind: "gateway", Params: map[string]string{"address": "198.51.100.254"}},
		{Kind: "gateway", Params: map[string]string{"address": "198.51.100.254", "method": "arp"}},
		{Kind: "disk_free", Params: map[string]string{"path": "/", "min_percent": "10"}},
		{Kind: "fs_writable", Params: map[string]string{"path": "/tmp"}},
		{Kind: "load", Params: map[string]string{"max_per_cpu": "4"}},
		{Kind: "memory", Params: map[string]string{"min_available_percent": "5"}},
		{Kind: "postgres", Params: map[string]string{"dsn": "host=/tmp port=5432", "require_primary": "true", "max_lag_bytes": "1048576"}},
		{Kind: "mysql", Params: map[string]string{"dsn": "root@unix(/tmp/m.sock)/", "max_lag_seconds": "5"}},
	}
	for _, c := range cases {
		chk, err := buildCheck(c)
		if err != nil || chk == nil {
			t.Errorf("buildCheck(%s %v) = %v, %v; want a check", c.Kind, c.Params, chk, err)
		}
	}
	// Every check constructor of the policy language must have a live
	// implementation: a new constructor without one fails here.
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.Kind] = true
	}
	for _, kind := range []string{"tcp", "http", "exec", "process", "gateway", "disk_free", "fs_writable", "load", "memory", "postgres", "mysql"} {
		if !seen[kind] {
			t.Errorf("check kind %s is not covered", kind)
		}
	}
	if _, err := buildCheck(policy.Check{Kind: "disk_free", Params: map[string]string{"path": "/", "min_percent": "ten"}}); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("bad number: got %v, want a 'not a number' error", err)
	}
	if _, err := buildCheck(policy.Check{Kind: "telepathy"}); err == nil {
		t.Error("unknown kind: want an error")
	}
}

func TestArgvSplitsListsAndShellsStrings(t *testing.T) {
	if got := argv("a\x00b c"); len(got) != 2 || got[1] != "b c" {
		t.Errorf("list: got %q", got)
	}
	if got := argv("echo hi | wc"); len(got) != 3 || got[0] != "/bin/sh" || got[2] != "echo hi | wc" {
		t.Errorf("string: got %q", got)
	}
}

func TestStateSurvivesRestartButHoldsDoNot(t *testing.T) {
	dir := t.TempDir()
	st := engine.NewState(1)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st.Holds["web"] = at
	st.Operator.Merge(engine.Operator{Moves: map[string]engine.OperatorMove{"web": {Node: "node2", At: at}},
		Standby: map[string]engine.OperatorFlag{"node1": {On: true, At: at}}})
	st.BackupLast["nightly"] = at
	st.Maintenance = true
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Incarnation != 2 {
		t.Errorf("incarnation = %d, want the new run's 2", got.Incarnation)
	}
	if len(got.Holds) != 0 {
		t.Errorf("holds = %v; a restarted agent must hold nothing until it decides again", got.Holds)
	}
	if mv := got.Operator.Moves["web"]; mv.Node != "node2" || !mv.At.Equal(at) {
		t.Errorf("operator move lost: %+v", mv)
	}
	if !got.Operator.Standby["node1"].On || !got.Maintenance || !got.BackupLast["nightly"].Equal(at) {
		t.Errorf("standby/maintenance/backup bookkeeping lost: %+v", got)
	}
	info, err := os.Stat(filepath.Join(dir, "state.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, %v; want 0600", info.Mode().Perm(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestCorruptStateIsReportedNotIgnored(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadState(dir, 1)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("got %v; want an error that says the file is corrupt and what to do", err)
	}
}

func TestFreshStateWhenNoFile(t *testing.T) {
	st, err := loadState(t.TempDir(), 7)
	if err != nil || st.Incarnation != 7 || len(st.Holds) != 0 {
		t.Fatalf("got %+v, %v", st, err)
	}
}

func TestNewRejectsUnknownNodeAndBadPolicy(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(`cluster(name = "c")
node("a", address = "198.51.100.1")
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PolicyPath: pol, Node: "b"}); err == nil || !strings.Contains(err.Error(), `node "b" is not declared`) {
		t.Errorf("unknown node: got %v", err)
	}
	if err := os.WriteFile(pol, []byte("cluster(name = )\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PolicyPath: pol, Node: "a"}); err == nil || !strings.Contains(err.Error(), "policy.star:1:") {
		t.Errorf("bad policy: got %v; want a file:line:col error", err)
	}
}

func TestJobFromPolicy(t *testing.T) {
	good := &policy.Backup{Name: "nightly", Kind: "files", Params: map[string]string{"target": "/b", "source": "/srv",
		"keep_last": "7", "min_keep": "2", "headroom_percent": "25", "copy_to": "/dr"}}
	job, target, copyTo, err := JobFromPolicy(good)
	if err != nil {
		t.Fatal(err)
	}
	if target != "/b" || copyTo != "/dr" || job.Retention.KeepLast != 7 || job.Retention.MinKeep != 2 || job.Headroom != 0.25 || job.Source == nil {
		t.Errorf("got job %+v target %q copy %q", job, target, copyTo)
	}
	for _, bad := range []struct {
		b    *policy.Backup
		want string
	}{
		{&policy.Backup{Name: "x", Kind: "files", Params: map[string]string{"source": "/srv"}}, `"target"`},
		{&policy.Backup{Name: "x", Kind: "files", Params: map[string]string{"target": "/b"}}, `"source"`},
		{&policy.Backup{Name: "x", Kind: "exec", Params: map[string]string{"target": "/b"}}, `"command"`},
		{&policy.Backup{Name: "x", Kind: "files", Params: map[string]string{"target": "/b", "source": "/s", "keep_last": "-1"}}, "keep_last"},
		{&policy.Backup{Name: "x", Kind: "files", Params: map[string]string{"target": "/b", "source": "/s", "headroom_percent": "120"}}, "headroom_percent"},
	} {
		if _, _, _, err := JobFromPolicy(bad.b); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want an error naming %s", bad.b.Params, err, bad.want)
		}
	}
}
