package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/harules/harules/builtins/database"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/internal/pgtest"
)

// twoNodeAgent is node a of a two-node policy with a database, with its
// engine node made (no heartbeats, no loop).
func twoNodeAgent(t *testing.T) *Agent {
	t.Helper()
	return twoNodeAgentWith(t, "host=/nonexistent", "/nonexistent")
}

// twoNodeAgentWith is twoNodeAgent whose database pg has dsn and dataDir.
func twoNodeAgentWith(t *testing.T, dsn, dataDir string) *Agent {
	t.Helper()
	return twoNodeAgentIn(t, t.TempDir(), dsn, dataDir)
}

// twoNodeAgentIn is twoNodeAgentWith with policy and state in dir.
func twoNodeAgentIn(t *testing.T, dir, dsn, dataDir string) *Agent {
	t.Helper()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(`load("@stdlib//placement.star", "active_standby")
cluster(name = "c")
node("a", address = "198.51.100.1")
node("b", address = "198.51.100.2")
heartbeat("lan", interval = "100ms", misses = 3)
group("db", resources = [database("pg", dsn = %q, data_dir = %q)],
      placement = active_standby(["a", "b"]))
`, dsn, dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a.node = engine.NewNode(a.policy, "a", time.Unix(1000, 0), engine.NewState(1), nil, nil)
	return a
}

func payloadReport(t *testing.T, a *Agent) engine.Report {
	t.Helper()
	var r engine.Report
	if err := json.Unmarshal(*a.payload.Load(), &r); err != nil {
		t.Fatalf("payload %s: %v", *a.payload.Load(), err)
	}
	return r
}

// This node's observed positions ride in every report it publishes, and
// a new report keeps them.
func TestPayloadCarriesOwnPositions(t *testing.T) {
	a := twoNodeAgent(t)
	if err := a.publishReport(&engine.Report{Node: "a", Incarnation: 1, Holds: []string{"db"}}); err != nil {
		t.Fatal(err)
	}
	if r := payloadReport(t, a); r.DB != nil || r.Node != "a" {
		t.Fatalf("before any observation: %+v, want no db", r)
	}
	pos := engine.DBPosition{Timeline: 2, LSN: "0/5000100"}
	a.setOwnPosition("pg", pos)
	r := payloadReport(t, a)
	if r.DB["pg"] != pos || r.Node != "a" || r.Incarnation != 1 || len(r.Holds) != 1 {
		t.Fatalf("after an observation: %+v, want the report with db pg %v", r, pos)
	}
	if err := a.publishReport(&engine.Report{Node: "a", Incarnation: 1}); err != nil {
		t.Fatal(err)
	}
	if r := payloadReport(t, a); r.DB["pg"] != pos || len(r.Holds) != 0 {
		t.Fatalf("a new report: %+v, want it with db pg %v", r, pos)
	}
}

// A peer's reported positions are kept for database starts (also after
// it restarts with a report that has none yet) and stay out of the
// engine's view: a report that differs only in them is no news.
func TestPeerPositionsKeptApartFromEngineView(t *testing.T) {
	a := twoNodeAgent(t)
	at := time.Unix(1001, 0)
	beat := func(incarnation uint64, r engine.Report) bool {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(100 * time.Millisecond)
		return a.heartbeat(heartbeat.Received{Message: heartbeat.Message{From: "b", Path: "lan", Incarnation: incarnation, Payload: b}, Path: "lan", At: at})
	}
	base := engine.Report{Node: "b", Incarnation: 7, Hears: []string{"a"}, Holds: []string{"db"}}
	p1 := engine.DBPosition{Timeline: 1, LSN: "0/3000000"}
	r := base
	r.DB = map[string]engine.DBPosition{"pg": p1}
	if !beat(7, r) {
		t.Fatal("first heartbeat of b: no change for the engine")
	}
	seen := a.node.View.PeerReport("b")
	if seen == nil || seen.DB != nil || len(seen.Holds) != 1 {
		t.Fatalf("engine's view of b: %+v, want b's report without db", seen)
	}
	if got := a.PeerPositions("pg"); got["b"] != p1 || len(got) != 1 {
		t.Fatalf("PeerPositions(pg) = %v, want b: %v", got, p1)
	}
	p2 := engine.DBPosition{Timeline: 1, LSN: "0/3000200"}
	r.DB = map[string]engine.DBPosition{"pg": p2}
	if beat(7, r) {
		t.Error("a report that differs only in db positions changed the engine's view")
	}
	if a.node.View.PeerReport("b") != seen {
		t.Error("the engine's report of b was replaced")
	}
	if got := a.PeerPositions("pg"); got["b"] != p2 {
		t.Fatalf("PeerPositions(pg) = %v, want b: %v", got, p2)
	}
	// b restarts; its first report has no positions yet: the last ones stay.
	fresh := engine.Report{Node: "b", Incarnation: 8, Hears: []string{"a"}}
	if !beat(8, fresh) {
		t.Error("b's new incarnation: no change for the engine")
	}
	if got := a.PeerPositions("pg"); got["b"] != p2 {
		t.Fatalf("after b restarted: PeerPositions(pg) = %v, want b's last %v", got, p2)
	}
	if got := a.PeerPositions("other"); len(got) != 0 {
		t.Errorf("PeerPositions(other) = %v, want none", got)
	}
}

// The peers' positions are saved in the state directory: a restarted
// agent still compares with a peer that is down. A saved node the policy
// no longer declares does not count.
func TestPeerPositionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	a := twoNodeAgentIn(t, dir, "host=/nonexistent", "/nonexistent")
	p := engine.DBPosition{Timeline: 2, LSN: "0/5000100"}
	b, err := json.Marshal(engine.Report{Node: "b", Incarnation: 7, Hears: []string{"a"}, DB: map[string]engine.DBPosition{"pg": p}})
	if err != nil {
		t.Fatal(err)
	}
	a.heartbeat(heartbeat.Received{Message: heartbeat.Message{From: "b", Path: "lan", Incarnation: 7, Payload: b}, Path: "lan", At: time.Unix(1001, 0)})

	again := twoNodeAgentIn(t, dir, "host=/nonexistent", "/nonexistent")
	if got := again.PeerPositions("pg"); got["b"] != p || len(got) != 1 {
		t.Fatalf("after a restart: PeerPositions(pg) = %v, want b: %v", got, p)
	}

	saved, err := os.ReadFile(filepath.Join(dir, peerDBFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]engine.DBPosition
	if err := json.Unmarshal(saved, &m); err != nil {
		t.Fatal(err)
	}
	m["gone"] = map[string]engine.DBPosition{"pg": {Timeline: 9, LSN: "0/1"}}
	if saved, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, peerDBFile), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	third := twoNodeAgentIn(t, dir, "host=/nonexistent", "/nonexistent")
	if got := third.PeerPositions("pg"); len(got) != 1 || got["b"] != p {
		t.Fatalf("with an undeclared node saved: PeerPositions(pg) = %v, want only b: %v", got, p)
	}
}

