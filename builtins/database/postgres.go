package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// What a promoted PostgreSQL primary does with synchronous_standby_names
// when no standby is attached yet.
const (
	// SyncKeep keeps it: no acknowledged write can be lost, but writes block
	// until a standby attaches.
	SyncKeep = "keep"
	// SyncClear clears it until a standby streams again (Monitor re-arms
	// it): writes go on at once, unreplicated.
	SyncClear = "clear"
)

// PostgresConfig describes one node's PostgreSQL server.
type PostgresConfig struct {
	Name string
	// DSN reaches this node's server as a superuser (libpq form), e.g.
	// "host=/run/postgresql port=5432 user=postgres dbname=postgres".
	DSN string
	// DataDir is the cluster's data directory. Commands (pg_ctl, pg_rewind)
	// run as its owner.
	DataDir string
	// ConfigDir is what pg_ctl -D gets when postgresql.conf lives outside
	// the data directory (Debian: /etc/postgresql/15/main); default DataDir.
	ConfigDir string
	// BinDir holds pg_ctl and pg_rewind; default
	// /usr/lib/postgresql/<PG_VERSION>/bin, else $PATH.
	BinDir string
	// ServerOptions are passed to the server by pg_ctl -o, e.g.
	// "-c port=5433 -c unix_socket_directories=/run/pg-b".
	ServerOptions string
	// LogFile receives the server's output (pg_ctl -l); default
	// harules-<data dir name>.log next to the data directory (not inside:
	// pg_basebackup and pg_rewind would copy it between nodes).
	LogFile string
	// MaxLagBytes refuses to promote a standby with more received WAL not
	// yet replayed; negative means no limit.
	MaxLagBytes int64
	// Force promotes whatever the lag.
	Force bool
	// Synchronous: the cluster runs synchronous replication, and this
	// resource manages synchronous_standby_names on the primary.
	Synchronous bool
	// SyncStandbyNames is the value a synchronous primary uses; default "*".
	SyncStandbyNames string
	// OnPromoteSync is SyncKeep (default) or SyncClear.
	OnPromoteSync string
	// Timeout bounds pg_ctl start/stop and pg_promote; default 60 s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// PostgresConfigFromParams reads a database() declaration's params: dsn,
// data_dir, max_lag_bytes, synchronous, and the optional config_dir,
// bin_dir, options, log_file, force, sync_standby_names, on_promote_sync
// and timeout.
func PostgresConfigFromParams(name string, m map[string]string) (PostgresConfig, error) {
	p := &params{name: name, m: m}
	cfg := PostgresConfig{
		Name:             name,
		DSN:              p.str("dsn", ""),
		DataDir:          p.str("data_dir", ""),
		ConfigDir:        p.str("config_dir", ""),
		BinDir:           p.str("bin_dir", ""),
		ServerOptions:    p.str("options", ""),
		LogFile:          p.str("log_file", ""),
		MaxLagBytes:      p.int64("max_lag_bytes", -1),
		Force:            p.bool("force"),
		Synchronous:      p.bool("synchronous"),
		SyncStandbyNames: p.str("sync_standby_names", "*"),
		OnPromoteSync:    p.oneOf("on_promote_sync", SyncKeep, SyncKeep, SyncClear),
		Timeout:          p.duration("timeout", 60*time.Second),
	}
	return cfg, p.err
}

// Postgres is one node's PostgreSQL server as a harules resource.
type Postgres struct {
	cfg  PostgresConfig
	conn *pgx.ConnConfig
	log  *slog.Logger
	as   osUser
	bin  string
}

// NewPostgres checks cfg and finds the binaries and the data dir's owner.
func NewPostgres(cfg PostgresConfig) (*Postgres, error) {
	if cfg.DSN == "" {
		return nil, fmt.Errorf("postgres %s: dsn is required", cfg.Name)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("postgres %s: data_dir is required (Start may have to run pg_ctl)", cfg.Name)
	}
	conn, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: dsn: %w", cfg.Name, err)
	}
	if conn.ConnectTimeout == 0 {
		conn.ConnectTimeout = 5 * time.Second
	}
	conn.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = cfg.DataDir
	}
	if cfg.LogFile == "" {
		clean := filepath.Clean(cfg.DataDir)
		cfg.LogFile = filepath.Join(filepath.Dir(clean), "harules-"+filepath.Base(clean)+".log")
	}
	if cfg.SyncStandbyNames == "" {
		cfg.SyncStandbyNames = "*"
	}
	switch cfg.OnPromoteSync {
	case "":
		cfg.OnPromoteSync = SyncKeep
	case SyncKeep, SyncClear:
	default:
		return nil, fmt.Errorf("postgres %s: on_promote_sync must be %q or %q, got %q", cfg.Name, SyncKeep, SyncClear, cfg.OnPromoteSync)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Postgres{cfg: cfg, conn: conn, log: log.With("database", cfg.Name)}
	if p.as, err = ownerOf(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", cfg.Name, err)
	}
	if p.bin, err = pgBinDir(cfg.BinDir, cfg.DataDir); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", cfg.Name, err)
	}
	return p, nil
}

