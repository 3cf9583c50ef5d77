package agent

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/policy"
)

func fencePolicy(argv []string, timeout time.Duration) *policy.Policy {
	p := &policy.Policy{Cluster: policy.Cluster{Name: "c", Fence: argv, FenceTimeout: timeout},
		Nodes: []*policy.Node{{Name: "node1", Address: netip.MustParseAddr("198.51.100.1")}, {Name: "node2"}}}
	p.Index()
	return p
}

func TestFenceRunsTheCommandWithThePeer(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fenced")
	script := `echo "$1 $HARULES_FENCE_NODE $HARULES_FENCE_ADDRESS" > ` + out
	p := fencePolicy([]string{"/bin/sh", "-c", script, "fence"}, 10*time.Second)
	if err := fence(context.Background(), p, "node1"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || strings.TrimSpace(string(got)) != "node1 node1 198.51.100.1" {
		t.Fatalf("fence command saw %q, %v; want the peer as argument and in the environment", got, err)
	}
}

func TestFenceFailureAndTimeout(t *testing.T) {
	p := fencePolicy([]string{"/bin/sh", "-c", "echo no power controller answers >&2; exit 3", "fence"}, 10*time.Second)
	err := fence(context.Background(), p, "node1")
	if err == nil || !strings.Contains(err.Error(), "no power controller answers") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failed fence: got %v, want the exit status and the command's output", err)
	}
	// A hung fence agent (and its child) is killed at the timeout.
	p = fencePolicy([]string{"/bin/sh", "-c", "sleep 30 & wait", "fence"}, 200*time.Millisecond)
	start := time.Now()
	err = fence(context.Background(), p, "node1")
	if err == nil || !strings.Contains(err.Error(), "did not finish within 200ms") {
		t.Errorf("hung fence: got %v, want a timeout error", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the hung fence command held the takeover for %s", took)
	}
}
