package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/harules/harules/engine"
)

// loadState reads state.json from dir, or starts a fresh state. The
// incarnation is always the new one: it identifies this run.
func loadState(dir string, incarnation uint64) (*engine.State, error) {
	st := engine.NewState(incarnation)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var saved engine.State
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v): move it away to start fresh", filepath.Join(dir, "state.json"), err)
	}
	st.Operator.Merge(saved.Operator)
	st.Maintenance = saved.Maintenance
	for k, v := range saved.BackupLast {
		st.BackupLast[k] = v
	}
	for k, v := range saved.BackupOK {
		st.BackupOK[k] = v
	}
	for k, v := range saved.Failed {
		st.Failed[k] = v
	}
	// Holds are not trusted across a restart: the agent releases everything
	// at start and takes groups again through the normal decision.
	return st, nil
}
