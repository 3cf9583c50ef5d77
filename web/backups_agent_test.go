package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/backup"
)

// TestAgentBackupRunNow runs a real agent (one node, the real executor, a
// files backup job and no group, so nothing touches the network) and
// starts the job through the console: the agent stores a real backup and
// the console lists it from the store.
func TestAgentBackupRunNow(t *testing.T) {
	dir := t.TempDir()
	src, store := filepath.Join(dir, "src"), filepath.Join(dir, "store")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a.conf": "alpha\n", "sub/b.conf": strings.Repeat("beta\n", 1000)} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(policy, []byte(`cluster(name = "solo")
node("solo1", address = "198.51.100.1")
backup("conf", schedule = "0 3 * * *", kind = "files",
       params = {"target": "`+store+`", "source": "`+src+`", "headroom_percent": "0"})
`), 0o600); err != nil {
		t.Fatal(err)
	}
	addrCh := make(chan net.Addr, 1)
	a, err := agent.New(agent.Config{PolicyPath: policy, Node: "solo1", StateDir: filepath.Join(dir, "state"),
		ControlSocket: filepath.Join(dir, "ctl.sock"), Logger: quietLogger(), HandoverTimeout: time.Second,
		WebListen: "127.0.0.1:0",
		WebStart: func(ctx context.Context, listen string, a *agent.Agent) (func(), error) {
			addr, stop, err := Listen(ctx, a, ListenOptions{Addr: listen}, Options{TokenFile: writeTokenFile(t, 0o600), Logger: quietLogger()})
			if err == nil {
				addrCh <- addr
			}
			return stop, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	})
	var addr net.Addr
	select {
	case addr = <-addrCh:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not start the console")
	}
	b := newBrowser(t, "http://"+addr.String())
	list := func() backupsView {
		resp, body := b.call("GET", "/api/v1/backups", readToken, "", "")
		var v backupsView
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || len(v.Jobs) != 1 {
			t.Fatalf("GET /api/v1/backups: %s %s", resp.Status, body)
		}
		return v
	}
	waitFor(t, "the agent's first decision", func() bool { return a.Status() != nil })
	v := list()
	if !v.Running || v.Jobs[0].Name != "conf" || len(v.Jobs[0].History) != 0 || v.Jobs[0].Space == nil || v.Jobs[0].Space.Path != dir {
		t.Fatalf("before any run: %+v", v.Jobs[0])
	}
	if resp, body := b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"conf"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("run now: %s %s", resp.Status, body)
	}
	waitFor(t, "the backup to finish", func() bool {
		j := list().Jobs[0]
		return j.State != nil && !j.State.Running && len(j.History) == 1
	})
	j := list().Jobs[0]
	h := j.History[0]
	if j.State.Outcome != "ok" || h.Outcome != backup.OutcomeOK || !h.Safe || h.Node != "solo1" || h.Bytes <= 0 || h.ID != j.State.ID {
		t.Fatalf("after run now: state %+v, history %+v", j.State, h)
	}
	fi, err := os.Stat(filepath.Join(store, "conf", h.ID, h.DataFile()))
	if err != nil || fi.Size() != h.Bytes {
		t.Fatalf("the stored data file: %v (history says %d bytes)", err, h.Bytes)
	}
	if j.Space == nil || j.Space.Path != store {
		t.Errorf("space after the first run: %+v, want statfs of %s", j.Space, store)
	}
	// The console checks the job against the policy before the agent sees it.
	if resp, body := b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"nope"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("run an unknown job: want 404, got %s %s", resp.Status, body)
	}
}
