package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harules/harules/internal/pgtest"
)

func TestPostgresDumpRestore(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.StartNew(t, "pg_dump", "pg_restore", "psql")
	sock := pg.Dir
	pg.Psql(t, "postgres", "CREATE DATABASE src")
	pg.Psql(t, "src", `CREATE TABLE items (id int PRIMARY KEY, name text, blob bytea, at timestamptz);
		INSERT INTO items SELECT g, 'item ' || g || ' ünïcødé', decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute'
		FROM generate_series(1, 20000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || name || encode(blob, 'hex') || at, ',' ORDER BY id)) FROM items`
	want := pg.Psql(t, "src", check)

	store := openStore(t, filepath.Join(t.TempDir(), "store"))
	r := &Runner{Store: store, Log: quietLog()}
	dsn := fmt.Sprintf("host=%s port=5432 user=postgres dbname=", sock)
	rec := mustRun(t, ctx, r, Job{Name: "pg", Source: PostgresDump(dsn + "src"), Headroom: -1})
	if rec.Bytes < 1000 {
		t.Fatalf("dump of %d bytes is too small: %+v", rec.Bytes, rec)
	}
	if err := store.Verify(ctx, "pg", rec.ID); err != nil {
		t.Fatal(err)
	}

	pg.Psql(t, "postgres", "CREATE DATABASE dst")
	if err := store.RestoreStreamTo(ctx, "pg", rec.ID, PostgresRestore(dsn+"dst")); err != nil {
		t.Fatalf("pg_restore: %v", err)
	}
	if got := pg.Psql(t, "dst", check); got != want || !strings.HasPrefix(got, "20000 ") {
		t.Fatalf("restored table: %q, want %q", got, want)
	}

	// A dump of a missing database fails with pg_dump's message kept.
	bad, err := r.Run(ctx, Job{Name: "pg", Source: PostgresDump(dsn + "nosuchdb"), Headroom: -1})
	if err == nil || bad.Outcome != OutcomeFailed || !strings.Contains(bad.Stderr, "nosuchdb") {
		t.Fatalf("dump of a missing database: %v, %+v", err, bad)
	}
}

// TestPostgresBasebackupRestoresAWholeCluster: a physical backup
// (pg_basebackup tar stream) extracted into an empty directory starts as a
// server holding the same data.
func TestPostgresBasebackupRestoresAWholeCluster(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.StartNew(t, "pg_dump", "pg_restore", "psql")
	sock := pg.Dir
	pg.Psql(t, "postgres", "CREATE DATABASE phys")
	pg.Psql(t, "phys", `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t`
	want := pg.Psql(t, "phys", check)

	store := openStore(t, filepath.Join(t.TempDir(), "store"))
	r := &Runner{Store: store, Log: quietLog()}
	job, _, _, err := JobFromParams("cluster", "postgres", map[string]string{"target": "unused",
		"dsn": fmt.Sprintf("host=%s port=5432 user=postgres", sock), "method": "basebackup"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	job.Headroom = -1
	rec := mustRun(t, ctx, r, job)
	if err := store.Verify(ctx, "cluster", rec.ID); err != nil {
		t.Fatal(err)
	}

	// Restore: extract into a fresh data directory and start a server on it.
	data := filepath.Join(pg.Dir, "restored-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	tar := exec.Command("tar", "-x", "-C", data)
	stdin, err := tar.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := store.RestoreStream(ctx, "cluster", rec.ID, stdin); err != nil {
		t.Fatalf("restore stream: %v", err)
	}
	stdin.Close()
	if err := tar.Wait(); err != nil {
		t.Fatalf("tar -x: %v", err)
	}
	if err := filepath.Walk(data, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, pg.UID, pg.GID)
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"PG_VERSION", "backup_label", "global/pg_control"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Fatalf("restored data directory lacks %s: %v", f, err)
		}
	}
	restored := *pg
	restored.Port = 5433
	restored.Start(t, data, false)
	if got := restored.Psql(t, "phys", check); got != want {
		t.Fatalf("restored cluster: %q; want %q", got, want)
	}
}
