package probes

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database roles a check can expect.
const (
	RoleAny     = ""
	RolePrimary = "primary"
	RoleStandby = "standby" // PostgreSQL standby, MySQL replica
)

// PostgresConfig configures a PostgreSQL check.
type PostgresConfig struct {
	// DSN is a libpq connection string or URL, e.g.
	// "host=/run/postgresql port=5432 user=harules dbname=postgres".
	// Reading pg_stat_replication in full needs the pg_monitor role.
	DSN string
	// Query is run after connecting ("SELECT 1" if empty); a numeric first
	// column of the first row is reported as Values["query"].
	Query string
	// Role, if set, is the role the server must have (RolePrimary or
	// RoleStandby); a mismatch fails the check.
	Role string
	// MaxLagBytes and MaxLagSeconds bound a standby's replay lag (0 means
	// no limit).
	MaxLagBytes, MaxLagSeconds float64
	// MinSyncStandbys is the number of synchronous standbys a primary needs.
	MinSyncStandbys int
}

// PostgresCheck connects to PostgreSQL with pgx, runs a query and reports
// the server's role and replication state. Value is the latency in ms.
//
// Values: in_recovery (0/1); on a standby lag_bytes (received but not yet
// replayed WAL), lag_seconds (age of the last replayed transaction, 0 when
// everything received is replayed; absent until the standby has replayed
// a transaction) and streaming (1 while the WAL receiver
// streams); on a primary standbys and sync_standbys (connected ones).
type PostgresCheck struct {
	cfg  PostgresConfig
	conn *pgx.ConnConfig
}

var _ Check = (*PostgresCheck)(nil)

// NewPostgres validates cfg and returns the check.
func NewPostgres(cfg PostgresConfig) (*PostgresCheck, error) {
	conn, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres check: dsn: %w", err)
	}
	// One short-lived connection per run: the simple protocol saves the
	// prepare round trips and works through poolers.
	conn.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.Query == "" {
		cfg.Query = "SELECT 1"
	}
	if err := checkRole(cfg.Role); err != nil {
		return nil, fmt.Errorf("postgres check: %w", err)
	}
	if cfg.MaxLagBytes < 0 || cfg.MaxLagSeconds < 0 || cfg.MinSyncStandbys < 0 {
		return nil, fmt.Errorf("postgres check: lag limits and min sync standbys must not be negative")
	}
	return &PostgresCheck{cfg: cfg, conn: conn}, nil
}

func checkRole(role string) error {
	switch role {
	case RoleAny, RolePrimary, RoleStandby:
		return nil
	}
	return fmt.Errorf("role %q must be %q, %q or empty", role, RolePrimary, RoleStandby)
}

// Run connects, queries and inspects replication.
func (c *PostgresCheck) Run(ctx context.Context) Result {
	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, c.conn.Copy())
	if err != nil {
		return failure(start, "postgres connect", err)
	}
	defer func() {
		// Say goodbye politely, but never wait long for a sick server.
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()

	vals := map[string]float64{}
	var first any
	rows, err := conn.Query(ctx, c.cfg.Query)
	if err != nil {
		return failure(start, "postgres query", err)
	}
	for rows.Next() {
		if first == nil {
			if v, err := rows.Values(); err == nil && len(v) > 0 {
				first = v[0]
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return failure(start, "postgres query", err)
	}
	if f, ok := toFloat(first); ok {
		vals["query"] = f
	}

	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return failure(start, "postgres pg_is_in_recovery", err)
	}
	role := RolePrimary
	if inRecovery {
		role = RoleStandby
		vals["in_recovery"] = 1
		var lagBytes, lagSeconds *float64
		var streaming int64
		err := conn.QueryRow(ctx, `SELECT
			pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8,
			EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8,
			(SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')`).Scan(&lagBytes, &lagSeconds, &streaming)
		if err != nil {
			return failure(start, "postgres standby lag", err)
		}
		vals["streaming"] = float64(streaming)
		if lagBytes != nil {
			vals["lag_bytes"] = *lagBytes
		}
		if lagSeconds != nil {
			// On an idle primary the last transaction ages forever: a standby
			// that has replayed all it received is not behind.
			if lagBytes != nil && *lagBytes == 0 {
				vals["lag_seconds"] = 0
			} else {
				vals["lag_seconds"] = max(*lagSeconds, 0)
			}
		}
	} else {
		vals["in_recovery"] = 0
		var standbys, sync int64
		err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE sync_state IN ('sync', 'quorum'))
			FROM pg_stat_replication`).Scan(&standbys, &sync)
		if err != nil {
			return failure(start, "postgres pg_stat_replication", err)
		}
		vals["standbys"] = float64(standbys)
		vals["sync_standbys"] = float64(sync)
	}

	lat := time.Since(start)
	res := Result{Value: ms(lat), Values: vals, Latency: lat, Text: role}
	if role == RoleStandby {
		res.Text = fmt.Sprintf("standby, lag %.0f bytes", vals["lag_bytes"])
	} else {
		res.Text = fmt.Sprintf("primary, %.0f standbys (%.0f sync)", vals["standbys"], vals["sync_standbys"])
	}
	switch {
	case c.cfg.Role != RoleAny && c.cfg.Role != role:
		res.Err = fmt.Sprintf("server is a %s, want %s", role, c.cfg.Role)
	case role == RoleStandby && c.cfg.MaxLagBytes > 0 && vals["lag_bytes"] > c.cfg.MaxLagBytes:
		res.Err = fmt.Sprintf("replay lag %.0f bytes above maximum %.0f", vals["lag_bytes"], c.cfg.MaxLagBytes)
	case role == RoleStandby && c.cfg.MaxLagSeconds > 0 && vals["lag_seconds"] > c.cfg.MaxLagSeconds:
		res.Err = fmt.Sprintf("replay lag %.1fs above maximum %gs", vals["lag_seconds"], c.cfg.MaxLagSeconds)
	case role == RolePrimary && int(vals["sync_standbys"]) < c.cfg.MinSyncStandbys:
		res.Err = fmt.Sprintf("%.0f sync standbys connected, want at least %d", vals["sync_standbys"], c.cfg.MinSyncStandbys)
	default:
		res.OK = true
	}
	return res
}

// toFloat converts the numeric types database drivers return.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
