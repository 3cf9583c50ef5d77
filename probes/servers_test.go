package probes

// Helpers that run real database servers from Debian packages as child
// processes of the test, each in its own temp directory with its own port
// and socket, and tear them down (processes and directories) at cleanup.

import (
	"context"
	"database/sql"
	"fmt"
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

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/harules/harules/internal/netnstest"
	"github.com/harules/harules/internal/pgtest"
)

// serviceUser returns the uid/gid of a system account created by a package.
func serviceUser(t *testing.T, name, pkg string) (uint32, uint32) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("system user %q is missing (%v): install the Debian package %s (apt-get install -y %s)", name, err, pkg, pkg)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

// ownedTempDir makes a temp dir owned by uid/gid, removed at cleanup.
func ownedTempDir(t *testing.T, prefix string, uid, gid uint32) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runAs runs a command to completion as uid/gid, failing the test with its
// output on error.
func runAs(t *testing.T, uid, gid uint32, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// server is a database server process started by a test.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startServer starts argv as uid/gid in its own process group; cleanup
// resumes it if stopped, asks it to stop with stopSig and kills the group
// after a grace period.
func startServer(t *testing.T, uid, gid uint32, logPath string, stopSig syscall.Signal, argv ...string) *server {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", argv[0], err)
	}
	logf.Close()
	s := &server{t: t, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGCONT)
		syscall.Kill(pgid, stopSig)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			t.Logf("%s did not stop within 10s; killing its process group", argv[0])
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	})
	return s
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := syscall.Kill(s.pid(), sig); err != nil {
		s.t.Fatalf("signal %v to %d: %v", sig, s.pid(), err)
	}
}

// stop sends sig and waits for the server to exit.
func (s *server) stop(sig syscall.Signal) {
	s.t.Helper()
	s.signal(sig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("server %d did not exit within 20s of %v", s.pid(), sig)
	}
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// waitReady polls ping until it succeeds, the server exits or 30 s pass.
func (s *server) waitReady(what string, ping func(context.Context) error) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("%s exited during startup: %v\nlog:\n%s", what, s.cmd.ProcessState, s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready after 30s: %v\nlog:\n%s", what, err, s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Data directory templates, made once per test binary and removed by TestMain.
var (
	templatesMu sync.Mutex
	templates   = map[string]string{} // kind -> directory holding the template
)

// template returns a data directory initialised by initFn (called with a
// not yet existing path inside a directory owned by uid/gid).
func template(t *testing.T, kind string, initFn func(dir string), uid, gid uint32) string {
	t.Helper()
	templatesMu.Lock()
	defer templatesMu.Unlock()
	if parent, ok := templates[kind]; ok {
		return filepath.Join(parent, "data")
	}
	parent, err := os.MkdirTemp("", "harules-tmpl-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, int(uid), int(gid)); err != nil {
		os.RemoveAll(parent)
		t.Fatal(err)
	}
	os.Chmod(parent, 0o755)
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(parent)
		}
	}()
	initFn(filepath.Join(parent, "data"))
	ok = true
	templates[kind] = parent
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

// copyTree copies a data directory preserving owners and modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// --- PostgreSQL ---

// pgBin returns the directory holding the newest installed PostgreSQL
// server binaries.
func pgBin(t *testing.T) string {
	t.Helper()
	netnstest.RequireRoot(t)
	return pgtest.BinDir(t, "postgres")
}

type pgServer struct {
	*server
	bin  string
	dir  string // parent of data; also the socket directory
	port int
	uid  uint32
	gid  uint32
}

// dsn connects over TCP as the superuser.
func (p *pgServer) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=10", p.port)
}

// socketDSN connects over the unix socket.
func (p *pgServer) socketDSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", p.dir, p.port)
}

// exec runs SQL statements on the server and fails the test on error.
func (p *pgServer) exec(sqls ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn())
	if err != nil {
		p.t.Fatalf("connect to postgres on %d: %v", p.port, err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			p.t.Fatalf("postgres %q: %v", q, err)
		}
	}
}

