package e2emysql

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestStalePrimaryRefused: node1 crashes and node2 is promoted and takes
// writes. node1 comes back (its server restarted read-only, not a
// replica: nobody ran the rejoin), its agent hears node2 (the holder, with
// node2's GTID position in its heartbeats), then node2 crashes. node1
// takes over, but its start of the database compares node1's server with
// node2's last reported position and refuses: node1 must stay read-only
// rather than serve without node2's transactions.
func TestStalePrimaryRefused(t *testing.T) {
	l := newMyLab(t, semiSync)
	for i := 1; i <= 20; i++ {
		l.rootExec("node1", fmt.Sprintf("INSERT INTO appdb.writes (n) VALUES (%d)", i))
	}
	l.waitFor(30*time.Second, "node2 has node1's 20 rows", func() bool { return l.rowCount("node2") == 20 })
	l.c.Crash("node1")
	l.c.WaitOwner("node2", group, "node2", 30*time.Second)
	for i := 21; i <= 40; i++ {
		l.rootExec("node2", fmt.Sprintf("INSERT INTO appdb.writes (n) VALUES (%d)", i))
	}

	l.c.Recover("node1")
	l.waitFor(15*time.Second, "node1's crashed mariadbd has exited", func() bool { return l.serverPID("node1") == 0 })
	l.startServer("node1", "--read-only=ON")
	l.c.Start("node1")
	// Seeing node2 as the holder, node1 has read node2's report, which
	// carries node2's position (observed every second since it started).
	l.c.WaitOwner("node1", group, "node2", 30*time.Second)
	time.Sleep(time.Second)

	l.c.Crash("node2")
	// Until the refusal and for 3 s after it, node1's server must stay
	// read-only.
	var refused time.Time
	deadline := time.Now().Add(60 * time.Second)
	for refused.IsZero() || time.Since(refused) < 3*time.Second {
		if refused.IsZero() && strings.Contains(l.c.Log("node1"), "refusing to make it writable") {
			refused = time.Now()
		}
		if ro, err := l.readOnly("node1"); err == nil && !ro {
			t.Fatalf("node1 was made writable without node2's transactions (it has %d of node2's 40 rows)", l.rowCount("node1"))
		}
		if refused.IsZero() && time.Now().After(deadline) {
			t.Fatalf("node1 neither refused nor became writable in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h := l.c.Owners("node1", group); len(h) != 0 {
		t.Errorf("node1 reports %s held by %v, want nobody", group, h)
	}
	log := l.c.Log("node1")
	i := strings.Index(log, "refusing to make it writable")
	t.Logf("node1: ...%s", log[max(0, i-200):min(len(log), i+300)])
}
