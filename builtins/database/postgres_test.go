package database

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// rounds per failover/switchover test: enough for a median, few enough to
// keep each test well under a minute on a busy machine.
const rounds = 5

func syncClear() PostgresConfig {
	return PostgresConfig{Synchronous: true, OnPromoteSync: SyncClear, MaxLagBytes: 16 << 20}
}

func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// assertNotWritable: the old primary must refuse connections or writes.
func assertNotWritable(t testing.TB, n *pgNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.tcpDSN())
	if err != nil {
		return
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "INSERT INTO t (n) VALUES (-999999)"); err == nil {
		t.Fatalf("old primary %s still accepts writes", n.name)
	}
}

// assertNoLoss: every acknowledged row is on the new primary.
func assertNoLoss(t testing.TB, w *writer, primary *pgNode) int {
	t.Helper()
	acks := w.snapshot()
	got := primary.rows()
	if missing := lost(acks, got); len(missing) > 0 {
		t.Fatalf("%d acknowledged rows lost on new primary %s (of %d), first: %v", len(missing), primary.name, len(acks), missing[:min(10, len(missing))])
	}
	return len(acks)
}

// assertStreams: a row written on primary reaches the standby.
func assertStreams(t testing.TB, primary, standby *pgNode, marker int64) {
	t.Helper()
	primary.exec(fmt.Sprintf("INSERT INTO t (n) VALUES (%d)", marker))
	waitFor(t, fmt.Sprintf("row %d on %s", marker, standby.name), func() (bool, string) {
		return standby.rows()[marker], "not yet replayed"
	})
}

// (a) + (d): kill -9 of the primary's postmaster, Start (promote) on the
// synchronous standby, move the writer; no acknowledged row may be lost,
// the new primary takes writes, the old one does not; then the old primary
// rejoins with pg_rewind and streams, and the roles swap for the next round.
func TestPostgresFailoverCrashZeroLoss(t *testing.T) {
	primary, standby := pgPair(t, syncClear())
	w := startWriter(t, primary.tcpDSN())
	var windows []time.Duration
	for round := 1; round <= rounds; round++ {
		w.waitAcks(t, 30)
		t0 := time.Now()
		primary.crash()
		crashed := time.Now()
		if err := standby.res.Start(ctx30(t)); err != nil {
			t.Fatalf("round %d: promote %s: %v", round, standby.name, err)
		}
		w.point(standby.tcpDSN())
		moved := time.Now()
		w.waitAcks(t, 30)
		t.Logf("round %d: kill took %v, Start (promotion) %v", round, crashed.Sub(t0), moved.Sub(crashed))
		assertNotWritable(t, primary)
		if st := standby.status(); st.Role != RolePrimary || st.SyncStandbyNames != "" {
			t.Fatalf("round %d: new primary %s: %+v, want primary with synchronous_standby_names cleared (on_promote_sync=clear)", round, standby.name, st)
		}
		if err := standby.res.Monitor(ctx30(t)); err != nil {
			t.Fatalf("round %d: Monitor on the new primary: %v", round, err)
		}
		total := assertNoLoss(t, w, standby)
		win := window(w.snapshot(), t0, moved)
		windows = append(windows, win)
		t.Logf("round %d: crash of %s -> %s primary: write window %v, %d acknowledged so far, 0 lost", round, primary.name, standby.name, win, total)

		// (d) the old primary comes back as a standby of the new one.
		if err := primary.res.Rejoin(ctx30(t), standby.tcpDSN()); err != nil {
			t.Fatalf("round %d: rejoin %s: %v", round, primary.name, err)
		}
		primary.track()
		waitStandby(t, standby, primary) // Monitor re-arms synchronous replication
		assertStreams(t, standby, primary, -int64(round))
		assertNotWritable(t, primary) // a standby now
		primary, standby = standby, primary
	}
	t.Logf("crash failover: median write-unavailability window %v over %d rounds %v; rows lost 0", median(windows), len(windows), windows)
}