// startPostgres starts a postmaster on a fresh copy of a cluster made by
// initdb (once per test binary: initdb is slow on a busy machine).
func startPostgres(t *testing.T, settings ...string) *pgServer {
	t.Helper()
	bin := pgBin(t)
	uid, gid := serviceUser(t, "postgres", "postgresql")
	tmpl := template(t, "postgres", func(dir string) {
		runAs(t, uid, gid, filepath.Join(bin, "initdb"), "-D", dir, "-A", "trust", "-U", "postgres",
			"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
	}, uid, gid)
	dir := ownedTempDir(t, "harules-pg-", uid, gid)
	copyTree(t, tmpl, filepath.Join(dir, "data"))
	return runPostgres(t, bin, dir, uid, gid, settings...)
}

// startStandby clones primary with pg_basebackup -R and starts it.
func startStandby(t *testing.T, primary *pgServer) *pgServer {
	t.Helper()
	dir := ownedTempDir(t, "harules-pgs-", primary.uid, primary.gid)
	runAs(t, primary.uid, primary.gid, filepath.Join(primary.bin, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", filepath.Join(dir, "data"), "-R", "-X", "stream", "--no-sync", "-c", "fast")
	return runPostgres(t, primary.bin, dir, primary.uid, primary.gid, "cluster_name=standby1")
}

func runPostgres(t *testing.T, bin, dir string, uid, gid uint32, settings ...string) *pgServer {
	t.Helper()
	port := freePort(t)
	argv := []string{filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"), "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_wal_senders=4",
		"-c", "shared_buffers=16MB", "-c", "logging_collector=off"}
	for _, s := range settings {
		argv = append(argv, "-c", s)
	}
	// SIGINT is PostgreSQL's "fast shutdown".
	s := startServer(t, uid, gid, filepath.Join(dir, "postgres.log"), syscall.SIGINT, argv...)
	p := &pgServer{server: s, bin: bin, dir: dir, port: port, uid: uid, gid: gid}
	s.waitReady("postgres", func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, p.dsn())
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	return p
}

// --- MariaDB ---

type mariaServer struct {
	*server
	dir    string
	port   int
	socket string
}

// rootDSN connects as root over the unix socket.
func (m *mariaServer) rootDSN() string { return "root@unix(" + m.socket + ")/" }

// exec runs statements as root and fails the test on error.
func (m *mariaServer) exec(sqls ...string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", m.rootDSN())
	if err != nil {
		m.t.Fatal(err)
	}
	defer db.Close()
	for _, q := range sqls {
		if _, err := db.ExecContext(ctx, q); err != nil {
			m.t.Fatalf("mariadb %q: %v", q, err)
		}
	}
}

// startMariaDB installs a fresh data directory and starts mariadbd with
// binary logging, so it can also serve as a replication source.
func startMariaDB(t *testing.T, serverID int) *mariaServer {
	t.Helper()
	netnstest.RequireRoot(t)
	for _, prog := range []string{"mariadb-install-db", "mariadbd"} {
		if _, err := exec.LookPath(prog); err != nil {
			if _, err := os.Stat("/usr/sbin/" + prog); err != nil {
				t.Fatalf("%s not found: install the Debian package mariadb-server (apt-get install -y mariadb-server)", prog)
			}
		}
	}
	uid, gid := serviceUser(t, "mysql", "mariadb-server")
	tmpl := template(t, "mariadb", func(dir string) {
		runAs(t, uid, gid, "mariadb-install-db", "--no-defaults", "--datadir="+dir,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	}, uid, gid)
	dir := ownedTempDir(t, "harules-mdb-", uid, gid)
	data := filepath.Join(dir, "data")
	copyTree(t, tmpl, data)
	port := freePort(t)
	m := &mariaServer{dir: dir, port: port, socket: filepath.Join(dir, "mysqld.sock")}
	m.server = startServer(t, uid, gid, filepath.Join(dir, "mariadbd.log"), syscall.SIGTERM, "/usr/sbin/mariadbd", "--no-defaults",
		"--datadir="+data, "--socket="+m.socket, "--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--skip-name-resolve",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--skip-innodb-doublewrite",
		"--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0",
		"--server-id="+strconv.Itoa(serverID), "--log-bin="+filepath.Join(dir, "binlog"), "--log-basename=m"+strconv.Itoa(serverID))
	m.server.waitReady("mariadbd", func(ctx context.Context) error {
		cfg, err := mysql.ParseDSN(m.rootDSN())
		if err != nil {
			return err
		}
		cfg.Logger = quietLogger
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		return db.PingContext(ctx)
	})
	return m
}
