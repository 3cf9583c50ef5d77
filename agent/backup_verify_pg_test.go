package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/pgtest"
	"github.com/harules/harules/policy"
)

// waitOp waits for the job's operation to finish.
func waitOp(t *testing.T, e *Executor, job string) BackupOp {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		for _, op := range e.BackupOps() {
			if op.Job == job && !op.Running {
				return op
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the operation on %s did not finish: %+v", job, e.BackupOps())
	return BackupOp{}
}

// TestRestorePostgresIntoNewPlaces: a pg_dump backup restores only into a
// database that does not exist yet, which the restore creates; a
// pg_basebackup backup into a new data directory a server then starts on.
func TestRestorePostgresIntoNewPlaces(t *testing.T) {
	s := pgtest.StartNew(t, "pg_restore", "psql")
	s.Psql(t, "postgres", "CREATE DATABASE app")
	s.Psql(t, "app", `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || name, ',' ORDER BY id)) FROM items`
	want := s.Psql(t, "app", check)

	dir := t.TempDir()
	dsn := fmt.Sprintf("host=%s port=5432 user=postgres", s.Dir)
	dump := &policy.Backup{Name: "appdump", Kind: "postgres", Params: map[string]string{"target": filepath.Join(dir, "store"),
		"dsn": dsn + " dbname=app", "headroom_percent": "0"}}
	phys := &policy.Backup{Name: "cluster", Kind: "postgres", Params: map[string]string{"target": filepath.Join(dir, "store"),
		"dsn": dsn, "method": "basebackup", "headroom_percent": "0"}}
	e, _, _ := backupExecutor(t, dump, phys)
	for _, job := range []string{"appdump", "cluster"} {
		if err := e.Backup(t.Context(), engine.BackupRun{Job: job, Node: "n1", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if st := waitFinished(t, e, job); st.Outcome != "ok" {
			t.Fatalf("backup %s: %+v", job, st)
		}
	}

	// The live database, a bad name, a directory for a dump: refused.
	for _, c := range []struct {
		req  RestoreRequest
		want error
		text string
	}{
		{RestoreRequest{Job: "appdump", ID: "latest", Database: "app"}, backup.ErrTargetNotEmpty, "database app exists"},
		{RestoreRequest{Job: "appdump", ID: "latest", Database: "postgres"}, backup.ErrTargetNotEmpty, "exists"},
		{RestoreRequest{Job: "appdump", ID: "latest", Database: `x"; DROP DATABASE app; --`}, ErrBadTarget, "database name"},
		{RestoreRequest{Job: "appdump", ID: "latest", Dir: filepath.Join(dir, "d")}, ErrBadTarget, "give database"},
		{RestoreRequest{Job: "appdump", ID: "latest", Database: "a", File: filepath.Join(dir, "f")}, ErrBadTarget, "one of"},
		{RestoreRequest{Job: "cluster", ID: "latest", Database: "copy"}, ErrBadTarget, "give dir"},
	} {
		if _, err := e.StartRestore(c.req); !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("restore %+v: %v; want %v saying %q", c.req, err, c.want, c.text)
		}
	}

	op, err := e.StartRestore(RestoreRequest{Job: "appdump", ID: "latest", Database: "app_restored", By: "test"})
	if err != nil || op.Into != "new database app_restored" {
		t.Fatalf("restore into a new database: %+v %v", op, err)
	}
	if op = waitOp(t, e, "appdump"); !op.OK {
		t.Fatalf("restore into a new database: %+v", op)
	}
	if got := s.Psql(t, "app_restored", check); got != want || !strings.HasPrefix(got, "5000 ") {
		t.Fatalf("restored database: %q, want %q", got, want)
	}
	if got := s.Psql(t, "app", check); got != want {
		t.Fatalf("the live database changed: %q", got)
	}
	// Now it exists: a second restore under that name is refused.
	if _, err := e.StartRestore(RestoreRequest{Job: "appdump", ID: "latest", Database: "app_restored"}); !errors.Is(err, backup.ErrTargetNotEmpty) {
		t.Errorf("a second restore into app_restored: %v", err)
	}

	// The physical backup: a new data directory a server starts on.
	s.Psql(t, "app", "INSERT INTO items VALUES (9999999, 'after the basebackup')")
	data := filepath.Join(s.Dir, "restored-data")
	op, err = e.StartRestore(RestoreRequest{Job: "cluster", ID: "latest", Dir: data, By: "test"})
	if err != nil || op.Into != "new data directory "+data {
		t.Fatalf("restore into a new data directory: %+v %v", op, err)
	}
	if op = waitOp(t, e, "cluster"); !op.OK {
		t.Fatalf("restore into a new data directory: %+v", op)
	}
	if err := filepath.Walk(data, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.UID, s.GID)
	}); err != nil {
		t.Fatal(err)
	}
	copyServer := *s
	copyServer.Port = 5433
	copyServer.Start(t, data, false)
	if got := copyServer.Psql(t, "app", check); got != want {
		t.Fatalf("the restored cluster: %q, want %q (the state at the basebackup)", got, want)
	}
	if _, err := e.StartRestore(RestoreRequest{Job: "cluster", ID: "latest", Dir: data}); !errors.Is(err, backup.ErrTargetNotEmpty) {
		t.Errorf("a restore into the running copy's data directory: %v", err)
	}
}
