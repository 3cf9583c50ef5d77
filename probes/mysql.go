package probes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQLConfig configures a MySQL/MariaDB check.
type MySQLConfig struct {
	// DSN in go-sql-driver/mysql form, e.g. "monitor:secret@tcp(127.0.0.1:3306)/"
	// or "root@unix(/run/mysqld/mysqld.sock)/". Reading replica status needs
	// the REPLICATION CLIENT (MySQL) or SLAVE MONITOR (MariaDB) privilege.
	DSN string
	// Query is run after connecting ("SELECT 1" if empty); a numeric first
	// column of the first row is reported as Values["query"].
	Query string
	// Role, if set: RolePrimary requires a writable server (read_only=0)
	// that is not a replica; RoleStandby requires a replica.
	Role string
	// MaxSecondsBehind bounds a replica's Seconds_Behind_Master (0 means no
	// limit; NULL, i.e. unknown, fails when a limit is set).
	MaxSecondsBehind float64
}

// MySQLCheck connects to MySQL or MariaDB, runs a query and reports
// read_only and replica status. Value is the latency in ms.
//
// Values: read_only (0/1), replica (0/1); on a replica io_running and
// sql_running (0/1) and seconds_behind (absent while NULL). A replica whose
// IO or SQL thread is not running fails.
type MySQLCheck struct {
	cfg MySQLConfig
	dsn *mysql.Config
}

var _ Check = (*MySQLCheck)(nil)

// quietLogger discards the driver's own log lines; errors reach the Result.
var quietLogger = log.New(io.Discard, "", 0)

// NewMySQL validates cfg and returns the check.
func NewMySQL(cfg MySQLConfig) (*MySQLCheck, error) {
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql check: dsn: %w", err)
	}
	if err := checkRole(cfg.Role); err != nil {
		return nil, fmt.Errorf("mysql check: %w", err)
	}
	if cfg.MaxSecondsBehind < 0 {
		return nil, fmt.Errorf("mysql check: max seconds behind %g must not be negative", cfg.MaxSecondsBehind)
	}
	if cfg.Query == "" {
		cfg.Query = "SELECT 1"
	}
	dsn.Logger = quietLogger
	return &MySQLCheck{cfg: cfg, dsn: dsn}, nil
}

// Run connects, queries and inspects replication.
func (c *MySQLCheck) Run(ctx context.Context) Result {
	start := time.Now()
	connector, err := mysql.NewConnector(c.dsn.Clone())
	if err != nil {
		return failure(start, "mysql connector", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return failure(start, "mysql connect", err)
	}
	defer conn.Close()

	vals := map[string]float64{}
	var first any
	if err := conn.QueryRowContext(ctx, c.cfg.Query).Scan(&first); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return failure(start, "mysql query", err)
	}
	if f, ok := toFloat(first); ok {
		vals["query"] = f
	} else if b, ok := first.([]byte); ok {
		if f, err := strconv.ParseFloat(string(b), 64); err == nil {
			vals["query"] = f
		}
	}

	var readOnly int64
	if err := conn.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil {
		return failure(start, "mysql read_only", err)
	}
	vals["read_only"] = float64(readOnly)

	status, err := ReplicaStatus(ctx, conn)
	if err != nil {
		return failure(start, "mysql replica status", err)
	}
	isReplica := status != nil
	vals["replica"] = boolFloat(isReplica)
	var problems []string
	if isReplica {
		ioRunning := status.First("Slave_IO_Running", "Replica_IO_Running") == "Yes"
		sqlRunning := status.First("Slave_SQL_Running", "Replica_SQL_Running") == "Yes"
		vals["io_running"] = boolFloat(ioRunning)
		vals["sql_running"] = boolFloat(sqlRunning)
		if !ioRunning {
			problems = append(problems, "replica IO thread not running: "+status.First("Last_IO_Error"))
		}
		if !sqlRunning {
			problems = append(problems, "replica SQL thread not running: "+status.First("Last_SQL_Error"))
		}
		behind := status.First("Seconds_Behind_Master", "Seconds_Behind_Source")
		if s, err := strconv.ParseFloat(behind, 64); err == nil {
			vals["seconds_behind"] = s
			if c.cfg.MaxSecondsBehind > 0 && s > c.cfg.MaxSecondsBehind {
				problems = append(problems, fmt.Sprintf("replica %gs behind, maximum %gs", s, c.cfg.MaxSecondsBehind))
			}
		} else if c.cfg.MaxSecondsBehind > 0 {
			problems = append(problems, "replica lag unknown (Seconds_Behind_Master is NULL)")
		}
	}

	lat := time.Since(start)
	res := Result{Value: ms(lat), Values: vals, Latency: lat}
	switch {
	case isReplica:
		res.Text = fmt.Sprintf("replica of %s, read_only=%d", status.First("Master_Host", "Source_Host"), readOnly)
	default:
		res.Text = fmt.Sprintf("not a replica, read_only=%d", readOnly)
	}
	switch {
	case c.cfg.Role == RolePrimary && isReplica:
		res.Err = "server is a replica, want primary"
	case c.cfg.Role == RolePrimary && readOnly != 0:
		res.Err = "server is read_only, want a writable primary"
	case c.cfg.Role == RoleStandby && !isReplica:
		res.Err = "server is not a replica, want standby"
	case len(problems) > 0:
		res.Err = strings.Join(problems, "; ")
	default:
		res.OK = true
	}
	return res
}

// ReplicaRow is one row of SHOW REPLICA STATUS keyed by column name.
type ReplicaRow map[string]string

// First returns the value of the first of names present (column names
// differ between MySQL and MariaDB versions).
func (r ReplicaRow) First(names ...string) string {
	for _, n := range names {
		if v, ok := r[n]; ok {
			return v
		}
	}
	return ""
}

// ReplicaStatus reads SHOW REPLICA STATUS (SHOW SLAVE STATUS on older
// servers); it returns nil when the server is not a replica.
func ReplicaStatus(ctx context.Context, conn *sql.Conn) (ReplicaRow, error) {
	rows, err := conn.QueryContext(ctx, "SHOW REPLICA STATUS")
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1064 { // syntax error: before MySQL 8.0.22 / MariaDB 10.5
		rows, err = conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	}
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
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make(ReplicaRow, len(cols))
	for i, col := range cols {
		if raw[i] != nil { // NULL columns stay absent
			row[col] = string(raw[i])
		}
	}
	return row, nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