// (b): planned switchover: Stop (fast shutdown) on the primary, then Start
// on the standby. Stop on a standby (what Release does on every node)
// leaves it running.
func TestPostgresSwitchoverZeroLoss(t *testing.T) {
	primary, standby := pgPair(t, syncClear())
	w := startWriter(t, primary.tcpDSN())
	var windows []time.Duration
	for round := 1; round <= rounds; round++ {
		w.waitAcks(t, 30)
		if err := standby.res.Stop(ctx30(t)); err != nil {
			t.Fatalf("Stop on standby %s: %v", standby.name, err)
		}
		if st := standby.status(); st.Role != RoleStandby || !st.Streaming {
			t.Fatalf("Stop on a standby must leave it streaming: %+v", st)
		}
		t0 := time.Now()
		if err := primary.res.Stop(ctx30(t)); err != nil {
			t.Fatalf("round %d: stop %s: %v", round, primary.name, err)
		}
		if primary.running() {
			t.Fatalf("round %d: %s still running after Stop", round, primary.name)
		}
		if err := standby.res.Start(ctx30(t)); err != nil {
			t.Fatalf("round %d: promote %s: %v", round, standby.name, err)
		}
		w.point(standby.tcpDSN())
		moved := time.Now()
		w.waitAcks(t, 30)
		assertNotWritable(t, primary)
		total := assertNoLoss(t, w, standby)
		win := window(w.snapshot(), t0, moved)
		windows = append(windows, win)
		t.Logf("round %d: switchover %s -> %s: write window %v, %d acknowledged so far, 0 lost", round, primary.name, standby.name, win, total)

		if err := primary.res.Rejoin(ctx30(t), standby.tcpDSN()); err != nil {
			t.Fatalf("round %d: rejoin %s: %v", round, primary.name, err)
		}
		primary.track()
		waitStandby(t, standby, primary)
		assertStreams(t, standby, primary, -int64(round))
		primary, standby = standby, primary
	}
	t.Logf("planned switchover: median write-unavailability window %v over %d rounds %v; rows lost 0", median(windows), len(windows), windows)
}

// (c): a standby whose replay is paused while writes go on is refused
// promotion with a small max_lag_bytes; force promotes it with all
// acknowledged rows (replay resumes first).
func TestPostgresLagRefusal(t *testing.T) {
	cfg := syncClear()
	cfg.MaxLagBytes = 1024
	primary, standby := pgPair(t, cfg)
	if err := standby.res.Monitor(ctx30(t)); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Monitor on a standby: %v, want ErrNotPrimary", err)
	}
	standby.exec("SELECT pg_wal_replay_pause()")
	w := startWriter(t, primary.tcpDSN())
	waitFor(t, "standby replay lag above 64 kB", func() (bool, string) {
		st := standby.status()
		return st.LagBytes > 64<<10, fmt.Sprintf("%+v", st)
	})
	if err := primary.res.Stop(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	err := standby.res.Start(ctx30(t))
	if !errors.Is(err, ErrLagTooHigh) || !strings.Contains(err.Error(), "max_lag_bytes is 1024") {
		t.Fatalf("Start on a lagging standby: %v, want a refusal (ErrLagTooHigh)", err)
	}
	t.Logf("refused as expected: %v", err)
	if st := standby.status(); st.Role != RoleStandby {
		t.Fatalf("a refused standby must stay a standby: %+v", st)
	}
	standby.res.cfg.Force = true
	if err := standby.res.Start(ctx30(t)); err != nil {
		t.Fatalf("forced promotion: %v", err)
	}
	w.point(standby.tcpDSN())
	w.waitAcks(t, 20)
	assertNoLoss(t, w, standby)
}

