package e2e

import (
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// TestPartitionHealClientOutage: node1 (the holder) is cut off at layer 2
// (both ports detached from their bridges; its carriers stay up, so it
// keeps the VIP) while both agents run at 100 ms heartbeats. node2 declares
// node1 dead and takes over; clients follow node2. When the ports are back
// one node keeps the group and the other releases it. The releasing node
// must never announce the VIP after the keeper did, and clients must reach
// the keeper within a few hundred milliseconds of the heal (the keeper
// announces after the release; the releasing node makes sure its
// heartbeats reach the keeper at once).
func TestPartitionHealClientOutage(t *testing.T) {
	t.Run("two paths", func(t *testing.T) { healOutage(t, clustertest.Options{}) })
	// With one heartbeat path, the node that hears the other first can
	// only answer once its kernel resolves the peer's address again.
	lanOnly := clustertest.Policy(2, clustertest.PolicyOptions{ServiceName: fmt.Sprintf("app-heal%d", os.Getpid())})
	lanOnly = regexp.MustCompile(`(?m)^heartbeat\("backnet".*\n`).ReplaceAllString(lanOnly, "")
	lanOnly = regexp.MustCompile(`, addresses = \{"backnet": "[0-9.]+"\}`).ReplaceAllString(lanOnly, "")
	t.Run("lan only", func(t *testing.T) { healOutage(t, clustertest.Options{PolicyText: lanOnly}) })
}

func healOutage(t *testing.T, opts clustertest.Options) {
	c := startCluster(t, opts)
	o := carrierObservers(t, c)

	c.Unplug("node1", "eth0", true)
	c.Unplug("node1", "eth1", true)
	waitAnswers(t, c, o, "node2", 5, 30*time.Second)
	c.WaitFor(10*time.Second, "node2 holds the group", func() bool {
		h := c.Owners("node2", clustertest.Group)
		return len(h) == 1 && h[0] == "node2"
	})
	// Let the neighbour entries of both nodes for each other fail, as in a
	// real partition that lasts.
	time.Sleep(3 * time.Second)

	healAt := time.Now()
	c.Unplug("node1", "eth0", false)
	c.Unplug("node1", "eth1", false)
	owner := waitSingleHolder(t, c)
	time.Sleep(3 * time.Second)
	ob := o.stop()
	other := "node1"
	if owner == "node1" {
		other = "node2"
	}

	// Client outage after the heal: runs of requests that got no answer.
	_, after := splitAt(ob.samples, healAt)
	var outage, longest time.Duration
	var runStart time.Time
	for _, s := range after {
		bad := s.Node == ""
		switch {
		case bad && runStart.IsZero():
			runStart = s.At
		case !bad && !runStart.IsZero():
			outage += s.At.Sub(runStart)
			longest = max(longest, s.At.Sub(runStart))
			runStart = time.Time{}
		}
	}
	if !runStart.IsZero() {
		t.Errorf("clients still do not reach %s at the end: %s", owner, clustertest.Summary(after))
	}
	// Announcements after the heal: the releasing node must not announce
	// after the keeper's first one.
	var keeperFirst time.Time
	var late []time.Time
	for _, r := range ob.arp.Replies {
		if !r.Gratuitous || r.At.Before(healAt) {
			continue
		}
		if r.Node == owner && keeperFirst.IsZero() {
			keeperFirst = r.At
		}
		if r.Node == other && !keeperFirst.IsZero() {
			late = append(late, r.At)
		}
	}
	t.Logf("heal at %s: %s kept the group; client outage %s in all, longest %s; %s announced %d times after %s's first announcement (%s); answers after the heal: %s",
		healAt.Format("15:04:05.000"), owner, outage.Round(time.Millisecond), longest.Round(time.Millisecond), other, len(late), owner,
		keeperFirst.Format("15:04:05.000"), clustertest.Summary(after))
	if len(late) > 0 {
		t.Errorf("%s, which gave the VIP up, announced it %d times after the keeper %s did (first at %s)", other, len(late), owner, late[0].Format("15:04:05.000"))
	}
	if keeperFirst.IsZero() && owner == "node1" {
		t.Errorf("node1 kept the VIP but never announced it after the heal; clients had learnt node2's MAC")
	}
	if longest > 500*time.Millisecond {
		t.Errorf("clients got no answer from %s for %s after the heal (> 500ms)", owner, longest)
	}
}
