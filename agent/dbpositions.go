package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/harules/harules/builtins/database"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/atomicfile"
	"github.com/harules/harules/policy"
)

// dbPositions keeps database positions (how far each server's history has
// got): this node's own, observed every second and published in its
// heartbeat report, and the last ones each peer reported, which a start
// of a database resource compares its server with (database.StartInfo).
//
// Positions are kept apart from the engine's view of a peer: a primary's
// position moves with every write, and a new report for the engine means
// a new decision.
//
// The peers' positions are saved in the state directory (peerDBFile), so a
// restarted agent still knows a peer that is down had a later timeline: at
// once when a timeline or the set of positions changes, otherwise at most
// every peerDBSaveEvery (a slightly older LSN or GTID only makes the check
// less strict).
type dbPositions struct {
	mu   sync.Mutex
	path string    // where the peers' positions are saved
	load sync.Once // reads path on first use
	// saved is when the peers' positions were last saved.
	saved time.Time
	// own: database name -> this node's position.
	own map[string]engine.DBPosition
	// peers: peer -> database name -> its last reported position. A peer's
	// positions outlive its death and restarts (its data does not vanish);
	// a newer report of the same database replaces them.
	peers map[string]map[string]engine.DBPosition
	// report is the engine's last report, marshalled; the payload is it
	// plus own.
	report []byte
	// busy: observations under way, by database name.
	busy map[string]bool
}

// peerDBFile holds the peers' last database positions in the state
// directory; peerDBSaveEvery bounds how often moving positions are saved.
const (
	peerDBFile      = "db-positions.json"
	peerDBSaveEvery = 5 * time.Second
)

func newDBPositions(path string) *dbPositions {
	return &dbPositions{path: path, own: map[string]engine.DBPosition{}, peers: map[string]map[string]engine.DBPosition{}, busy: map[string]bool{}}
}

