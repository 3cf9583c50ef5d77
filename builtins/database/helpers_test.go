package database

// Helpers that run real PostgreSQL and MariaDB servers from the Debian
// packages on loopback, each node with its own data dir, port and socket
// dir, and remove processes and directories at cleanup even on failure.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/harules/harules/internal/pgtest"
)

const skipEnv = "HARULES_SKIP_ROOT_TESTS"

func TestMain(m *testing.M) {
	code := m.Run()
	removeTemplates()
	os.Exit(code)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := fmt.Sprintf("THIS TEST NEEDS ROOT (it runs PostgreSQL/MariaDB as their system users); running as uid %d. Run `go test` as root, or set %s=1 to skip it.", os.Geteuid(), skipEnv)
	if os.Getenv(skipEnv) == "1" {
		t.Skip("SKIPPED: " + msg)
	}
	t.Fatal(msg)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func systemUser(t testing.TB, name, pkg string) osUser {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("system user %q is missing (%v): install the Debian package: apt-get install -y %s", name, err, pkg)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
}

// ownedTempDir makes a temp dir owned by u, removed at cleanup.
func ownedTempDir(t testing.TB, prefix string, u osUser) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	return dir
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func mustRun(t testing.TB, u osUser, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if out, err := u.run(ctx, argv[0], argv[1:]...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// Data directory templates, made once per test binary.
var (
	templatesMu sync.Mutex
	templates   = map[string]string{}
)

func template(t testing.TB, kind string, u osUser, initFn func(dir string)) string {
	t.Helper()
	templatesMu.Lock()
	defer templatesMu.Unlock()
	if parent, ok := templates[kind]; ok {
		return filepath.Join(parent, "data")
	}
	parent, err := os.MkdirTemp("", "harules-dbtmpl-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chown(parent, int(u.uid), int(u.gid))
	os.Chmod(parent, 0o755)
	ok := false
	defer func() {
		if ok {
			templates[kind] = parent
		} else {
			os.RemoveAll(parent) // initFn failed: the next test tries again
		}
	}()
	initFn(filepath.Join(parent, "data"))
	ok = true
	return filepath.Join(parent, "data")
}

func removeTemplates() {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	for kind, dir := range templates {
		os.RemoveAll(dir)
		delete(templates, kind)
	}
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// killPostgresGroups SIGKILLs the process groups of postmasters a test
// started (orphaned backends of a killed postmaster included), checking
// that the group still holds a postgres process.
func killPostgresGroups(pgids map[int]bool) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil || !pgids[pgid] || !processIs(pid, "postgres", "postmaster") {
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// --- PostgreSQL ---

func pgBinForTest(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	return pgtest.BinDir(t, "pg_rewind")
}

// pgNode is one "machine": a data dir, a port and a socket dir.
type pgNode struct {
	t    testing.TB
	name string
	dir  string // holds data/ and the socket
	data string
	port int
	bin  string
	as   osUser
	res  *Postgres

	mu    sync.Mutex
	pgids map[int]bool
}

func (n *pgNode) binPath(prog string) string { return filepath.Join(n.bin, prog) }

// tcpDSN is the node's "address" clients use.
func (n *pgNode) tcpDSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=%s connect_timeout=2", n.port, n.name)
}

func (n *pgNode) socketDSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", n.dir, n.port)
}

// newPgNode prepares a node; data is filled by the caller (template copy or
// pg_basebackup) before the node's resource is made with resource().
func newPgNode(t testing.TB, name string) *pgNode {
	t.Helper()
	bin := pgBinForTest(t)
	as := systemUser(t, "postgres", "postgresql")
	dir := ownedTempDir(t, "harules-db-"+name+"-", as)
	n := &pgNode{t: t, name: name, dir: dir, data: filepath.Join(dir, "data"), port: freePort(t), bin: bin, as: as, pgids: map[int]bool{}}
	t.Cleanup(n.kill)
	return n
}

// resource builds the node's Postgres resource with cfg's policy knobs.
func (n *pgNode) resource(cfg PostgresConfig) *Postgres {
	n.t.Helper()
	cfg.Name = "db-" + n.name
	cfg.DSN = n.socketDSN()
	cfg.DataDir = n.data
	cfg.ServerOptions = fmt.Sprintf("-c port=%d -c unix_socket_directories=%s -c cluster_name=%s", n.port, n.dir, n.name)
	cfg.Logger = testLogger(n.t).With("node", n.name)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	p, err := NewPostgres(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.res = p
	return p
}

// boot starts the server with pg_ctl as it is (primary or standby).
func (n *pgNode) boot() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.res.pgctlStart(ctx); err != nil {
		n.t.Fatal(err)
	}
	n.track()
}

// track remembers the postmaster's process group for cleanup.
func (n *pgNode) track() {
	if pid, ok := postmasterPID(n.data); ok {
		n.mu.Lock()
		n.pgids[pid] = true
		n.mu.Unlock()
	}
}

// kill stops the node's processes for good (cleanup).
func (n *pgNode) kill() {
	n.track()
	if pid, ok := postmasterPID(n.data); ok {
		syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
		deadline := time.Now().Add(5 * time.Second)
		for processIs(pid, "postgres") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	killPostgresGroups(n.pgids)
}

// crash SIGKILLs the postmaster only, like a crashed machine's database
// (its backends notice and exit).
func (n *pgNode) crash() {
	n.t.Helper()
	pid, ok := postmasterPID(n.data)
	if !ok {
		n.t.Fatalf("%s: no running postmaster to kill", n.name)
	}
	n.track()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		n.t.Fatalf("kill -9 %d: %v", pid, err)
	}
	for processIs(pid, "postgres") {
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *pgNode) running() bool {
	_, ok := postmasterPID(n.data)
	return ok
}

func (n *pgNode) status() PostgresStatus {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.res.Status(ctx)
	if err != nil {
		n.t.Fatalf("%s: status: %v", n.name, err)
	}
	return st
}

// exec runs statements over TCP and fails the test on error.
func (n *pgNode) exec(sqls ...string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.tcpDSN())
	if err != nil {
		n.t.Fatalf("%s: connect: %v", n.name, err)
	}
	defer closeConn(conn)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			n.t.Fatalf("%s: %q: %v", n.name, q, err)
		}
	}
}

// rows returns the set of n values in table t.
func (n *pgNode) rows() map[int64]bool {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.tcpDSN())
	if err != nil {
		n.t.Fatalf("%s: connect: %v", n.name, err)
	}
	defer closeConn(conn)
	rs, err := conn.Query(ctx, "SELECT n FROM t")
	if err != nil {
		n.t.Fatalf("%s: select: %v", n.name, err)
	}
	got := map[int64]bool{}
	for rs.Next() {
		var v int64
		if err := rs.Scan(&v); err != nil {
			n.t.Fatal(err)
		}
		got[v] = true
	}
	if err := rs.Err(); err != nil {
		n.t.Fatal(err)
	}
	return got
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newPgPrimary makes a node from the initdb template (made once per test
// binary); it is not started.
func newPgPrimary(t testing.TB, name string, cfg PostgresConfig) *pgNode {
	t.Helper()
	n := newPgNode(t, name)
	tmpl := template(t, "postgres", n.as, func(dir string) {
		mustRun(t, n.as, filepath.Join(n.bin, "initdb"), "-D", dir, "-A", "trust", "-U", "postgres",
			"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
		// wal_log_hints for pg_rewind; fsync off: only processes crash here,
		// the kernel keeps what they wrote.
		conf := "\nlisten_addresses = '127.0.0.1'\nwal_log_hints = on\nfsync = off\nshared_buffers = 16MB\n" +
			"wal_keep_size = 256MB\nmax_wal_senders = 6\nlogging_collector = off\ncheckpoint_timeout = 30min\n"
		f, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(conf)
		f.Close()
	})
	copyTree(t, tmpl, n.data)
	n.resource(cfg)
	return n
}

// pgPair starts a primary "a" with table t and a streaming standby "b"
// cloned with pg_basebackup -R -X stream; with sync the primary then
// requires the standby's flush for every commit (the primary's Monitor
// arms synchronous_standby_names once the standby streams).
func pgPair(t testing.TB, cfg PostgresConfig) (a, b *pgNode) {
	t.Helper()
	a = newPgPrimary(t, "a", cfg)
	a.boot()
	a.exec("CREATE TABLE t (n bigint PRIMARY KEY, at timestamptz DEFAULT now())")

	b = newPgNode(t, "b")
	mustRun(t, b.as, filepath.Join(b.bin, "pg_basebackup"), "-d", a.tcpDSN(), "-D", b.data,
		"-R", "-X", "stream", "--no-sync", "-c", "fast")
	b.resource(cfg)
	b.boot()
	waitStandby(t, a, b)
	return a, b
}

// waitStandby waits until standby streams from primary and, when the
// resource is synchronous, the primary counts it as synchronous.
func waitStandby(t testing.TB, primary, standby *pgNode) {
	t.Helper()
	waitFor(t, standby.name+" streaming from "+primary.name, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if primary.res.cfg.Synchronous {
			if err := primary.res.Monitor(ctx); err != nil {
				return false, err.Error()
			}
		}
		st, err := primary.res.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		want := 1
		if !primary.res.cfg.Synchronous {
			want = 0
		}
		return st.Standbys == 1 && st.SyncStandbys == want, fmt.Sprintf("%+v", st)
	})
}
