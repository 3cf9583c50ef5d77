package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/policy"
)

// healRig drives one agent's heartbeat handling and decisions by hand, on
// a fake clock, with fake resources and recorded VIP announcements.
type healRig struct {
	t    *testing.T
	a    *Agent
	exec *fakeResources
	now  time.Time
	sent []string // VIP announcements, in order
}

func newHealRig(t *testing.T, self string) *healRig {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	src := `load("@stdlib//placement.star", "active_standby")
cluster(name = "heal")
node("node1", address = "198.51.100.1")
node("node2", address = "198.51.100.2")
heartbeat("lan", interval = "100ms", misses = 3, port = 7001)
group("web", resources = [vip("198.51.100.100/24", interface = "eth0")],
      placement = active_standby(["node1", "node2"]))
`
	if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &healRig{t: t, exec: &fakeResources{}, now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	a, err := New(Config{PolicyPath: pol, Node: self, StateDir: filepath.Join(dir, "state"), Logger: quietLogger(),
		Executor: r.exec, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	a.exec = r.exec
	a.node = engine.NewNode(a.policy, self, r.now, engine.NewState(1), r.exec, a.record)
	a.reannounce.send = func(res *policy.Resource) { r.sent = append(r.sent, res.Params["address"]) }
	r.a = a
	return r
}

// beat delivers a heartbeat from peer saying it holds holds, at the rig's
// clock, without deciding.
func (r *healRig) beat(peer string, holds ...string) {
	r.t.Helper()
	rep := engine.Report{Node: peer, Incarnation: 1, PolicyHash: r.a.policy.Hash, Holds: holds}
	b, err := json.Marshal(rep)
	if err != nil {
		r.t.Fatal(err)
	}
	r.a.heartbeat(heartbeat.Received{Message: heartbeat.Message{From: peer, Path: "lan", Incarnation: 1, Payload: b}, Path: "lan", At: r.now})
}

func (r *healRig) step(at time.Duration) {
	r.now = r.now.Add(at)
	r.a.step(context.Background())
}

func (r *healRig) holds() bool {
	_, ok := r.a.node.State.Holds["web"]
	return ok
}

// TestHealReleasingNodeNeverAnnounces: node2 took web over while cut off
// from node1; when node1 is heard again (still holding web), node2 gives
// web up in that very decision. It must not announce the VIP at all:
// clients would follow its MAC to a node without the VIP.
func TestHealReleasingNodeNeverAnnounces(t *testing.T) {
	r := newHealRig(t, "node2")
	r.beat("node1", "web")
	r.step(0)
	r.step(time.Second) // node1 silent for 1 s (> 300 ms): dead, node2 takes over
	if !r.holds() {
		t.Fatalf("node2 did not take web over from a dead node1; actions %v", r.exec.done())
	}

	r.now = r.now.Add(time.Second)
	r.beat("node1", "web") // the partition heals
	if len(r.sent) > 0 {
		t.Fatalf("node2 announced %v while reading node1's heartbeat, before deciding whether it keeps web", r.sent)
	}
	r.step(0)
	if r.holds() {
		t.Fatalf("node2 still holds web after hearing node1 hold it; actions %v", r.exec.done())
	}
	if len(r.sent) > 0 {
		t.Errorf("node2 gave web up but announced its VIP %v", r.sent)
	}
}

// TestHealKeeperAnnouncesAfterRelease: node1 kept web while cut off from
// node2, which took it over meanwhile. node1 announces the VIP when it hears
// node2 again (after deciding it keeps web), and again after node2's
// release reaches it.
func TestHealKeeperAnnouncesAfterRelease(t *testing.T) {
	r := newHealRig(t, "node1")
	r.beat("node2")
	r.step(0)
	if !r.holds() {
		t.Fatalf("node1 did not start web; actions %v", r.exec.done())
	}
	r.step(time.Second) // node2 silent: dead
	r.now = r.now.Add(time.Second)

	r.beat("node2", "web") // heal: node2 holds web too
	if len(r.sent) > 0 {
		t.Fatalf("node1 announced %v before deciding", r.sent)
	}
	r.step(0)
	if !r.holds() || len(r.sent) != 1 {
		t.Fatalf("after hearing node2 again node1 holds web=%v and announced %v, want it to keep web and announce once", r.holds(), r.sent)
	}

	r.now = r.now.Add(50 * time.Millisecond)
	r.beat("node2") // node2 released web
	r.step(0)
	if want := []string{"198.51.100.100/24", "198.51.100.100/24"}; !slices.Equal(r.sent, want) {
		t.Errorf("after node2's release node1 announced %v, want %v (once more after the release)", r.sent, want)
	}
}

// TestCarrierBackForgetsCarrierFailure: web failed on node1 because its
// VIP interface lost its carrier, and no other node can run it (node2 is
// in standby). When the carrier is back, node1 forgets that failure and
// starts web again at once, instead of after failure_timeout (1 min). A
// group that a live peer holds stays there.
func TestCarrierBackForgetsCarrierFailure(t *testing.T) {
	for _, peerHolds := range []bool{false, true} {
		r := newHealRig(t, "node1")
		r.beat("node2")
		r.step(0)
		if !r.holds() {
			t.Fatalf("node1 did not start web; actions %v", r.exec.done())
		}
		// The watcher's report, as the loop handles it (agent.go, monitors).
		r.a.node.ResourceFailed(r.now, "web", "vip:198.51.100.100", errors.New("interface eth0 lost its carrier"))
		r.step(0)
		if r.holds() {
			t.Fatalf("node1 still holds web after its failure")
		}
		r.now = r.now.Add(100 * time.Millisecond)
		if peerHolds {
			r.beat("node2", "web")
		} else {
			r.beatStandby("node2")
		}
		r.step(0)

		r.now = r.now.Add(5 * time.Second)
		if err := r.a.handleControl(controlRequest{op: opCarrierBack, node: "eth0", groups: []string{"web"}}); err != nil {
			t.Fatal(err)
		}
		r.beat("node2", map[bool][]string{true: {"web"}}[peerHolds]...)
		if peerHolds {
			r.step(0)
			if r.holds() {
				t.Errorf("carrier back while node2 holds web: node1 took it back; actions %v", r.exec.done())
			}
			continue
		}
		r.beatStandby("node2")
		r.step(0)
		if !r.holds() {
			t.Errorf("carrier back, web runs nowhere: node1 did not start it again; actions %v", r.exec.done())
		}
	}
}

func (r *healRig) beatStandby(peer string) {
	r.t.Helper()
	rep := engine.Report{Node: peer, Incarnation: 1, PolicyHash: r.a.policy.Hash, Standby: true}
	b, err := json.Marshal(rep)
	if err != nil {
		r.t.Fatal(err)
	}
	r.a.heartbeat(heartbeat.Received{Message: heartbeat.Message{From: peer, Path: "lan", Incarnation: 1, Payload: b}, Path: "lan", At: r.now})
}
