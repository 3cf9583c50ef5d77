package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mariaNode is a mariadbd child process with its own data dir, socket and
// port; cleanup stops it (SIGTERM, then SIGKILL of its group).
type mariaNode struct {
	t      testing.TB
	dir    string
	port   int
	socket string
	res    *MySQL
}

func (m *mariaNode) rootDSN() string { return "root@unix(" + m.socket + ")/" }

// appDSN is an unprivileged client: read_only applies to it.
func (m *mariaNode) appDSN() string {
	return fmt.Sprintf("app:app-pw@tcp(127.0.0.1:%d)/appdb?timeout=5s", m.port)
}

func openQuiet(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = quietDriverLog
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sql.OpenDB(conn)
}

func (m *mariaNode) exec(dsn string, sqls ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := openQuiet(m.t, dsn)
	defer db.Close()
	for _, q := range sqls {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%q: %w", q, err)
		}
	}
	return nil
}

func (m *mariaNode) mustExec(sqls ...string) {
	m.t.Helper()
	if err := m.exec(m.rootDSN(), sqls...); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mariaNode) count() int {
	m.t.Helper()
	db := openQuiet(m.t, m.rootDSN())
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM appdb.t").Scan(&n); err != nil {
		m.t.Fatal(err)
	}
	return n
}

func startMaria(t testing.TB, serverID int) *mariaNode {
	t.Helper()
	requireRoot(t)
	for _, prog := range []string{"/usr/bin/mariadb-install-db", "/usr/sbin/mariadbd"} {
		if _, err := os.Stat(prog); err != nil {
			t.Fatalf("%s not found: install MariaDB: apt-get install -y mariadb-server", prog)
		}
	}
	as := systemUser(t, "mysql", "mariadb-server")
	tmpl := template(t, "mariadb", as, func(dir string) {
		// A private tmpdir: bootstraps running at the same time (other
		// packages' tests) trip over each other's temporary tables in /tmp.
		tmp := filepath.Join(filepath.Dir(dir), "tmp")
		if err := os.Mkdir(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(tmp, int(as.uid), int(as.gid))
		mustRun(t, as, "/usr/bin/mariadb-install-db", "--no-defaults", "--datadir="+dir, "--tmpdir="+tmp,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	})
	dir := ownedTempDir(t, "harules-mdb-", as)
	data := filepath.Join(dir, "data")
	copyTree(t, tmpl, data)
	m := &mariaNode{t: t, dir: dir, port: freePort(t), socket: filepath.Join(dir, "mysqld.sock")}
	logf, err := os.Create(filepath.Join(dir, "mariadbd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--datadir="+data, "--socket="+m.socket,
		"--port="+strconv.Itoa(m.port), "--bind-address=127.0.0.1", "--tmpdir="+dir, "--pid-file="+filepath.Join(dir, "mariadbd.pid"),
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", "--server-id="+strconv.Itoa(serverID),
		"--log-bin="+filepath.Join(dir, "binlog"), "--log-basename=m"+strconv.Itoa(serverID))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: as.uid, Gid: as.gid}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	waitFor(t, "mariadbd ready", func() (bool, string) {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "mariadbd.log"))
			t.Fatalf("mariadbd exited during startup:\n%s", b)
		default:
		}
		err := m.exec(m.rootDSN(), "SELECT 1")
		return err == nil, fmt.Sprint(err)
	})
	res, err := NewMySQL(MySQLConfig{Name: fmt.Sprintf("mdb%d", serverID), DSN: m.rootDSN(), MaxLagBytes: 1 << 20, Timeout: 30 * time.Second,
		Logger: testLogger(t).With("node", serverID)})
	if err != nil {
		t.Fatal(err)
	}
	m.res = res
	return m
}

// isReadOnlyErr: ER_OPTION_PREVENTS_STATEMENT (1290), what read_only gives.
func isReadOnlyErr(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1290
}

