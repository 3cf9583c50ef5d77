package e2emysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
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

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/dbtest"
	"github.com/harules/harules/internal/netnstest"
)

const (
	skipEnv = "HARULES_SKIP_ROOT_TESTS"
	runsEnv = "HARULES_E2EMYSQL_RUNS"
	// dbPort is every server's port (each in its own namespace).
	dbPort = 3306
	// group is the default policy's group, which holds the database.
	group = clustertest.Group

	installDB = "/usr/bin/mariadb-install-db"
	mariadbd  = "/usr/sbin/mariadbd"

	// Accounts created on node1 and replicated to node2: the agents'
	// (read_only and replication switching), the replica's, and the
	// client's (no SUPER or READ ONLY ADMIN: read_only applies to it).
	agentUser, agentPassword = "harules", "ha-pw"
	replUser, replPassword   = "repl", "repl-pw"
	appUser, appPassword     = "app", "app-pw"
)

// agentDSN is how each agent reaches its own server.
var agentDSN = fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/?timeout=2s&readTimeout=5s&writeTimeout=5s", agentUser, agentPassword, dbPort)

func TestMain(m *testing.M) {
	// The driver logs dropped connections itself; the tests see the errors.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	code := m.Run()
	removeTemplate()
	clustertest.RemoveBuild()
	os.Exit(code)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := fmt.Sprintf("THIS TEST NEEDS ROOT (network namespaces, MariaDB as user mysql); running as uid %d. Run `go test` as root, or set %s=1 to skip it.", os.Geteuid(), skipEnv)
	if os.Getenv(skipEnv) == "1" {
		t.Skip("SKIPPED: " + msg)
	}
	t.Fatal(msg)
}

// runs is how many times each case runs (HARULES_E2EMYSQL_RUNS, default 1).
func runs(t *testing.T) int {
	v := os.Getenv(runsEnv)
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", runsEnv, v)
	}
	return n
}

type osUser struct {
	uid, gid int
}

