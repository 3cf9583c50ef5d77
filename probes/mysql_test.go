package probes

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newMy(t *testing.T, cfg MySQLConfig) *MySQLCheck {
	t.Helper()
	c, err := NewMySQL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMariaDB(t *testing.T) {
	src := startMariaDB(t, 1)
	src.exec(
		"CREATE USER probe@'127.0.0.1' IDENTIFIED BY 'probe-pw'",
		"GRANT SELECT, PROCESS, SLAVE MONITOR ON *.* TO probe@'127.0.0.1'",
		"CREATE USER repl@'127.0.0.1' IDENTIFIED BY 'repl-pw'",
		"GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'",
	)
	tcpDSN := fmt.Sprintf("probe:probe-pw@tcp(127.0.0.1:%d)/?timeout=10s", src.port)

	primary := newMy(t, MySQLConfig{DSN: tcpDSN, Role: RolePrimary})
	r := runWithin(t, primary, 10*time.Second)
	mustOK(t, r)
	if r.Values["read_only"] != 0 || r.Values["replica"] != 0 || r.Values["query"] != 1 {
		t.Fatalf("source reported %+v", r)
	}
	r = runWithin(t, newMy(t, MySQLConfig{DSN: src.rootDSN(), Query: "SELECT 6 * 7"}), 10*time.Second)
	mustOK(t, r)
	if r.Values["query"] != 42 {
		t.Fatalf("query value over the unix socket = %v, want 42", r.Values["query"])
	}
	mustFail(t, runWithin(t, newMy(t, MySQLConfig{DSN: tcpDSN, Role: RoleStandby}), 10*time.Second), "not a replica, want standby")
	mustFail(t, runWithin(t, newMy(t, MySQLConfig{DSN: fmt.Sprintf("probe:wrong@tcp(127.0.0.1:%d)/", src.port)}), 10*time.Second), "Access denied")

	// read_only detection.
	src.exec("SET GLOBAL read_only = 1")
	mustFail(t, runWithin(t, primary, 10*time.Second), "read_only, want a writable primary")
	r = runWithin(t, newMy(t, MySQLConfig{DSN: tcpDSN}), 10*time.Second)
	mustOK(t, r)
	if r.Values["read_only"] != 1 {
		t.Fatalf("read_only = %v after SET GLOBAL read_only = 1", r.Values["read_only"])
	}
	src.exec("SET GLOBAL read_only = 0")
	mustOK(t, runWithin(t, primary, 10*time.Second))

	// A replica following src.
	rep := startMariaDB(t, 2)
	rep.exec(
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_CONNECT_RETRY=1", src.port),
		"START SLAVE",
	)
	standby := newMy(t, MySQLConfig{DSN: rep.rootDSN(), Role: RoleStandby, MaxSecondsBehind: 30})
	waitFor(t, "the replica to run both threads", func() bool {
		r = runWithin(t, standby, 10*time.Second)
		return r.OK
	})
	if r.Values["replica"] != 1 || r.Values["io_running"] != 1 || r.Values["sql_running"] != 1 || r.Values["seconds_behind"] != 0 {
		t.Fatalf("replica reported %+v", r.Values)
	}
	if !strings.Contains(r.Text, "replica of 127.0.0.1") {
		t.Fatalf("replica text %q", r.Text)
	}
	mustFail(t, runWithin(t, newMy(t, MySQLConfig{DSN: rep.rootDSN(), Role: RolePrimary}), 10*time.Second), "server is a replica")

	rep.exec("STOP SLAVE SQL_THREAD")
	r = runWithin(t, standby, 10*time.Second)
	mustFail(t, r, "replica SQL thread not running")
	if r.Values["sql_running"] != 0 || r.Values["io_running"] != 1 {
		t.Fatalf("after STOP SLAVE SQL_THREAD: %+v", r.Values)
	}
	if _, ok := r.Values["seconds_behind"]; ok {
		t.Fatalf("seconds_behind should be absent (NULL) with the SQL thread stopped: %+v", r.Values)
	}
	rep.exec("START SLAVE SQL_THREAD")
	waitFor(t, "the replica to recover", func() bool { return runWithin(t, standby, 10*time.Second).OK })

	// A frozen server: the check gives up at its deadline.
	src.signal(syscall.SIGSTOP)
	start := time.Now()
	r = runWithin(t, primary, time.Second)
	elapsed := time.Since(start)
	if r.OK {
		t.Fatalf("probe of a stopped mariadbd passed: %+v", r)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("probe of a stopped mariadbd took %s with a 1s deadline", elapsed)
	}
	t.Logf("stopped mariadbd: failed after %s: %s", elapsed.Round(time.Millisecond), r.Err)
	rn := NewRunner(Options{})
	if err := rn.Add(Spec{Name: "mdb", Check: primary, Every: 2 * time.Second, Timeout: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, rn)
	waitFact(t, rn, "mdb", "failing while stopped", func(f Fact) bool { return f.State == StateFailing })
	src.signal(syscall.SIGCONT)
	waitFact(t, rn, "mdb", "ok after SIGCONT", func(f Fact) bool { return f.State == StateOK })

	// The source goes away: refused connections, and the replica's IO thread stops.
	src.stop(syscall.SIGTERM)
	mustFail(t, runWithin(t, primary, 10*time.Second), "connection refused")
	waitFor(t, "the replica to notice its source is gone", func() bool {
		r = runWithin(t, standby, 10*time.Second)
		return !r.OK && strings.Contains(r.Err, "IO thread not running")
	})
}

func TestMySQLConfigErrors(t *testing.T) {
	for _, cfg := range []MySQLConfig{
		{DSN: "not a dsn"},
		{DSN: "u@tcp(h:1)/", Role: "master"},
		{DSN: "u@tcp(h:1)/", MaxSecondsBehind: -1},
	} {
		if _, err := NewMySQL(cfg); err == nil {
			t.Errorf("NewMySQL(%+v) accepted", cfg)
		}
	}
}
