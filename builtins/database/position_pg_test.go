package database

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// pgPosition is the position the node would report to its peers.
func pgPosition(t testing.TB, n *pgNode) Position {
	t.Helper()
	pos, err := n.res.Position(ctx30(t))
	if err != nil {
		t.Fatalf("%s: Position: %v", n.name, err)
	}
	return pos
}

// Promotion is idempotent: promote on a server whose promotion already
// finished (a repeated request racing with the end of recovery: PostgreSQL
// answers SQLSTATE 55000 "recovery is not in progress") succeeds instead
// of failing the start of a server that is primary.
func TestPostgresPromoteIsIdempotent(t *testing.T) {
	_, standby := pgPair(t, PostgresConfig{MaxLagBytes: -1})
	ctx := ctx30(t)
	conn, err := pgx.ConnectConfig(ctx, standby.res.conn.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	if err := standby.res.promote(ctx, conn); err != nil {
		t.Fatalf("first promote: %v", err)
	}
	if st := standby.status(); st.Role != RolePrimary {
		t.Fatalf("after promote: %+v, want primary", st)
	}
	// The promotion has finished: a second request gets 55000.
	if err := standby.res.promote(ctx, conn); err != nil {
		t.Fatalf("promote of a server that finished promoting: %v, want success", err)
	}
	// Start on it (already primary) is fine too.
	if err := standby.res.Start(ctx); err != nil {
		t.Fatalf("Start on the promoted server: %v", err)
	}
}

// Start compares this server's position with what peers last reported:
// a standby that stopped streaming while the primary wrote on is refused
// promotion (and stays a standby); with a peer position it has, it is
// promoted; the old primary is then behind the new timeline and refused,
// whether Start has to start it (it is shut down again) or it already
// runs; its own position (equal) or force lets it through.
func TestPostgresStartRefusesPositionBehindPeer(t *testing.T) {
	a, b := pgPair(t, PostgresConfig{MaxLagBytes: -1})
	a.exec("INSERT INTO t (n) VALUES (1)")
	waitFor(t, "row 1 on b", func() (bool, string) { return b.rows()[1], "not yet" })
	aOld := pgPosition(t, a)
	if aOld.Timeline != 1 {
		t.Fatalf("a's position %v: want timeline 1", aOld)
	}

	// b stops streaming; a writes on and reports its own flushed WAL.
	b.exec("ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
	waitFor(t, "b no longer streaming", func() (bool, string) {
		st := b.status()
		return !st.Streaming, fmt.Sprintf("%+v", st)
	})
	a.exec("INSERT INTO t (n) VALUES (2)", "INSERT INTO t (n) VALUES (3)")
	aNew := pgPosition(t, a)
	if !behind(pgPosition(t, b), aNew) {
		t.Fatalf("b at %v should be behind a's %v", pgPosition(t, b), aNew)
	}
	a.crash()
	err := b.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"a": aNew}})
	if !errors.Is(err, ErrBehindPeer) || !strings.Contains(err.Error(), "refusing to promote") ||
		!strings.Contains(err.Error(), "a's last reported "+aNew.String()) {
		t.Fatalf("Start on a standby behind a's last report: %v, want ErrBehindPeer naming a's position %v", err, aNew)
	}
	t.Logf("refused as expected: %v", err)
	if st := b.status(); st.Role != RoleStandby {
		t.Fatalf("a refused standby must stay a standby: %+v", st)
	}

	// What b has (a's earlier report) is no reason to refuse.
	if err := b.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"a": aOld}}); err != nil {
		t.Fatalf("Start on a standby that has a's last report: %v", err)
	}
	b.exec("INSERT INTO t (n) VALUES (4)")
	bNew := pgPosition(t, b)
	if bNew.Timeline != 2 {
		t.Fatalf("promoted b's position %v: want timeline 2", bNew)
	}

	// The old primary a is stopped: Start would bring it up as a primary
	// of timeline 1, which b left. It is refused without being started.
	starts := strings.Count(a.serverLog(), "ready to accept connections")
	err = a.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"b": bNew}})
	a.track()
	if !errors.Is(err, ErrBehindPeer) || !strings.Contains(err.Error(), "refusing to start as primary: ") ||
		!strings.Contains(err.Error(), "timeline 1 (pg_control; not started)") || !strings.Contains(err.Error(), "b's last reported timeline 2 LSN "+bNew.LSN) {
		t.Fatalf("Start of the stale old primary: %v, want ErrBehindPeer (timeline 1 behind b's timeline 2)", err)
	}
	t.Logf("refused as expected: %v", err)
	if a.running() || strings.Count(a.serverLog(), "ready to accept connections") != starts {
		t.Fatal("the stale primary was started")
	}

	// Already running as a primary (started by hand): refused as well.
	a.boot()
	err = a.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"b": bNew}})
	if !errors.Is(err, ErrBehindPeer) {
		t.Fatalf("Start of the running stale primary: %v, want ErrBehindPeer", err)
	}
	if !a.running() {
		t.Fatal("Start stopped a server it did not start")
	}

	// Equal is not behind; neither are older reports.
	aNow := pgPosition(t, a)
	if err := a.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"b": aNow, "c": aOld}}); err != nil {
		t.Fatalf("Start with peers at the same or an older position: %v", err)
	}
	// force lets an operator accept the loss.
	a.res.cfg.Force = true
	if err := a.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"b": bNew}}); err != nil {
		t.Fatalf("Start with force: %v", err)
	}

	// A stopped primary on the peer's timeline but behind its LSN can only
	// be told once it runs: Start starts it, refuses it and shuts it down.
	if err := b.res.Stop(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	lsn, err := ParseLSN(bNew.LSN)
	if err != nil {
		t.Fatal(err)
	}
	ahead := Position{Timeline: 2, LSN: fmt.Sprintf("%X/%X", (lsn+1<<20)>>32, uint32(lsn+1<<20))}
	err = b.res.StartWith(ctx30(t), StartInfo{Peers: map[string]Position{"a": ahead}})
	b.track()
	if !errors.Is(err, ErrBehindPeer) || !strings.Contains(err.Error(), "local timeline 2 LSN") {
		t.Fatalf("Start of a stopped primary behind a's LSN on its timeline: %v, want ErrBehindPeer", err)
	}
	if b.running() {
		t.Fatal("the refused primary Start started was left running")
	}
}

// serverLog is the node's server log (pg_ctl -l).
func (n *pgNode) serverLog() string {
	b, _ := os.ReadFile(n.res.cfg.LogFile)
	return string(b)
}

// A primary with a streaming standby reports what the standby has
// flushed, at most its own flushed WAL.
func TestPostgresPositionOfPrimaryWithStandby(t *testing.T) {
	a, b := pgPair(t, PostgresConfig{MaxLagBytes: -1})
	a.exec("INSERT INTO t (n) VALUES (1)")
	waitFor(t, "the standby's flush reported to a", func() (bool, string) {
		pa, pb := pgPosition(t, a), pgPosition(t, b)
		return !behind(pb, pa), fmt.Sprintf("a %v, b %v", pa, pb)
	})
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, a.res.conn.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	own, err := a.res.localPosition(ctx, conn, RolePrimary)
	if err != nil {
		t.Fatal(err)
	}
	if rep := pgPosition(t, a); behind(own, rep) {
		t.Fatalf("a reports %v, more than its own %v", rep, own)
	}
}
