package database

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func mariaPosition(t *testing.T, m *mariaNode) Position {
	t.Helper()
	pos, err := m.res.Position(context.Background())
	if err != nil {
		t.Fatalf("%s: Position: %v", m.dir, err)
	}
	return pos
}

// MariaDB: a replica that stopped replicating while the primary wrote on
// is refused promotion (ErrBehindPeer, compared per GTID domain) and
// replicates again; once it has caught up it is promoted; the old primary,
// read-only and behind the new primary's reported GTIDs, is refused
// becoming writable, and accepted with a position it has.
func TestMariaDBStartRefusesPositionBehindPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := mariaPair(t)
	aOld := mariaPosition(t, a)
	if !strings.HasPrefix(aOld.GTID, "0-1-") {
		t.Fatalf("a's position %v: want a GTID of domain 0, server 1", aOld)
	}

	b.mustExec("STOP SLAVE")
	insert(t, a, 51, 60)
	aNew := mariaPosition(t, a)
	err := b.res.StartWith(ctx, StartInfo{Peers: map[string]Position{"a": aNew}})
	if !errors.Is(err, ErrBehindPeer) || !strings.Contains(err.Error(), "refusing to promote") ||
		!strings.Contains(err.Error(), "a's last reported "+aNew.String()) {
		t.Fatalf("Start on a replica behind a's last report: %v, want ErrBehindPeer naming a's position %v", err, aNew)
	}
	t.Logf("refused as expected: %v", err)
	if !b.readOnly(t) {
		t.Fatal("a refused replica was made writable")
	}
	// It replicates again: it receives a's rows 51..60.
	waitRows(t, b, 60)

	// Caught up: a's last report is no reason to refuse.
	if err := a.res.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.res.StartWith(ctx, StartInfo{Peers: map[string]Position{"a": mariaPosition(t, a)}}); err != nil {
		t.Fatalf("Start on a replica that has a's last report: %v", err)
	}
	insert(t, b, 61, 70)
	bNew := mariaPosition(t, b)

	// The old primary lacks b's transactions 61..70.
	err = a.res.StartWith(ctx, StartInfo{Peers: map[string]Position{"b": bNew}})
	if !errors.Is(err, ErrBehindPeer) || !strings.Contains(err.Error(), "refusing to make it writable") {
		t.Fatalf("Start of the stale old primary: %v, want ErrBehindPeer", err)
	}
	t.Logf("refused as expected: %v", err)
	if !a.readOnly(t) {
		t.Fatal("the refused old primary was made writable")
	}
	if err := a.res.StartWith(ctx, StartInfo{Peers: map[string]Position{"b": mariaPosition(t, a)}}); err != nil {
		t.Fatalf("Start with a peer at the same position: %v", err)
	}
	if a.readOnly(t) {
		t.Fatal("accepted Start left the server read-only")
	}
}
