package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recordSink collects the records an executor reports.
type recordSink struct {
	mu   sync.Mutex
	recs []engine.Record
}

func (s *recordSink) add(r engine.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
}

func (s *recordSink) all() []engine.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Record(nil), s.recs...)
}

// backupExecutor returns an executor whose policy holds the given jobs
// (swappable by the returned setter) and whose records go to a sink.
func backupExecutor(t *testing.T, jobs ...*policy.Backup) (*Executor, func(...*policy.Backup), *recordSink) {
	t.Helper()
	var mu sync.Mutex
	p := &policy.Policy{Backups: jobs}
	e := NewExecutor("n1", quietLogger())
	e.Policy = func() *policy.Policy {
		mu.Lock()
		defer mu.Unlock()
		return p
	}
	sink := &recordSink{}
	e.OnBackupRecord(sink.add)
	set := func(jobs ...*policy.Backup) {
		mu.Lock()
		defer mu.Unlock()
		p = &policy.Policy{Backups: jobs}
	}
	return e, set, sink
}

// waitFinished waits (bounded) until the job's run finished and returns
// its state.
func waitFinished(t *testing.T, e *Executor, job string) BackupState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range e.BackupStates() {
			if s.Job == job && !s.Running {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("backup %s did not finish within 30s: %+v", job, e.BackupStates())
	return BackupState{}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExecutorBackupWritesVerifiedBackup: a files job run through
// Executor.Backup lands in the store as a good backup that verifies, its
// copy verifies too, the store is unlocked again afterwards (so the CLI can
// verify and restore between runs), and the outcome is in the states and
// the records.
func TestExecutorBackupWritesVerifiedBackup(t *testing.T) {
	dir := t.TempDir()
	src, target, copyTo := filepath.Join(dir, "src"), filepath.Join(dir, "store"), filepath.Join(dir, "copy")
	writeTree(t, src, map[string]string{"a.txt": "alpha", "sub/b.txt": strings.Repeat("beta ", 10000)})
	job := &policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": target, "source": src, "copy_to": copyTo, "headroom_percent": "0"}}
	e, _, sink := backupExecutor(t, job)
	e.bk.progressEvery = time.Nanosecond // every progress callback logs

	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site", Node: "n1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, e, "site")
	if st.Outcome != "ok" || st.ID == "" || st.Done <= 0 || st.Error != "" || st.Reason != "test" {
		t.Fatalf("state after the run: %+v", st)
	}
	store, _, err := backup.Open(target)
	if err != nil {
		t.Fatalf("the store is still locked after the run (the CLI could not verify or restore): %v", err)
	}
	defer store.Close()
	good, err := store.Backups("site")
	if err != nil || len(good) != 1 || good[0].ID != st.ID || good[0].Bytes != st.Done || good[0].Node != "n1" {
		t.Fatalf("store holds %+v (%v); want one backup %s of %d bytes made on n1", good, err, st.ID, st.Done)
	}
	if !good[0].Safe() {
		t.Errorf("backup with a verified copy is not safe: %+v", good[0])
	}
	if err := store.Verify(t.Context(), "site", st.ID); err != nil {
		t.Errorf("verify: %v", err)
	}
	copyStore, _, err := backup.Open(copyTo)
	if err != nil {
		t.Fatalf("copy store: %v", err)
	}
	defer copyStore.Close()
	if err := copyStore.Verify(t.Context(), "site", st.ID); err != nil {
		t.Errorf("verify the copy: %v", err)
	}
	recs := sink.all()
	if len(recs) != 1 || recs[0].Kind != engine.RecBackup || !strings.Contains(recs[0].Text, "backup site done: "+st.ID) || recs[0].Error != "" {
		t.Errorf("records: %+v; want one 'backup site done' record", recs)
	}
	if alerts := e.BackupAlerts(); len(alerts) != 0 {
		t.Errorf("alerts after a good run: %+v", alerts)
	}
}

// TestExecutorRefusesSecondRunWhileFirstRuns: the first run of an exec job
// blocks reading a FIFO, so it is certainly running when the second
// request comes; that one is refused, the store stays locked by the run,
// and once the FIFO is fed the first run completes.
func TestExecutorRefusesSecondRunWhileFirstRuns(t *testing.T) {
	dir := t.TempDir()
	fifo, target := filepath.Join(dir, "fifo"), filepath.Join(dir, "store")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("cat"); err != nil {
		t.Fatalf("cat not found (install coreutils): %v", err)
	}
	job := &policy.Backup{Name: "dump", Kind: "exec", Params: map[string]string{"target": target, "command": "cat " + fifo, "headroom_percent": "0"}}
	e, _, _ := backupExecutor(t, job)
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "dump"}); err != nil {
		t.Fatal(err)
	}
	// Opening the FIFO for writing blocks until cat opened it: from then on
	// the run is in progress for sure.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = e.Backup(t.Context(), engine.BackupRun{Job: "dump"})
	if err == nil || !strings.Contains(err.Error(), "still going") {
		t.Fatalf("second run while the first runs: %v; want a refusal", err)
	}
	if states := e.BackupStates(); len(states) != 1 || !states[0].Running {
		t.Errorf("states while running: %+v", states)
	}
	if s, _, err := backup.Open(target); !errors.Is(err, backup.ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Errorf("open the store during the run: %v; want ErrLocked (the run holds it)", err)
	}
	if _, err := w.WriteString("the dump\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	st := waitFinished(t, e, "dump")
	if st.Outcome != "ok" || st.Done != int64(len("the dump\n")) {
		t.Fatalf("first run: %+v; want ok with 9 bytes", st)
	}
	// With the first run over, a new one is accepted again (cat of a FIFO
	// again, fed once more).
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "dump"}); err != nil {
		t.Fatalf("run after the first finished: %v", err)
	}
	w2, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w2.WriteString("second\n")
	w2.Close()
	if st2 := waitFinished(t, e, "dump"); st2.Outcome != "ok" || st2.ID == st.ID {
		t.Fatalf("second run: %+v", st2)
	}
}

