package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Maintenance means unmanaged: an agent that starts while its saved state
// says maintenance releases nothing and adopts what still runs; one that
// stops in maintenance hands nothing over and releases nothing; the
// supervisor and `harules release` leave such a node alone too. So an
// operator can restart or upgrade harules without bouncing the services.
// (Peers keep the groups of an unreachable node in maintenance where they
// are: engine/maintenance.go.)

// adoptMonitorTimeout bounds the check of one resource at a restart in
// maintenance.
const adoptMonitorTimeout = 10 * time.Second

// resourceMonitor is the part of an executor that can tell whether a
// resource runs on this node.
type resourceMonitor interface {
	Monitor(ctx context.Context, group string, r *policy.Resource) error
}

var _ resourceMonitor = (*Executor)(nil)

// readSavedState reads state.json as the previous run left it; nil when
// there is none.
func readSavedState(dir string) (*engine.State, error) {
	path := filepath.Join(dir, "state.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st engine.State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %w", path, err)
	}
	return &st, nil
}

// SavedMaintenance reports whether the node's saved state (state.json in
// stateDir) says it is in maintenance. The supervisor and `harules release`
// ask before releasing anything after the agent stopped.
func SavedMaintenance(stateDir string) (bool, error) {
	st, err := readSavedState(stateDir)
	if err != nil || st == nil {
		return false, err
	}
	return st.Maintenance, nil
}

// takeOverPreviousRun deals with what a previous run of the agent left on
// this node, before it decides anything. Out of maintenance everything is
// released (the node starts holding nothing and takes groups through the
// normal decision). In maintenance nothing is touched: the groups the saved
// state held are checked and those that still run are held again.
func (a *Agent) takeOverPreviousRun(ctx context.Context) {
	st := a.node.State
	if !st.Maintenance {
		a.releaseAll(ctx, "agent start: release what a previous run may have left")
		st.Holds = map[string]time.Time{}
		return
	}
	saved, err := readSavedState(a.cfg.StateDir)
	if err != nil || saved == nil {
		// loadState read the same file a moment ago; keep what it made of it.
		a.log.Error("maintenance: cannot re-read the saved holds; adopting nothing (nothing is released either)", "error", fmt.Sprint(err))
		saved = &engine.State{}
	}
	a.adopt(ctx, saved.Holds)
}

// adopt re-discovers which of the saved holds still run here (engine.Adopt
// has the rules) and records what it found.
func (a *Agent) adopt(ctx context.Context, saved map[string]time.Time) {
	a.log.Warn("maintenance: node is in maintenance; releasing nothing, adopting the groups that still run",
		"saved_holds", strings.Join(sortedKeys(saved), ","))
	checks := map[string][]engine.AdoptCheck{}
	if mon, ok := a.exec.(resourceMonitor); ok {
		for g := range saved {
			grp := a.policy.Group(g)
			if grp == nil {
				continue
			}
			cs := []engine.AdoptCheck{}
			for _, r := range grp.Resources {
				mctx, cancel := context.WithTimeout(ctx, adoptMonitorTimeout)
				err := mon.Monitor(mctx, g, r)
				cancel()
				cs = append(cs, engine.AdoptCheck{Resource: r.ID(), Err: err})
			}
			checks[g] = cs
		}
	}
	for _, r := range engine.Adopt(a.policy, a.cfg.Node, a.node.State, saved, checks, a.now()) {
		a.record(r)
	}
	a.saveState()
}

// leaveRunning is the stop of an agent in maintenance: no handover, no
// release. The saved state keeps the holds and the maintenance flag, so the
// next start adopts them and the supervisor leaves them alone.
func (a *Agent) leaveRunning() {
	holds := a.node.State.HeldGroups()
	a.log.Warn("maintenance: leaving resources running (no handover, no release); peers keep these groups here while this node is unreachable",
		"holds", strings.Join(holds, ","))
	a.record(engine.Record{At: a.now(), Node: a.cfg.Node, Kind: engine.RecEvent,
		Text: fmt.Sprintf("maintenance: agent stopping, leaving resources running (held: %s)", orDash(strings.Join(holds, ", ")))})
	for _, g := range holds {
		grp := a.policy.Group(g)
		if grp == nil {
			continue
		}
		for _, r := range grp.Resources {
			// A process service is a child of the agent, killed with it
			// (Pdeathsig), and writes into a pipe the agent reads.
			if r.Kind == policy.KindService && r.Params["kind"] == "process" {
				a.log.Warn("maintenance: this process service runs as a child of the agent and stops with it; a systemd, OCF or start/stop/monitor service keeps running through an agent restart",
					"group", g, "service", r.Name)
			}
		}
	}
	a.saveState()
}

func sortedKeys(m map[string]time.Time) []string {
	s := &engine.State{Holds: m}
	return s.HeldGroups()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
