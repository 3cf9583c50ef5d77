package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/harules/harules/probes"
)

// MySQLConfig describes one node's MySQL or MariaDB server.
type MySQLConfig struct {
	Name string
	// DSN in go-sql-driver/mysql form reaching this node's server with
	// SUPER (or READ_ONLY ADMIN and REPLICATION SLAVE ADMIN) privileges,
	// e.g. "root@unix(/run/mysqld/mysqld.sock)/". Before promoting a
	// replica, Start connects with the DSN's user and password over TCP to
	// the replica's source (Master_Host:Master_Port, so replicate from the
	// nodes' own addresses, not the VIP): if it answers read-only (a planned
	// move fenced it), the replica first receives and applies its whole
	// binlog. That user needs BINLOG MONITOR (MariaDB) or REPLICATION
	// CLIENT (MySQL) there.
	DSN string
	// MaxLagBytes refuses to promote a replica with more relay log not yet
	// applied (same binlog file: Read_Master_Log_Pos - Exec_Master_Log_Pos);
	// negative means no limit.
	MaxLagBytes int64
	// Force promotes whatever the lag.
	Force bool
	// Timeout bounds waiting for the replica to apply its relay log;
	// default 60 s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// MySQLConfigFromParams reads a database(engine="mysql") declaration's
// params: dsn, max_lag_bytes, and the optional force and timeout.
func MySQLConfigFromParams(name string, m map[string]string) (MySQLConfig, error) {
	p := &params{name: name, m: m}
	cfg := MySQLConfig{
		Name:        name,
		DSN:         p.str("dsn", ""),
		MaxLagBytes: p.int64("max_lag_bytes", -1),
		Force:       p.bool("force"),
		Timeout:     p.duration("timeout", 60*time.Second),
	}
	return cfg, p.err
}

// MySQL switches a MySQL/MariaDB server between read-only and read-write
// and promotes a replica.
type MySQL struct {
	cfg   MySQLConfig
	dsn   *mysql.Config
	log   *slog.Logger
	check *probes.MySQLCheck
}

// quietDriverLog keeps the driver's own log lines out; errors are returned.
var quietDriverLog = log.New(io.Discard, "", 0)

// NewMySQL checks cfg.
func NewMySQL(cfg MySQLConfig) (*MySQL, error) {
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: dsn: %w", cfg.Name, err)
	}
	dsn.Logger = quietDriverLog
	if dsn.Timeout == 0 {
		dsn.Timeout = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	check, err := probes.NewMySQL(probes.MySQLConfig{DSN: cfg.DSN, Role: probes.RolePrimary})
	if err != nil {
		return nil, fmt.Errorf("mysql %s: %w", cfg.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &MySQL{cfg: cfg, dsn: dsn, log: log.With("database", cfg.Name), check: check}, nil
}

func (m *MySQL) conn(ctx context.Context) (*sql.DB, *sql.Conn, error) {
	connector, err := mysql.NewConnector(m.dsn.Clone())
	if err != nil {
		return nil, nil, fmt.Errorf("mysql %s: %w", m.cfg.Name, err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("mysql %s: connect: %w", m.cfg.Name, err)
	}
	return db, conn, nil
}

// Start makes the server the writable primary: a replica is promoted (the
// IO thread stops, the relay log already received is applied, then the
// replication configuration is reset), then read_only (and
// super_read_only) go off. Before it cuts replication, a replica catches
// up with a source that answers read-only (a planned move fenced it).
func (m *MySQL) Start(ctx context.Context) error { return m.StartWith(ctx, StartInfo{}) }

// StartWith is Start, told whether this is a takeover from holders
// declared dead. A takeover does not try the source: it is dead on every
// heartbeat path, so waiting for it only delays the failover (up to
// sourceProbeTimeout, plus a semi-synchronous replica's attempt to KILL
// its dump connection there). What the replica received is all the
// acknowledged data with semi-synchronous replication: the source
// acknowledges a commit only once the replica has it in its relay log,
// and a source that is partitioned off rather than dead either still
// takes writes (the catch-up ignores a writable source anyway; fence it)
// or fenced itself, having acknowledged nothing the replica lacks. With
// asynchronous replication a takeover may lose the source's last
// commits whether or not it is tried (a crashed source cannot be read).
func (m *MySQL) StartWith(ctx context.Context, info StartInfo) error {
	db, conn, err := m.conn(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	status, err := replicaStatus(ctx, conn)
	if err != nil {
		return fmt.Errorf("mysql %s: replica status: %w", m.cfg.Name, err)
	}
	if status != nil {
		if err := m.promote(ctx, conn, status, info); err != nil {
			return err
		}
	} else if err := m.checkPeers(ctx, conn, "make it writable", info.Peers); err != nil {
		return err
	}
	if hasSuperReadOnly(ctx, conn) {
		if _, err := conn.ExecContext(ctx, "SET GLOBAL super_read_only = OFF"); err != nil {
			return fmt.Errorf("mysql %s: super_read_only off: %w", m.cfg.Name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		return fmt.Errorf("mysql %s: read_only off: %w", m.cfg.Name, err)
	}
	m.log.Info("server is writable")
	return nil
}

func (m *MySQL) promote(ctx context.Context, conn *sql.Conn, status replicaRow, info StartInfo) error {
	if lag, ok := status.relayLag(); ok && m.cfg.MaxLagBytes >= 0 && lag > m.cfg.MaxLagBytes {
		if !m.cfg.Force {
			return fmt.Errorf("mysql %s: not promoting: %w: the replica has %d bytes of relay log not yet applied, max_lag_bytes is %d; set force=true to promote anyway",
				m.cfg.Name, ErrLagTooHigh, lag, m.cfg.MaxLagBytes)
		}
		m.log.Warn("promoting a lagging replica because force is set", "lag_bytes", lag)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	if info.Takeover {
		m.log.Info("taking over from a holder declared dead: promoting with the relay log received, without trying the source",
			"source", net.JoinHostPort(status.first("Master_Host", "Source_Host"), status.first("Master_Port", "Source_Port")), "dead", info.From)
		if !m.killIOThread(ctx, conn) {
			if err := replicaStmt(ctx, conn, "STOP REPLICA IO_THREAD", "STOP SLAVE IO_THREAD"); err != nil {
				return fmt.Errorf("mysql %s: stop IO thread: %w", m.cfg.Name, err)
			}
		}
	} else {
		// A planned move fenced the source (read_only) before this Start,
		// but asynchronous replication may not have shipped its last
		// commits yet: receive and apply them before cutting the source
		// off.
		if err := m.catchUp(ctx, conn, status); err != nil {
			return err
		}
		if err := replicaStmt(ctx, conn, "STOP REPLICA IO_THREAD", "STOP SLAVE IO_THREAD"); err != nil {
			return fmt.Errorf("mysql %s: stop IO thread: %w", m.cfg.Name, err)
		}
	}
	// Apply what was received: it was acknowledged to no one, but it is
	// the newest data this node has. A KILLed IO thread may still queue
	// the event it was reading as it leaves; whatever is in the relay log
	// once replication has stopped is applied too.
	for {
		if err := m.applyRelayLog(ctx, conn); err != nil {
			return err
		}
		if err := replicaStmt(ctx, conn, "STOP REPLICA", "STOP SLAVE"); err != nil {
			return fmt.Errorf("mysql %s: stop replica: %w", m.cfg.Name, err)
		}
		st, err := replicaStatus(ctx, conn)
		if err != nil {
			return fmt.Errorf("mysql %s: replica status: %w", m.cfg.Name, err)
		}
		if lag, ok := st.relayLag(); st == nil || !ok || lag == 0 {
			break
		}
	}
	// Cut replication off only once the relay log is applied and this
	// server has what the peers last reported; a refused replica
	// replicates again.
	if err := m.checkPeers(ctx, conn, "promote", info.Peers); err != nil {
		if serr := replicaStmt(ctx, conn, "START REPLICA", "START SLAVE"); serr != nil {
			return errors.Join(err, fmt.Errorf("mysql %s: restart replication: %w", m.cfg.Name, serr))
		}
		return err
	}
	if err := replicaStmt(ctx, conn, "RESET REPLICA ALL", "RESET SLAVE ALL"); err != nil {
		return fmt.Errorf("mysql %s: reset replica: %w", m.cfg.Name, err)
	}
	m.log.Info("promoted the replica", "was_replica_of", status.first("Master_Host", "Source_Host"))
	return nil
}

// checkPeers refuses (ErrBehindPeer) when this server's gtid_current_pos
// has a lower sequence number in some replication domain than a position a
// peer last reported; Force only logs what it lets through.
func (m *MySQL) checkPeers(ctx context.Context, conn *sql.Conn, verb string, peers map[string]Position) error {
	if len(peers) == 0 {
		return nil
	}
	local, err := gtidPosition(ctx, conn)
	if err != nil {
		return fmt.Errorf("mysql %s: %w", m.cfg.Name, err)
	}
	err = checkPeers("mysql", m.cfg.Name, verb, local, peers)
	if err != nil && m.cfg.Force {
		m.log.Warn("going on although a peer reported more history, because force is set", "error", err)
		return nil
	}
	return err
}

// Position is the server's gtid_current_pos (the last transaction per
// replication domain it wrote or applied as a replica). MySQL's GTIDs are
// not MariaDB's: on MySQL it is an error, and nothing is reported.
func (m *MySQL) Position(ctx context.Context) (Position, error) {
	db, conn, err := m.conn(ctx)
	if err != nil {
		return Position{}, err
	}
	defer db.Close()
	defer conn.Close()
	pos, err := gtidPosition(ctx, conn)
	if err != nil {
		return Position{}, fmt.Errorf("mysql %s: %w", m.cfg.Name, err)
	}
	return pos, nil
}

func gtidPosition(ctx context.Context, conn *sql.Conn) (Position, error) {
	var cur string
	if err := conn.QueryRowContext(ctx, "SELECT @@global.gtid_current_pos").Scan(&cur); err != nil {
		return Position{}, fmt.Errorf("gtid_current_pos (MariaDB only): %w", err)
	}
	if _, err := parseGTIDList(cur); err != nil {
		return Position{}, fmt.Errorf("gtid_current_pos: %w", err)
	}
	return Position{GTID: cur}, nil
}

// applyRelayLog waits until the SQL thread has applied the relay log
// received so far, starting it if an operator (not an error) stopped it.
func (m *MySQL) applyRelayLog(ctx context.Context, conn *sql.Conn) error {
	for {
		st, err := replicaStatus(ctx, conn)
		if err != nil {
			return fmt.Errorf("mysql %s: replica status: %w", m.cfg.Name, err)
		}
		if st == nil {
			return nil
		}
		if lag, ok := st.relayLag(); ok && lag == 0 {
			return nil
		}
		if st.first("Master_Log_File", "Source_Log_File") == "" {
			return nil // nothing received since CHANGE MASTER: nothing to apply
		}
		if st.first("Slave_SQL_Running", "Replica_SQL_Running") != "Yes" {
			if errno := st.first("Last_SQL_Errno"); errno == "0" || errno == "" {
				// Stopped by an operator, not by an error: apply the rest.
				if err := replicaStmt(ctx, conn, "START REPLICA SQL_THREAD", "START SLAVE SQL_THREAD"); err != nil {
					return fmt.Errorf("mysql %s: start SQL thread: %w", m.cfg.Name, err)
				}
				continue
			}
			return fmt.Errorf("mysql %s: replica SQL thread stopped before applying its relay log: %s", m.cfg.Name, st.first("Last_SQL_Error"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mysql %s: relay log not applied within %s", m.cfg.Name, m.cfg.Timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killIOThread ends the replica's IO thread(s) with KILL instead of STOP
// SLAVE IO_THREAD. On a semi-synchronous replica, STOP first connects to
// the source to KILL its dump connection and waits up to
// rpl_semi_sync_slave_kill_conn_timeout (whole seconds, default 5) for a
// dead one; SET GLOBAL rpl_semi_sync_slave_enabled=OFF does not stop that
// (MariaDB 10.11). A KILLed IO thread leaves its read loop at once and
// queues nothing more; it tries the source only on its way out, off this
// path. What it wrote to the relay log stays and is applied after. It
// returns false when no IO thread was found (not MariaDB, or not
// connected) or the KILL was refused: then use STOP.
func (m *MySQL) killIOThread(ctx context.Context, conn *sql.Conn) bool {
	rows, err := conn.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'")
	if err != nil {
		return false
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		_, err := conn.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10))
		var me *mysql.MySQLError
		if err != nil && !(errors.As(err, &me) && me.Number == 1094) { // 1094: unknown thread, already gone
			// E.g. no CONNECTION ADMIN (SUPER): STOP still works, slower.
			m.log.Warn("could not KILL the replica IO thread; stopping it with STOP SLAVE IO_THREAD", "thread", id, "error", err)
			return false
		}
	}
	return len(ids) > 0
}

// sourceProbeTimeout bounds connecting to the source before a promotion:
// a crashed source must not delay the failover by much.
const sourceProbeTimeout = time.Second

// catchUp waits until the replica has received and applied everything the
// source wrote, when the source still answers and is read-only (fenced by a
// planned move, so its binlog no longer grows). It connects to the
// replica's Master_Host:Master_Port over TCP with the DSN's user and
// password. A source that cannot be reached (crash) or is still writable
// (it keeps taking writes whatever this node does) is left alone: the
// replica is promoted with what it has.
func (m *MySQL) catchUp(ctx context.Context, conn *sql.Conn, status replicaRow) error {
	host, port := status.first("Master_Host", "Source_Host"), status.first("Master_Port", "Source_Port")
	if host == "" || port == "" {
		return nil
	}
	file, pos, err := m.fencedSourcePosition(ctx, net.JoinHostPort(host, port))
	if err != nil {
		m.log.Warn("promoting without checking the source's last writes", "source", net.JoinHostPort(host, port), "reason", err)
		return nil
	}
	m.log.Info("source is read-only; waiting until its binlog is received and applied", "source", net.JoinHostPort(host, port), "file", file, "position", pos)
	for {
		st, err := replicaStatus(ctx, conn)
		if err != nil {
			return fmt.Errorf("mysql %s: replica status: %w", m.cfg.Name, err)
		}
		if st == nil {
			return fmt.Errorf("mysql %s: replication configuration vanished while catching up with the source", m.cfg.Name)
		}
		if st.appliedUpTo(file, pos) {
			return nil
		}
		for _, t := range []struct{ running, errno, modern, old string }{
			{st.first("Slave_IO_Running", "Replica_IO_Running"), st.first("Last_IO_Errno"), "START REPLICA IO_THREAD", "START SLAVE IO_THREAD"},
			{st.first("Slave_SQL_Running", "Replica_SQL_Running"), st.first("Last_SQL_Errno"), "START REPLICA SQL_THREAD", "START SLAVE SQL_THREAD"},
		} {
			// A thread stopped by an operator (not by an error) is started;
			// one that is connecting or failing is left to retry.
			if t.running == "No" && (t.errno == "0" || t.errno == "") {
				if err := replicaStmt(ctx, conn, t.modern, t.old); err != nil {
					return fmt.Errorf("mysql %s: %s: %w", m.cfg.Name, t.modern, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mysql %s: not promoting: the replica did not receive and apply the read-only source's binlog up to %s:%d within %s (it is at %s:%s)",
				m.cfg.Name, file, pos, m.cfg.Timeout, st.first("Relay_Master_Log_File", "Relay_Source_Log_File"), st.first("Exec_Master_Log_Pos", "Exec_Source_Log_Pos"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fencedSourcePosition connects to the source at addr with the DSN's
// credentials and returns its binlog position if it is read-only.
func (m *MySQL) fencedSourcePosition(ctx context.Context, addr string) (string, int64, error) {
	cfg := m.dsn.Clone()
	cfg.Net, cfg.Addr = "tcp", addr
	cfg.Timeout = min(cfg.Timeout, sourceProbeTimeout)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return "", 0, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*sourceProbeTimeout)
	defer cancel()
	src, err := db.Conn(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("connect: %w", err)
	}
	defer src.Close()
	var readOnly int64
	if err := src.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil {
		return "", 0, fmt.Errorf("read_only: %w", err)
	}
	if readOnly == 0 {
		return "", 0, errors.New("the source is still writable")
	}
	rows, err := src.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, err
	}
	if !rows.Next() {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: no binary log (%v)", rows.Err())
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: %w", err)
	}
	if len(vals) < 2 {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: %d columns", len(vals))
	}
	pos, err := strconv.ParseInt(string(vals[1]), 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: position %q: %w", vals[1], err)
	}
	return string(vals[0]), pos, nil
}

// Stop makes the server read-only; connections with SUPER (MariaDB: READ
// ONLY ADMIN) can still write unless super_read_only exists (MySQL).
//
// A server that is not running takes no writes: when nothing listens at
// the DSN's address (connection refused, no socket file) Stop succeeds, so
// the group can move away from a node whose server died. Configure
// read_only=ON in the server's own config so that a server restarted
// later comes back read-only.
func (m *MySQL) Stop(ctx context.Context) error {
	db, conn, err := m.conn(ctx)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			m.log.Warn("server is not running: nothing to make read-only", "error", err)
			return nil
		}
		return err
	}
	defer db.Close()
	defer conn.Close()
	stmt := "SET GLOBAL read_only = ON"
	if hasSuperReadOnly(ctx, conn) {
		stmt = "SET GLOBAL super_read_only = ON" // implies read_only
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("mysql %s: %s: %w", m.cfg.Name, stmt, err)
	}
	m.log.Info("server is read-only")
	return nil
}

// Monitor runs the MySQL probe requiring a writable non-replica.
func (m *MySQL) Monitor(ctx context.Context) error {
	res := m.check.Run(ctx)
	if res.OK {
		return nil
	}
	return fmt.Errorf("mysql %s: %w: %s", m.cfg.Name, ErrNotPrimary, res.Err)
}

// hasSuperReadOnly: MySQL has super_read_only, MariaDB does not.
func hasSuperReadOnly(ctx context.Context, conn *sql.Conn) bool {
	var v sql.NullInt64
	return conn.QueryRowContext(ctx, "SELECT @@global.super_read_only").Scan(&v) == nil
}

// replicaStmt runs the REPLICA form of a statement, or the SLAVE form on
// servers that predate it.
func replicaStmt(ctx context.Context, conn *sql.Conn, modern, old string) error {
	_, err := conn.ExecContext(ctx, modern)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1064 {
		_, err = conn.ExecContext(ctx, old)
	}
	return err
}

// replicaRow is one row of SHOW REPLICA STATUS keyed by column name.
type replicaRow map[string]string

// first returns the first of names present (MySQL renamed Master to Source).
func (r replicaRow) first(names ...string) string {
	for _, n := range names {
		if v, ok := r[n]; ok {
			return v
		}
	}
	return ""
}

// relayLag is received minus applied binlog bytes. When the SQL thread is
// still in an older source binlog file than the IO thread, everything the
// IO thread read of its file is unapplied: a lower bound.
func (r replicaRow) relayLag() (int64, bool) {
	readFile := r.first("Master_Log_File", "Source_Log_File")
	execFile := r.first("Relay_Master_Log_File", "Relay_Source_Log_File")
	read, err1 := strconv.ParseInt(r.first("Read_Master_Log_Pos", "Read_Source_Log_Pos"), 10, 64)
	exec, err2 := strconv.ParseInt(r.first("Exec_Master_Log_Pos", "Exec_Source_Log_Pos"), 10, 64)
	if err1 != nil || err2 != nil || readFile == "" {
		return 0, false
	}
	if readFile != execFile {
		return read, true
	}
	return max(read-exec, 0), true
}

// appliedUpTo reports whether the SQL thread has executed the source's
// binlog up to file:pos. Binlog names share a basename and a fixed-width
// sequence number, so they order as strings.
func (r replicaRow) appliedUpTo(file string, pos int64) bool {
	execFile := r.first("Relay_Master_Log_File", "Relay_Source_Log_File")
	exec, err := strconv.ParseInt(r.first("Exec_Master_Log_Pos", "Exec_Source_Log_Pos"), 10, 64)
	if err != nil || execFile == "" {
		return false
	}
	return execFile > file || (execFile == file && exec >= pos)
}

// replicaStatus reads the server's replica status (nil when not a replica).
func replicaStatus(ctx context.Context, conn *sql.Conn) (replicaRow, error) {
	row, err := probes.ReplicaStatus(ctx, conn)
	return replicaRow(row), err
}