// pgBinDir finds pg_ctl: the configured directory, the Debian directory for
// the data dir's major version, or $PATH.
func pgBinDir(configured, dataDir string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(filepath.Join(configured, "pg_ctl")); err != nil {
			return "", fmt.Errorf("bin_dir: %w", err)
		}
		return configured, nil
	}
	if v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		dir := filepath.Join("/usr/lib/postgresql", strings.TrimSpace(string(v)), "bin")
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	if path, err := lookPath("pg_ctl"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", fmt.Errorf("pg_ctl not found under /usr/lib/postgresql/<version>/bin nor in $PATH: set bin_dir or install the Debian package postgresql")
}

// PostgresStatus is what Status found.
type PostgresStatus struct {
	// Running: a live postmaster holds the data directory.
	Running bool
	PID     int
	// Reachable: a connection with the DSN worked.
	Reachable bool
	// Role is "primary", "standby", or "" when unreachable.
	Role string
	// Standby only: WAL received but not replayed, whether the WAL receiver
	// streams, and whether replay is paused.
	LagBytes  int64
	Streaming bool
	Paused    bool
	// Primary only: attached and synchronous standbys.
	Standbys, SyncStandbys int
	SyncStandbyNames       string
}

// Role names.
const (
	RolePrimary = "primary"
	RoleStandby = "standby"
)

// Status looks at the postmaster and, when it runs, asks the server.
func (p *Postgres) Status(ctx context.Context) (PostgresStatus, error) {
	var st PostgresStatus
	st.PID, st.Running = postmasterPID(p.cfg.DataDir)
	if !st.Running {
		return st, nil
	}
	conn, err := p.connect(ctx)
	if err != nil {
		return st, err
	}
	defer closeConn(conn)
	st.Reachable = true
	return st, p.query(ctx, conn, &st)
}

