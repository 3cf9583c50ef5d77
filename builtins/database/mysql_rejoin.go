package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrErrantTransactions is returned by Rejoin when this server has
// transactions the new primary does not have: replicating would diverge.
var ErrErrantTransactions = errors.New("this server has transactions the new primary does not have")

// rebuildAdvice is what to do about errant transactions.
const rebuildAdvice = "do not replicate from it as it is: rebuild this server from a backup or clone of the new primary " +
	"(e.g. mariadb-backup --backup on the new primary, --prepare, --copy-back into an empty data directory here, then " +
	"SET GLOBAL gtid_slave_pos to the GTID in mariadb_backup_binlog_info and run rejoin again); save the errant " +
	"transactions from this server's binlog first if they matter"

// mysqlSource is the new primary a MySQL Rejoin replicates from.
type mysqlSource struct {
	cfg                      *mysql.Config
	host, port, user, passwd string
}

// ParseMySQLSource checks a rejoin --primary DSN: go-sql-driver/mysql form
// over TCP, "user:password@tcp(host:port)/", naming the replication
// account on the new primary and its address as the replica must reach
// it.
func ParseMySQLSource(dsn string) (mysqlSource, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return mysqlSource{}, fmt.Errorf("--primary %q: %w", dsn, err)
	}
	if cfg.Net != "tcp" {
		return mysqlSource{}, fmt.Errorf("--primary %q: want user:password@tcp(host:port)/ (the replica connects over TCP), got net %q", dsn, cfg.Net)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || cfg.User == "" {
		return mysqlSource{}, fmt.Errorf("--primary %q: want user:password@tcp(host:port)/ with the replication account", dsn)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return mysqlSource{}, fmt.Errorf("--primary %q: port %q: %w", dsn, port, err)
	}
	cfg.Logger = quietDriverLog
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return mysqlSource{cfg: cfg, host: host, port: port, user: cfg.User, passwd: cfg.Passwd}, nil
}

// Rejoin makes this node's MariaDB server (an old primary after a
// failover) a read-only GTID replica of the new primary. primaryDSN is
// "user:password@tcp(host:port)/" with the replication account (see
// ParseMySQLSource); it is used for CHANGE MASTER and to read the
// primary's GTID state, which needs no other privilege.
//
// It refuses, touching nothing, when the primary is this server or is
// read-only, and with ErrErrantTransactions when this server's last GTID
// in some replication domain is not in the new primary's binlog state nor
// its gtid_slave_pos (it wrote transactions the primary never received:
// replicating would diverge; the error says how to rebuild). Otherwise it
// sets read_only, stops and forgets any old replication, sets
// gtid_slave_pos to this server's gtid_current_pos, points it at the
// primary with MASTER_USE_GTID=slave_pos, starts it, and waits until both
// replica threads run and it has applied what the primary had written
// when the rejoin began. The primary's server also refuses a replica that
// diverged (error 1236); that is reported as ErrErrantTransactions too.
func (m *MySQL) Rejoin(ctx context.Context, primaryDSN string) error {
	src, err := ParseMySQLSource(primaryDSN)
	if err != nil {
		return fmt.Errorf("mysql %s: rejoin: %w", m.cfg.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	db, conn, err := m.conn(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
		return fmt.Errorf("mysql %s: rejoin: version: %w", m.cfg.Name, err)
	}
	if !strings.Contains(version, "MariaDB") {
		return fmt.Errorf("mysql %s: rejoin supports MariaDB GTID replication; this server is MySQL %s: point it at the new primary by hand (CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1) after checking GTID_SUBSET(@@gtid_executed here, the primary's @@gtid_executed)", m.cfg.Name, version)
	}

	connector, err := mysql.NewConnector(src.cfg)
	if err != nil {
		return fmt.Errorf("mysql %s: rejoin: %w", m.cfg.Name, err)
	}
	pdb := sql.OpenDB(connector)
	defer pdb.Close()
	primary, err := readGTIDState(ctx, pdb)
	if err != nil {
		return fmt.Errorf("mysql %s: rejoin: the new primary at %s: %w", m.cfg.Name, src.cfg.Addr, err)
	}
	local, err := readGTIDState(ctx, conn)
	if err != nil {
		return fmt.Errorf("mysql %s: rejoin: this server: %w", m.cfg.Name, err)
	}
	if primary.serverID == local.serverID {
		return fmt.Errorf("mysql %s: rejoin: --primary %s is this server (server_id %d), or has the same server_id; give the new primary's address", m.cfg.Name, src.cfg.Addr, local.serverID)
	}
	if primary.readOnly {
		return fmt.Errorf("mysql %s: rejoin: the server at %s is read-only: it is not the primary; give the address of the node that holds the group", m.cfg.Name, src.cfg.Addr)
	}
	if err := m.checkErrant(local, primary); err != nil {
		return err
	}

	// Read-only from here on, then check again: a writable server could
	// have committed something between the first check and now.
	if _, err := conn.ExecContext(ctx, "SET GLOBAL read_only = ON"); err != nil {
		return fmt.Errorf("mysql %s: rejoin: read_only on: %w", m.cfg.Name, err)
	}
	m.log.Info("server is read-only; rejoining as a replica", "primary", src.cfg.Addr)
	if local, err = readGTIDState(ctx, conn); err != nil {
		return fmt.Errorf("mysql %s: rejoin: this server: %w", m.cfg.Name, err)
	}
	if err := m.checkErrant(local, primary); err != nil {
		return err
	}
	for _, stmt := range []string{
		"STOP SLAVE",
		"RESET SLAVE ALL",
		"SET GLOBAL gtid_slave_pos = " + quoteSQL(local.currentPos),
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos",
			quoteSQL(src.host), src.port, quoteSQL(src.user), quoteSQL(src.passwd)),
		"START SLAVE",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("mysql %s: rejoin: %s: %w", m.cfg.Name, redactPassword(stmt), err)
		}
	}
	m.log.Info("replicating from the new primary", "primary", src.cfg.Addr, "from_gtid", local.currentPos)
	return m.waitReplicating(ctx, conn, src.cfg.Addr, primary.binlogPos)
}

