package agent

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/atomicfile"
)

// peersMaintenanceFile keeps, in the state directory, the last report of
// every peer that was in maintenance and held groups. Peers keep the groups
// of an unreachable node in maintenance where they are; this file makes
// that survive a restart of this node's agent too (a freshly started agent
// has heard nothing from a peer that is down).
const peersMaintenanceFile = "peers-maintenance.json"

// loadPeersInMaintenance hands the view the reports saved by the previous
// run (call after the view is created, before the first decision).
func (a *Agent) loadPeersInMaintenance() {
	a.maintPeers = map[string]*engine.Report{}
	path := filepath.Join(a.cfg.StateDir, peersMaintenanceFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		err = json.Unmarshal(b, &a.maintPeers)
	}
	if err != nil {
		a.log.Error("cannot read the saved reports of peers in maintenance; a peer in maintenance that is down now may be taken over", "file", path, "error", err.Error())
		a.maintPeers = map[string]*engine.Report{}
		return
	}
	for name, r := range a.maintPeers {
		if r == nil || r.Node != name {
			delete(a.maintPeers, name)
			continue
		}
		a.node.View.Remember(r)
		a.log.Warn("peer was in maintenance when last heard; its groups stay on it until it reports again", "peer", name, "holds", r.Holds)
	}
}

// trackPeersInMaintenance keeps the saved reports in step with the view
// (loop goroutine, after each decision): a peer's report in maintenance
// with holds is saved, any other report from it removes the saved one.
func (a *Agent) trackPeersInMaintenance() {
	if a.maintPeers == nil {
		return
	}
	changed := false
	for _, n := range a.policy.Nodes {
		if n.Name == a.cfg.Node {
			continue
		}
		r := a.node.View.PeerReport(n.Name)
		cur, saved := a.maintPeers[n.Name]
		switch {
		case r == nil: // not heard since this run started: keep what was saved
		case r.Maintenance && len(r.Holds) > 0:
			if cur != r {
				a.maintPeers[n.Name] = r
				changed = true
			}
		case saved:
			delete(a.maintPeers, n.Name)
			changed = true
		}
	}
	if !changed {
		return
	}
	b, err := json.MarshalIndent(a.maintPeers, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(a.cfg.StateDir, peersMaintenanceFile), b, 0o600)
	}
	if err != nil {
		a.log.Error("cannot save the reports of peers in maintenance", "error", err.Error())
	}
}