func (p *Postgres) query(ctx context.Context, conn *pgx.Conn, st *PostgresStatus) error {
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')").Scan(&inRecovery, &st.SyncStandbyNames); err != nil {
		return fmt.Errorf("postgres %s: pg_is_in_recovery: %w", p.cfg.Name, err)
	}
	if inRecovery {
		st.Role = RoleStandby
		var lag *int64
		var pause string
		err := conn.QueryRow(ctx, `SELECT
			pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8,
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
			pg_get_wal_replay_pause_state()`).Scan(&lag, &st.Streaming, &pause)
		if err != nil {
			return fmt.Errorf("postgres %s: standby lag: %w", p.cfg.Name, err)
		}
		if lag != nil && *lag > 0 {
			// NULL: nothing streamed since start; all WAL is local and replays.
			st.LagBytes = *lag
		}
		st.Paused = pause != "not paused"
		return nil
	}
	st.Role = RolePrimary
	err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'streaming'),
		count(*) FILTER (WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))
		FROM pg_stat_replication`).Scan(&st.Standbys, &st.SyncStandbys)
	if err != nil {
		return fmt.Errorf("postgres %s: pg_stat_replication: %w", p.cfg.Name, err)
	}
	return nil
}

func (p *Postgres) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.conn.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres %s: connect: %w", p.cfg.Name, err)
	}
	return conn, nil
}

// closeConn says goodbye without waiting long for a sick server.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// Start makes this node's server the writable primary: it starts the server
// if it is down, refuses a standby whose replay lag is above MaxLagBytes
// (unless Force), resumes paused replay so all received WAL is applied,
// promotes with pg_promote and applies the synchronous replication policy.
// Starting a primary only applies that policy.
func (p *Postgres) Start(ctx context.Context) error { return p.StartWith(ctx, StartInfo{}) }

// StartWith is Start that also refuses (ErrBehindPeer, unless Force) when
// this node's server is behind a position a peer last reported
// (info.Peers): a lower timeline, or the same timeline and a lower LSN. A
// server that is already primary (or comes up as one) is checked as well:
// an old primary on the timeline a standby elsewhere has since left is
// stale. A stopped server that would come up as a primary (no
// standby.signal) has its timeline checked before it is started, from
// pg_control, so a stale one never takes a write; its LSN can only be told
// once it runs (after a crash, WAL goes on past the last checkpoint), and a
// server Start started and then refuses is shut down again.
func (p *Postgres) StartWith(ctx context.Context, info StartInfo) error {
	started := false
	if _, running := postmasterPID(p.cfg.DataDir); !running {
		if err := waitPostmasterGone(ctx, p.cfg.DataDir); err != nil {
			return fmt.Errorf("postgres %s: %w", p.cfg.Name, err)
		}
		if err := p.checkStoppedTimeline(ctx, info.Peers); err != nil {
			return err
		}
		if err := p.pgctlStart(ctx); err != nil {
			return err
		}
		started = true
	}
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var st PostgresStatus
	if err := p.query(ctx, conn, &st); err != nil {
		return err
	}
	if err := p.checkPeers(ctx, conn, st, info.Peers); err != nil {
		if started && st.Role == RolePrimary {
			closeConn(conn)
			if pid, running := postmasterPID(p.cfg.DataDir); running {
				if serr := p.shutdown(ctx, pid); serr != nil {
					return errors.Join(err, serr)
				}
			}
		}
		return err
	}
	promoted := false
	if st.Role == RoleStandby {
		if p.cfg.MaxLagBytes >= 0 && st.LagBytes > p.cfg.MaxLagBytes {
			if !p.cfg.Force {
				return fmt.Errorf("postgres %s: not promoting: %w: the standby has %d bytes of received WAL not yet replayed, max_lag_bytes is %d (paused replay: %v); set force=true to promote anyway",
					p.cfg.Name, ErrLagTooHigh, st.LagBytes, p.cfg.MaxLagBytes, st.Paused)
			}
			p.log.Warn("promoting a lagging standby because force is set", "lag_bytes", st.LagBytes, "max_lag_bytes", p.cfg.MaxLagBytes)
		}
		if st.Paused {
			// Promotion would end recovery; replay what was received first.
			if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
				return fmt.Errorf("postgres %s: pg_wal_replay_resume: %w", p.cfg.Name, err)
			}
		}
		if err := p.promote(ctx, conn); err != nil {
			return err
		}
		p.log.Info("promoted the standby to primary", "lag_bytes", st.LagBytes)
		if err := p.query(ctx, conn, &st); err != nil {
			return err
		}
		if st.Role != RolePrimary {
			return fmt.Errorf("postgres %s: still in recovery after pg_promote", p.cfg.Name)
		}
		promoted = true
	}
	return p.applySync(ctx, conn, st, promoted)
}

// checkPeers compares this server's own position with the peers' (see
// StartWith); Force only logs what it lets through.
func (p *Postgres) checkPeers(ctx context.Context, conn *pgx.Conn, st PostgresStatus, peers map[string]Position) error {
	if len(peers) == 0 {
		return nil
	}
	local, err := p.localPosition(ctx, conn, st.Role)
	if err != nil {
		return err
	}
	verb := "start as primary"
	if st.Role == RoleStandby {
		verb = "promote"
	}
	err = checkPeers("postgres", p.cfg.Name, verb, local, peers)
	if err != nil && p.cfg.Force {
		p.log.Warn("going on although a peer reported more history, because force is set", "error", err)
		return nil
	}
	return err
}

// checkStoppedTimeline refuses to start a stopped server that would come up
// as a primary when a peer reported a later timeline than its pg_control
// has (ErrBehindPeer). A standby starts as one whatever its position, and
// takes no writes; Force skips the check (the check after the start logs).
func (p *Postgres) checkStoppedTimeline(ctx context.Context, peers map[string]Position) error {
	if len(peers) == 0 || p.cfg.Force {
		return nil
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "standby.signal")); err == nil {
		return nil
	}
	out, err := p.run(ctx, "pg_controldata", "-D", p.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("postgres %s: reading the stopped server's timeline before starting it: %w\n%s", p.cfg.Name, err, out)
	}
	tli, err := controlTimeline(out)
	if err != nil {
		return fmt.Errorf("postgres %s: pg_controldata: %w", p.cfg.Name, err)
	}
	return refuseBehind("postgres", p.cfg.Name, "start as primary",
		fmt.Sprintf("the stopped server's timeline %d (pg_control; not started)", tli),
		func(peer Position) bool { return peer.GTID == "" && peer.LSN != "" && peer.Timeline > tli }, peers)
}

// controlTimeline reads "Latest checkpoint's TimeLineID" out of
// pg_controldata's output (LC_ALL=C).
func controlTimeline(out string) (uint32, error) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "Latest checkpoint's TimeLineID" {
			continue
		}
		tli, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("Latest checkpoint's TimeLineID %q: %w", strings.TrimSpace(v), err)
		}
		return uint32(tli), nil
	}
	return 0, errors.New("no \"Latest checkpoint's TimeLineID\" line")
}

// localPosition is everything this server has: a primary's flushed WAL on
// its current timeline; a standby's received or replayed WAL (promotion
// replays all of it) on the newest timeline it knows of.
func (p *Postgres) localPosition(ctx context.Context, conn *pgx.Conn, role string) (Position, error) {
	if role == RolePrimary {
		var walFile, lsn string
		if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_flush_lsn()), pg_current_wal_flush_lsn()::text").Scan(&walFile, &lsn); err != nil {
			return Position{}, fmt.Errorf("postgres %s: WAL position: %w", p.cfg.Name, err)
		}
		tli, err := timelineOf(walFile)
		if err != nil {
			return Position{}, fmt.Errorf("postgres %s: %w", p.cfg.Name, err)
		}
		return Position{Timeline: tli, LSN: lsn}, nil
	}
	// No SQL function gives a standby's replay timeline; the newest of the
	// checkpoint's, the minimum recovery point's and the WAL receiver's is
	// the timeline it follows.
	var tli int64
	var lsn *string
	err := conn.QueryRow(ctx, `SELECT greatest(c.timeline_id, r.min_recovery_end_timeline,
			(SELECT max(received_tli) FROM pg_stat_wal_receiver)),
		greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text
		FROM pg_control_checkpoint() c, pg_control_recovery() r`).Scan(&tli, &lsn)
	if err != nil {
		return Position{}, fmt.Errorf("postgres %s: standby WAL position: %w", p.cfg.Name, err)
	}
	pos := Position{Timeline: uint32(tli), LSN: "0/0"}
	if lsn != nil {
		pos.LSN = *lsn
	}
	return pos, nil
}

// Position is what this node reports to its peers: a standby's position
// (localPosition), or a primary's flushed WAL position, capped at what
// the furthest streaming standby has flushed when one streams. The cap is
// what a failover to that standby keeps: it must not be refused for WAL
// the primary flushed a moment before it crashed and never sent.
func (p *Postgres) Position(ctx context.Context) (Position, error) {
	conn, err := p.connect(ctx)
	if err != nil {
		return Position{}, err
	}
	defer closeConn(conn)
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return Position{}, fmt.Errorf("postgres %s: pg_is_in_recovery: %w", p.cfg.Name, err)
	}
	if inRecovery {
		return p.localPosition(ctx, conn, RoleStandby)
	}
	pos, err := p.localPosition(ctx, conn, RolePrimary)
	if err != nil {
		return pos, err
	}
	var standby *string
	if err := conn.QueryRow(ctx, "SELECT max(flush_lsn)::text FROM pg_stat_replication WHERE state = 'streaming'").Scan(&standby); err != nil {
		return Position{}, fmt.Errorf("postgres %s: pg_stat_replication: %w", p.cfg.Name, err)
	}
	if standby != nil {
		s, err1 := ParseLSN(*standby)
		own, err2 := ParseLSN(pos.LSN)
		if err1 == nil && err2 == nil && s < own {
			pos.LSN = *standby
		}
	}
	return pos, nil
}

// timelineOf reads the timeline out of a WAL file name (its first eight
// hexadecimal digits).
func timelineOf(walFile string) (uint32, error) {
	if len(walFile) < 8 {
		return 0, fmt.Errorf("WAL file name %q: too short", walFile)
	}
	tli, err := strconv.ParseUint(walFile[:8], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("WAL file name %q: %w", walFile, err)
	}
	return uint32(tli), nil
}

// sqlstateNotInRecovery is what pg_promote answers on a server that is no
// longer in recovery ("recovery is not in progress",
// object_not_in_prerequisite_state).
const sqlstateNotInRecovery = "55000"

// promote asks for promotion and polls for its end every 10 ms:
// pg_promote(wait => true) only looks every 100 ms, which would be most of
// the write-unavailability window. The request is repeated every 100 ms
// while recovery goes on: a standby whose WAL receiver just lost the
// primary sometimes sleeps out wal_retrieve_retry_interval (5 s by default)
// before it notices the first one. Promotion is idempotent: a request that
// finds recovery over (SQLSTATE 55000, the promotion finished since the
// last look, or before this call) is success once pg_is_in_recovery()
// confirms it.
func (p *Postgres) promote(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var asked time.Time
	for {
		if time.Since(asked) >= 100*time.Millisecond {
			var ok bool
			err := conn.QueryRow(ctx, "SELECT pg_promote(wait => false)").Scan(&ok)
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr) && pgErr.Code == sqlstateNotInRecovery:
				// Fall through to pg_is_in_recovery(): it must say so too.
				ok = true
			case err != nil:
				return fmt.Errorf("postgres %s: pg_promote: %w", p.cfg.Name, err)
			}
			if !ok {
				return fmt.Errorf("postgres %s: pg_promote could not signal the promotion", p.cfg.Name)
			}
			asked = time.Now()
		}
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return fmt.Errorf("postgres %s: waiting for promotion: %w", p.cfg.Name, err)
		}
		if !inRecovery {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres %s: promotion did not finish within %s", p.cfg.Name, p.cfg.Timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// applySync sets synchronous_standby_names on a primary: the configured
// names while a standby streams or in SyncKeep mode, empty otherwise.
//
// Clearing is for a promotion only (the old primary, and with it the only
// standby, is gone). A server that was primary already, e.g. restarted when
// the agent started, keeps synchronous replication: its standby reconnects
// within moments, and clearing would let commits through unreplicated.
func (p *Postgres) applySync(ctx context.Context, conn *pgx.Conn, st PostgresStatus, promoted bool) error {
	if !p.cfg.Synchronous {
		return nil
	}
	want := p.cfg.SyncStandbyNames
	if promoted && st.Standbys == 0 && p.cfg.OnPromoteSync == SyncClear {
		want = ""
	}
	if st.SyncStandbyNames == want {
		return nil
	}
	q := "ALTER SYSTEM SET synchronous_standby_names = " + quoteLiteral(want)
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("postgres %s: %s: %w", p.cfg.Name, q, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("postgres %s: pg_reload_conf: %w", p.cfg.Name, err)
	}
	if want == "" {
		p.log.Warn("no standby attached: cleared synchronous_standby_names (on_promote_sync=clear); commits are not replicated until a standby streams",
			"was", st.SyncStandbyNames)
	} else {
		p.log.Info("set synchronous_standby_names", "value", want, "standbys", st.Standbys)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Monitor returns an error unless the server answers as the primary. With
// Synchronous it also re-arms synchronous_standby_names once a standby
// streams again after SyncClear emptied it.
func (p *Postgres) Monitor(ctx context.Context) error {
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var st PostgresStatus
	if err := p.query(ctx, conn, &st); err != nil {
		return err
	}
	if st.Role != RolePrimary {
		return fmt.Errorf("postgres %s: %w: it is a %s", p.cfg.Name, ErrNotPrimary, st.Role)
	}
	if st.Standbys == 0 {
		// Nothing to re-arm synchronous replication with yet.
		return nil
	}
	return p.applySync(ctx, conn, st, false)
}

// Stop stops the server being primary: a primary (or a server whose role
// cannot be told) gets a fast shutdown, so no more writes land on it; then
// immediate, then SIGKILL of its process group if it does not go. A standby
// keeps running: it is no primary, and the new one may need it.
func (p *Postgres) Stop(ctx context.Context) error {
	pid, running := postmasterPID(p.cfg.DataDir)
	if !running {
		return nil
	}
	if p.isStandby(ctx) {
		p.log.Debug("stop: the server is a standby; leaving it running")
		return nil
	}
	return p.shutdown(ctx, pid)
}

// isStandby: standby.signal is present (promotion removes it) and, when the
// server answers, it says it is in recovery.
func (p *Postgres) isStandby(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "standby.signal")); err != nil {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := p.connect(qctx)
	if err != nil {
		return true
	}
	defer closeConn(conn)
	var inRecovery bool
	if err := conn.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return true
	}
	return inRecovery
}

// shutdown stops the postmaster pid: fast shutdown (SIGINT, what pg_ctl
// stop -m fast sends; we poll every 10 ms where pg_ctl polls every 100),
// then immediate (SIGQUIT), then SIGKILL of its process group. The
// postmaster exits only after all its backends, so once it is gone no
// write can land.
func (p *Postgres) shutdown(ctx context.Context, pid int) error {
	steps := []struct {
		sig  syscall.Signal
		mode string
		wait time.Duration
	}{{syscall.SIGINT, "fast", p.cfg.Timeout}, {syscall.SIGQUIT, "immediate", 10 * time.Second}}
	for _, step := range steps {
		if err := syscall.Kill(pid, step.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("postgres %s: %s shutdown of pid %d: %w", p.cfg.Name, step.mode, pid, err)
		}
		if waitExit(ctx, pid, step.wait) {
			p.log.Info("stopped the server", "mode", step.mode)
			return nil
		}
		p.log.Warn("the server did not stop", "mode", step.mode, "waited", step.wait)
	}
	if err := killGroup(ctx, pid); err != nil {
		return fmt.Errorf("postgres %s: cannot stop the server (pid %d): %w", p.cfg.Name, pid, err)
	}
	p.log.Warn("killed the server's process group", "pid", pid)
	return nil
}

// waitExit polls until the postmaster pid is gone or d passes.
func waitExit(ctx context.Context, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for processIs(pid, "postgres", "postmaster") {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// pgctlStart starts the server and waits until it accepts connections.
func (p *Postgres) pgctlStart(ctx context.Context) error {
	args := []string{"start", "-D", p.cfg.ConfigDir, "-l", p.cfg.LogFile, "-w", "-t", strconv.Itoa(int(p.cfg.Timeout.Seconds()))}
	if p.cfg.ServerOptions != "" {
		args = append(args, "-o", p.cfg.ServerOptions)
	}
	if out, err := p.run(ctx, "pg_ctl", args...); err != nil {
		return fmt.Errorf("postgres %s: pg_ctl start: %w\n%s\nserver log %s:\n%s", p.cfg.Name, err, out, p.cfg.LogFile, tail(p.cfg.LogFile, 2000))
	}
	p.log.Info("started the server", "data_dir", p.cfg.DataDir)
	return nil
}

// run runs one of the PostgreSQL programs as the data dir's owner.
func (p *Postgres) run(ctx context.Context, prog string, args ...string) (string, error) {
	return p.as.run(ctx, filepath.Join(p.bin, prog), args...)
}

// Rejoin turns this node's server (an old primary, or a standby of someone
// else) into a streaming standby of primaryDSN: it stops the server, runs
// CHECKPOINT on the new primary (so its control file shows the new
// timeline) and pg_rewind, writes standby.signal and primary_conninfo, starts
// the server and waits until it streams.
//
// primaryDSN is used both by pg_rewind and as primary_conninfo; give it an
// application_name if synchronous_standby_names lists names. pg_rewind needs
// wal_log_hints=on or data checksums on the old primary, and the new
// primary's WAL since the timelines forked (wal_keep_size); when it fails
// the error says how to re-clone by hand.
func (p *Postgres) Rejoin(ctx context.Context, primaryDSN string) error {
	if pid, running := postmasterPID(p.cfg.DataDir); running {
		if err := p.shutdown(ctx, pid); err != nil {
			return err
		}
	}
	if err := waitPostmasterGone(ctx, p.cfg.DataDir); err != nil {
		return fmt.Errorf("postgres %s: rejoin: %w", p.cfg.Name, err)
	}
	if err := checkpoint(ctx, primaryDSN); err != nil {
		return fmt.Errorf("postgres %s: rejoin: CHECKPOINT on the new primary: %w", p.cfg.Name, err)
	}
	out, err := p.run(ctx, "pg_rewind", "--target-pgdata="+p.cfg.DataDir, "--source-server="+primaryDSN)
	if err != nil {
		return fmt.Errorf("postgres %s: rejoin: pg_rewind: %w\n%s\n"+
			"pg_rewind needs wal_log_hints=on or data checksums and the new primary's WAL since the fork. "+
			"To rejoin by hand, re-clone as %s: move %s aside, run pg_basebackup -D %s -R -X stream -d '<new primary dsn>', then start the server",
			p.cfg.Name, err, out, p.as.name, p.cfg.DataDir, p.cfg.DataDir)
	}
	p.log.Info("pg_rewind done", "output", strings.TrimSpace(out))
	if err := p.as.writeFile(filepath.Join(p.cfg.DataDir, "standby.signal"), nil); err != nil {
		return fmt.Errorf("postgres %s: rejoin: %w", p.cfg.Name, err)
	}
	if err := p.setPrimaryConninfo(primaryDSN); err != nil {
		return fmt.Errorf("postgres %s: rejoin: %w", p.cfg.Name, err)
	}
	if err := p.pgctlStart(ctx); err != nil {
		return err
	}
	return p.waitStreaming(ctx)
}

// setPrimaryConninfo replaces primary_conninfo in postgresql.auto.conf (the
// file ALTER SYSTEM writes; pg_rewind copied the new primary's, which may
// name the new primary's own old upstream, i.e. this node).
func (p *Postgres) setPrimaryConninfo(dsn string) error {
	path := filepath.Join(p.cfg.DataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "primary_conninfo") || line == "" {
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	escaped := strings.ReplaceAll(strings.ReplaceAll(dsn, `\`, `\\`), "'", "''")
	fmt.Fprintf(&b, "primary_conninfo = '%s'\n", escaped)
	return p.as.writeFile(path, []byte(b.String()))
}

// waitStreaming polls until the WAL receiver streams.
func (p *Postgres) waitStreaming(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var last error
	for {
		st, err := p.Status(ctx)
		switch {
		case err != nil:
			last = err
		case st.Role == RoleStandby && st.Streaming:
			p.log.Info("rejoined as a streaming standby")
			return nil
		default:
			last = fmt.Errorf("role %q, streaming %v", st.Role, st.Streaming)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres %s: rejoin: not streaming within %s: %v; see %s", p.cfg.Name, p.cfg.Timeout, last, p.cfg.LogFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkpoint runs CHECKPOINT on the server at dsn.
func checkpoint(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// postmasterPID reads postmaster.pid and tells whether that process lives.
func postmasterPID(dataDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processIs(pid, "postgres", "postmaster")
}
