package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// randomBytes is an exec source writing n incompressible bytes.
func randomBytes(n int) *Exec {
	return &Exec{Command: Command{Path: "head", Args: []string{"-c", strconv.Itoa(n), "/dev/urandom"}}}
}

const helperEnv = "HARULES_BACKUP_TEST_HELPER"

// TestHelperSlowBackup is not a test: run as a child process (see
// TestKillMidBackup) it starts a backup whose source stalls half-way.
func TestHelperSlowBackup(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	store, _, err := Open(dir, WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: store, Log: quietLog()}
	src := &Exec{Command: Command{Path: "sh", Args: []string{"-c", "head -c 3000000 /dev/urandom; exec sleep 120"}}}
	r.Run(context.Background(), Job{Name: "db", Source: src, Headroom: -1})
	t.Fatal("the slow backup was supposed to be killed")
}

func TestKillMidBackup(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	store, _, err := Open(dir, WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: store, Log: quietLog()}
	job := Job{Name: "db", Source: randomBytes(500_000), Retention: Retention{KeepLast: 10}, Headroom: -1}
	older := []Record{mustRun(t, ctx, r, job), mustRun(t, ctx, r, job)}
	store.Close()

	child := exec.Command(os.Args[0], "-test.run=^TestHelperSlowBackup$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"="+dir)
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	// Wait until the child is mid-backup: its partial data file holds the first 3 MB.
	deadline := time.Now().Add(30 * time.Second)
	var partial string
	for partial == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the child never got mid-backup; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
		matches, _ := filepath.Glob(filepath.Join(dir, "db", partialPrefix+"*", "data.dump"))
		for _, m := range matches {
			if info, err := os.Stat(m); err == nil && info.Size() >= 3_000_000 {
				partial = filepath.Dir(m)
			}
		}
	}
	if err := child.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	t.Logf("killed the child mid-backup at %s", filepath.Base(partial))

	store, rep, err := Open(dir, WithLogger(quietLog()))
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer store.Close()
	if len(rep.RemovedPartial) != 1 || !strings.HasSuffix(partial, rep.RemovedPartial[0][len("db/"):]) {
		t.Errorf("recover removed %v, want the one partial %s", rep.RemovedPartial, filepath.Base(partial))
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial backup still there after Open: %v", err)
	}
	hist, _ := store.History("db")
	if len(hist) != 3 || hist[2].Outcome != OutcomeInterrupted {
		t.Errorf("history after the kill = %+v, want the killed run as interrupted", hist)
	}
	backups, _ := store.Backups("db")
	if len(backups) != 2 {
		t.Fatalf("backups after the kill: %d, want the 2 older ones", len(backups))
	}
	for _, b := range older {
		if err := store.Verify(ctx, "db", b.ID); err != nil {
			t.Errorf("older backup %s does not verify after the kill: %v", b.ID, err)
		}
	}
	// And the store works on.
	r = &Runner{Store: store, Log: quietLog()}
	mustRun(t, ctx, r, job)
}

func TestRecoverAdoptsAndMarksMissing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	store, _, err := Open(dir, WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: store, Log: quietLog()}
	job := Job{Name: "app", Source: randomBytes(1000), Retention: Retention{KeepLast: 10}, Headroom: -1}
	a, b := mustRun(t, ctx, r, job), mustRun(t, ctx, r, job)
	// A crash after the rename but before the catalogue update: the catalogue lacks b.
	hist, _ := store.History("app")
	hist = slices.DeleteFunc(hist, func(x Record) bool { return x.ID == b.ID })
	if err := store.saveHistory("app", hist); err != nil {
		t.Fatal(err)
	}
	// Someone removed a's files by hand.
	os.RemoveAll(store.backupDir("app", a.ID))
	if _, _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open of a locked store: %v, want ErrLocked", err)
	}
	store.Close()

	store, rep, err := Open(dir, WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if !slices.Equal(rep.Adopted, []string{"app/" + b.ID}) || !slices.Equal(rep.Missing, []string{"app/" + a.ID}) {
		t.Fatalf("recover report %+v", rep)
	}
	got, err := store.Get("app", b.ID)
	if err != nil || got.Outcome != OutcomeOK || got.SHA256 != b.SHA256 {
		t.Fatalf("adopted record = %+v, %v", got, err)
	}
	if got, _ := store.Get("app", a.ID); got.Outcome != OutcomeMissing {
		t.Fatalf("vanished backup has outcome %s, want missing", got.Outcome)
	}
}

