package e2edisk

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/clustertest"
)

// statusAnswerBound is how long `harules status` may take to answer while
// the agent waits for a lease: generous, the point is that it answers.
const statusAnswerBound = 10 * time.Second

// loopWatch is what an operator saw on the node taking over while its disk
// start waited for the dead holder's lease.
type loopWatch struct {
	polls   int
	slowest time.Duration
	// waiting are the statuses that showed the group waiting for the lease.
	waiting []*agent.Status
	// The control request sent when the wait first showed.
	controlSent, controlDone time.Time
	controlErr               error
}

// awaitMountWatchingLoop waits until node has the disk mounted, asking
// `harules status --json` all the while. When the group first shows
// waiting for the lease, it also sends a control request through node's
// loop (`harules online NODE`: node is online already, so it changes
// nothing but goes through the loop like a move).
func (l *diskLab) awaitMountWatchingLoop(node string, timeout time.Duration) *loopWatch {
	l.t.Helper()
	w := &loopWatch{}
	type reply struct {
		err error
		at  time.Time
	}
	control := make(chan reply, 1)
	deadline := time.Now().Add(timeout)
	for !l.mounted(node) {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %s waiting until %s mounted the disk", timeout, node)
		}
		st, took, err := l.statusCLI(node)
		w.polls++
		w.slowest = max(w.slowest, took)
		if err != nil {
			if l.mounted(node) {
				break
			}
			l.t.Fatalf("harules status --json on %s during the takeover (answer %d, after %s): %v", node, w.polls, took.Round(time.Millisecond), err)
		}
		if g := groupStatus(st, clustertest.Group); g != nil && strings.Contains(g.Wait, "lease") {
			w.waiting = append(w.waiting, st)
			if w.controlSent.IsZero() {
				w.controlSent = time.Now()
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), statusAnswerBound)
					defer cancel()
					out, err := exec.CommandContext(ctx, l.c.Bin, "online", "--control", l.c.ControlSocket(node), node).CombinedOutput()
					if err != nil {
						err = fmt.Errorf("%w: %s", err, out)
					}
					control <- reply{err, time.Now()}
				}()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !w.controlSent.IsZero() {
		select {
		case r := <-control:
			w.controlErr, w.controlDone = r.err, r.at
		case <-time.After(statusAnswerBound):
			w.controlErr, w.controlDone = fmt.Errorf("no answer within %s", statusAnswerBound), time.Now()
		}
	}
	return w
}

// statusCLI runs `harules status --json` against node's control socket.
func (l *diskLab) statusCLI(node string) (*agent.Status, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusAnswerBound)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, l.c.Bin, "status", "--json", "--control", l.c.ControlSocket(node)).Output()
	took := time.Since(start)
	if err != nil {
		return nil, took, fmt.Errorf("no answer within %s: %w", statusAnswerBound, err)
	}
	var st agent.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, took, fmt.Errorf("status is not JSON: %w: %.200s", err, out)
	}
	return &st, took, nil
}

func groupStatus(st *agent.Status, group string) *agent.GroupStatus {
	for i := range st.Groups {
		if st.Groups[i].Name == group {
			return &st.Groups[i]
		}
	}
	return nil
}

// lastSeen is when st's node last heard peer on path.
func lastSeen(st *agent.Status, peer, path string) (time.Time, string) {
	for _, n := range st.Nodes {
		if n.Name != peer {
			continue
		}
		for _, p := range n.Paths {
			if p.Name == path {
				return p.LastSeen, n.State
			}
		}
		return time.Time{}, n.State
	}
	return time.Time{}, ""
}

// checkLoopDuringWait asserts that node2's loop kept running while its
// disk start waited for node1's lease (node1 crashed at crashAt; node2
// mounted at mountAt): status showed the group waiting, with the reason,
// from more than one decision; the control request was applied during the
// wait; and with a third node, node3's heartbeats kept being counted and
// node3 was never taken for dead.
func (l *diskLab) checkLoopDuringWait(w *loopWatch, crashAt, mountAt time.Time) {
	l.t.Helper()
	t := l.t
	decisions := map[time.Time]bool{}
	for _, st := range w.waiting {
		decisions[st.Now] = true
	}
	t.Logf("during the lease wait: %d status answers (slowest %s), %d showed %s waiting, from %d decisions; control request answered after %s",
		w.polls, w.slowest.Round(time.Millisecond), len(w.waiting), clustertest.Group, len(decisions), w.controlDone.Sub(w.controlSent).Round(time.Millisecond))
	if len(w.waiting) == 0 {
		t.Fatalf("in %d status answers during the takeover, node2 never showed %s waiting for node1's lease: its loop was blocked in the disk start", w.polls, clustertest.Group)
	}
	if wait := groupStatus(w.waiting[0], clustertest.Group).Wait; !strings.Contains(wait, "node1") || !strings.Contains(wait, "lease") || !strings.Contains(wait, "left") {
		t.Errorf("the group's wait does not name node1's lease and the time left: %q", wait)
	} else {
		t.Logf("status during the wait: %s: %s", clustertest.Group, wait)
	}
	if len(decisions) < 2 {
		t.Errorf("status showed the lease wait from %d decision(s) only: the loop did not decide again while it waited", len(decisions))
	}
	if w.controlErr != nil {
		t.Errorf("harules online node2, sent during the lease wait: %v", w.controlErr)
	}
	final := l.c.MustStatus("node2")
	var applied time.Time
	for _, r := range final.Recent {
		if r.Kind == engine.RecEvent && r.Text == "operator: online node2" && !r.At.Before(crashAt) {
			applied = r.At
		}
		if r.Kind == engine.RecPeer && r.Peer != "node1" && r.State == "dead" && r.At.After(crashAt) {
			t.Errorf("node2 declared %s dead during the takeover (%s): its heartbeats were not read while the disk start waited", r.Peer, r.At.Format("15:04:05.000"))
		}
	}
	switch {
	case applied.IsZero():
		t.Errorf("node2's records have no \"operator: online node2\" after the crash: the control request was not applied")
	case w.controlSent.Before(mountAt.Add(-1500*time.Millisecond)) && applied.After(mountAt):
		// Sent with more than 1.5 s of the wait left: a loop that keeps
		// running applies it within milliseconds.
		t.Errorf("the control request sent at %s was applied at %s, after the disk was mounted (%s): it waited for the lease wait to end",
			w.controlSent.Format("15:04:05.000"), applied.Format("15:04:05.000"), mountAt.Format("15:04:05.000"))
	}
	if len(l.c.Nodes()) < 3 {
		return
	}
	first, _ := lastSeen(w.waiting[0], "node3", "lan")
	last, _ := lastSeen(w.waiting[len(w.waiting)-1], "node3", "lan")
	for _, st := range w.waiting {
		if _, state := lastSeen(st, "node3", "lan"); state != "alive" {
			t.Errorf("at %s node2 saw node3 %q during the lease wait, want alive", st.Now.Format("15:04:05.000"), state)
		}
	}
	if len(decisions) >= 2 && !last.After(first) {
		t.Errorf("node3's last heartbeat on lan as node2 shows it stayed at %s through the lease wait: heartbeats were not counted", first.Format("15:04:05.000"))
	}
}