// mountTmpfs mounts a small tmpfs (so free space is known exactly).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPED LOUDLY: the headroom test mounts a tmpfs and needs root (HARULES_SKIP_ROOT_TESTS=1)")
		}
		t.Fatalf("the headroom test mounts a tmpfs: run as root (or set HARULES_SKIP_ROOT_TESTS=1 to skip)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestBackupRefusalAndFailureRaiseAlerts: a run refused for headroom and a
// failing run each raise an alert (and a record with the error); the next
// good run of the job clears it.
func TestBackupRefusalAndFailureRaiseAlerts(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"big.bin": strings.Repeat("x", 200<<10)})
	target := filepath.Join(mountTmpfs(t, "1m"), "store")
	tight := &policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": target, "source": src, "headroom_percent": "90"}}
	e, setPolicy, sink := backupExecutor(t, tight)

	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site"}); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, e, "site")
	if st.Outcome != "refused" || !strings.Contains(st.Error, "insufficient storage headroom") {
		t.Fatalf("200 KiB into a 1 MiB store keeping 90%% free: %+v; want refused", st)
	}
	alerts := e.BackupAlerts()
	if len(alerts) != 1 || alerts[0].Name != AlertBackupRefused || alerts[0].Severity != "critical" ||
		!strings.Contains(alerts[0].Message, "site") || !strings.Contains(alerts[0].Message, "headroom") {
		t.Fatalf("alerts after the refusal: %+v", alerts)
	}
	recs := sink.all()
	if len(recs) != 1 || !strings.Contains(recs[0].Text, "refused") || !strings.Contains(recs[0].Error, "insufficient storage headroom") {
		t.Errorf("records after the refusal: %+v", recs)
	}

	// A failing source: the alert changes to backup-failed.
	setPolicy(&policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": target, "source": filepath.Join(dir, "gone"), "headroom_percent": "0"}})
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site"}); err != nil {
		t.Fatal(err)
	}
	if st := waitFinished(t, e, "site"); st.Outcome != "failed" {
		t.Fatalf("missing source: %+v; want failed", st)
	}
	if alerts := e.BackupAlerts(); len(alerts) != 1 || alerts[0].Name != AlertBackupFailed || !strings.Contains(alerts[0].Message, "gone") {
		t.Fatalf("alerts after the failure: %+v", alerts)
	}

	// Enough room (headroom off): the run succeeds and the alert clears.
	setPolicy(&policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": target, "source": src, "headroom_percent": "0"}})
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site"}); err != nil {
		t.Fatal(err)
	}
	if st := waitFinished(t, e, "site"); st.Outcome != "ok" {
		t.Fatalf("with headroom off: %+v; want ok", st)
	}
	if alerts := e.BackupAlerts(); len(alerts) != 0 {
		t.Errorf("alerts after a good run: %+v; want none", alerts)
	}
}