// MariaDB: Stop makes the primary read-only for clients, Start on the
// replica applies what it received, drops replication and makes it
// writable; Start on the old primary makes it writable again.
func TestMariaDBReadOnlySwitchAndPromote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	primary := startMaria(t, 1)
	replica := startMaria(t, 2)
	// Created on the primary only: the replica replays the binlog from its start.
	primary.mustExec("CREATE DATABASE appdb", "CREATE TABLE appdb.t (n INT PRIMARY KEY) ENGINE=InnoDB",
		"CREATE USER app@'%' IDENTIFIED BY 'app-pw'", "GRANT SELECT, INSERT ON appdb.* TO app@'%'",
		"CREATE USER repl@'%' IDENTIFIED BY 'repl-pw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'")
	replica.mustExec("SET GLOBAL read_only = ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=no",
			primary.port), "START SLAVE")

	// The replica is no primary; the primary is.
	if err := replica.res.Monitor(ctx); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Monitor on the replica: %v, want ErrNotPrimary", err)
	}
	if err := primary.res.Monitor(ctx); err != nil {
		t.Fatalf("Monitor on the primary: %v", err)
	}
	for i := 1; i <= 100; i++ {
		if err := primary.exec(primary.appDSN(), fmt.Sprintf("INSERT INTO t VALUES (%d)", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replica has the primary's rows", func() (bool, string) {
		var n int
		err := replica.exec(replica.rootDSN(), "SELECT 1 FROM appdb.t WHERE n = 100")
		if err == nil {
			db := openQuiet(t, replica.rootDSN())
			defer db.Close()
			err = db.QueryRow("SELECT count(*) FROM appdb.t").Scan(&n)
		}
		return err == nil && n == 100, fmt.Sprintf("%d rows, %v", n, err)
	})
	if err := replica.exec(replica.appDSN(), "INSERT INTO t VALUES (1000)"); !isReadOnlyErr(err) {
		t.Fatalf("client write on the read-only replica: %v, want error 1290", err)
	}

	// Fencing: Stop on the primary first.
	if err := primary.res.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.exec(primary.appDSN(), "INSERT INTO t VALUES (101)"); !isReadOnlyErr(err) {
		t.Fatalf("client write after Stop: %v, want error 1290 (read-only)", err)
	}
	if err := primary.res.Monitor(ctx); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Monitor on a stopped (read-only) primary: %v, want ErrNotPrimary", err)
	}

	if err := replica.res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := replica.count(); n != 100 {
		t.Fatalf("promoted replica has %d of the primary's 100 rows", n)
	}
	if err := replica.exec(replica.appDSN(), "INSERT INTO t VALUES (101)"); err != nil {
		t.Fatalf("client write on the promoted replica: %v", err)
	}
	if err := replica.res.Monitor(ctx); err != nil {
		t.Fatalf("Monitor on the promoted replica: %v", err)
	}
	db := openQuiet(t, replica.rootDSN())
	defer db.Close()
	if rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS"); err != nil {
		t.Fatal(err)
	} else if rows.Next() {
		t.Fatal("promoted replica still has a replication configuration")
	} else {
		rows.Close()
	}

	// Start on the old primary (a plain read-only server) makes it writable.
	if err := primary.res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.exec(primary.appDSN(), "INSERT INTO t VALUES (102)"); err != nil {
		t.Fatalf("client write after Start: %v", err)
	}
}

// A lagging replica (SQL thread stopped while the IO thread keeps
// receiving) is refused; forced, it restarts the SQL thread and applies the
// whole relay log before it is promoted.
func TestMariaDBLagRefusal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	primary := startMaria(t, 1)
	replica := startMaria(t, 2)
	primary.mustExec("CREATE DATABASE appdb", "CREATE TABLE appdb.t (n INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB",
		"CREATE USER repl@'%' IDENTIFIED BY 'repl-pw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'")
	replica.mustExec(
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=no",
			primary.port), "START SLAVE IO_THREAD")
	for i := 1; i <= 200; i++ {
		primary.mustExec(fmt.Sprintf("INSERT INTO appdb.t VALUES (%d, REPEAT('x', 200))", i))
	}
	waitFor(t, "replica IO thread received the binlog", func() (bool, string) {
		db := openQuiet(t, replica.rootDSN())
		defer db.Close()
		conn, err := db.Conn(ctx)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		st, err := replicaStatus(ctx, conn)
		if err != nil || st == nil {
			return false, fmt.Sprint(err)
		}
		lag, ok := st.relayLag()
		return ok && lag > 20000, fmt.Sprintf("lag %d known %v: %v", lag, ok, st)
	})
	replica.res.cfg.MaxLagBytes = 1024
	err := replica.res.Start(ctx)
	if !errors.Is(err, ErrLagTooHigh) {
		t.Fatalf("Start on a lagging replica: %v, want ErrLagTooHigh", err)
	}
	t.Logf("refused as expected: %v", err)
	replica.res.cfg.Force = true
	if err := replica.res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := replica.count(); n != 200 {
		t.Fatalf("promoted replica has %d of 200 rows", n)
	}
}

