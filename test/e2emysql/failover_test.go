package e2emysql

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/dbtest"
)

// TestCrashPromotesReplica: node1 loses power (links down, agent and
// mariadbd killed). node2 declares it dead after 5 missed heartbeats of
// 200 ms, promotes its replica and brings up the VIP; the client's writes
// go on there with no acknowledged row lost.
func TestCrashPromotesReplica(t *testing.T) {
	repeat(t, "crash of node1", semiSync, func(l *myLab) time.Time {
		return l.c.Crash("node1")
	}, nil)
}

// TestMariadbdKillMovesGroup: only mariadbd dies on node1 (kill -9); its
// agent lives. The database monitor (or the db-health rule on the mysql
// probe) moves the group to node2, which promotes its replica: zero loss.
func TestMariadbdKillMovesGroup(t *testing.T) {
	repeat(t, "kill -9 of node1's mariadbd", semiSync, func(l *myLab) time.Time {
		pid := l.serverPID("node1")
		if pid == 0 {
			l.t.Fatalf("no running mariadbd on node1")
		}
		at := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			l.t.Fatalf("kill -9 mariadbd %d: %v", pid, err)
		}
		return at
	}, func(l *myLab) {
		if !l.c.Running("node1") {
			l.t.Errorf("node1's agent exited after its mariadbd died; it should have moved the group and kept running")
		}
		if h := l.c.Owners("node1", group); len(h) != 1 || h[0] != "node2" {
			l.t.Errorf("node1's agent sees %s held by %v, want node2", group, h)
		}
		// Which of the two operator safeguards acted first.
		log := l.c.Log("node1")
		l.t.Logf("moved by: resource monitor %v, db-health rule %v",
			strings.Contains(log, "database:db failed on node1"), strings.Contains(log, "mdb failing on node1"))
	})
}

// TestPlannedMove: `harules move web node2`. node1's server is made
// read-only first, node2 receives and applies everything node1 wrote, then
// it is promoted and takes the VIP: zero loss, and node1 stays up
// read-only.
func TestPlannedMove(t *testing.T) {
	repeat(t, "harules move to node2", semiSync, func(l *myLab) time.Time {
		at := time.Now()
		if err := l.c.Move("node1", group, "node2"); err != nil {
			l.t.Fatalf("move: %v", err)
		}
		return at
	}, func(l *myLab) {
		ro, err := l.readOnly("node1")
		if err != nil {
			l.t.Errorf("node1's server after the move: %v (a planned move only makes it read-only)", err)
		} else if !ro {
			l.t.Errorf("node1's server is writable after the move; it must be read-only")
		}
		// The promotion waited for the fenced primary's binlog rather than
		// trusting what the replica happened to have received.
		if log := l.c.Log("node2"); !strings.Contains(log, "source is read-only; waiting until its binlog is received and applied") {
			l.t.Errorf("node2's agent promoted without checking the read-only source's binlog position")
		}
	})
}

// TestPlannedMoveLaggingAsyncReplica: asynchronous replication, and
// node2's IO thread is stopped for a while before the move, so node1 holds
// acknowledged rows node2 never received (a lagging network). The move
// makes node1 read-only; node2's promotion fetches and applies node1's
// binlog up to its final position before it cuts replication: zero loss.
func TestPlannedMoveLaggingAsyncReplica(t *testing.T) {
	repeat(t, "harules move to a lagging asynchronous replica", labOptions{async: true}, func(l *myLab) time.Time {
		l.rootExec("node2", "STOP SLAVE IO_THREAD")
		behind := l.rowCount("node1")
		time.Sleep(500 * time.Millisecond)
		if ahead := l.rowCount("node1"); ahead <= behind {
			l.t.Fatalf("node1 took no writes while node2 was not receiving (%d then %d rows); the test proves nothing", behind, ahead)
		} else {
			l.t.Logf("node1 committed %d+ rows node2 has not received before the move", ahead-behind)
		}
		at := time.Now()
		if err := l.c.Move("node1", group, "node2"); err != nil {
			l.t.Fatalf("move: %v", err)
		}
		return at
	}, func(l *myLab) {
		if log := l.c.Log("node2"); !strings.Contains(log, "source is read-only; waiting until its binlog is received and applied") {
			l.t.Errorf("node2's agent promoted without checking the read-only source's binlog position")
		}
	})
}

