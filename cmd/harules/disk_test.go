package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/internal/clustertest"
)

// TestDiskClear: the operator override releases the lease of a node that
// stopped renewing, and refuses while the node still renews (alive).
func TestDiskClear(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
			t.Skip("SKIPPING: needs root for loop devices (HARULES_SKIP_ROOT_TESTS=1)")
		}
		t.Fatal("TestDiskClear needs root (loop devices); run the suite as root")
	}
	dev := clustertest.LoopDevice(t, 64<<20)
	timing := disk.Timing{Lease: 2 * time.Second, Renew: 300 * time.Millisecond, Margin: 500 * time.Millisecond,
		IOTimeout: 500 * time.Millisecond, Settle: 100 * time.Millisecond}
	m, err := disk.NewManager(disk.ManagerConfig{Node: "node1", Nodes: []string{"node1", "node2"}, Incarnation: 1, Timing: timing})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, err := m.Lease(ctx, disk.Spec{Device: dev, Mountpoint: "/mnt/unused", FSType: "ext4", Timing: timing})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Acquire(ctx); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	// The manager renews the held lease in the background, like a live node.
	_ = lease

	clear := func() (int, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"harules", "disk", "clear", dev, "--node", "node1", "--reason", "test: node1 powered off", "--watch", "1s"}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	// node1 renews: clearing must be refused.
	if code, out := clear(); code != exitFailed || !strings.Contains(out, "it is alive") {
		t.Fatalf("clear while node1 renews: exit %d, %q; want exit 1 saying it is alive", code, out)
	}
	// node1 "dies": its manager stops renewing (Close does not release:
	// the claim stays, as after a crash).
	m.Close()
	time.Sleep(100 * time.Millisecond)
	code, out := clear()
	if code != exitOK || !strings.Contains(out, "lease of node1 released") {
		t.Fatalf("clear of a silent node1: exit %d, %q", code, out)
	}
	area, err := disk.OpenArea(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer area.Close()
	slots, err := area.ReadSlots(ctx, disk.RegionLease, 1, disk.MaxSlots)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.Node == "node1" && (s.Claim != disk.ClaimNone || !s.Forced) {
			t.Errorf("node1's slot after clear: claim %s forced %v; want none and marked forced", s.Claim, s.Forced)
		}
	}
	// Usage errors.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"harules", "disk", "clear", dev, "--node", "node1"}, &o, &e); code != exitUsage {
		t.Errorf("clear without --reason: exit %d, want %d", code, exitUsage)
	}
}