// waitReplicating waits until both replica threads run and the server has
// applied the GTID position target.
func (m *MySQL) waitReplicating(ctx context.Context, conn *sql.Conn, addr, target string) error {
	for {
		st, err := replicaStatus(ctx, conn)
		if err != nil {
			return fmt.Errorf("mysql %s: rejoin: replica status: %w", m.cfg.Name, err)
		}
		if st == nil {
			return fmt.Errorf("mysql %s: rejoin: the replication configuration vanished", m.cfg.Name)
		}
		io, sqlRunning := st.first("Slave_IO_Running", "Replica_IO_Running"), st.first("Slave_SQL_Running", "Replica_SQL_Running")
		if errno := st.first("Last_IO_Errno"); errno == "1236" {
			return fmt.Errorf("mysql %s: rejoin: %w: the new primary at %s refused the replica: %s; %s", m.cfg.Name, ErrErrantTransactions, addr, st.first("Last_IO_Error"), rebuildAdvice)
		}
		if io == "No" && st.first("Last_IO_Errno") != "0" {
			return fmt.Errorf("mysql %s: rejoin: the IO thread stopped: %s", m.cfg.Name, st.first("Last_IO_Error"))
		}
		if sqlRunning == "No" {
			return fmt.Errorf("mysql %s: rejoin: the SQL thread stopped: %s", m.cfg.Name, st.first("Last_SQL_Error"))
		}
		if io == "Yes" && sqlRunning == "Yes" {
			if target == "" {
				return nil
			}
			var reached sql.NullInt64
			if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 0.2)", target).Scan(&reached); err != nil {
				return fmt.Errorf("mysql %s: rejoin: MASTER_GTID_WAIT: %w", m.cfg.Name, err)
			}
			if reached.Valid && reached.Int64 == 0 {
				m.log.Info("replica threads run and the primary's position at the rejoin is applied", "gtid", target)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mysql %s: rejoin: not replicating within %s (IO thread %s, SQL thread %s, last IO error %q)",
				m.cfg.Name, m.cfg.Timeout, io, sqlRunning, st.first("Last_IO_Error"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// gtidState is what Rejoin reads from a MariaDB server.
type gtidState struct {
	serverID int64
	readOnly bool
	// binlogState is @@gtid_binlog_state: the last GTID per domain and
	// server id in its binlog.
	binlogState []gtid
	// slavePos is @@gtid_slave_pos: the last GTID per domain applied as a
	// replica.
	slavePos   []gtid
	currentPos string
	binlogPos  string
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readGTIDState(ctx context.Context, q queryRower) (gtidState, error) {
	var st gtidState
	var binlogState, slavePos string
	err := q.QueryRowContext(ctx, "SELECT @@global.server_id, @@global.read_only, @@global.gtid_binlog_state, @@global.gtid_slave_pos, @@global.gtid_current_pos, @@global.gtid_binlog_pos").
		Scan(&st.serverID, &st.readOnly, &binlogState, &slavePos, &st.currentPos, &st.binlogPos)
	if err != nil {
		return st, fmt.Errorf("GTID state: %w", err)
	}
	if st.binlogState, err = parseGTIDList(binlogState); err != nil {
		return st, fmt.Errorf("gtid_binlog_state: %w", err)
	}
	if st.slavePos, err = parseGTIDList(slavePos); err != nil {
		return st, fmt.Errorf("gtid_slave_pos: %w", err)
	}
	return st, nil
}

// checkErrant compares this server's last transaction in each domain
// (gtid_current_pos) with what the primary has. Replication is in order,
// so the primary having the last one means it has the ones before.
func (m *MySQL) checkErrant(local, primary gtidState) error {
	cur, err := parseGTIDList(local.currentPos)
	if err != nil {
		return fmt.Errorf("mysql %s: rejoin: gtid_current_pos: %w", m.cfg.Name, err)
	}
	var missing []string
	for _, g := range cur {
		if !primaryHas(primary, g) {
			missing = append(missing, g.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("mysql %s: rejoin: %w: its last transaction %s is not in the new primary's binlog state (%s) nor its gtid_slave_pos (%s), so it would diverge; %s",
		m.cfg.Name, ErrErrantTransactions, strings.Join(missing, ","), gtidListString(primary.binlogState), gtidListString(primary.slavePos), rebuildAdvice)
}

// primaryHas reports whether the primary has applied GTID g: its binlog
// has a later or equal one from the same server in the domain, or it
// applied g as a replica (a promoted replica without log_slave_updates
// has the old primary's transactions only in gtid_slave_pos).
func primaryHas(p gtidState, g gtid) bool {
	for _, h := range p.binlogState {
		if h.domain == g.domain && h.server == g.server && h.seq >= g.seq {
			return true
		}
	}
	for _, h := range p.slavePos {
		if h.domain == g.domain && h.server == g.server && h.seq >= g.seq {
			return true
		}
	}
	return false
}

// gtid is a MariaDB GTID, domain-server-seq.
type gtid struct {
	domain, server uint32
	seq            uint64
}

func (g gtid) String() string { return fmt.Sprintf("%d-%d-%d", g.domain, g.server, g.seq) }

func gtidListString(l []gtid) string {
	if len(l) == 0 {
		return "empty"
	}
	s := make([]string, len(l))
	for i, g := range l {
		s[i] = g.String()
	}
	return strings.Join(s, ",")
}

// parseGTIDList parses "0-1-100,1-2-5" (empty is no GTID).
func parseGTIDList(s string) ([]gtid, error) {
	var out []gtid
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, "-")
		if len(parts) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-sequence", f)
		}
		d, err1 := strconv.ParseUint(parts[0], 10, 32)
		sv, err2 := strconv.ParseUint(parts[1], 10, 32)
		n, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("GTID %q: %w", f, err)
		}
		out = append(out, gtid{domain: uint32(d), server: uint32(sv), seq: n})
	}
	return out, nil
}

// quoteSQL makes s a single-quoted SQL string literal (CHANGE MASTER takes
// no placeholders).
func quoteSQL(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}

// redactPassword hides MASTER_PASSWORD in a statement quoted in an error.
func redactPassword(stmt string) string {
	if i := strings.Index(stmt, "MASTER_PASSWORD = "); i >= 0 {
		if j := strings.Index(stmt[i:], ", MASTER_USE_GTID"); j >= 0 {
			return stmt[:i] + "MASTER_PASSWORD = '***'" + stmt[i+j:]
		}
	}
	return stmt
}
