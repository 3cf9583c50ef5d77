package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startPostgres runs a throwaway PostgreSQL server as a child process
// (initdb and postgres refuse to run as root, so both run as user
// postgres) listening only on a unix socket; it returns the socket dir.
func startPostgres(t *testing.T) string {
	t.Helper()
	needRoot(t, "the PostgreSQL dump/restore test (runs the server as user postgres)")
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatalf("PostgreSQL server not found: install the Debian package postgresql")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	needCommand(t, "pg_dump", "postgresql-client")
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("user postgres missing: install the Debian package postgresql: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "harules-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
			Setpgid:    true, Pdeathsig: syscall.SIGKILL,
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	server := asPostgres("postgres", "-D", data, "-k", dir, "-c", "listen_addresses=", "-p", "5432", "-c", "fsync=off")
	logFile, _ := os.Create(filepath.Join(dir, "server.log"))
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pg_isready", "-q", "-h", dir, "-p", "5432").Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("postgres did not become ready:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return dir
}

func psql(t *testing.T, sock, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", "5432", "-U", "postgres", "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPostgresDumpRestore(t *testing.T) {
	ctx := context.Background()
	sock := startPostgres(t)
	psql(t, sock, "postgres", "CREATE DATABASE src")
	psql(t, sock, "src", `CREATE TABLE items (id int PRIMARY KEY, name text, blob bytea, at timestamptz);
		INSERT INTO items SELECT g, 'item ' || g || ' ünïcødé', decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute'
		FROM generate_series(1, 20000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || name || encode(blob, 'hex') || at, ',' ORDER BY id)) FROM items`
	want := psql(t, sock, "src", check)

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

	psql(t, sock, "postgres", "CREATE DATABASE dst")
	if err := store.RestoreStreamTo(ctx, "pg", rec.ID, PostgresRestore(dsn+"dst")); err != nil {
		t.Fatalf("pg_restore: %v", err)
	}
	if got := psql(t, sock, "dst", check); got != want || !strings.HasPrefix(got, "20000 ") {
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
	sock := startPostgres(t)
	psql(t, sock, "postgres", "CREATE DATABASE phys")
	psql(t, sock, "phys", `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t`
	want := psql(t, sock, "phys", check)

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
	pg, _ := user.Lookup("postgres")
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "harules-pgphys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
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
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"PG_VERSION", "backup_label", "global/pg_control"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Fatalf("restored data directory lacks %s: %v", f, err)
		}
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	server := exec.Command(bins[len(bins)-1], "-D", data, "-k", dir, "-c", "listen_addresses=", "-p", "5433")
	server.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logFile, _ := os.Create(filepath.Join(dir, "server.log"))
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pg_isready", "-q", "-h", dir, "-p", "5433").Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("the restored cluster did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := exec.Command("psql", "-X", "-q", "-At", "-h", dir, "-p", "5433", "-U", "postgres", "-d", "phys", "-c", check).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("restored cluster: %q, %v; want %q", out, err, want)
	}
}