// on_promote_sync=keep: after a crash failover the new primary keeps
// synchronous_standby_names, so a commit blocks until the old primary has
// rejoined as a standby; then it completes.
func TestPostgresKeepSyncBlocksUntilRejoin(t *testing.T) {
	primary, standby := pgPair(t, PostgresConfig{Synchronous: true, OnPromoteSync: SyncKeep})
	primary.exec("INSERT INTO t (n) VALUES (1)")
	primary.crash()
	if err := standby.res.Start(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	if st := standby.status(); st.Role != RolePrimary || st.SyncStandbyNames != "*" {
		t.Fatalf("new primary: %+v, want primary with synchronous_standby_names '*'", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	conn, err := pgx.Connect(ctx, standby.tcpDSN())
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO t (n) VALUES (2)")
	cancel()
	closeConn(conn)
	if err == nil {
		t.Fatalf("a commit on a synchronous primary without any standby was acknowledged")
	}
	if err := primary.res.Rejoin(ctx30(t), standby.tcpDSN()); err != nil {
		t.Fatal(err)
	}
	primary.track()
	waitStandby(t, standby, primary)
	standby.exec("INSERT INTO t (n) VALUES (3)") // acknowledged now
	if got := primary.rows(); !got[1] || !got[3] {
		t.Fatalf("rejoined standby lacks rows 1 and 3 (synchronous commit): %v", got)
	}
}

// A primary that is down: Start runs pg_ctl first; Monitor passes; Stop
// shuts it down; Stop again is a no-op and Monitor then fails.
func TestPostgresStartStopSingle(t *testing.T) {
	n := newPgPrimary(t, "solo", PostgresConfig{})
	if n.running() {
		t.Fatal("fresh node must not run")
	}
	if err := n.res.Start(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	n.track()
	if err := n.res.Monitor(ctx30(t)); err != nil {
		t.Fatalf("Monitor after Start: %v", err)
	}
	n.exec("CREATE TABLE t (n bigint)", "INSERT INTO t VALUES (1)")
	if err := n.res.Stop(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	if n.running() {
		t.Fatal("still running after Stop")
	}
	if err := n.res.Stop(ctx30(t)); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := n.res.Monitor(ctx30(t)); err == nil {
		t.Fatal("Monitor passed on a stopped server")
	}
}

// BenchmarkPostgresCrashFailover measures, per crash of the primary's
// postmaster, the time Start takes to promote the synchronous standby and
// the write-unavailability window a client sees (failure detection not
// included: Start runs right after the kill).
func BenchmarkPostgresCrashFailover(b *testing.B) {
	primary, standby := pgPair(b, syncClear())
	w := startWriter(b, primary.tcpDSN())
	var windows, promotes []time.Duration
	for i := 0; b.Loop(); i++ {
		w.waitAcks(b, 30)
		t0 := time.Now()
		primary.crash()
		if err := standby.res.Start(ctx30(b)); err != nil {
			b.Fatal(err)
		}
		promotes = append(promotes, time.Since(t0))
		w.point(standby.tcpDSN())
		moved := time.Now()
		w.waitAcks(b, 30)
		assertNoLoss(b, w, standby)
		windows = append(windows, window(w.snapshot(), t0, moved))
		b.StopTimer()
		if err := primary.res.Rejoin(ctx30(b), standby.tcpDSN()); err != nil {
			b.Fatal(err)
		}
		primary.track()
		waitStandby(b, standby, primary)
		primary, standby = standby, primary
		b.StartTimer()
	}
	b.ReportMetric(float64(median(windows).Microseconds())/1000, "window-ms")
	b.ReportMetric(float64(median(promotes).Microseconds())/1000, "promote-ms")
}

// Without wal_log_hints (and without data checksums) pg_rewind cannot run:
// Rejoin must fail with the manual re-clone step, not half-rejoin.
func TestPostgresRejoinImpossibleExplains(t *testing.T) {
	a := newPgPrimary(t, "a", PostgresConfig{})
	// In postgresql.conf, not -o: pg_rewind's single-user crash recovery
	// reads the file, and would record wal_log_hints=on in pg_control.
	f, err := os.OpenFile(filepath.Join(a.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("wal_log_hints = off\n")
	f.Close()
	a.boot()
	a.exec("CREATE TABLE t (n bigint PRIMARY KEY)")
	b := newPgNode(t, "b")
	mustRun(t, b.as, b.binPath("pg_basebackup"), "-d", a.tcpDSN(), "-D", b.data, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	b.resource(PostgresConfig{})
	b.boot()
	waitStandby(t, a, b)
	a.exec("INSERT INTO t VALUES (1)")
	a.crash()
	if err := b.res.Start(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	b.exec("INSERT INTO t VALUES (2)")
	err = a.res.Rejoin(ctx30(t), b.tcpDSN())
	if err == nil || !strings.Contains(err.Error(), "pg_basebackup -D "+a.data) || !strings.Contains(err.Error(), "wal_log_hints") {
		t.Fatalf("Rejoin without wal_log_hints: %v, want a pg_rewind error with the manual re-clone step", err)
	}
	if _, serr := os.Stat(filepath.Join(a.data, "standby.signal")); serr == nil {
		t.Fatal("a failed Rejoin left standby.signal behind")
	}
	t.Logf("refused as expected: %v", err)
}
