package e2epg

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/dbtest"
)

// TestCrashPromotesStandby: node1 loses power (links down, agent and
// PostgreSQL killed). node2 declares it dead after 5 missed heartbeats of
// 200 ms, promotes its synchronous standby and brings up the VIP; the
// client's writes go on there with no acknowledged row lost.
func TestCrashPromotesStandby(t *testing.T) {
	repeat(t, "crash of node1", func(l *pgLab) time.Time {
		return l.c.Crash("node1")
	}, nil)
}

// TestPostmasterKillMovesGroup: only PostgreSQL dies on node1 (kill -9 of
// the postmaster); its agent lives. The database monitor (or the
// db-health rule on the postgres probe) moves the group to node2, which
// promotes its standby: zero loss.
func TestPostmasterKillMovesGroup(t *testing.T) {
	repeat(t, "kill -9 of node1's postmaster", func(l *pgLab) time.Time {
		pid := l.postmasterPID("node1")
		at := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			l.t.Fatalf("kill -9 postmaster %d: %v", pid, err)
		}
		return at
	}, func(l *pgLab) {
		if !l.c.Running("node1") {
			l.t.Errorf("node1's agent exited after its PostgreSQL died; it should have moved the group and kept running")
		}
		if h := l.c.Owners("node1", group); len(h) != 1 || h[0] != "node2" {
			l.t.Errorf("node1's agent sees %s held by %v, want node2", group, h)
		}
		// Which of the two operator safeguards acted first.
		log := l.c.Log("node1")
		l.t.Logf("moved by: resource monitor %v, db-health rule %v",
			strings.Contains(log, "database:db failed on node1"), strings.Contains(log, "pg failing on node1"))
	})
}

// TestPlannedMove: `harules move web node2`. node1's primary gets a fast
// shutdown (its last commits reach the synchronous standby first), then
// node2 is promoted and takes the VIP: zero loss.
func TestPlannedMove(t *testing.T) {
	repeat(t, "harules move to node2", func(l *pgLab) time.Time {
		at := time.Now()
		if err := l.c.Move("node1", group, "node2"); err != nil {
			l.t.Fatalf("move: %v", err)
		}
		return at
	}, func(l *pgLab) {
		var rec bool
		if err := l.query("node1", "SELECT pg_is_in_recovery()", &rec); err == nil {
			l.t.Errorf("node1's server still answers after the move (in recovery: %v); the old primary must be stopped", rec)
		}
	})
}

// repeat runs failover HARULES_E2EPG_RUNS times (default once) on fresh
// labs and logs the median write-unavailability window.
func repeat(t *testing.T, what string, event func(*pgLab) time.Time, after func(*pgLab)) {
	n := runs(t)
	if n == 1 {
		failover(t, what, event, after)
		return
	}
	var gaps, fromEvent []time.Duration
	for i := 1; i <= n; i++ {
		t.Run(fmt.Sprintf("run%d", i), func(t *testing.T) {
			w := failover(t, what, event, after)
			gaps = append(gaps, w.Gap())
			fromEvent = append(fromEvent, w.FromEvent())
		})
	}
	t.Logf("%s, %d runs: write-unavailability window median %s (all %v); event to first write on the new primary median %s (all %v)",
		what, len(gaps), dbtest.Median(gaps).Round(time.Millisecond), rounded(gaps), dbtest.Median(fromEvent).Round(time.Millisecond), rounded(fromEvent))
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
// on the VIP, every acknowledged row on it, never two writable primaries
// nor the VIP on two nodes.
func failover(t *testing.T, what string, event func(*pgLab) time.Time, after func(*pgLab)) window {
	l := newPgLab(t)
	own := l.c.StartSampler(20 * time.Millisecond)
	roles := l.startRoleSampler(50 * time.Millisecond)
	w := l.startWriter()
	start := time.Now()
	l.waitFor(30*time.Second, "the client has 50 inserts acknowledged by node1", func() bool {
		return w.AcksFrom("node1", start) >= 50
	})
	// Let the samplers see the steady state before the event and after
	// the takeover, so "never two primaries" rests on enough samples.
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))

	at := event(l)
	l.waitFor(60*time.Second, "the client has 20 inserts acknowledged by node2 through the VIP", func() bool {
		return w.AcksFrom("node2", at) >= 20
	})
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
	if missing := dbtest.Lost(acks, present); len(missing) > 0 {
		t.Errorf("%s: %d of %d acknowledged rows are missing on the new primary (first: %v)", what, len(missing), len(acks), missing[:min(len(missing), 10)])
	} else {
		t.Logf("%s: all %d acknowledged rows are on node2 (it has %d rows): 0 lost", what, len(acks), len(present))
	}

	if dual := dbtest.DualWritableRounds(samples); len(dual) > 0 {
		t.Errorf("%s: both servers said they were writable primaries in sampling rounds %v:%s", what, dual, roleTimeline(samples))
	}
	if _, ok := dbtest.FirstWritable(samples, "node1", start); !ok {
		t.Errorf("the role sampler never saw node1 as primary before the event; it proves nothing:%s", roleTimeline(samples))
	}
	if _, ok := dbtest.FirstWritable(samples, "node2", at); !ok {
		t.Errorf("the role sampler never saw node2 as primary after the event:%s", roleTimeline(samples))
	}
	t.Logf("server roles (from the client namespace, every 50 ms):%s", roleTimeline(samples))
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

	var names string
	if err := l.query("node2", "SELECT current_setting('synchronous_standby_names')", &names); err != nil {
		t.Errorf("node2's server after the takeover: %v", err)
	} else if names != "" {
		t.Errorf("node2 has synchronous_standby_names=%q with no standby; on_promote_sync=\"clear\" should have cleared it", names)
	}
	return win
}
