package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/pgtest"
	"github.com/harules/harules/internal/version"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

// backupFixture is a policy with a files job (copied to a second store)
// and two backups made with builtins/backup directly, as the agent makes
// them.
type backupFixture struct {
	dir, policy, src, target, copyTo string
	fifo                             string // the "slow" job's command reads it
	ids                              []string
}

func newBackupFixture(t *testing.T) *backupFixture {
	t.Helper()
	dir := t.TempDir()
	f := &backupFixture{dir: dir, policy: filepath.Join(dir, "policy.star"), src: filepath.Join(dir, "src"),
		target: filepath.Join(dir, "store"), copyTo: filepath.Join(dir, "copy"), fifo: filepath.Join(dir, "fifo")}
	if err := syscall.Mkfifo(f.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"index.html": "<h1>hello</h1>\n", "data/big.txt": strings.Repeat("line of data\n", 20000), "data/empty": ""}
	for name, content := range files {
		p := filepath.Join(f.src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	pol := fmt.Sprintf(`cluster(name = "bk", reevaluate = "300ms")
node("n1", address = "198.51.100.1")
backup("site", schedule = "30 2 * * *", timezone = "Europe/Berlin",
       params = {"target": %q, "source": %q, "copy_to": %q, "keep_last": "5", "headroom_percent": "0"})
backup("hourly", schedule = "0 * * * *", kind = "exec", catch_up = False,
       params = {"target": %q, "command": "echo hi", "headroom_percent": "0"})
backup("slow", schedule = "0 3 * * *", kind = "exec", params = {"target": %q, "command": "cat %s", "headroom_percent": "0"})
`, f.target, f.src, f.copyTo, f.target, f.target, f.fifo)
	if err := os.WriteFile(f.policy, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), f.policy, rules.Options{})
	if err != nil {
		t.Fatalf("fixture policy: %v", err)
	}
	job, target, copyTo, err := agent.JobFromPolicy(p.Backups[0])
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := backup.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, _, err := backup.Open(copyTo)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	job.Replicas = []backup.Replica{backup.NewDirReplica("copy", cs)}
	clock := time.Date(2026, 1, 9, 1, 30, 0, 0, time.UTC)
	r := &backup.Runner{Store: st, Node: "n1", Log: quietLog(), Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	for day := 0; day < 2; day++ {
		clock = time.Date(2026, 1, 9+day, 1, 30, 0, 0, time.UTC)
		rec, err := r.Run(context.Background(), job)
		if err != nil || !rec.Safe() {
			t.Fatalf("fixture backup: %+v, %v", rec, err)
		}
		f.ids = append(f.ids, rec.ID)
	}
	return f
}

func (f *backupFixture) dataFile(t *testing.T, store, id string) string {
	t.Helper()
	p := filepath.Join(store, "site", id, "data.tar.gz")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("data file of %s: %v", id, err)
	}
	return p
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestBackupListShowsJobsNextRunsAndHistory(t *testing.T) {
	f := newBackupFixture(t)
	// 2026-01-10 12:00 UTC: the next 02:30 in Berlin (UTC+1 in winter) is
	// 2026-01-11 01:30 UTC; the hourly job's next run is 13:00 UTC.
	code, out, errOut := harules(t, "backup", "list", "--policy", f.policy, "--json", "--now", "2026-01-10T12:00:00Z")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Jobs []struct {
			Name, Kind, Schedule, Timezone, Target, CopyTo string
			CatchUp                                        bool      `json:"catch_up"`
			CopyToJSON                                     string    `json:"copy_to"`
			NextRun                                        time.Time `json:"next_run"`
			History                                        []struct {
				ID      string
				Node    string
				Start   time.Time
				End     time.Time
				Bytes   int64
				SHA256  string
				Outcome string
				Safe    bool
				Copies  []struct {
					Replica  string
					Verified bool
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("list --json is not JSON: %v\n%s", err, out)
	}
	if len(doc.Jobs) != 3 {
		t.Fatalf("jobs: %+v", doc.Jobs)
	}
	site, hourly := doc.Jobs[0], doc.Jobs[1]
	if site.Name != "site" || site.Timezone != "Europe/Berlin" || !site.NextRun.Equal(time.Date(2026, 1, 11, 1, 30, 0, 0, time.UTC)) ||
		site.Target != f.target || site.CopyToJSON != f.copyTo || !site.CatchUp {
		t.Errorf("site job: %+v", site)
	}
	if _, offset := site.NextRun.Zone(); offset != 3600 {
		t.Errorf("next run %s is not given in the job's time zone (+01:00)", site.NextRun)
	}
	if hourly.Name != "hourly" || hourly.Kind != "exec" || hourly.CatchUp || !hourly.NextRun.Equal(time.Date(2026, 1, 10, 13, 0, 0, 0, time.UTC)) || len(hourly.History) != 0 {
		t.Errorf("hourly job: %+v", hourly)
	}
	if len(site.History) != 2 {
		t.Fatalf("site history: %+v", site.History)
	}
	for i, h := range site.History {
		if h.ID != f.ids[i] || h.Node != "n1" || h.Outcome != "ok" || !h.Safe || h.Bytes <= 0 || len(h.SHA256) != 64 ||
			!h.End.After(h.Start) || len(h.Copies) != 1 || !h.Copies[0].Verified {
			t.Errorf("history %d: %+v", i, h)
		}
	}

	code, out, errOut = harules(t, "backup", "list", "--policy", f.policy, "--now", "2026-01-10T12:00:00Z")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"2026-01-11T02:30:00+01:00 (in 13h30m0s)", "30 2 * * * Europe/Berlin", f.ids[0], f.ids[1],
		site.History[1].SHA256[:12], "copy: verified", "2 runs in " + f.target, "hourly: no runs in"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
}

func TestBackupVerifyDetectsCorruption(t *testing.T) {
	f := newBackupFixture(t)
	code, out, errOut := harules(t, "backup", "verify", "--policy", f.policy, "site", f.ids[0])
	if code != exitOK || !strings.Contains(out, f.ids[0]+": ok") || !strings.Contains(out, "copy copy at "+f.copyTo+": verified") {
		t.Fatalf("verify of a good backup: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = harules(t, "backup", "verify", "site", "latest", "--policy", f.policy, "--json")
	var res struct {
		ID      string
		OK      bool
		Corrupt bool
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.OK || res.ID != f.ids[1] {
		t.Fatalf("verify latest: exit %d %+v\n%s", code, res, out)
	}

	// One flipped byte in the middle of the archive of the first backup.
	data := f.dataFile(t, f.target, f.ids[0])
	fi, _ := os.Stat(data)
	flipByte(t, data, fi.Size()/2)
	code, out, errOut = harules(t, "backup", "verify", "--policy", f.policy, "site", f.ids[0], "--json")
	if code != exitFailed || json.Unmarshal([]byte(out), &res) != nil || res.OK || !res.Corrupt {
		t.Fatalf("verify of a corrupted backup: exit %d, %+v\n%s%s", code, res, out, errOut)
	}
	if !strings.Contains(errOut, "CORRUPT") {
		t.Errorf("stderr does not say CORRUPT: %s", errOut)
	}
	// The other backup is untouched.
	if code, _, errOut := harules(t, "backup", "verify", "--policy", f.policy, "site", f.ids[1]); code != exitOK {
		t.Errorf("the intact backup: exit %d: %s", code, errOut)
	}
	// A corrupt copy fails verification too, naming the copy.
	flipByte(t, f.dataFile(t, f.copyTo, f.ids[1]), 100)
	code, out, errOut = harules(t, "backup", "verify", "--policy", f.policy, "site", f.ids[1])
	if code != exitFailed || !strings.Contains(out, "copy copy at "+f.copyTo+": NOT VERIFIED") || !strings.Contains(errOut, "CORRUPT") {
		t.Errorf("corrupt copy: exit %d:\n%s%s", code, out, errOut)
	}
	// The catalogue now records the copy as not verified.
	_, out, _ = harules(t, "backup", "list", "--policy", f.policy)
	if !strings.Contains(out, "copy: NOT VERIFIED") {
		t.Errorf("list after a failed copy verification:\n%s", out)
	}
}

func TestBackupRestoreFiles(t *testing.T) {
	f := newBackupFixture(t)
	dest := filepath.Join(f.dir, "restored")
	code, out, errOut := harules(t, "backup", "restore", "--policy", f.policy, "site", f.ids[1], "--to", dest)
	if code != exitOK || !strings.Contains(out, "restored site/"+f.ids[1]) {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	for _, name := range []string{"index.html", "data/big.txt", "data/empty"} {
		want, _ := os.ReadFile(filepath.Join(f.src, name))
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s restored as %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	// Into a non-empty directory: refused, nothing overwritten.
	code, _, errOut = harules(t, "backup", "restore", "--policy", f.policy, "site", f.ids[1], "--to", dest)
	if code != exitFailed || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore into a non-empty dir: exit %d: %s", code, errOut)
	}
	// A corrupt archive is detected during the restore.
	fi, _ := os.Stat(f.dataFile(t, f.target, f.ids[0]))
	flipByte(t, f.dataFile(t, f.target, f.ids[0]), fi.Size()/2)
	code, out, errOut = harules(t, "backup", "restore", "--policy", f.policy, "site", f.ids[0], "--to", filepath.Join(f.dir, "r2"), "--json")
	var res struct {
		OK      bool
		Corrupt bool
		Error   string
	}
	if code != exitFailed || json.Unmarshal([]byte(out), &res) != nil || res.OK || !res.Corrupt {
		t.Errorf("restore of a corrupt backup: exit %d %+v\n%s%s", code, res, out, errOut)
	}
}

func TestBackupUsageAndErrors(t *testing.T) {
	f := newBackupFixture(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup"}, exitUsage, "want list, run JOB"},
		{[]string{"backup", "frobnicate"}, exitUsage, `unknown subcommand "frobnicate"`},
		{[]string{"backup", "verify", "--policy", f.policy, "site"}, exitUsage, "want JOB ID"},
		{[]string{"backup", "verify", "--policy", f.policy, "nosuch", "x"}, exitUsage, `no backup job "nosuch"`},
		{[]string{"backup", "verify", "--policy", f.policy, "site", "20260101T000000Z-nope"}, exitFailed, "backup list` shows the IDs"},
		{[]string{"backup", "verify", "--policy", f.policy, "site", "../etc"}, exitFailed, "backup not found"},
		{[]string{"backup", "restore", "--policy", f.policy, "site", f.ids[0]}, exitUsage, "exactly one of --to"},
		{[]string{"backup", "restore", "--policy", f.policy, "site", f.ids[0], "--to-dsn", "dbname=x"}, exitUsage, "--to-dsn restores kind postgres"},
		{[]string{"backup", "restore", "--policy", f.policy, "hourly", "latest", "--to", "/tmp/x"}, exitUsage, "is kind exec"},
		{[]string{"backup", "list", "--policy", filepath.Join(f.dir, "missing.star")}, exitUsage, "load policy"},
		{[]string{"backup", "run", "site", "--control", filepath.Join(f.dir, "no.sock")}, exitFailed, "cannot reach the agent"},
	} {
		code, _, errOut := harules(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	// While a backup runs, the store is locked: verify says so, exit 1.
	st, _, err := backup.Open(f.target)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, errOut := harules(t, "backup", "verify", "--policy", f.policy, "site", f.ids[0])
	if code != exitFailed || !strings.Contains(errOut, "is in use") {
		t.Errorf("verify of a locked store: exit %d: %s", code, errOut)
	}
}

// TestBackupRunThroughAgent runs a real agent (single node, no resources
// touched) and drives `harules backup run --wait` against its socket.
func TestBackupRunThroughAgent(t *testing.T) {
	f := newBackupFixture(t)
	p, err := rules.Load(context.Background(), f.policy, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex := agent.NewExecutor("n1", quietLog())
	ex.Policy = func() *policy.Policy { return p }
	sock := filepath.Join(f.dir, "ctl", "sock")
	a, err := agent.New(agent.Config{PolicyPath: f.policy, Node: "n1", StateDir: filepath.Join(f.dir, "state"), ControlSocket: sock,
		Logger: quietLog(), Executor: ex, HandoverTimeout: time.Second})
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
	deadline := time.Now().Add(30 * time.Second)
	for a.Status() == nil {
		if time.Now().After(deadline) {
			t.Fatal("agent did not publish a status")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errOut := harules(t, "backup", "run", "site", "--control", sock, "--wait")
	if code != exitOK || !strings.Contains(out, "backup site ok on n1: id ") {
		t.Fatalf("backup run --wait: exit %d\n%s%s", code, out, errOut)
	}
	_, out, _ = harules(t, "backup", "list", "--policy", f.policy)
	if !strings.Contains(out, "3 runs in "+f.target) {
		t.Errorf("the third backup is not listed:\n%s", out)
	}
	code, out, _ = harules(t, "status", "--control", sock, "--json")
	var st agent.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Backups) != 1 || st.Backups[0].Outcome != "ok" {
		t.Errorf("status after the run: exit %d, %+v", code, st.Backups)
	}
	validateJSON(t, "status.json", "status --json of a real agent after a backup", out)
	if st.Version != version.Get().Version {
		t.Errorf("status --json version %q, want %q", st.Version, version.Get().Version)
	}
	if _, out, _ := harules(t, "status", "--control", sock); !strings.Contains(out, "harules "+version.Get().Version+")") {
		t.Errorf("status does not name the agent's version:\n%s", out)
	}
	// A failing job: --wait exits 1, and the alert is in the status.
	code, _, errOut = harules(t, "backup", "run", "hourly", "--control", sock, "--wait")
	if code != exitOK {
		t.Fatalf("hourly (echo hi): exit %d: %s", code, errOut)
	}
	os.RemoveAll(f.src)
	code, _, errOut = harules(t, "backup", "run", "site", "--control", sock, "--wait")
	if code != exitFailed || !strings.Contains(errOut, "backup site failed") {
		t.Errorf("run with the source gone: exit %d: %s", code, errOut)
	}
	_, out, _ = harules(t, "status", "--control", sock, "--json")
	validateJSON(t, "status.json", "status --json of a real agent with a failed backup", out)
	_, out, _ = harules(t, "status", "--control", sock)
	if !strings.Contains(out, agent.AlertBackupFailed) || !strings.Contains(out, "site: last run failed at ") {
		t.Errorf("status does not show the failed run and its alert:\n%s", out)
	}

	// A run in progress (cat blocks on the FIFO until the test writes):
	// list shows it running, and a second request is refused meanwhile.
	if code, _, errOut := harules(t, "backup", "run", "slow", "--control", sock); code != exitOK {
		t.Fatalf("run slow: exit %d: %s", code, errOut)
	}
	w, err := os.OpenFile(f.fifo, os.O_WRONLY, 0) // returns once cat opened it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitList := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, out, _ := harules(t, "backup", "list", "--policy", f.policy, "--control", sock)
			if strings.Contains(out, want) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("backup list never showed %q:\n%s", want, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitList("slow: on this node: running since")
	if code, _, errOut := harules(t, "backup", "run", "slow", "--control", sock); code != exitFailed || !strings.Contains(errOut, "still going") {
		t.Errorf("second run while the first runs: exit %d: %s", code, errOut)
	}
	if _, err := w.WriteString("slow dump\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitList("slow: on this node: last run ok")
}

// TestBackupCatchUpAfterFailover simulates a failover that completes after
// the scheduled time (the primary dies 5 s before 02:00 and the peer needs
// 10 s to declare it dead): the job with catch_up runs once on the new
// node, the job without it skips the missed run. When the failover is done
// before 02:00, both run on time on the new node. (The postgres example's
// backup-after-failover scenario covers the on-time case with catch_up.)
func TestBackupCatchUpAfterFailover(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(`load("@stdlib//placement.star", "active_standby")
cluster(name = "bk", reevaluate = "1s")
node("n1", address = "198.51.100.1")
node("n2", address = "198.51.100.2")
heartbeat("lan", interval = "1s", misses = 10)
group("db", resources = [vip("198.51.100.30/24")], placement = active_standby(["n1", "n2"]))
backup("catchup", schedule = "0 2 * * *", group = "db", catch_up = True, params = {"target": "/var/backups/harules", "source": "/srv/data"})
backup("strict", schedule = "0 2 * * *", group = "db", catch_up = False, params = {"target": "/var/backups/harules", "source": "/srv/data"})
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), pol, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, crashAt string
		runs          map[string]string // job -> reason substring of its one run on n2 ("" = no run)
		skips         []string
	}{
		{"failover done after 02:00", "115s", map[string]string{"catchup": "catching up the run scheduled 2026-01-01T02:00:00Z", "strict": ""}, []string{"strict"}},
		{"failover done before 02:00", "60s", map[string]string{"catchup": "scheduled 2026-01-01T02:00:00Z (0 2 * * *)", "strict": "scheduled 2026-01-01T02:00:00Z"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sf := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".star")
			if err := os.WriteFile(sf, []byte(`scenario(name = "x", start = "2026-01-01T01:58:00Z", duration = "6m")
at("`+tc.crashAt+`", crash("n1"))
expect_single_owner()
`), 0o600); err != nil {
				t.Fatal(err)
			}
			sc, err := simulate.LoadScenario(context.Background(), sf, p)
			if err != nil {
				t.Fatal(err)
			}
			res, err := simulate.Run(context.Background(), p, pol, sc, simulate.Options{})
			if err != nil || !res.OK {
				t.Fatalf("simulate: %v, %+v", err, res.Expectations)
			}
			runs := map[string][]engine.Record{}
			var skips []string
			for _, r := range res.Records {
				if r.Kind != engine.RecBackup {
					continue
				}
				if job, ok := strings.CutPrefix(r.Text, "run backup "); ok {
					runs[job] = append(runs[job], r)
				}
				if job, ok := strings.CutPrefix(r.Text, "skip backup "); ok {
					if r.Node != "n2" || !strings.Contains(r.Reason, "catch_up is off") {
						t.Errorf("skip record: %+v", r)
					}
					skips = append(skips, job)
				}
			}
			for job, reason := range tc.runs {
				got := runs[job]
				if reason == "" {
					if len(got) != 0 {
						t.Errorf("%s ran: %+v; want no run", job, got)
					}
					continue
				}
				if len(got) != 1 || got[0].Node != "n2" || !strings.Contains(got[0].Reason, reason) {
					t.Errorf("%s runs: %+v; want one on n2 with reason %q", job, got, reason)
				}
			}
			if strings.Join(skips, ",") != strings.Join(tc.skips, ",") {
				t.Errorf("skipped %v, want %v", skips, tc.skips)
			}
		})
	}
}

// TestBackupRestorePostgres: a postgres job's dump (made as the agent makes
// it, from the policy) is restored with pg_restore into another database
// through `backup restore --to-dsn`, and written out with --to-file.
func TestBackupRestorePostgres(t *testing.T) {
	pg := pgtest.StartNew(t, "pg_dump", "pg_restore", "psql")
	sock := pg.Dir
	pg.Psql(t, "postgres", "CREATE DATABASE app")
	pg.Psql(t, "app", `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t`
	want := pg.Psql(t, "app", check)

	dir := t.TempDir()
	target := filepath.Join(dir, "store")
	pol := filepath.Join(dir, "policy.star")
	dsn := "host=" + sock + " user=postgres dbname="
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(`cluster(name = "pg")
node("n1", address = "198.51.100.1")
backup("db", schedule = "0 2 * * *", kind = "postgres", params = {"target": %q, "dsn": %q, "headroom_percent": "0"})
`, target, dsn+"app")), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(context.Background(), pol, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	job, _, _, err := agent.JobFromPolicy(p.Backups[0])
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := backup.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := (&backup.Runner{Store: st, Node: "n1", Log: quietLog()}).Run(context.Background(), job)
	st.Close()
	if err != nil {
		t.Fatalf("pg_dump backup: %v (%s)", err, rec.Stderr)
	}

	pg.Psql(t, "postgres", "CREATE DATABASE restored")
	code, out, errOut := harules(t, "backup", "restore", "--policy", pol, "db", "latest", "--to-dsn", dsn+"restored")
	if code != exitOK || !strings.Contains(out, "restored db/"+rec.ID) {
		t.Fatalf("restore --to-dsn: exit %d\n%s%s", code, out, errOut)
	}
	if got := pg.Psql(t, "restored", check); got != want || !strings.HasPrefix(got, "5000 ") {
		t.Fatalf("restored table: %q, want %q", got, want)
	}
	dump := filepath.Join(dir, "db.dump")
	if code, _, errOut := harules(t, "backup", "restore", "--policy", pol, "db", rec.ID, "--to-file", dump); code != exitOK {
		t.Fatalf("restore --to-file: exit %d: %s", code, errOut)
	}
	if b, err := os.ReadFile(dump); err != nil || !strings.HasPrefix(string(b), "PGDMP") {
		t.Errorf("dump file is not a pg_dump custom archive (%v)", err)
	}
	// A missing database: pg_restore fails, exit 1.
	if code, _, errOut := harules(t, "backup", "restore", "--policy", pol, "db", rec.ID, "--to-dsn", dsn+"nosuchdb"); code != exitFailed || !strings.Contains(errOut, "nosuchdb") {
		t.Errorf("restore into a missing database: exit %d: %s", code, errOut)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// dueRecorder is an engine executor that notes when backups are started.
type dueRecorder struct{ runs []engine.BackupRun }

func (d *dueRecorder) Execute(context.Context, engine.Action) error { return nil }
func (d *dueRecorder) Backup(_ context.Context, run engine.BackupRun) error {
	d.runs = append(d.runs, run)
	return nil
}

// TestBackupListNextRunIsWhenTheEngineRunsIt steps the engine's node loop
// on an injected clock around the next run `backup list` announces: the job
// is not due a second before and runs at that instant, in the job's time
// zone, across a daylight saving change too (02:30 does not exist in
// Berlin on 2026-03-29).
func TestBackupListNextRunIsWhenTheEngineRunsIt(t *testing.T) {
	f := newBackupFixture(t)
	p, err := rules.Load(context.Background(), f.policy, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"2026-01-10T12:00:00Z", "2026-03-28T12:00:00Z", "2026-10-24T23:00:00Z"} {
		code, out, errOut := harules(t, "backup", "list", "--policy", f.policy, "--json", "--now", from)
		if code != exitOK {
			t.Fatalf("list: exit %d: %s", code, errOut)
		}
		var doc struct {
			Jobs []struct {
				Name    string
				NextRun time.Time `json:"next_run"`
			}
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Jobs) == 0 || doc.Jobs[0].Name != "site" {
			t.Fatalf("list --json: %v\n%s", err, out)
		}
		next := doc.Jobs[0].NextRun
		start, _ := time.Parse(time.RFC3339, from)
		if !next.After(start) || next.Sub(start) > 48*time.Hour {
			t.Fatalf("from %s: next run %s is not within two days", from, next)
		}
		exec := &dueRecorder{}
		n := engine.NewNode(p, "n1", start, engine.NewState(1), exec, nil)
		for _, at := range []time.Time{start, next.Add(-time.Second), next, next.Add(time.Second)} {
			n.Step(context.Background(), at)
		}
		var site []engine.BackupRun
		for _, r := range exec.runs {
			if r.Job == "site" {
				site = append(site, r)
			}
		}
		if len(site) != 1 || !site[0].Scheduled.Equal(next) || !strings.Contains(site[0].Reason, "scheduled") {
			t.Errorf("from %s: list says %s; the engine ran %+v", from, next, site)
		}
	}
}

// TestBackupVerifyIsRecorded: `backup verify` appends one entry per store
// to the verification log in the agent's state directory, the file the
// console reads "last verify" from; --store checks one store.
func TestBackupVerifyIsRecorded(t *testing.T) {
	f := newBackupFixture(t)
	state := t.TempDir()
	code, out, errOut := harules(t, "backup", "verify", "--policy", f.policy, "--state-dir", state, "site", f.ids[0])
	if code != exitOK || !strings.Contains(out, "recorded in "+filepath.Join(state, agent.VerifyLogFile)) {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	log := agent.StateVerifyLog(state)
	entries, err := log.Read()
	if err != nil || len(entries) != 2 || entries[0].Store != agent.StoreTarget || entries[1].Store != "copy" ||
		!entries[0].OK || !entries[1].OK || entries[0].By != "cli" || entries[0].ID != f.ids[0] || entries[0].Bytes <= 0 {
		t.Fatalf("log after verify: %v %+v", err, entries)
	}
	// Only the copy, which is now corrupt.
	flipByte(t, f.dataFile(t, f.copyTo, f.ids[0]), 100)
	code, out, errOut = harules(t, "backup", "verify", "--policy", f.policy, "--state-dir", state, "--store", "copy", "site", f.ids[0], "--json")
	var res struct {
		OK       bool
		Corrupt  bool
		Verified []agent.VerifyEntry
		Recorded string
	}
	if code != exitFailed || json.Unmarshal([]byte(out), &res) != nil || res.OK || !res.Corrupt || len(res.Verified) != 1 ||
		res.Verified[0].Store != "copy" || !strings.HasPrefix(res.Recorded, "recorded in") {
		t.Fatalf("verify of the corrupt copy: exit %d %+v\n%s%s", code, res, out, errOut)
	}
	entries, _ = log.Read()
	if len(entries) != 3 || entries[2].Store != "copy" || entries[2].OK || !entries[2].Corrupt {
		t.Fatalf("log after the failed verify: %+v", entries)
	}
	if code, _, errOut := harules(t, "backup", "verify", "--policy", f.policy, "--state-dir", state, "--store", "tape", "site", f.ids[0]); code != exitUsage || !strings.Contains(errOut, `unknown store "tape"`) {
		t.Errorf("unknown store: exit %d: %s", code, errOut)
	}
	// list shows the newest verification per store.
	code, out, errOut = harules(t, "backup", "list", "--policy", f.policy, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "site: last verify in target: ok at") || !strings.Contains(out, "site: last verify in copy: CORRUPT at") {
		t.Errorf("list with the verification log: exit %d\n%s%s", code, out, errOut)
	}
	// Without a state directory (not on a node) the verify still runs and
	// says it was not recorded.
	missing := filepath.Join(t.TempDir(), "none")
	code, out, _ = harules(t, "backup", "verify", "--policy", f.policy, "--state-dir", missing, "site", f.ids[1])
	if code != exitOK || !strings.Contains(out, "not recorded: no agent state directory") {
		t.Errorf("verify without a state dir: exit %d\n%s", code, out)
	}
}