// repeat runs failover HARULES_E2EMYSQL_RUNS times (default once) on fresh
// labs and logs the median, minimum and maximum write-unavailability
// window.
func repeat(t *testing.T, what string, opts labOptions, event func(*myLab) time.Time, after func(*myLab)) {
	n := runs(t)
	if n == 1 {
		failover(t, what, opts, event, after)
		return
	}
	var gaps, fromEvent []time.Duration
	var lostRows int
	for i := 1; i <= n; i++ {
		t.Run(fmt.Sprintf("run%d", i), func(t *testing.T) {
			w, lost := failover(t, what, opts, event, after)
			gaps = append(gaps, w.Gap())
			fromEvent = append(fromEvent, w.FromEvent())
			lostRows += lost
		})
	}
	if len(gaps) == 0 {
		return
	}
	g := dbtest.Sorted(gaps)
	t.Logf("%s, %d runs: write-unavailability window median %s, min %s, max %s (all %v); event to first write on the new primary median %s (all %v); acknowledged rows lost in all runs: %d",
		what, len(gaps), dbtest.Median(gaps).Round(time.Millisecond), g[0].Round(time.Millisecond), g[len(g)-1].Round(time.Millisecond),
		rounded(gaps), dbtest.Median(fromEvent).Round(time.Millisecond), rounded(fromEvent), lostRows)
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// failover builds a lab, writes through the VIP, runs event against node1
// and checks the takeover by node2: writes acknowledged by node2's server
// on the VIP, every acknowledged row on it, node2 no longer a replica,
// never two writable servers nor the VIP on two nodes. It returns the
// window and the number of acknowledged rows missing on node2.
func failover(t *testing.T, what string, opts labOptions, event func(*myLab) time.Time, after func(*myLab)) (window, int) {
	l := newMyLab(t, opts)
	own := l.c.StartSampler(20 * time.Millisecond)
	roles := l.startRoleSampler(50 * time.Millisecond)
	w := l.startWriter()
	start := time.Now()
	l.waitFor(30*time.Second, "the client has 50 inserts acknowledged by node1", func() bool {
		return w.AcksFrom("node1", start) >= 50
	}, w.Failures)
	// Let the samplers see the steady state before the event and after
	// the takeover, so "never two writable servers" rests on enough
	// samples.
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))

	at := event(l)
	l.waitFor(40*time.Second, "the client has 20 inserts acknowledged by node2 through the VIP", func() bool {
		return w.AcksFrom("node2", at) >= 20
	}, w.Failures)
	time.Sleep(time.Until(w.FirstFrom("node2", at).Add(time.Second)))
	l.c.WaitOwner("node2", group, "node2", 30*time.Second)
	acks := w.Stop()
	samples := roles.Stop()
	ownRep := own.Stop()
	if after != nil {
		after(l)
	}

	win, err := writeWindow(acks, at, "node1", "node2")
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	failed, lastErr := w.Failures()
	t.Logf("%s: %s; %d inserts acknowledged, %d failed (last error: %s)", what, win, len(acks), failed, lastErr)

	present, err := l.rowsOn("node2")
	if err != nil {
		t.Fatalf("read the rows on node2: %v", err)
	}
	missing := dbtest.Lost(acks, present)
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d acknowledged rows are missing on the new primary (first: %v)", what, len(missing), len(acks), missing[:min(len(missing), 10)])
	} else {
		t.Logf("%s: all %d acknowledged rows are on node2 (it has %d rows): 0 lost", what, len(acks), len(present))
	}

	if dual := dbtest.DualWritableRounds(samples); len(dual) > 0 {
		t.Errorf("%s: both servers were writable (read_only=0) in sampling rounds %v:%s", what, dual, roleTimeline(samples))
	}
	if _, ok := dbtest.FirstWritable(samples, "node1", start); !ok {
		t.Errorf("the role sampler never saw node1 writable before the event; it proves nothing:%s", roleTimeline(samples))
	}
	if _, ok := dbtest.FirstWritable(samples, "node2", at); !ok {
		t.Errorf("the role sampler never saw node2 writable after the event:%s", roleTimeline(samples))
	}
	t.Logf("server roles (@@global.read_only from the client namespace, every 50 ms):%s", roleTimeline(samples))
	for _, smp := range ownRep.Samples {
		if !smp.At.Before(at) && smp.State["node2"] == clustertest.VIPServing {
			t.Logf("%s: the VIP was up on node2 %s after the event", what, smp.At.Sub(at).Round(time.Millisecond))
			break
		}
	}
	if d := ownRep.DualPresent(); len(d) > 0 {
		t.Errorf("%s: the VIP was configured on two live nodes at once: %s", what, ownRep)
	}
	if len(ownRep.Samples) < 10 || len(samples) < 20 {
		t.Errorf("the samplers barely ran (%d VIP samples, %d role samples)", len(ownRep.Samples), len(samples))
	}

	if replica, err := l.isReplica("node2"); err != nil {
		t.Errorf("node2's replication status after the takeover: %v", err)
	} else if replica {
		t.Errorf("node2 still has a replication configuration after its promotion; the replica must be stopped and reset")
	}
	return win, len(missing)
}