// With a real PostgreSQL primary (timeline 1): the agent observes its
// position into the payload, and the executor hands the peers' positions to
// the database start, which refuses the server when a peer reported a later
// timeline and accepts it when the peer reported what it has.
func TestDatabaseStartGetsPeerPositions(t *testing.T) {
	srv := pgtest.StartNew(t)
	a := twoNodeAgentWith(t, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", srv.Dir, srv.Port), filepath.Join(srv.Dir, "data"))
	if err := a.publishReport(a.node.Report()); err != nil {
		t.Fatal(err)
	}
	a.observeDatabases(t.Context())
	var own engine.DBPosition
	deadline := time.Now().Add(20 * time.Second)
	for own.LSN == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no position observed; payload %s", *a.payload.Load())
		}
		time.Sleep(50 * time.Millisecond)
		own = payloadReport(t, a).DB["pg"]
	}
	if own.Timeline != 1 {
		t.Fatalf("observed %+v, want timeline 1", own)
	}
	e := NewExecutor("a", a.log)
	peers := map[string]engine.DBPosition{"b": {Timeline: 2, LSN: "0/1000000"}}
	e.PeerPositions = func(name string) map[string]engine.DBPosition {
		if name != "pg" {
			t.Errorf("PeerPositions(%q), want the database name pg", name)
		}
		return peers
	}
	r := a.policy.Group("db").Resources[0]
	err := e.executeDatabase(t.Context(), r, engine.Action{Op: engine.OpStart, Group: "db"})
	if !errors.Is(err, database.ErrBehindPeer) {
		t.Fatalf("start with b at a later timeline: %v, want ErrBehindPeer", err)
	}
	peers = map[string]engine.DBPosition{"b": own}
	if err := e.executeDatabase(t.Context(), r, engine.Action{Op: engine.OpStart, Group: "db"}); err != nil {
		t.Fatalf("start with b at this server's own position: %v", err)
	}
}
