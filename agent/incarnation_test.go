package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
)

// A heartbeat of a peer's previous run that reaches the agent after the new
// run's must not bring the old report back (it says the peer still holds
// what its previous run released).
func TestOldIncarnationHeartbeatKeepsTheNewReport(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(`load("@stdlib//placement.star", "active_standby")
cluster(name = "c")
node("a", address = "198.51.100.1", addresses = {"back": "203.0.113.1"})
node("b", address = "198.51.100.2", addresses = {"back": "203.0.113.2"})
heartbeat("lan", interval = "100ms", misses = 3)
heartbeat("back", interval = "100ms", misses = 3)
group("web", resources = [service("app", command = ["sleep", "1000"])], placement = active_standby(["a", "b"]))
`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: filepath.Join(dir, "state"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.node = engine.NewNode(a.policy, "a", t0, engine.NewState(1), &fakeResources{}, func(engine.Record) {})
	beat := func(path string, inc uint64, at time.Time, holds ...string) {
		payload, err := json.Marshal(&engine.Report{Node: "b", Incarnation: inc, PolicyHash: a.policy.Hash, Holds: holds})
		if err != nil {
			t.Fatal(err)
		}
		a.heartbeat(heartbeat.Received{Message: heartbeat.Message{From: "b", Path: path, Incarnation: inc, Payload: payload}, Path: path, At: at})
	}
	beat("lan", 1, t0, "web")
	beat("back", 1, t0, "web")
	beat("lan", 2, t0.Add(time.Second)) // b restarted and holds nothing
	beat("back", 1, t0.Add(time.Second), "web")
	rep := a.peerRpts["b"].report
	if rep == nil || rep.Incarnation != 2 || slices.Contains(rep.Holds, "web") {
		t.Fatalf("b's report after a late heartbeat of its previous run: %+v, want incarnation 2 holding nothing", rep)
	}
}
