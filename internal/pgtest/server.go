package pgtest

import (
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

// Server is a throwaway PostgreSQL server run as user postgres (initdb and
// postgres refuse root), listening only on a unix socket in Dir.
type Server struct {
	Bin, Dir string // server binaries; socket, log and data parent directory
	Port     int
	UID, GID int // of user postgres
}

// NewServer prepares a server in a fresh directory owned by postgres, on
// port 5432 (not started: see Start). It needs root, the Debian package
// postgresql and the client tools named in clientTools; it fails the test
// loudly, saying what to install, when one is missing (or skips it loudly
// under HARULES_SKIP_ROOT_TESTS=1 when not root).
func NewServer(t testing.TB, clientTools ...string) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPED LOUDLY: this test runs a PostgreSQL server as user postgres and needs root")
		}
		t.Fatal("this test runs a PostgreSQL server as user postgres and needs root; run go test as root or set HARULES_SKIP_ROOT_TESTS=1 to skip it")
	}
	bin := BinDir(t, "initdb")
	for _, c := range append([]string{"pg_isready"}, clientTools...) {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: apt-get install -y postgresql-client", c)
		}
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("user postgres missing: apt-get install -y postgresql: %v", err)
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
	return &Server{Bin: bin, Dir: dir, Port: 5432, UID: uid, GID: gid}
}

// StartNew initialises a data directory in Dir and starts the server on it.
func StartNew(t testing.TB, clientTools ...string) *Server {
	t.Helper()
	s := NewServer(t, clientTools...)
	s.Start(t, filepath.Join(s.Dir, "data"), true)
	return s
}

// AsPostgres is a command of the server's bin directory run as user
// postgres in Dir, in its own process group, killed with the test binary.
func (s *Server) AsPostgres(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.Bin, name), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID)},
		Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start runs a server on data (initialised first when init) on s.Port,
// waits until it answers, and stops it (fast shutdown) when the test ends.
func (s *Server) Start(t testing.TB, data string, init bool) {
	t.Helper()
	if init {
		if out, err := s.AsPostgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
			t.Fatalf("initdb: %v\n%s", err, out)
		}
	}
	server := s.AsPostgres("postgres", "-D", data, "-k", s.Dir, "-c", "listen_addresses=", "-p", strconv.Itoa(s.Port), "-c", "fsync=off")
	logPath := filepath.Join(s.Dir, fmt.Sprintf("server-%d.log", s.Port))
	logFile, _ := os.Create(logPath)
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		_ = server.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { _ = server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pg_isready", "-q", "-h", s.Dir, "-p", strconv.Itoa(s.Port)).Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres did not become ready in 30 s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Psql runs sql in database db as postgres and returns the trimmed output.
func (s *Server) Psql(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", s.Dir, "-p", strconv.Itoa(s.Port), "-U", "postgres",
		"-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}