func mysqlUser(t testing.TB) osUser {
	t.Helper()
	u, err := user.Lookup("mysql")
	if err != nil {
		t.Fatalf("system user mysql is missing (%v): apt-get install -y mariadb-server", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{uid: uid, gid: gid}
}

func (u osUser) mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
}

// The mariadb-install-db'd data directory every node copies, made once per
// test binary.
var tmpl struct {
	mu     sync.Mutex
	parent string
}

func template(t testing.TB, u osUser) string {
	t.Helper()
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	if tmpl.parent != "" {
		return filepath.Join(tmpl.parent, "data")
	}
	parent, err := os.MkdirTemp("", "hrmy-tmpl-")
	if err != nil {
		t.Fatalf("template dir: %v", err)
	}
	u.mkdir(t, parent)
	// A private tmpdir: bootstraps of other packages' tests running at
	// the same time trip over each other's temporary files in /tmp.
	tmp := filepath.Join(parent, "tmp")
	u.mkdir(t, tmp)
	data := filepath.Join(parent, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, installDB, "--no-defaults", "--datadir="+data, "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(parent)
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	tmpl.parent = parent
	return data
}

func removeTemplate() {
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	if tmpl.parent != "" {
		os.RemoveAll(tmpl.parent)
		tmpl.parent = ""
	}
}

// myLab is a clustertest cluster whose group "web" is
// [database("db", engine="mysql"), vip, service], with a MariaDB primary on
// node1 and a semi-synchronous GTID replica on node2.
type myLab struct {
	t    *testing.T
	c    *clustertest.Cluster
	as   osUser
	base string
	// clientNS is where the writer and the samplers dial from.
	clientNS string
	servers  map[string]*exec.Cmd
}

// nodeDir holds node's data/, tmp/, its socket and pid file.
func (l *myLab) nodeDir(node string) string { return filepath.Join(l.base, node) }
func (l *myLab) socket(node string) string  { return filepath.Join(l.nodeDir(node), "mysqld.sock") }

// labPolicy: heartbeats every 200 ms, a peer dead after 5 misses; the
// database first in the group (the VIP follows, so clients only reach a
// writable primary); a mysql probe on every node and a rule that moves the
// group away from an owner whose probe has failed for 2 s (the resource
// monitor usually acts first).
func labPolicy() clustertest.PolicyOptions {
	db := fmt.Sprintf(`database("db", engine = "mysql", dsn = %q, max_lag_bytes = %d, timeout = "20s")`, agentDSN, 16<<20)
	extra := fmt.Sprintf(`load("@stdlib//rules.star", "move_when_failing")
probe("mdb", check.mysql(%q), every = "500ms", timeout = "400ms", fall = 2, rise = 1)
rule("db-health", when = move_when_failing(%q, "mdb"), for_ = "2s")
`, agentDSN, group)
	return clustertest.PolicyOptions{Interval: "200ms", Misses: 5, Resources: []string{db}, Extra: extra}
}

// labOptions varies the lab.
type labOptions struct {
	// async turns semi-synchronous replication off: node1 acknowledges
	// commits node2 may not have received.
	async bool
}

// semiSync is the default lab: node1 acknowledges a commit only once
// node2 has received it.
var semiSync = labOptions{}

// newMyLab builds the lab, starts both servers (node2 replicating node1
// with GTID, semi-synchronously), creates the accounts and the table, and
// starts both agents; node1 holds the group when it returns.
func newMyLab(t *testing.T, opts labOptions) *myLab {
	t.Helper()
	requireRoot(t)
	for _, prog := range []string{installDB, mariadbd} {
		if _, err := os.Stat(prog); err != nil {
			t.Fatalf("%s not found: install MariaDB: apt-get install -y mariadb-server", prog)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip not found: apt-get install -y iproute2")
	}
	l := &myLab{t: t, as: mysqlUser(t), servers: map[string]*exec.Cmd{}}
	data := template(t, l.as)
	base, err := os.MkdirTemp("", "hrmy-")
	if err != nil {
		t.Fatalf("lab dir: %v", err)
	}
	// Registered before the cluster, so it runs after the cluster's
	// cleanup has killed agents and servers with their namespaces.
	t.Cleanup(func() {
		l.killServers()
		os.RemoveAll(base)
	})
	l.base = base
	l.c = clustertest.New(t, clustertest.Options{Policy: labPolicy()})
	l.clientNS = l.c.NS("client")
	l.as.mkdir(t, base)
	for _, node := range l.c.Nodes() {
		l.as.mkdir(t, l.nodeDir(node))
		l.as.mkdir(t, filepath.Join(l.nodeDir(node), "tmp"))
		if out, err := exec.Command("cp", "-a", data, filepath.Join(l.nodeDir(node), "data")).CombinedOutput(); err != nil {
			t.Fatalf("copy template: %v\n%s", err, out)
		}
	}

	l.startServer("node1")
	l.startServer("node2")
	l.rootExec("node1",
		"CREATE DATABASE appdb",
		"CREATE TABLE appdb.writes (n BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB",
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY '%s'", agentUser, agentPassword),
		fmt.Sprintf("GRANT ALL ON *.* TO %s@'%%'", agentUser),
		fmt.Sprintf("CREATE USER %s@'198.51.100.%%' IDENTIFIED BY '%s'", replUser, replPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO %s@'198.51.100.%%'", replUser),
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY '%s'", appUser, appPassword),
		fmt.Sprintf("GRANT SELECT, INSERT ON appdb.* TO %s@'%%'", appUser),
	)
	// node2 starts from the same empty template and replays node1's whole
	// binlog (an empty gtid_slave_pos), accounts and table included.
	l.rootExec("node2",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
			clustertest.LanAddr(1), dbPort, replUser, replPassword),
		"START SLAVE")
	l.waitFor(30*time.Second, "node2's IO thread is connected to node1", func() bool {
		var n int
		return l.rootQuery("node1", "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'", &n) == nil && n == 1
	})
	if !opts.async {
		l.rootExec("node1", "SET GLOBAL rpl_semi_sync_master_enabled = ON")
	}
	l.waitFor(30*time.Second, "node2 replicates node1 (the app account arrived) and node1 waits for it semi-synchronously unless async", func() bool {
		var n int
		var status, clients string
		err := l.rootQuery("node2", fmt.Sprintf("SELECT COUNT(*) FROM mysql.user WHERE user = '%s'", appUser), &n)
		if err != nil || n != 1 {
			return false
		}
		if opts.async {
			return true
		}
		var name string
		if l.rootQuery("node1", "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'", &name, &status) != nil ||
			l.rootQuery("node1", "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'", &name, &clients) != nil {
			return false
		}
		return status == "ON" && clients == "1"
	})

	l.c.StartAll()
	l.c.WaitOwner("node1", group, "node1", 30*time.Second)
	l.waitFor(30*time.Second, "node1's agent reports its database writable (monitor and probe) and node2 read-only", func() bool {
		ro1, err1 := l.readOnly("node1")
		ro2, err2 := l.readOnly("node2")
		return err1 == nil && err2 == nil && !ro1 && ro2
	})
	return l
}

// startServer runs node's mariadbd in the node's namespace as user mysql,
// on every address of the namespace. node1 is the semi-synchronous
// primary side, node2 the replica side (read-only from the start).
func (l *myLab) startServer(node string, extra ...string) {
	l.t.Helper()
	dir := l.nodeDir(node)
	id := nodeIndex(node)
	args := []string{mariadbd, "--no-defaults", "--user=mysql",
		"--datadir=" + filepath.Join(dir, "data"), "--socket=" + l.socket(node), "--tmpdir=" + filepath.Join(dir, "tmp"),
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--port=" + strconv.Itoa(dbPort), "--bind-address=0.0.0.0",
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
		// Processes crash here, not the kernel: what reached the page
		// cache survives a kill -9.
		"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
		"--server-id=" + strconv.Itoa(id), "--log-bin=" + filepath.Join(dir, "data", node+"-bin"), "--log-basename=" + node,
		"--gtid-strict-mode=ON", "--max-connections=60",
	}
	if id == 1 {
		// Enabled (rpl_semi_sync_master_enabled) once the replica is
		// connected: with no replica every commit would wait the timeout.
		args = append(args, "--rpl-semi-sync-master-wait-point=AFTER_SYNC", "--rpl-semi-sync-master-timeout=10000")
	} else {
		// STOP SLAVE on a semi-sync replica first connects to the source
		// to kill its dump thread; when the source is dead that waits
		// rpl_semi_sync_slave_kill_conn_timeout (default 5 s) and delays
		// every crash promotion.
		args = append(args, "--rpl-semi-sync-slave-enabled=ON", "--rpl-semi-sync-slave-kill-conn-timeout=1", "--read-only=ON")
	}
	args = append(args, extra...)
	l.servers[node] = l.c.StartDaemon(node, "mariadbd-"+node, nil, args...)
	logPath := filepath.Join(l.c.Dir, "mariadbd-"+node+".log")
	l.waitFor(60*time.Second, "the server of "+node+" answers on its socket", func() bool {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "[ERROR] Aborting") {
			l.t.Fatalf("mariadbd on %s aborted during startup:\n%s", node, b)
		}
		var one int
		return l.rootQuery(node, "SELECT 1", &one) == nil
	})
}

// killServers kills servers that outlived their namespace's cleanup (it
// should be none) before their files are removed. A server SIGKILLed by
// that cleanup may take a moment to exit (and to be reaped).
func (l *myLab) killServers() {
	for node := range l.servers {
		deadline := time.Now().Add(10 * time.Second)
		for l.serverPID(node) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pid := l.serverPID(node); pid > 0 {
			l.t.Errorf("mariadbd of %s (pid %d) outlived the cluster's cleanup; killing it", node, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// serverPID is node's running mariadbd (0 when none).
func (l *myLab) serverPID(node string) int {
	b, err := os.ReadFile(filepath.Join(l.nodeDir(node), "mariadbd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "mariadbd" {
		return 0
	}
	// A zombie (killed, not yet reaped) runs no more.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return 0
		}
	}
	return pid
}

// slaveStatus returns node's SHOW SLAVE STATUS row by column (nil when it
// is no replica), asked as root on its socket.
func (l *myLab) slaveStatus(node string) (map[string]string, error) {
	db := openDB(l.t, l.rootDSN(node), "")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, nil
}

// waitFor polls cond until it holds; writerState, if given, reports the
// client's failures when it times out.
func (l *myLab) waitFor(timeout time.Duration, what string, cond func() bool, writerState ...func() (int, string)) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			var state string
			for _, f := range writerState {
				n, last := f()
				state = fmt.Sprintf(" (the client had %d failures, the last: %s)", n, last)
			}
			l.t.Fatalf("timed out after %s waiting until %s%s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openDB opens a pool for dsn; dialNS, if set, dials every connection from
// that namespace.
func openDB(t testing.TB, dsn, dialNS string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("dsn %q: %v", dsn, err)
	}
	if dialNS != "" {
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netnstest.DoIn(dialNS, func() error {
				var d net.Dialer
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("connector: %v", err)
	}
	return sql.OpenDB(connector)
}

// rootDSN reaches node's server as root on its socket (the socket file is
// reachable from the root namespace).
func (l *myLab) rootDSN(node string) string {
	return fmt.Sprintf("root@unix(%s)/?timeout=2s&readTimeout=10s", l.socket(node))
}

// lanDSN reaches node's server over the lan from the client namespace.
func lanDSN(node, user, password string, timeout time.Duration) string {
	return fmt.Sprintf("%s:%s@tcp(%s:%d)/appdb?timeout=%s&readTimeout=2s&writeTimeout=2s", user, password,
		clustertest.LanAddr(nodeIndex(node)), dbPort, timeout)
}

func (l *myLab) rootExec(node string, stmts ...string) {
	l.t.Helper()
	db := openDB(l.t, l.rootDSN(node), "")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			l.t.Fatalf("%s: %q: %v", node, s, err)
		}
	}
}

func (l *myLab) rootQuery(node, q string, dest ...any) error {
	db := openDB(l.t, l.rootDSN(node), "")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.QueryRowContext(ctx, q).Scan(dest...)
}

// readOnly asks node's server over the lan, as the client would.
func (l *myLab) readOnly(node string) (bool, error) {
	db := openDB(l.t, lanDSN(node, appUser, appPassword, time.Second), l.clientNS)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var ro int
	err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro)
	return ro != 0, err
}

// isReplica reports whether node's server has a replication
// configuration (SHOW SLAVE STATUS returns a row), asked over the lan
// with the agents' account.
func (l *myLab) isReplica(node string) (bool, error) {
	db := openDB(l.t, lanDSN(node, agentUser, agentPassword, time.Second), l.clientNS)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return false, err
	}
	defer rows.Close()
	return rows.Next(), rows.Err()
}

// rowCount counts the rows on node's server (as root, on its socket).
func (l *myLab) rowCount(node string) int {
	l.t.Helper()
	var n int
	if err := l.rootQuery(node, "SELECT COUNT(*) FROM appdb.writes", &n); err != nil {
		l.t.Fatalf("count the rows on %s: %v", node, err)
	}
	return n
}

// rowsOn returns the row numbers stored on node's server.
func (l *myLab) rowsOn(node string) (map[int64]bool, error) {
	db := openDB(l.t, lanDSN(node, appUser, appPassword, 2*time.Second), l.clientNS)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT n FROM writes")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

func nodeIndex(node string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(node, "node"))
	if err != nil {
		panic("not a node name: " + node)
	}
	return i
}

// ack is one insert the client saw committed (Server: the node whose
// server committed it, from @@server_id of the connection).
type ack = dbtest.Ack

// writer inserts rows 1, 2, 3... through the VIP, each in its own
// autocommit transaction, one at a time, and records the acknowledged
// ones. A failed insert (unknown outcome) is not retried: the next one
// gets a new number.
type writer struct {
	stop chan struct{}
	done chan struct{}
	// gate is held for each insert; Pause holds it to keep the next one
	// from starting.
	gate sync.Mutex
	dbtest.Writes
}

func (l *myLab) startWriter() *writer {
	l.t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	dsn := fmt.Sprintf("%s:%s@tcp(%s:%d)/appdb?timeout=500ms&readTimeout=3s&writeTimeout=3s", appUser, appPassword, clustertest.VIP, dbPort)
	db := openDB(l.t, dsn, l.clientNS)
	db.SetMaxIdleConns(0)
	go w.run(db)
	l.t.Cleanup(func() { w.Stop() })
	return w
}

func (w *writer) run(db *sql.DB) {
	defer close(w.done)
	defer db.Close()
	var c writerConn
	defer func() {
		if c.conn != nil {
			c.conn.Close()
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.gate.Lock()
		w.step(db, &c)
		w.gate.Unlock()
	}
}

// writerConn is the writer's connection and the server it reaches.
type writerConn struct {
	conn   *sql.Conn
	server string
	n      int64
}

// step connects if needed, or runs the next insert.
func (w *writer) step(db *sql.DB, c *writerConn) {
	if c.conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := db.Conn(ctx)
		var id int
		if err == nil {
			if err = conn.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			w.Fail(err)
			time.Sleep(20 * time.Millisecond)
			return
		}
		c.conn, c.server = conn, clustertest.NodeName(id)
	}
	c.n++
	// A commit waits for the semi-synchronous replica; on a busy 2-core
	// machine that can take a while, but a dead server must not hold
	// the client for long.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := c.conn.ExecContext(ctx, "INSERT INTO writes (n) VALUES (?)", c.n)
	cancel()
	if err != nil {
		w.Fail(err)
		// Drop the connection (the pool keeps none idle): after a
		// failover it may point at a server that lost the VIP.
		c.conn.Close()
		c.conn = nil
		return
	}
	w.Add(ack{N: c.n, At: time.Now(), Server: c.server})
}

// Pause waits for the insert under way to return and keeps the next one
// from starting until resume is called.
func (w *writer) Pause() (resume func()) {
	w.gate.Lock()
	return w.gate.Unlock
}

// Stop ends the writer (idempotent) and returns every acknowledgement.
func (w *writer) Stop() []ack {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.Acks()
}

// roleSample is one @@global.read_only answer (or failure) of a server;
// Writable means read_only is off, so the app account's writes commit.
type roleSample = dbtest.RoleSample

// startRoleSampler asks both servers over the lan, concurrently, every
// interval for @@global.read_only, on connections kept open between rounds.
func (l *myLab) startRoleSampler(interval time.Duration) *dbtest.RoleSampler {
	l.t.Helper()
	nodes := l.c.Nodes()
	dbs := map[string]*sql.DB{}
	for _, n := range nodes {
		db := openDB(l.t, lanDSN(n, appUser, appPassword, 200*time.Millisecond), l.clientNS)
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		dbs[n] = db
	}
	// Registered before the sampler's own cleanup, so it runs after the
	// sampler stopped.
	l.t.Cleanup(func() {
		for _, db := range dbs {
			db.Close()
		}
	})
	return dbtest.StartRoleSampler(l.t, nodes, interval, func(ctx context.Context, n string) (bool, error) {
		var ro int
		err := dbs[n].QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro)
		return ro == 0, err
	})
}

// roleTimeline summarises the samples as runs of equal state per node.
func roleTimeline(samples []roleSample) string {
	return dbtest.RoleTimeline(samples, "read-only", "WRITABLE")
}

// window is the client's write unavailability around a failover: the
// longest pause between two consecutive acknowledged inserts from the last
// one before the event to the first one by the new primary.
type window struct {
	// Before and After bound the longest pause; FirstNew is the first
	// insert acknowledged by the new primary after the event.
	Before, After, FirstNew ack
	Event                   time.Time
}

// Gap is the longest pause between acknowledged writes.
func (w window) Gap() time.Duration { return w.After.At.Sub(w.Before.At) }

// FromEvent is the time from the event to the first write on the new
// primary.
func (w window) FromEvent() time.Duration { return w.FirstNew.At.Sub(w.Event) }

func (w window) String() string {
	return fmt.Sprintf("longest pause between acknowledged writes %s (from %s #%d to %s #%d); first write on %s (#%d) %s after the event",
		w.Gap().Round(time.Millisecond), w.Before.Server, w.Before.N, w.After.Server, w.After.N,
		w.FirstNew.Server, w.FirstNew.N, w.FromEvent().Round(time.Millisecond))
}

// writeWindow finds the longest pause in acks between the last insert
// acknowledged by old before the event and the first acknowledged by new
// after it.
func writeWindow(acks []ack, event time.Time, old, new string) (window, error) {
	w := window{Event: event}
	from, to := -1, -1
	for i, a := range acks {
		if a.Server == old && a.At.Before(event) {
			from = i
		}
		if a.Server == new && !a.At.Before(event) {
			to = i
			break
		}
	}
	switch {
	case to < 0:
		return w, fmt.Errorf("no insert was acknowledged by %s after the event", new)
	case from < 0:
		return w, errors.New("no insert was acknowledged by " + old + " before the event")
	}
	w.FirstNew = acks[to]
	w.Before, w.After = acks[from], acks[from+1]
	for i := from + 1; i <= to; i++ {
		if acks[i].At.Sub(acks[i-1].At) > w.Gap() {
			w.Before, w.After = acks[i-1], acks[i]
		}
	}
	return w, nil
}
