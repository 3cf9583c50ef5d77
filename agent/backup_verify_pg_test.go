package agent

import (
	"errors"
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

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/pgtest"
	"github.com/harules/harules/policy"
)

// pgServer is a throwaway PostgreSQL server run as user postgres (initdb
// and postgres refuse root) on a unix socket only.
type pgServer struct {
	bin, sock string
	port      int
	uid, gid  int
}

func postgresUser(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPING: the PostgreSQL restore test runs the server as user postgres and needs root")
		}
		t.Fatal("the PostgreSQL restore test needs root (it runs the server as user postgres); run go test as root")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("user postgres missing: apt-get install -y postgresql: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	return uid, gid
}

func (s *pgServer) asPostgres(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.sock
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)},
		Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start runs a server on data (initialised when init) and waits until it
// answers.
func (s *pgServer) start(t *testing.T, data string, init bool) {
	t.Helper()
	if init {
		if out, err := s.asPostgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
			t.Fatalf("initdb: %v\n%s", err, out)
		}
	}
	server := s.asPostgres("postgres", "-D", data, "-k", s.sock, "-c", "listen_addresses=", "-p", strconv.Itoa(s.port), "-c", "fsync=off")
	logPath := filepath.Join(s.sock, fmt.Sprintf("server-%d.log", s.port))
	logFile, _ := os.Create(logPath)
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
	for exec.Command("pg_isready", "-q", "-h", s.sock, "-p", strconv.Itoa(s.port)).Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres did not become ready:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *pgServer) psql(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-p", strconv.Itoa(s.port), "-U", "postgres",
		"-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func startPG(t *testing.T) *pgServer {
	t.Helper()
	uid, gid := postgresUser(t)
	bin := pgtest.BinDir(t, "initdb")
	if _, err := exec.LookPath("pg_restore"); err != nil {
		t.Fatalf("pg_restore missing: apt-get install -y postgresql-client")
	}
	dir, err := os.MkdirTemp("", "harules-pgrestore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s := &pgServer{bin: bin, sock: dir, port: 5432, uid: uid, gid: gid}
	s.start(t, filepath.Join(dir, "data"), true)
	return s
}

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
	s := startPG(t)
	s.psql(t, "postgres", "CREATE DATABASE app")
	s.psql(t, "app", `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g`)
	const check = `SELECT count(*) || ' ' || md5(string_agg(id || name, ',' ORDER BY id)) FROM items`
	want := s.psql(t, "app", check)

	dir := t.TempDir()
	dsn := fmt.Sprintf("host=%s port=5432 user=postgres", s.sock)
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
	if got := s.psql(t, "app_restored", check); got != want || !strings.HasPrefix(got, "5000 ") {
		t.Fatalf("restored database: %q, want %q", got, want)
	}
	if got := s.psql(t, "app", check); got != want {
		t.Fatalf("the live database changed: %q", got)
	}
	// Now it exists: a second restore under that name is refused.
	if _, err := e.StartRestore(RestoreRequest{Job: "appdump", ID: "latest", Database: "app_restored"}); !errors.Is(err, backup.ErrTargetNotEmpty) {
		t.Errorf("a second restore into app_restored: %v", err)
	}

	// The physical backup: a new data directory a server starts on.
	s.psql(t, "app", "INSERT INTO items VALUES (9999999, 'after the basebackup')")
	data := filepath.Join(s.sock, "restored-data")
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
		return os.Lchown(p, s.uid, s.gid)
	}); err != nil {
		t.Fatal(err)
	}
	copyServer := &pgServer{bin: s.bin, sock: s.sock, port: 5433, uid: s.uid, gid: s.gid}
	copyServer.start(t, data, false)
	if got := copyServer.psql(t, "app", check); got != want {
		t.Fatalf("the restored cluster: %q, want %q (the state at the basebackup)", got, want)
	}
	if _, err := e.StartRestore(RestoreRequest{Job: "cluster", ID: "latest", Dir: data}); !errors.Is(err, backup.ErrTargetNotEmpty) {
		t.Errorf("a restore into the running copy's data directory: %v", err)
	}
}