// TestProgressIsThrottled: progress callbacks update the state each time
// but log a line only every progressEvery, on the injected clock.
func TestProgressIsThrottled(t *testing.T) {
	var logs strings.Builder
	e := NewExecutor("n1", slog.New(slog.NewTextHandler(&logs, nil)))
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.bk.now = func() time.Time { return clock }
	e.bk.progressEvery = 5 * time.Second
	state := &BackupState{Job: "j", Running: true, Started: clock}
	progress := e.progressLogger(state)
	for i := 1; i <= 20; i++ { // 20 callbacks one second apart
		clock = clock.Add(time.Second)
		progress(backup.Progress{Job: "j", ID: "id1", Done: int64(i) << 20, Estimate: 20 << 20})
	}
	if n := strings.Count(logs.String(), "backup progress"); n != 4 {
		t.Errorf("%d progress lines over 20s at one per 5s, want 4:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "percent=100") || !strings.Contains(logs.String(), "percent=25") {
		t.Errorf("progress lines lack the percentage:\n%s", logs.String())
	}
	if state.Done != 20<<20 || state.Estimate != 20<<20 || state.ID != "id1" {
		t.Errorf("state: %+v", state)
	}
}

func TestNotHolderErrorNamesTheHolder(t *testing.T) {
	b := &policy.Backup{Name: "nightly", Group: "db"}
	st := &Status{Groups: []GroupStatus{{Name: "web", Holders: []string{"n1"}}, {Name: "db", Target: "n2", Holders: []string{"n2"}}}}
	err := notHolderError(b, "n1", st)
	for _, want := range []string{"n2 holds it", "not n1", "harules backup run nightly` on n2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("holder n2: %v; want it to contain %q", err, want)
		}
	}
	st.Groups[1].Holders = nil
	if err := notHolderError(b, "n1", st); err == nil || !strings.Contains(err.Error(), "no node holds it now (it should run on n2)") {
		t.Errorf("nobody holds db: %v", err)
	}
	if err := notHolderError(b, "n1", nil); err == nil || !strings.Contains(err.Error(), "no node does") {
		t.Errorf("no status yet: %v", err)
	}
}

// noResources runs the real backup executor but does nothing for resource
// actions (the test's group must not add a VIP in the root namespace).
type noResources struct{ *Executor }

func (noResources) Execute(context.Context, engine.Action) error { return nil }

