package e2epg

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestStalePrimaryRefused: node1 crashes and node2 is promoted (timeline
// 2) and takes writes. node1 comes back (its server still stopped on
// timeline 1), its agent hears node2 (holder, with node2's database
// position in its heartbeats), then node2 crashes. node1 takes over, but
// its start of the database compares node1's server with node2's last
// reported position and refuses: node1 must never serve its stale
// timeline as a primary, and the server the start brought up is shut down
// again.
func TestStalePrimaryRefused(t *testing.T) {
	l := newPgLab(t)
	for i := int64(1); i <= 20; i++ {
		if err := l.exec("node1", fmt.Sprintf("INSERT INTO rows (n) VALUES (%d)", i)); err != nil {
			t.Fatal(err)
		}
	}
	l.c.Crash("node1")
	l.c.WaitOwner("node2", group, "node2", 30*time.Second)
	l.waitServer("node2", false)
	for i := int64(21); i <= 40; i++ {
		if err := l.exec("node2", fmt.Sprintf("INSERT INTO rows (n) VALUES (%d)", i)); err != nil {
			t.Fatal(err)
		}
	}

	l.c.Recover("node1")
	l.c.Start("node1")
	// Seeing node2 as the holder, node1 has read node2's report, which
	// carries node2's position (observed every second since it started).
	l.c.WaitOwner("node1", group, "node2", 30*time.Second)
	time.Sleep(time.Second)

	l.c.Crash("node2")
	// Until the refusal and for 3 s after it, node1's server must never
	// answer as a primary.
	var refused time.Time
	deadline := time.Now().Add(60 * time.Second)
	for refused.IsZero() || time.Since(refused) < 3*time.Second {
		if refused.IsZero() && strings.Contains(l.c.Log("node1"), "refusing to start as primary") {
			refused = time.Now()
		}
		var rec bool
		if err := l.query("node1", "SELECT pg_is_in_recovery()", &rec); err == nil && !rec {
			var n int
			_ = l.query("node1", "SELECT count(*) FROM rows", &n)
			t.Fatalf("node1 serves as a primary on its stale timeline (%d of node2's 40 rows)", n)
		}
		if refused.IsZero() && time.Now().After(deadline) {
			t.Fatalf("node1 neither refused nor started its stale server in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h := l.c.Owners("node1", group); len(h) != 0 {
		t.Errorf("node1 reports %s held by %v, want nobody", group, h)
	}
	log := l.c.Log("node1")
	i := strings.Index(log, "refusing to start as primary")
	t.Logf("node1: ...%s", log[max(0, i-200):min(len(log), i+300)])
}
