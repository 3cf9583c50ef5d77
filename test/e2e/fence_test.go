package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestFencingHookRunsBeforeTakeover: with cluster(fence=...), node2 runs the
// fence command against node1 once node1 is declared dead, and only then
// takes the group over. While the fence command fails, nothing is taken
// over: the VIP stays unserved rather than risk two owners.
func TestFencingHookRunsBeforeTakeover(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "fence.log")
	allow := filepath.Join(dir, "fence-ok")
	// The fence "device": it logs each call and succeeds only once allowed.
	script := filepath.Join(dir, "fence.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $HARULES_FENCE_NODE\" >> "+log+"\n[ -e "+allow+" ]\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := clustertest.New(t, clustertest.Options{})
	text := c.Policy(clustertest.PolicyOptions{})
	text = strings.Replace(text, `secret_file = "secret")`, `secret_file = "secret", fence = ["`+script+`"], fence_timeout = "5s")`, 1)
	c.WritePolicy(text)
	c.StartApps()
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitOwner("node2", clustertest.Group, "node1", 10*time.Second)

	c.Crash("node1")
	c.WaitFor(20*time.Second, "node2 tries to fence node1", func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "node1 node1")
	})
	// The fence fails: node2 must not take over.
	time.Sleep(2 * time.Second)
	if holders := c.VIPHolders(); len(holders) != 0 {
		t.Fatalf("the VIP is on %v although fencing node1 failed", holders)
	}
	if err := os.WriteFile(allow, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 20*time.Second)
	c.WaitFor(10*time.Second, "node2 holds the VIP after fencing node1", func() bool {
		h := c.VIPHolders()
		return len(h) == 1 && h[0] == "node2"
	})
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "node1 node1"); n < 2 {
		t.Errorf("fence command ran %d times; want the failed attempts and the successful one", n)
	}
}
