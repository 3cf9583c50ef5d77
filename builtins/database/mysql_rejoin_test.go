package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// mariaPair is a MariaDB primary a and a GTID replica b of it, with the
// repl (replication) and harules accounts and table appdb.t.
func mariaPair(t *testing.T) (a, b *mariaNode) {
	t.Helper()
	a, b = startMaria(t, 1), startMaria(t, 2)
	a.mustExec("CREATE DATABASE appdb", "CREATE TABLE appdb.t (n INT PRIMARY KEY) ENGINE=InnoDB",
		"CREATE USER repl@'%' IDENTIFIED BY 'repl-pw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'")
	b.mustExec("SET GLOBAL read_only = ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			a.port), "START SLAVE")
	insert(t, a, 1, 50)
	waitRows(t, b, 50)
	return a, b
}

func insert(t *testing.T, m *mariaNode, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		m.mustExec(fmt.Sprintf("INSERT INTO appdb.t VALUES (%d)", i))
	}
}

func waitRows(t *testing.T, m *mariaNode, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d rows on %s", n, m.dir), func() (bool, string) {
		err := m.exec(m.rootDSN(), "SELECT 1 FROM appdb.t LIMIT 0")
		if err != nil {
			return false, err.Error()
		}
		c := m.count()
		return c == n, fmt.Sprintf("%d rows", c)
	})
}

func (m *mariaNode) replSource() string {
	return fmt.Sprintf("repl:repl-pw@tcp(127.0.0.1:%d)/?timeout=2s", m.port)
}

func (m *mariaNode) replicaRow(t *testing.T) replicaRow {
	t.Helper()
	db := openQuiet(t, m.rootDSN())
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := replicaStatus(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (m *mariaNode) readOnly(t *testing.T) bool {
	t.Helper()
	db := openQuiet(t, m.rootDSN())
	defer db.Close()
	var ro int
	if err := db.QueryRow("SELECT @@global.read_only").Scan(&ro); err != nil {
		t.Fatal(err)
	}
	return ro == 1
}

// After a takeover by the replica b, Rejoin turns the old primary a into
// a read-only GTID replica of b: it gets b's new rows, and rows written on
// b later. b has no log_slave_updates, so a's last transaction is only in
// b's gtid_slave_pos, which Rejoin accepts.
func TestMariaDBRejoinOldPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	a, b := mariaPair(t)
	if err := b.res.StartWith(ctx, StartInfo{Takeover: true, From: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	insert(t, b, 51, 80)

	if err := a.res.Rejoin(ctx, b.replSource()); err != nil {
		t.Fatalf("Rejoin: %v", err)
	}
	if !a.readOnly(t) {
		t.Errorf("the rejoined old primary is writable; it must be read-only")
	}
	st := a.replicaRow(t)
	if io, sq := st.first("Slave_IO_Running"), st.first("Slave_SQL_Running"); io != "Yes" || sq != "Yes" {
		t.Errorf("after Rejoin: Slave_IO_Running %q, Slave_SQL_Running %q, want Yes, Yes (%s)", io, sq, st.first("Last_IO_Error"))
	}
	if st.first("Using_Gtid") != "Slave_Pos" {
		t.Errorf("Using_Gtid %q, want Slave_Pos", st.first("Using_Gtid"))
	}
	// Rejoin waited for what b had when it began.
	if n := a.count(); n != 80 {
		t.Errorf("right after Rejoin the old primary has %d of b's 80 rows", n)
	}
	insert(t, b, 81, 100)
	waitRows(t, a, 100)

	// Rejoining again (already a replica of b) is harmless.
	if err := a.res.Rejoin(ctx, b.replSource()); err != nil {
		t.Errorf("second Rejoin: %v", err)
	}
}

// An old primary that committed transactions the replica never received
// (asynchronous replication, IO thread stopped) must not replicate from
// the promoted replica: Rejoin refuses with ErrErrantTransactions, names
// the GTID, says to rebuild, and leaves the server untouched. Rejoin also
// refuses a --primary that is the server itself or read-only.
func TestMariaDBRejoinRefusesErrantTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	a, b := mariaPair(t)
	b.mustExec("STOP SLAVE IO_THREAD")
	insert(t, a, 51, 55) // never reach b
	if err := b.res.StartWith(ctx, StartInfo{Takeover: true, From: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	insert(t, b, 1000, 1010)

	err := a.res.Rejoin(ctx, b.replSource())
	if !errors.Is(err, ErrErrantTransactions) {
		t.Fatalf("Rejoin of a server with errant transactions: %v, want ErrErrantTransactions", err)
	}
	t.Logf("refused as expected: %v", err)
	for _, want := range []string{"0-1-", "rebuild this server from a backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not mention %q", err, want)
		}
	}
	if a.readOnly(t) || a.replicaRow(t) != nil {
		t.Errorf("a refused Rejoin changed the server (read_only %v, replica %v)", a.readOnly(t), a.replicaRow(t) != nil)
	}

	if err := a.res.Rejoin(ctx, fmt.Sprintf("repl:repl-pw@tcp(127.0.0.1:%d)/", a.port)); err == nil || !strings.Contains(err.Error(), "is this server") {
		t.Errorf("Rejoin to itself: %v, want a refusal naming it", err)
	}
	b.mustExec("SET GLOBAL read_only = ON")
	if err := a.res.Rejoin(ctx, b.replSource()); err == nil || !strings.Contains(err.Error(), "is read-only") {
		t.Errorf("Rejoin to a read-only server: %v, want a refusal", err)
	}
	if _, err := ParseMySQLSource("root@unix(/tmp/x.sock)/"); err == nil {
		t.Errorf("ParseMySQLSource accepted a unix socket; the replica needs a TCP address")
	}
}

func TestParseGTIDList(t *testing.T) {
	got, err := parseGTIDList("0-1-100, 2-3-4")
	if err != nil || len(got) != 2 || got[0] != (gtid{0, 1, 100}) || got[1] != (gtid{2, 3, 4}) {
		t.Fatalf("parseGTIDList: %v, %v", got, err)
	}
	if got, err := parseGTIDList(""); err != nil || len(got) != 0 {
		t.Errorf("empty list: %v, %v", got, err)
	}
	for _, bad := range []string{"0-1", "a-1-2", "0-1-2-3"} {
		if _, err := parseGTIDList(bad); err == nil {
			t.Errorf("parseGTIDList(%q) accepted it", bad)
		}
	}
	p := gtidState{binlogState: []gtid{{0, 2, 150}, {0, 1, 90}}, slavePos: []gtid{{0, 1, 100}}}
	for g, want := range map[gtid]bool{{0, 1, 100}: true, {0, 1, 101}: false, {0, 2, 150}: true, {0, 3, 1}: false, {1, 1, 1}: false} {
		if primaryHas(p, g) != want {
			t.Errorf("primaryHas(%v) = %v, want %v", g, !want, want)
		}
	}
	if q := quoteSQL(`it's \ x`); q != `'it\'s \\ x'` {
		t.Errorf("quoteSQL: %s", q)
	}
}
