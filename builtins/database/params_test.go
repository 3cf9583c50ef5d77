package database

import (
	"strings"
	"testing"
	"time"
)

func TestPostgresConfigFromParams(t *testing.T) {
	cfg, err := PostgresConfigFromParams("db", map[string]string{
		"engine": "postgres", "dsn": "host=/run/postgresql user=postgres", "data_dir": "/var/lib/postgresql/15/main",
		"synchronous": "true", "max_lag_bytes": "1048576", "on_promote_sync": "clear", "force": "false", "timeout": "20s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Synchronous || cfg.MaxLagBytes != 1<<20 || cfg.OnPromoteSync != SyncClear || cfg.Force || cfg.Timeout != 20*time.Second || cfg.SyncStandbyNames != "*" {
		t.Fatalf("parsed %+v", cfg)
	}
	cfg, err = PostgresConfigFromParams("db", map[string]string{"dsn": "x", "data_dir": "y", "synchronous": "false"})
	if err != nil || cfg.MaxLagBytes != -1 || cfg.OnPromoteSync != SyncKeep {
		t.Fatalf("defaults: %+v, %v (want no lag limit, keep)", cfg, err)
	}
	for _, bad := range []map[string]string{
		{"on_promote_sync": "maybe"}, {"max_lag_bytes": "lots"}, {"force": "perhaps"}, {"timeout": "soon"},
	} {
		if _, err := PostgresConfigFromParams("db", bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"engine": "oracle"}, "engine must be"},
		{map[string]string{"engine": "postgres", "data_dir": "/x"}, "dsn is required"},
		{map[string]string{"engine": "postgres", "dsn": "host=/tmp"}, "data_dir is required"},
		{map[string]string{"engine": "postgres", "dsn": "host=/tmp", "data_dir": "/nonexistent/harules"}, "data dir"},
		{map[string]string{"engine": "mysql", "dsn": "not a dsn"}, "dsn"},
	} {
		_, err := New("db", c.params, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%v) = %v, want an error containing %q", c.params, err, c.want)
		}
	}
	if _, err := New("db", map[string]string{"engine": "mysql", "dsn": "root@unix(/run/mysqld/mysqld.sock)/"}, nil); err != nil {
		t.Errorf("valid mysql resource: %v", err)
	}
}

func TestRelayLag(t *testing.T) {
	row := func(readFile, execFile, read, exec string) replicaRow {
		return replicaRow{"Master_Log_File": readFile, "Relay_Master_Log_File": execFile, "Read_Master_Log_Pos": read, "Exec_Master_Log_Pos": exec}
	}
	for _, c := range []struct {
		r    replicaRow
		lag  int64
		know bool
	}{
		{row("b.1", "b.1", "900", "400"), 500, true},
		{row("b.2", "b.1", "900", "4000"), 900, true}, // at least what was read of the newer file
		{row("", "", "0", "0"), 0, false},
		{replicaRow{"Source_Log_File": "b.1", "Relay_Source_Log_File": "b.1", "Read_Source_Log_Pos": "10", "Exec_Source_Log_Pos": "10"}, 0, true},
	} {
		lag, ok := c.r.relayLag()
		if lag != c.lag || ok != c.know {
			t.Errorf("%v: lag %d known %v, want %d %v", c.r, lag, ok, c.lag, c.know)
		}
	}
}

func TestQuoteLiteral(t *testing.T) {
	if got := quoteLiteral(`2 (a, "b'c")`); got != `'2 (a, "b''c")'` {
		t.Fatalf("quoteLiteral: %s", got)
	}
}