// loadPeers reads the saved peers' positions once (d.mu held). A missing
// file is a first start; an unreadable one is logged and ignored.
func (d *dbPositions) loadPeers(log *slog.Logger) {
	d.load.Do(func() {
		if d.path == "" {
			return
		}
		b, err := os.ReadFile(d.path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		var saved map[string]map[string]engine.DBPosition
		if err == nil {
			err = json.Unmarshal(b, &saved)
		}
		if err != nil {
			log.Warn("saved database positions of peers unreadable; starting without them", "file", d.path, "error", err)
			return
		}
		for peer, m := range saved {
			if d.peers[peer] == nil {
				d.peers[peer] = m
			}
		}
	})
}

// savePeers writes the peers' positions (d.mu held).
func (d *dbPositions) savePeers(now time.Time, log *slog.Logger) {
	if d.path == "" {
		return
	}
	b, err := json.Marshal(d.peers)
	if err == nil {
		err = atomicfile.Write(d.path, b, 0o600)
	}
	if err != nil {
		log.Error("cannot save the peers' database positions", "file", d.path, "error", err)
		return
	}
	d.saved = now
}

// payload returns report with own positions added (as "db"); report is a
// JSON object without "db" (the engine never fills it).
func (d *dbPositions) payload(report []byte) []byte {
	if len(d.own) == 0 {
		return report
	}
	db, err := json.Marshal(d.own)
	if err != nil {
		return report
	}
	body := bytes.TrimSuffix(bytes.TrimSpace(report), []byte("}"))
	out := make([]byte, 0, len(body)+len(db)+8)
	out = append(append(append(out, body...), `,"db":`...), db...)
	return append(out, '}')
}

// publishReport stores the heartbeat payload for the engine's report rep.
func (a *Agent) publishReport(rep *engine.Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	a.dbpos.mu.Lock()
	defer a.dbpos.mu.Unlock()
	a.dbpos.report = b
	p := a.dbpos.payload(b)
	a.payload.Store(&p)
	return nil
}

// setOwnPosition records an observation of this node's server; the next
// heartbeats carry it.
func (a *Agent) setOwnPosition(name string, pos engine.DBPosition) {
	a.dbpos.mu.Lock()
	defer a.dbpos.mu.Unlock()
	if old, ok := a.dbpos.own[name]; ok && old == pos {
		return
	}
	a.dbpos.own[name] = pos
	if a.dbpos.report != nil {
		p := a.dbpos.payload(a.dbpos.report)
		a.payload.Store(&p)
	}
}

// takePeerPositions records the positions in a peer's fresh report and
// takes them out of it; it reports whether the rest equals the report the
// engine has (then the engine's view need not change).
func (a *Agent) takePeerPositions(fresh, current *engine.Report) bool {
	if len(fresh.DB) > 0 {
		d := a.dbpos
		d.mu.Lock()
		d.loadPeers(a.log)
		m := d.peers[fresh.Node]
		if m == nil {
			m = map[string]engine.DBPosition{}
			d.peers[fresh.Node] = m
		}
		urgent, moved := false, false
		for name, pos := range fresh.DB {
			old, ok := m[name]
			urgent = urgent || !ok || old.Timeline != pos.Timeline
			moved = moved || old != pos
			m[name] = pos
		}
		if now := a.now(); urgent || moved && now.Sub(d.saved) >= peerDBSaveEvery {
			d.savePeers(now, a.log)
		}
		d.mu.Unlock()
	}
	fresh.DB = nil
	return current != nil && reflect.DeepEqual(current, fresh)
}

// PeerPositions returns the positions peers last reported for database
// name, by peer (what Executor.PeerPositions is set to). Only nodes the
// policy declares count: a node removed from the cluster no longer does.
func (a *Agent) PeerPositions(name string) map[string]engine.DBPosition {
	a.dbpos.mu.Lock()
	defer a.dbpos.mu.Unlock()
	a.dbpos.loadPeers(a.log)
	out := map[string]engine.DBPosition{}
	for peer, m := range a.dbpos.peers {
		if pos, ok := m[name]; ok && a.live.Load().Node(peer) != nil { // on a job worker: not a.policy
			out[peer] = pos
		}
	}
	return out
}

// observeDatabases reads the position of this node's server of every
// database the policy declares, whether it holds the group or not (a
// standby's position counts as much as a primary's), each in its own
// goroutine and at most one at a time per database. A server that does
// not answer keeps its last position.
func (a *Agent) observeDatabases(ctx context.Context) {
	seen := map[string]bool{}
	for _, g := range a.policy.Groups {
		for _, r := range g.Resources {
			if r.Kind != policy.KindDatabase || seen[r.Name] {
				continue
			}
			seen[r.Name] = true
			a.dbpos.mu.Lock()
			busy := a.dbpos.busy[r.Name]
			a.dbpos.busy[r.Name] = true
			a.dbpos.mu.Unlock()
			if busy {
				continue
			}
			go func(r *policy.Resource) {
				defer func() {
					a.dbpos.mu.Lock()
					delete(a.dbpos.busy, r.Name)
					a.dbpos.mu.Unlock()
				}()
				pos, err := observePosition(ctx, r)
				if err != nil {
					a.log.Debug("database position not observed", "database", r.Name, "error", err)
					return
				}
				a.setOwnPosition(r.Name, pos)
			}(r)
		}
	}
}

// observePosition asks this node's server of database r how far it has got.
func observePosition(ctx context.Context, r *policy.Resource) (engine.DBPosition, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db, err := database.New(r.Name, r.Params, nil)
	if err != nil {
		return engine.DBPosition{}, err
	}
	p, ok := db.(database.Positioner)
	if !ok {
		return engine.DBPosition{}, fmt.Errorf("database %s: its engine reports no position", r.Name)
	}
	pos, err := p.Position(ctx)
	if err != nil {
		return engine.DBPosition{}, err
	}
	return engine.DBPosition(pos), nil
}
