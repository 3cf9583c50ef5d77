package probes

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func newPG(t *testing.T, cfg PostgresConfig) *PostgresCheck {
	t.Helper()
	c, err := NewPostgres(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPostgresPrimary(t *testing.T) {
	pg := startPostgres(t)

	r := runWithin(t, newPG(t, PostgresConfig{DSN: pg.dsn(), Role: RolePrimary}), 10*time.Second)
	mustOK(t, r)
	if r.Values["in_recovery"] != 0 || r.Values["standbys"] != 0 || r.Values["query"] != 1 || !strings.HasPrefix(r.Text, "primary") {
		t.Fatalf("primary reported %+v", r)
	}
	r = runWithin(t, newPG(t, PostgresConfig{DSN: pg.socketDSN(), Query: "SELECT 41 + 1"}), 10*time.Second)
	mustOK(t, r)
	if r.Values["query"] != 42 {
		t.Fatalf("query value over the unix socket = %v, want 42", r.Values["query"])
	}
	mustFail(t, runWithin(t, newPG(t, PostgresConfig{DSN: pg.dsn(), Role: RoleStandby}), 10*time.Second), "server is a primary, want standby")
	mustFail(t, runWithin(t, newPG(t, PostgresConfig{DSN: pg.dsn(), MinSyncStandbys: 1}), 10*time.Second), "0 sync standbys connected, want at least 1")
	mustFail(t, runWithin(t, newPG(t, PostgresConfig{DSN: pg.dsn(), Query: "SELECT * FROM no_such_table"}), 10*time.Second), "postgres query")

	// A frozen postmaster accepts TCP connections (kernel backlog) but never
	// answers: the check must give up at its deadline.
	check := newPG(t, PostgresConfig{DSN: pg.dsn()})
	pg.signal(syscall.SIGSTOP)
	start := time.Now()
	r = runWithin(t, check, time.Second)
	elapsed := time.Since(start)
	if r.OK {
		t.Fatalf("probe of a stopped postmaster passed: %+v", r)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("probe of a stopped postmaster took %s with a 1s deadline", elapsed)
	}
	t.Logf("stopped postmaster: failed after %s: %s", elapsed.Round(time.Millisecond), r.Err)

	// The runner turns it into a failing fact and keeps running.
	rn := NewRunner(Options{})
	if err := rn.Add(Spec{Name: "pg", Check: check, Every: 2 * time.Second, Timeout: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, rn)
	waitFact(t, rn, "pg", "failing while stopped", func(f Fact) bool { return f.State == StateFailing })

	pg.signal(syscall.SIGCONT)
	waitFact(t, rn, "pg", "ok after SIGCONT", func(f Fact) bool { return f.State == StateOK })
	mustOK(t, runWithin(t, check, 10*time.Second))

	pg.stop(syscall.SIGINT)
	mustFail(t, runWithin(t, check, 10*time.Second), "connection refused")
	waitFact(t, rn, "pg", "failing after shutdown", func(f Fact) bool {
		return f.State == StateFailing && strings.Contains(f.Last.Err, "connection refused")
	})
}

func TestPostgresStandbyLag(t *testing.T) {
	primary := startPostgres(t)
	standby := startStandby(t, primary)
	primary.exec("ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()")

	onPrimary := newPG(t, PostgresConfig{DSN: primary.dsn(), Role: RolePrimary, MinSyncStandbys: 1})
	onStandby := newPG(t, PostgresConfig{DSN: standby.dsn(), Role: RoleStandby})
	waitFor(t, "the standby to stream as a sync standby", func() bool {
		p := runWithin(t, onPrimary, 10*time.Second)
		s := runWithin(t, onStandby, 10*time.Second)
		return p.OK && s.OK && s.Values["streaming"] == 1
	})
	r := runWithin(t, onPrimary, 10*time.Second)
	if r.Values["standbys"] != 1 || r.Values["sync_standbys"] != 1 {
		t.Fatalf("primary reports %+v, want one sync standby", r.Values)
	}
	r = runWithin(t, onStandby, 10*time.Second)
	if r.Values["in_recovery"] != 1 {
		t.Fatalf("standby reports %+v", r.Values)
	}
	mustFail(t, runWithin(t, newPG(t, PostgresConfig{DSN: standby.dsn(), Role: RolePrimary}), 10*time.Second), "server is a standby, want primary")

	// Let the standby replay one transaction so lag_seconds has a reference.
	primary.exec("CREATE TABLE warmup (n int)", "INSERT INTO warmup VALUES (1)")
	waitFor(t, "the standby to replay a transaction", func() bool {
		_, ok := runWithin(t, onStandby, 10*time.Second).Values["lag_seconds"]
		return ok
	})
	// Pause replay, write on the primary: WAL arrives but is not applied.
	standby.exec("SELECT pg_wal_replay_pause()")
	primary.exec("CREATE TABLE ballast AS SELECT g AS n FROM generate_series(1, 20000) g")
	strict := newPG(t, PostgresConfig{DSN: standby.dsn(), MaxLagBytes: 1024})
	var lagging Result
	waitFor(t, "replay lag to appear on the paused standby", func() bool {
		lagging = runWithin(t, strict, 10*time.Second)
		return lagging.Values["lag_bytes"] > 1024
	})
	mustFail(t, lagging, "replay lag")
	if lagging.Values["lag_seconds"] <= 0 {
		t.Fatalf("lag_seconds = %v with %v bytes unreplayed, want > 0", lagging.Values["lag_seconds"], lagging.Values["lag_bytes"])
	}
	t.Logf("paused standby: %.0f bytes, %.3f s behind", lagging.Values["lag_bytes"], lagging.Values["lag_seconds"])

	standby.exec("SELECT pg_wal_replay_resume()")
	waitFor(t, "the standby to catch up", func() bool {
		r := runWithin(t, strict, 10*time.Second)
		return r.OK && r.Values["lag_bytes"] == 0 && r.Values["lag_seconds"] == 0
	})

	// Losing the standby leaves the primary without its sync standby.
	standby.stop(syscall.SIGINT)
	waitFor(t, "the primary to notice the standby is gone", func() bool {
		r := runWithin(t, onPrimary, 10*time.Second)
		return !r.OK && strings.Contains(r.Err, "0 sync standbys")
	})
}

func TestPostgresConfigErrors(t *testing.T) {
	for _, cfg := range []PostgresConfig{
		{DSN: "host=x port=notaport"},
		{DSN: "postgres://x/", Role: "leader"},
		{DSN: "postgres://x/", MaxLagBytes: -1},
	} {
		if _, err := NewPostgres(cfg); err == nil {
			t.Errorf("NewPostgres(%+v) accepted", cfg)
		}
	}
}