func TestExecSource(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, filepath.Join(t.TempDir(), "store"))
	r := &Runner{Store: store, Log: quietLog()}

	t.Run("failing command", func(t *testing.T) {
		job := Job{Name: "bad", Source: &Exec{Command: Command{Path: "sh", Args: []string{"-c", "echo partial output; echo boom happened >&2; exit 3"}}}, Headroom: -1}
		rec, err := r.Run(ctx, job)
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("run: %v, want exit status 3", err)
		}
		if rec.Outcome != OutcomeFailed || !strings.Contains(rec.Stderr, "boom happened") {
			t.Fatalf("record %+v", rec)
		}
		if b, _ := store.Backups("bad"); len(b) != 0 {
			t.Fatalf("a failed run left a backup: %+v", b)
		}
		if m, _ := filepath.Glob(filepath.Join(store.Dir(), "bad", ".*-*")); len(m) != 0 {
			t.Fatalf("leftovers: %v", m)
		}
		if h, _ := store.History("bad"); len(h) != 1 || h[0].Outcome != OutcomeFailed || !strings.Contains(h[0].Stderr, "boom") {
			t.Fatalf("history %+v", h)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := r.Run(cctx, Job{Name: "slow", Source: &Exec{Command: Command{Path: "sh", Args: []string{"-c", "echo x; sleep 60"}}}, Headroom: -1})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run: %v, want deadline exceeded", err)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("cancellation did not stop the command")
		}
	})

	t.Run("compressed stream round trip", func(t *testing.T) {
		text := strings.Repeat("INSERT INTO t VALUES (1, 'héllo');\n", 5000)
		textFile := filepath.Join(t.TempDir(), "dump.sql")
		os.WriteFile(textFile, []byte(text), 0o600)
		src := &Exec{Command: Command{Path: "cat", Args: []string{textFile}}, Compress: true}
		rec := mustRun(t, ctx, r, Job{Name: "sql", Source: src, Headroom: -1})
		if rec.Compression != "gzip" || rec.DataFile() != "data.dump.gz" || rec.Bytes >= int64(len(text))/10 {
			t.Fatalf("record %+v (text %d bytes)", rec, len(text))
		}
		var buf bytes.Buffer
		if err := store.RestoreStream(ctx, "sql", rec.ID, &buf); err != nil || buf.String() != text {
			t.Fatalf("restore stream: %v, %d bytes", err, buf.Len())
		}
		// Restore hook: a command reading the stream on stdin.
		outFile := filepath.Join(t.TempDir(), "restored.sql")
		sink := ExecSink{Command{Path: "sh", Args: []string{"-c", `cat > "$1"`, "sh", outFile}}}
		if err := store.RestoreStreamTo(ctx, "sql", rec.ID, sink); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(outFile); string(b) != text {
			t.Fatalf("the restore command got %d bytes, want %d", len(b), len(text))
		}
		// A failing restore command fails the restore.
		bad := ExecSink{Command{Path: "sh", Args: []string{"-c", "cat >/dev/null; echo no such db >&2; exit 1"}}}
		if err := store.RestoreStreamTo(ctx, "sql", rec.ID, bad); err == nil || !strings.Contains(err.Error(), "no such db") {
			t.Fatalf("failing restore command: %v", err)
		}
		// A corrupted stream is refused before it reaches the command.
		p := store.pathOf("sql", rec.ID, rec.DataFile())
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0xff
		os.WriteFile(p, b, 0o640)
		if err := store.RestoreStreamTo(ctx, "sql", rec.ID, sink); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("restore of a corrupted stream: %v, want ErrCorrupt", err)
		}
	})
}

func TestDumpCommandLines(t *testing.T) {
	pg := PostgresDump("host=/run/pg dbname=app user=backup", "--schema=public")
	if pg.Path != "pg_dump" || !slices.Contains(pg.Args, "--format=custom") || !slices.Contains(pg.Args, "--dbname=host=/run/pg dbname=app user=backup") || pg.Args[len(pg.Args)-1] != "--schema=public" || pg.Compress {
		t.Errorf("PostgresDump = %+v", pg)
	}
	my := MySQLDump("--socket=/run/mysqld/mysqld.sock", "--all-databases")
	if (my.Path != "mariadb-dump" && my.Path != "mysqldump") || !slices.Contains(my.Args, "--single-transaction") || !my.Compress || my.Args[len(my.Args)-1] != "--all-databases" {
		t.Errorf("MySQLDump = %+v", my)
	}
	pr := PostgresRestore("dbname=copy")
	if pr.Path != "pg_restore" || !slices.Contains(pr.Args, "--dbname=dbname=copy") || !slices.Contains(pr.Args, "--exit-on-error") {
		t.Errorf("PostgresRestore = %+v", pr)
	}
}