// A planned move with asynchronous replication: the source is fenced
// (Stop: read_only) while the replica has not received its last commits
// (here its IO thread is stopped, as if the network lagged). Start on the
// replica must fetch and apply them from the read-only source before it
// cuts replication; promoting with what it had would lose acknowledged
// rows.
func TestMariaDBPlannedMoveCatchesUpWithFencedSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	primary := startMaria(t, 1)
	replica := startMaria(t, 2)
	primary.mustExec("CREATE DATABASE appdb", "CREATE TABLE appdb.t (n INT PRIMARY KEY) ENGINE=InnoDB",
		"CREATE USER repl@'%' IDENTIFIED BY 'repl-pw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'",
		"CREATE USER harules@'%' IDENTIFIED BY 'ha-pw'", "GRANT ALL ON *.* TO harules@'%'")
	replica.mustExec("SET GLOBAL read_only = ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos",
			primary.port), "START SLAVE")
	// The resources log in as harules over TCP, as a policy's DSN would.
	for _, n := range []*mariaNode{primary, replica} {
		res, err := NewMySQL(MySQLConfig{Name: "db", DSN: fmt.Sprintf("harules:ha-pw@tcp(127.0.0.1:%d)/", n.port), MaxLagBytes: 1 << 20,
			Timeout: 20 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		n.res = res
	}
	for i := 1; i <= 50; i++ {
		primary.mustExec(fmt.Sprintf("INSERT INTO appdb.t VALUES (%d)", i))
	}
	waitFor(t, "replica has the first 50 rows", func() (bool, string) {
		err := replica.exec(replica.rootDSN(), "SELECT 1 FROM appdb.t WHERE n = 50")
		return err == nil && replica.count() == 50, fmt.Sprint(err)
	})
	replica.mustExec("STOP SLAVE IO_THREAD")
	for i := 51; i <= 80; i++ {
		primary.mustExec(fmt.Sprintf("INSERT INTO appdb.t VALUES (%d)", i))
	}

	if err := primary.res.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := replica.count(); n != 80 {
		t.Fatalf("the promoted replica has %d of the 80 rows the fenced source committed", n)
	}
	if err := replica.res.Monitor(ctx); err != nil {
		t.Fatalf("Monitor on the promoted replica: %v", err)
	}
}

// A crashed source (nothing listens any more) does not hold the
// promotion: the replica is promoted with what it received.
func TestMariaDBPromotionWithDeadSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	replica := startMaria(t, 2)
	dead := freePort(t)
	replica.mustExec("CREATE USER harules@'%' IDENTIFIED BY 'ha-pw'", "GRANT ALL ON *.* TO harules@'%'", "SET GLOBAL read_only = ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='x', MASTER_CONNECT_RETRY=1", dead),
		"START SLAVE")
	res, err := NewMySQL(MySQLConfig{Name: "db", DSN: fmt.Sprintf("harules:ha-pw@tcp(127.0.0.1:%d)/", replica.port), MaxLagBytes: -1,
		Timeout: 20 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("promoted in %s with the source down", time.Since(start).Round(time.Millisecond))
	if err := res.Monitor(ctx); err != nil {
		t.Fatalf("Monitor on the promoted replica: %v", err)
	}
}

// Stop on a node whose server is not running succeeds (it takes no
// writes), so a group can move away from a dead server; a server that
// answers but refuses the login is an error (it may still take writes).
func TestMySQLStopWithServerDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, dsn := range []string{
		fmt.Sprintf("harules:pw@tcp(127.0.0.1:%d)/", freePort(t)),
		"root@unix(" + filepath.Join(t.TempDir(), "no.sock") + ")/",
	} {
		res, err := NewMySQL(MySQLConfig{Name: "db", DSN: dsn, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Stop(ctx); err != nil {
			t.Errorf("Stop with nothing listening at %s: %v, want nil", dsn, err)
		}
	}
	m := startMaria(t, 1)
	res, err := NewMySQL(MySQLConfig{Name: "db", DSN: fmt.Sprintf("nobody:wrong@tcp(127.0.0.1:%d)/", m.port), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Stop(ctx); err == nil {
		t.Errorf("Stop on a running server that refuses the login succeeded; it must fail (the server may still take writes)")
	}
}

// A takeover from a source declared dead: the semi-synchronous replica's
// source stops answering like a host that lost power (a proxy that
// freezes). StartWith(Takeover) promotes the replica with every row the
// source acknowledged and never tries to reach the dead source, neither
// for the catch-up nor to KILL its dump connection as a semi-sync
// replica's STOP SLAVE IO_THREAD does (rpl_semi_sync_slave_kill_conn_timeout,
// 5 s here, on the failover path): the IO thread is KILLed instead (it
// still tries the source on its way out, in the background, which the
// proxy counts; the promotion does not wait for it).
func TestMariaDBTakeoverFromDeadSemiSyncSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	primary := startMaria(t, 1)
	replica := startMaria(t, 2)
	primary.mustExec("CREATE DATABASE appdb", "CREATE TABLE appdb.t (n INT PRIMARY KEY) ENGINE=InnoDB",
		"CREATE USER repl@'%' IDENTIFIED BY 'repl-pw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'",
		"CREATE USER harules@'%' IDENTIFIED BY 'ha-pw'", "GRANT ALL ON *.* TO harules@'%'",
		"SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC", "SET GLOBAL rpl_semi_sync_master_timeout = 20000")
	source := startProxy(t, fmt.Sprintf("127.0.0.1:%d", primary.port))
	replica.mustExec("SET GLOBAL read_only = ON", "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
		"SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 5",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
			source.port()), "START SLAVE")
	waitFor(t, "the replica has the schema and is a semi-sync client of the primary", func() (bool, string) {
		var name, clients string
		db := openQuiet(t, primary.rootDSN())
		defer db.Close()
		err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'").Scan(&name, &clients)
		if err == nil {
			err = replica.exec(replica.rootDSN(), "SELECT 1 FROM appdb.t LIMIT 0")
		}
		return err == nil && clients == "1", fmt.Sprintf("clients %q, %v", clients, err)
	})
	primary.mustExec("SET GLOBAL rpl_semi_sync_master_enabled = ON")
	// Each insert returns only once the replica has it in its relay log.
	for i := 1; i <= 200; i++ {
		primary.mustExec(fmt.Sprintf("INSERT INTO appdb.t VALUES (%d)", i))
	}
	var yes int64
	db := openQuiet(t, primary.rootDSN())
	defer db.Close()
	var name string
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'").Scan(&name, &yes); err != nil || yes < 200 {
		t.Fatalf("the primary acknowledged %d transactions semi-synchronously (%v); the test proves nothing without it", yes, err)
	}

	source.Freeze()
	res, err := NewMySQL(MySQLConfig{Name: "db", DSN: fmt.Sprintf("harules:ha-pw@tcp(127.0.0.1:%d)/", replica.port), MaxLagBytes: -1,
		Timeout: 20 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := res.StartWith(ctx, StartInfo{Takeover: true, From: []string{"node1"}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("takeover promotion took %s with the source frozen", time.Since(start).Round(time.Millisecond))
	if n := source.afterFreeze.Load(); n > 1 {
		t.Errorf("the takeover opened %d connections to the dead source; at most the IO thread's own KILL attempt is expected", n)
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("the takeover took %s: it waited for the dead source (rpl_semi_sync_slave_kill_conn_timeout is 5 s)", d)
	}
	if n := replica.count(); n != 200 {
		t.Errorf("the promoted replica has %d of the 200 rows the source acknowledged", n)
	}
	if err := res.Monitor(ctx); err != nil {
		t.Errorf("Monitor on the promoted replica: %v", err)
	}
	rdb := openQuiet(t, replica.rootDSN())
	defer rdb.Close()
	var semi int
	if err := rdb.QueryRow("SELECT @@global.rpl_semi_sync_slave_enabled").Scan(&semi); err != nil || semi != 1 {
		t.Errorf("rpl_semi_sync_slave_enabled after the promotion: %d (%v), want it left at 1", semi, err)
	}
}
