package e2emysql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/dbtest"
)

// TestRejoinOldPrimaryAndMoveBack: node1 crashes and node2 takes over, as
// in TestCrashPromotesReplica (the client pauses across the crash itself,
// see below). node1 comes back (links up, mariadbd
// restarted read-only as its configuration should say, agent started) and
// `harules database rejoin db --primary repl:...@tcp(node2)/` makes it a
// read-only GTID replica of node2: both replica threads run, and the rows
// the client keeps writing through the VIP arrive on node1. Then `harules
// move web node1` moves the group back: node2 is fenced read-only, node1
// catches up with it and is promoted. No row acknowledged in the whole
// run (node1, node2, node1 again) is missing on node1, and there were
// never two writable servers nor the VIP on two nodes.
func TestRejoinOldPrimaryAndMoveBack(t *testing.T) {
	l := newMyLab(t, semiSync)
	own := l.c.StartSampler(20 * time.Millisecond)
	roles := l.startRoleSampler(50 * time.Millisecond)
	w := l.startWriter()
	start := time.Now()
	l.waitFor(30*time.Second, "the client has 50 inserts acknowledged by node1", func() bool {
		return w.AcksFrom("node1", start) >= 50
	}, w.Failures)

	// No insert is in flight at the crash: with AFTER_SYNC such a commit
	// is in node1's binlog before node2 acknowledges it, and node1's crash
	// recovery keeps it (MariaDB 10.11 here, even restarted with
	// rpl_semi_sync_slave_enabled=ON): an unacknowledged transaction node2
	// lacks, which the rejoin rightly refuses (about every other run under
	// load; TestMariaDBRejoinRefusesErrantTransactions in
	// builtins/database covers the refusal).
	resume := w.Pause()
	crashAt := l.c.Crash("node1")
	resume()
	l.waitFor(40*time.Second, "the client has 20 inserts acknowledged by node2 after the crash", func() bool {
		return w.AcksFrom("node2", crashAt) >= 20
	}, w.Failures)
	l.c.WaitOwner("node2", group, "node2", 30*time.Second)

	// node1 reboots: its server comes back read-only (configure
	// read_only=ON on every node: a restarted old primary must not take
	// writes), then its agent.
	l.c.Recover("node1")
	l.waitFor(15*time.Second, "node1's crashed mariadbd has exited", func() bool { return l.serverPID("node1") == 0 })
	l.startServer("node1", "--read-only=ON")
	l.c.Start("node1")
	if ro, err := l.readOnly("node1"); err != nil || !ro {
		t.Fatalf("node1's restarted server: read_only %v (%v); it must come back read-only", ro, err)
	}
	if rep, err := l.isReplica("node1"); err != nil || rep {
		t.Fatalf("node1's restarted server is a replica already (%v, %v); the rejoin would prove nothing", rep, err)
	}

	primary := fmt.Sprintf("%s:%s@tcp(%s:%d)/?timeout=2s", replUser, replPassword, clustertest.LanAddr(2), dbPort)
	out, err := l.c.Lab.Exec("node1", l.c.Bin, "database", "rejoin", "db", "--primary", primary, "--policy", l.c.PolicyPath, "--timeout", "15s")
	if err != nil {
		t.Fatalf("harules database rejoin on node1: %v", err)
	}
	t.Logf("harules database rejoin: %s", strings.TrimSpace(out))
	rejoinedAt := time.Now()
	st, err := l.slaveStatus("node1")
	switch {
	case err != nil:
		t.Fatalf("node1's replica status after the rejoin: %v", err)
	case st == nil:
		t.Fatalf("node1 is no replica after the rejoin")
	case st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes":
		t.Fatalf("node1 after the rejoin: Slave_IO_Running %q, Slave_SQL_Running %q (IO error %q, SQL error %q)",
			st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
	case st["Master_Host"] != clustertest.LanAddr(2) || st["Using_Gtid"] != "Slave_Pos":
		t.Errorf("node1 replicates from %s with Using_Gtid %s; want %s, Slave_Pos", st["Master_Host"], st["Using_Gtid"], clustertest.LanAddr(2))
	}
	if ro, err := l.readOnly("node1"); err != nil || !ro {
		t.Errorf("node1 after the rejoin: read_only %v (%v), want read-only", ro, err)
	}

	// The client's writes on node2 after the rejoin reach node1.
	l.waitFor(30*time.Second, "50 more inserts acknowledged by node2 after the rejoin", func() bool {
		return w.AcksFrom("node2", rejoinedAt) >= 50
	}, w.Failures)
	acked := w.Acks()
	l.waitFor(30*time.Second, "node1 has every row acknowledged so far", func() bool {
		present, err := l.rowsOn("node1")
		return err == nil && len(dbtest.Lost(acked, present)) == 0
	})
	t.Logf("node1 replicates node2: it has all %d rows acknowledged so far, %d of them by node2 after the rejoin",
		len(acked), w.AcksFrom("node2", rejoinedAt))

	moveAt := time.Now()
	if err := l.c.Move("node2", group, "node1"); err != nil {
		t.Fatalf("move back to node1: %v", err)
	}
	l.waitFor(40*time.Second, "the client has 20 inserts acknowledged by node1 after the move back", func() bool {
		return w.AcksFrom("node1", moveAt) >= 20
	}, w.Failures)
	l.c.WaitOwner("node2", group, "node1", 30*time.Second)
	acks := w.Stop()
	samples := roles.Stop()
	ownRep := own.Stop()

	if win, err := writeWindow(acks, moveAt, "node2", "node1"); err != nil {
		t.Errorf("move back: %v", err)
	} else {
		t.Logf("move back to node1: %s", win)
	}
	present, err := l.rowsOn("node1")
	if err != nil {
		t.Fatalf("read the rows on node1: %v", err)
	}
	if missing := dbtest.Lost(acks, present); len(missing) > 0 {
		t.Errorf("%d of %d acknowledged rows are missing on node1 after the move back (first: %v)", len(missing), len(acks), missing[:min(len(missing), 10)])
	} else {
		t.Logf("all %d acknowledged rows (node1, then node2, then node1 again) are on node1: 0 lost", len(acks))
	}
	if !strings.Contains(l.c.Log("node1"), "source is read-only; waiting until its binlog is received and applied") {
		t.Errorf("node1's agent promoted without catching up with the fenced node2")
	}
	if dual := dbtest.DualWritableRounds(samples); len(dual) > 0 {
		t.Errorf("both servers were writable (read_only=0) in sampling rounds %v:%s", dual, roleTimeline(samples))
	}
	if _, ok := dbtest.FirstWritable(samples, "node1", moveAt); !ok {
		t.Errorf("the role sampler never saw node1 writable after the move back:%s", roleTimeline(samples))
	}
	t.Logf("server roles (@@global.read_only from the client namespace, every 50 ms):%s", roleTimeline(samples))
	if d := ownRep.DualPresent(); len(d) > 0 {
		t.Errorf("the VIP was configured on two live nodes at once: %s", ownRep)
	}
	if rep, err := l.isReplica("node1"); err != nil || rep {
		t.Errorf("node1 after the move back: replica %v (%v); its promotion must stop and reset replication", rep, err)
	}
	if ro, err := l.readOnly("node2"); err != nil || !ro {
		t.Errorf("node2 after the move back: read_only %v (%v), want read-only", ro, err)
	}
}
