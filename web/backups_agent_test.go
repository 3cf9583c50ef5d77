package web

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
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
	a, b := startAgentConsole(t, agent.Config{PolicyPath: policy, Node: "solo1", StateDir: filepath.Join(dir, "state"),
		ControlSocket: filepath.Join(dir, "ctl.sock"), Logger: quietLogger(), HandoverTimeout: time.Second}, Options{})
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

// backupAgent is a real one-node agent with the real executor and its
// console, for backup tests.
type backupAgent struct {
	dir, src, store, copyTo, stateDir string
	agent                             *agent.Agent
	b                                 *browser
}

// startBackupAgent runs an agent whose policy has the files job "conf"
// (source dir/src, store dir/store, copies in dir/dr; headroom off: the
// test machine's disk sits near the default 30% free) and the exec job
// "dump", and returns a browser on its console.
func startBackupAgent(t *testing.T) *backupAgent {
	t.Helper()
	dir := t.TempDir()
	ba := &backupAgent{dir: dir, src: filepath.Join(dir, "src"), store: filepath.Join(dir, "store"), copyTo: filepath.Join(dir, "dr"),
		stateDir: filepath.Join(dir, "state")}
	if err := os.MkdirAll(filepath.Join(ba.src, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a.conf": "alpha\n", "sub/b.conf": strings.Repeat("beta\n", 20000),
		"sub/deeper/c.bin": strings.Repeat("\x00\x01gamma", 50000)} {
		if err := os.WriteFile(filepath.Join(ba.src, name), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.conf", filepath.Join(ba.src, "link")); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(policy, []byte(`cluster(name = "solo")
node("solo1", address = "198.51.100.1")
backup("conf", schedule = "0 3 * * *", kind = "files",
       params = {"target": "`+ba.store+`", "source": "`+ba.src+`", "copy_to": "`+ba.copyTo+`", "headroom_percent": "0"})
backup("dump", schedule = "0 4 * * *", kind = "exec",
       params = {"target": "`+ba.store+`", "command": "printf 'line one\\nline two\\n'", "headroom_percent": "0", "verify": "after"})
`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := startAgentConsole(t, agent.Config{PolicyPath: policy, Node: "solo1", StateDir: ba.stateDir,
		ControlSocket: filepath.Join(dir, "ctl.sock"), Logger: quietLogger(), HandoverTimeout: time.Second},
		Options{RestoreRoot: dir})
	ba.b = b
	ba.agent = a
	waitFor(t, "the agent's first decision", func() bool { return a.Status() != nil })
	return ba
}

// job returns a job of GET /api/v1/backups.
func (ba *backupAgent) job(t *testing.T, name string) backupJob {
	t.Helper()
	resp, body := ba.b.call("GET", "/api/v1/backups", readToken, "", "")
	var v backupsView
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET /api/v1/backups: %s %s", resp.Status, body)
	}
	for _, j := range v.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("GET /api/v1/backups has no job %s: %s", name, body)
	return backupJob{}
}

// runBackup runs a job now through the API and returns its new backup.
func (ba *backupAgent) runBackup(t *testing.T, name string) backupRun {
	t.Helper()
	before := len(ba.job(t, name).History)
	if resp, body := ba.b.call("POST", "/api/v1/backups/run", operatorToken, "", `{"job":"`+name+`"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("run %s now: %s %s", name, resp.Status, body)
	}
	waitFor(t, "backup "+name+" to finish", func() bool {
		j := ba.job(t, name)
		return j.State != nil && !j.State.Running && len(j.History) == before+1
	})
	h := ba.job(t, name).History[0]
	if h.Outcome != backup.OutcomeOK {
		t.Fatalf("backup %s: %+v", name, h)
	}
	return h
}

// waitOp waits for the job's verify or restore to finish and returns it.
func (ba *backupAgent) waitOp(t *testing.T, name, op, id string) agent.BackupOp {
	t.Helper()
	var got agent.BackupOp
	waitFor(t, op+" of "+name+"/"+id+" to finish", func() bool {
		j := ba.job(t, name)
		if j.Operation == nil || j.Operation.Op != op || j.Operation.ID != id || j.Operation.Running {
			return false
		}
		got = *j.Operation
		return true
	})
	return got
}

// TestAgentBackupVerify verifies a real backup through the API, records
// it, then corrupts the stored archive: the next verify fails as corrupt,
// the log keeps both and the page shows the failure.
func TestAgentBackupVerify(t *testing.T) {
	ba := startBackupAgent(t)
	b := ba.b
	// No backup yet: a verify of "latest" is a clear 404.
	resp, body := b.call("POST", "/api/v1/backups/verify", operatorToken, "", `{"job":"conf"}`)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no stored backup") {
		t.Fatalf("verify before any backup: want 404 naming the cause, got %s %s", resp.Status, body)
	}
	if j := ba.job(t, "conf"); j.LastVerify != nil || len(j.Stores) != 2 || j.Stores[0].Store != "target" || j.Stores[1].Store != "copy" {
		t.Fatalf("before any verify: last %+v, stores %+v", j.LastVerify, j.Stores)
	}
	h := ba.runBackup(t, "conf")
	// The run verified its copy on arrival: the catalogue says so.
	if j := ba.job(t, "conf"); j.Stores[1].LastVerify == nil || !j.Stores[1].LastVerify.OK || j.Stores[1].LastVerify.ID != h.ID {
		t.Fatalf("the copy verified on arrival does not show as a verify: %+v", j.Stores[1])
	}

	resp, body = b.call("POST", "/api/v1/backups/verify", operatorToken, "", `{"job":"conf","id":"`+h.ID+`"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("verify: %s %s", resp.Status, body)
	}
	op := ba.waitOp(t, "conf", "verify", h.ID)
	if !op.OK || len(op.Verified) != 2 || op.Verified[0].Store != "target" || op.Verified[1].Store != "copy" ||
		op.Verified[0].Bytes <= h.Bytes || !op.Verified[1].OK {
		t.Fatalf("verify of an intact backup: %+v", op)
	}
	j := ba.job(t, "conf")
	if j.LastVerify == nil || !j.LastVerify.OK || j.LastVerify.ID != h.ID || j.LastVerify.By != "api" || j.History[0].LastVerify == nil {
		t.Fatalf("after the verify: last %+v, history %+v", j.LastVerify, j.History[0].LastVerify)
	}

	// One flipped byte in the middle of the stored archive.
	data := filepath.Join(ba.store, "conf", h.ID, h.DataFile())
	flipByteAt(t, data, h.Bytes/2)
	resp, body = b.call("POST", "/api/v1/backups/verify", operatorToken, "", `{"job":"conf","id":"`+h.ID+`","store":"target"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("verify of the corrupted backup: %s %s", resp.Status, body)
	}
	waitFor(t, "the second verify", func() bool {
		j := ba.job(t, "conf")
		return j.Operation != nil && !j.Operation.Running && j.Operation.Store == "target"
	})
	j = ba.job(t, "conf")
	if j.Operation.OK || !strings.Contains(j.Operation.Error, "corrupt") {
		t.Fatalf("verify of a corrupted backup: %+v", j.Operation)
	}
	lv := j.Stores[0].LastVerify
	if lv == nil || lv.OK || !lv.Corrupt || lv.ID != h.ID || lv.Error == "" || j.LastVerify.OK {
		t.Fatalf("last verify after corruption: store %+v, job %+v", lv, j.LastVerify)
	}
	// The copy's last verify is still the good one.
	if c := j.Stores[1].LastVerify; c == nil || !c.OK {
		t.Errorf("the copy's last verify: %+v", c)
	}
	// The log in the state directory holds all three entries.
	entries, err := agent.StateVerifyLog(ba.stateDir).Read()
	if err != nil || len(entries) != 3 || !entries[0].OK || entries[2].OK || entries[2].Node != "solo1" {
		t.Fatalf("verification log: %v %+v", err, entries)
	}
	// The page shows it, and a verify button per stored backup.
	b.login(operatorToken)
	_, page := b.get("/backups")
	for _, want := range []string{"CORRUPT at", `id="verify-conf-` + h.ID + `"`, `id="restore-conf-` + h.ID + `"`, "Last verify"} {
		if !strings.Contains(page, want) {
			t.Errorf("the backups page lacks %q", want)
		}
	}
	// The page's verify button needs the session's CSRF token and the
	// operator role.
	if resp, _ := b.postForm("/backups/verify", url.Values{"job": {"conf"}, "id": {h.ID}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("verify form without a CSRF token: %s", resp.Status)
	}
	reader := newBrowser(t, b.base)
	reader.login(readToken)
	if _, page := reader.get("/backups"); strings.Contains(page, `id="verify-conf-`) || !strings.Contains(page, "CORRUPT at") {
		t.Errorf("a read-only session sees verify buttons, or not the last verify")
	}
	if resp, _ := reader.postForm("/backups/verify", url.Values{"csrf": {reader.csrf}, "job": {"conf"}, "id": {h.ID}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("verify form from a read-only session: %s", resp.Status)
	}
	if resp, _ := reader.get("/backups/restore?job=conf&id=" + h.ID); resp.StatusCode != http.StatusForbidden {
		t.Errorf("restore page for a read-only session: %s", resp.Status)
	}
	if n, _ := agent.StateVerifyLog(ba.stateDir).Read(); len(n) != 3 {
		t.Fatalf("refused verify forms reached the log: %d entries", len(n))
	}
	// The page's verify button: a form post with the session's CSRF token.
	resp, _ = b.postForm("/backups/verify", url.Values{"csrf": {b.csrf}, "job": {"conf"}, "id": {h.ID}, "store": {"copy"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/backups?verify=conf") {
		t.Fatalf("verify button: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	waitFor(t, "the verify from the page", func() bool {
		j := ba.job(t, "conf")
		return j.Operation != nil && !j.Operation.Running && j.Operation.Store == "copy"
	})
	if j := ba.job(t, "conf"); !j.Operation.OK || j.Stores[1].LastVerify.By != "console" {
		t.Fatalf("verify of the copy from the page: %+v, %+v", j.Operation, j.Stores[1].LastVerify)
	}
}

// TestAgentBackupRestore restores a real files backup into a new
// directory through the API and compares the tree; a non-empty or
// overlapping target and bad requests are refused with 4xx.
func TestAgentBackupRestore(t *testing.T) {
	ba := startBackupAgent(t)
	b := ba.b
	h := ba.runBackup(t, "conf")
	into := filepath.Join(ba.dir, "restored", "conf")
	resp, body := b.call("POST", "/api/v1/backups/restore", operatorToken, "", `{"job":"conf","id":"`+h.ID+`","dir":"`+into+`"}`)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(body, "new directory "+into) {
		t.Fatalf("restore: %s %s", resp.Status, body)
	}
	if op := ba.waitOp(t, "conf", "restore", h.ID); !op.OK {
		t.Fatalf("restore: %+v", op)
	}
	if got, want := treeOf(t, into), treeOf(t, ba.src); got != want {
		t.Fatalf("restored tree differs from the source:\n got %s\nwant %s", got, want)
	}

	// A stream backup restores into a new file.
	d := ba.runBackup(t, "dump")
	// The dump job has params verify="after": the run checked it.
	if lv := ba.job(t, "dump").LastVerify; lv == nil || !lv.OK || lv.ID != d.ID || lv.By != "after backup" {
		t.Fatalf("last verify of a verify=after job after its run: %+v", lv)
	}
	file := filepath.Join(ba.dir, "dump.out")
	resp, body = b.call("POST", "/api/v1/backups/restore", operatorToken, "", `{"job":"dump","id":"latest","file":"`+file+`"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("restore of the dump: %s %s", resp.Status, body)
	}
	if op := ba.waitOp(t, "dump", "restore", d.ID); !op.OK {
		t.Fatalf("restore of the dump: %+v", op)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "line one\nline two\n" {
		t.Fatalf("restored dump: %q, %v", got, err)
	}

	x := filepath.Join(ba.dir, "x")
	if err := os.Symlink("/etc", filepath.Join(ba.dir, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, bearer, body string
		code               int
		want               string
	}{
		{"non-empty dir", operatorToken, `{"job":"conf","id":"` + h.ID + `","dir":"` + into + `"}`, http.StatusConflict, "is not empty"},
		{"existing file", operatorToken, `{"job":"dump","id":"latest","file":"` + file + `"}`, http.StatusConflict, "exists"},
		{"into the live source", operatorToken, `{"job":"conf","id":"` + h.ID + `","dir":"` + filepath.Join(ba.src, "new") + `"}`, http.StatusBadRequest, "live data"},
		{"into the store", operatorToken, `{"job":"conf","id":"` + h.ID + `","dir":"` + filepath.Join(ba.store, "x") + `"}`, http.StatusBadRequest, "backup store"},
		{"relative dir", operatorToken, `{"job":"conf","id":"` + h.ID + `","dir":"rel/dir"}`, http.StatusBadRequest, "absolute"},
		{"file for a files job", operatorToken, `{"job":"conf","id":"` + h.ID + `","file":"` + x + `"}`, http.StatusBadRequest, "give dir"},
		{"unknown job", operatorToken, `{"job":"nope","id":"latest","dir":"` + x + `"}`, http.StatusNotFound, `unknown backup job`},
		{"unknown id", operatorToken, `{"job":"conf","id":"20200101T000000.000Z-abcdef","dir":"` + x + `"}`, http.StatusNotFound, "not in the history"},
		{"no id", operatorToken, `{"job":"conf","dir":"` + x + `"}`, http.StatusBadRequest, "id is required"},
		// The operator role may not write root-owned files anywhere.
		{"outside the restore root", operatorToken, `{"job":"dump","id":"latest","file":"/etc/cron.d/harules-restore-test"}`, http.StatusBadRequest, "restores from the console go under " + ba.dir},
		{"out of the root through a symlink", operatorToken, `{"job":"conf","id":"` + h.ID + `","dir":"` + filepath.Join(ba.dir, "escape", "harules-restore-test") + `"}`, http.StatusBadRequest, "symbolic link"},
		{"malformed", operatorToken, `{"job":`, http.StatusBadRequest, ""},
		{"unknown field", operatorToken, `{"job":"conf","id":"latest","to":"/tmp/x"}`, http.StatusBadRequest, "to"},
		{"read-only token", readToken, `{"job":"conf","id":"latest","dir":"/tmp/x"}`, http.StatusForbidden, "operator"},
		{"no token", "", `{"job":"conf","id":"latest","dir":"/tmp/x"}`, http.StatusUnauthorized, ""},
	} {
		resp, body := b.call("POST", "/api/v1/backups/restore", c.bearer, "", c.body)
		if resp.StatusCode != c.code || !strings.Contains(body, c.want) || !strings.Contains(body, `"error"`) {
			t.Errorf("restore, %s: want %d with %q, got %s %s", c.name, c.code, c.want, resp.Status, body)
		}
	}
	for _, c := range []struct {
		name, bearer, body string
		code               int
	}{
		{"unknown job", operatorToken, `{"job":"nope"}`, http.StatusNotFound},
		{"no job", operatorToken, `{}`, http.StatusBadRequest},
		{"unknown store", operatorToken, `{"job":"conf","store":"tape"}`, http.StatusNotFound},
		{"bad id", operatorToken, `{"job":"conf","id":"../../etc"}`, http.StatusNotFound},
		{"read-only token", readToken, `{"job":"conf"}`, http.StatusForbidden},
		{"no token", "", `{"job":"conf"}`, http.StatusUnauthorized},
	} {
		if resp, body := b.call("POST", "/api/v1/backups/verify", c.bearer, "", c.body); resp.StatusCode != c.code {
			t.Errorf("verify, %s: want %d, got %s %s", c.name, c.code, resp.Status, body)
		}
	}
	if entries, _ := agent.StateVerifyLog(ba.stateDir).Read(); len(entries) != 1 {
		t.Errorf("refused requests reached the verification log: %+v", entries)
	}

	// Unauthenticated: nothing is served.
	anon := newBrowser(t, b.base)
	if resp, _ := anon.get("/backups/restore?job=conf&id=" + h.ID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("restore page without a session: %s", resp.Status)
	}
	for _, path := range []string{"/backups/verify", "/backups/restore"} {
		if resp, _ := anon.postForm(path, url.Values{"job": {"conf"}, "id": {h.ID}, "dir": {"/tmp/x"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %s", path, resp.Status)
		}
	}
	if resp, body := anon.call("GET", "/api/v1/backups/verifications", "", "", ""); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "dump") {
		t.Errorf("GET /api/v1/backups/verifications without a token: %s %s", resp.Status, body)
	}
	if resp, body := anon.call("GET", "/api/v1/backups/verifications?job=dump", readToken, "", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"by": "after backup"`) {
		t.Errorf("GET /api/v1/backups/verifications: %s %s", resp.Status, body)
	}

	// The console: a session without the CSRF token is refused; the
	// restore page asks for a target, then confirms what will happen.
	b.login(operatorToken)
	if resp, _ := b.call("POST", "/api/v1/backups/restore", "", "", `{"job":"conf","id":"latest","dir":"/tmp/x"}`); resp.StatusCode != http.StatusForbidden {
		t.Errorf("session API request without CSRF: %s", resp.Status)
	}
	into2 := filepath.Join(ba.dir, "restored2")
	if resp, _ := b.postForm("/backups/restore", url.Values{"csrf": {"00" + b.csrf[2:]}, "job": {"conf"}, "id": {h.ID}, "dir": {into2}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("restore form with a wrong CSRF token: %s", resp.Status)
	}
	resp, page := b.get("/backups/restore?job=conf&id=" + h.ID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="dir"`) || strings.Contains(page, `id="confirm"`) {
		t.Fatalf("restore page without a target: %s\n%s", resp.Status, page)
	}
	resp, page = b.get("/backups/restore?" + url.Values{"job": {"conf"}, "id": {h.ID}, "dir": {into}}.Encode())
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "is not empty") || strings.Contains(page, `id="confirm"`) {
		t.Fatalf("restore page with a non-empty target: %s\n%s", resp.Status, page)
	}
	resp, page = b.get("/backups/restore?" + url.Values{"job": {"conf"}, "id": {h.ID}, "dir": {into2}}.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="confirm"`) || !strings.Contains(page, "extracted into "+into2) {
		t.Fatalf("restore confirmation: %s\n%s", resp.Status, page)
	}
	if _, err := os.Stat(into2); !os.IsNotExist(err) {
		t.Fatalf("the confirmation page created the target: %v", err)
	}
	resp, _ = b.postForm("/backups/restore", url.Values{"csrf": {b.csrf}, "job": {"conf"}, "id": {h.ID}, "dir": {into2}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/backups?restore=conf") {
		t.Fatalf("confirm restore: %s", resp.Status)
	}
	if op := ba.waitOp(t, "conf", "restore", h.ID); !op.OK || op.Into != "new directory "+into2 || op.By != "console" {
		t.Fatalf("restore from the page: %+v", op)
	}
	if got, want := treeOf(t, into2), treeOf(t, ba.src); got != want {
		t.Fatalf("tree restored from the page differs:\n got %s\nwant %s", got, want)
	}
}

// treeOf describes a directory tree: every path with its type, mode, size,
// content hash or link target.
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %d %x", len(data), sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			fmt.Fprintf(&b, " -> %s", target)
		}
		b.WriteString("; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func flipByteAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}