// TestControlAPIRunsBackupOnHolder drives a real agent over its control
// socket: `backup run` of a job whose group this node holds starts it and
// the status shows it; a job whose group runs elsewhere is refused with a
// message naming the group and the node; an unknown job is refused.
func TestControlAPIRunsBackupOnHolder(t *testing.T) {
	dir := t.TempDir()
	src, target := filepath.Join(dir, "src"), filepath.Join(dir, "store")
	writeTree(t, src, map[string]string{"f": "content"})
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.star")
	// Two nodes on loopback: b never runs, so a holds "db" and nobody holds
	// "other" (placed only on b). No traffic leaves loopback.
	src2 := `load("@stdlib//placement.star", "active_standby")
cluster(name = "bk", secret_file = "` + secret + `", reevaluate = "200ms")
node("a", address = "127.0.0.1")
node("b", address = "127.0.0.2")
heartbeat("lan", interval = "100ms", misses = 3, port = 17944)
group("db", resources = [vip("198.51.100.40/24", interface = "lo")], placement = active_standby(["a"]))
group("other", resources = [vip("198.51.100.41/24", interface = "lo")], placement = active_standby(["b"]))
backup("site", schedule = "0 3 * * *", group = "db", params = {"target": "` + target + `", "source": "` + src + `", "headroom_percent": "0"})
backup("elsewhere", schedule = "0 3 * * *", group = "other", params = {"target": "` + target + `", "source": "` + src + `"})
`
	if err := os.WriteFile(pol, []byte(src2), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(t.Context(), pol, rules.Options{})
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	ex := NewExecutor("a", quietLogger())
	ex.Policy = func() *policy.Policy { return p }
	sock := filepath.Join(dir, "ctl", "harules.sock")
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: filepath.Join(dir, "state"), ControlSocket: sock,
		Logger: quietLogger(), Executor: noResources{ex}, HandoverTimeout: time.Second})
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
	cl := NewClient(sock)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := cl.Status(t.Context())
		if err == nil && len(st.Groups) == 2 && slicesEqual(st.Groups[0].Holders, []string{"a"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent a never held db: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	acc, err := cl.Backup(t.Context(), "site")
	if err != nil || acc.Node != "a" || acc.Job != "site" {
		t.Fatalf("backup run site on the holder: %+v, %v", acc, err)
	}
	var got BackupState
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, err := cl.Status(t.Context())
		if err == nil && len(st.Backups) == 1 && !st.Backups[0].Running {
			got = st.Backups[0]
			recent := false
			for _, r := range st.Recent {
				recent = recent || (r.Kind == engine.RecBackup && strings.Contains(r.Text, "backup site done"))
			}
			if !recent {
				t.Errorf("the finished run is not in the status records: %+v", st.Recent)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the finished run: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Outcome != "ok" || got.ID == "" || got.Reason != "operator request (harules backup run)" {
		t.Errorf("run state: %+v", got)
	}

	_, err = cl.Backup(t.Context(), "elsewhere")
	if err == nil || !strings.Contains(err.Error(), "group other") || !strings.Contains(err.Error(), "a does not hold it and no node does now") {
		t.Errorf("backup run of a job whose group a does not hold: %v; want a refusal naming group other", err)
	}
	if _, err := cl.Backup(t.Context(), "nosuch"); err == nil || !strings.Contains(err.Error(), `no backup job "nosuch"`) {
		t.Errorf("unknown job: %v", err)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestJobFromPolicyParamsKeys(t *testing.T) {
	base := func(extra map[string]string) *policy.Backup {
		p := map[string]string{"target": "/b", "source": "/s"}
		for k, v := range extra {
			p[k] = v
		}
		return &policy.Backup{Name: "j", Kind: "files", Params: p}
	}
	job, _, _, err := JobFromPolicy(base(map[string]string{"keep": "7", "keep_within": "7d"}))
	if err != nil || job.Retention.KeepLast != 7 || job.Retention.KeepWithin != 7*24*time.Hour {
		t.Errorf("keep=7 keep_within=7d: %+v, %v", job.Retention, err)
	}
	if job, _, _, err := JobFromPolicy(base(map[string]string{"keep_within": "36h"})); err != nil || job.Retention.KeepWithin != 36*time.Hour {
		t.Errorf("keep_within=36h: %+v, %v", job.Retention, err)
	}
	for wantErr, params := range map[string]map[string]string{
		`unknown params key "keep_dayly"`: {"keep_dayly": "7"},
		"not both":                        {"keep": "7", "keep_last": "3"},
		"keep_within":                     {"keep_within": "soon"},
	} {
		if _, _, _, err := JobFromPolicy(base(params)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%v: %v; want an error containing %q", params, err, wantErr)
		}
	}
}

// TestClearBackupAlerts: a failure here is cleared once the job has
// succeeded somewhere after it (a failover moved the job to the peer), and
// kept when the newest success is older than the failure or the job is
// running here again.
func TestClearBackupAlerts(t *testing.T) {
	e := NewExecutor("n1", quietLogger())
	defer e.Close()
	failed := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	e.bk.state = map[string]*BackupState{"nightly": {Job: "nightly", Finished: failed}, "hourly": {Job: "hourly", Finished: failed, Running: true}}
	e.bk.alerts = map[string]engine.Alert{"nightly": {Name: AlertBackupFailed}, "hourly": {Name: AlertBackupFailed}}
	e.ClearBackupAlerts(map[string]time.Time{"nightly": failed.Add(-time.Hour), "hourly": failed.Add(time.Hour)})
	if len(e.BackupAlerts()) != 2 {
		t.Fatalf("alerts cleared by an older success or during a run: %+v", e.BackupAlerts())
	}
	e.ClearBackupAlerts(map[string]time.Time{"nightly": failed.Add(time.Hour)})
	if a := e.BackupAlerts(); len(a) != 1 {
		t.Fatalf("after a newer success of nightly: %+v, want only hourly's alert", a)
	}
}
