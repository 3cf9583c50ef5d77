package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// fakeResources records actions and answers monitors from a table: it
// stands in for VIPs and services, which the e2e tests run for real.
type fakeResources struct {
	mu      sync.Mutex
	actions []string
	// down lists resource IDs whose monitor fails.
	down map[string]bool
}

var (
	_ engine.Executor = (*fakeResources)(nil)
	_ resourceMonitor = (*fakeResources)(nil)
)

func (f *fakeResources) Execute(_ context.Context, a engine.Action) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, a.Op+" "+a.Resource)
	return nil
}

func (f *fakeResources) Backup(context.Context, engine.BackupRun) error { return nil }

func (f *fakeResources) Monitor(_ context.Context, _ string, r *policy.Resource) error {
	if f.down[r.ID()] {
		return errors.New(r.ID() + " does not run")
	}
	return nil
}

func (f *fakeResources) done() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

const (
	adoptVIP = "vip:198.51.100.40"
	adoptSvc = "service:app"
)

// startAgentIn writes a one-node policy and a saved state (maintenance,
// holding web and a group the policy no longer has), runs an agent over
// exec, and returns its client and a stop function that returns Run's
// result.
func startAgentIn(t *testing.T, dir string, exec *fakeResources) (*Client, func() error) {
	t.Helper()
	pol := filepath.Join(dir, "policy.star")
	src := `load("@stdlib//placement.star", "active_standby")
cluster(name = "adopt", reevaluate = "200ms")
node("a", address = "127.0.0.1")
group("web", resources = [vip("198.51.100.40/24", interface = "lo"), service("app", command = ["sleep", "1000"])],
      placement = active_standby(["a"]))
`
	if err := os.WriteFile(pol, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl", "harules.sock")
	a, err := New(Config{PolicyPath: pol, Node: "a", StateDir: filepath.Join(dir, "state"), ControlSocket: sock,
		Logger: quietLogger(), Executor: exec, HandoverTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("agent did not stop within 20s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return NewClient(sock), stop
}

func writeSavedState(t *testing.T, dir string, maintenance bool, holds ...string) time.Time {
	t.Helper()
	since := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	st := engine.NewState(1)
	st.Maintenance = maintenance
	for _, g := range holds {
		st.Holds[g] = since
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state", "state.json"), []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return since
}

// waitStatus polls the agent's status until ok holds.
func waitStatus(t *testing.T, cl *Client, what string, ok func(*Status) bool) *Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := cl.Status(t.Context())
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s: %+v, %v", what, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recentHas(st *Status, text string) bool {
	return slices.ContainsFunc(st.Recent, func(r engine.Record) bool { return strings.Contains(r.Text, text) })
}

// TestRestartInMaintenance runs real agents (over a recording executor)
// from a saved state in maintenance: nothing is released or started, what
// runs is held again, a stop leaves it all, and leaving maintenance
// resumes normal management.
func TestRestartInMaintenance(t *testing.T) {
	t.Run("everything runs: held again, stop releases nothing, leaving maintenance acts on nothing", func(t *testing.T) {
		dir := t.TempDir()
		since := writeSavedState(t, dir, true, "web", "retired")
		exec := &fakeResources{}
		cl, stop := startAgentIn(t, dir, exec)
		st := waitStatus(t, cl, "web is held again in maintenance", func(st *Status) bool {
			return st.Maintenance && len(st.Groups) == 1 && slices.Equal(st.Groups[0].Holders, []string{"a"})
		})
		if !recentHas(st, "maintenance: adopted web") || !recentHas(st, "retired is no longer in the policy") {
			t.Errorf("records do not say what the restart found: %+v", st.Recent)
		}
		time.Sleep(500 * time.Millisecond) // a few decisions
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := exec.done(); len(got) != 0 {
			t.Errorf("executed %v in maintenance (start and stop), want nothing", got)
		}
		saved, err := readSavedState(filepath.Join(dir, "state"))
		if err != nil || saved == nil || !saved.Maintenance || !saved.Holds["web"].Equal(since) || len(saved.Holds) != 1 {
			t.Fatalf("saved state after a stop in maintenance: %+v, %v; want maintenance, web held since %s", saved, err, since)
		}

		// Start again and leave maintenance: web is where the policy wants
		// it, so nothing is stopped or started.
		exec2 := &fakeResources{}
		cl, _ = startAgentIn(t, dir, exec2)
		waitStatus(t, cl, "web is held again after the second restart", func(st *Status) bool {
			return len(st.Groups) == 1 && slices.Equal(st.Groups[0].Holders, []string{"a"})
		})
		if err := cl.Do(t.Context(), "maintenance", "", "", false); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, cl, "maintenance is off", func(st *Status) bool { return !st.Maintenance })
		time.Sleep(500 * time.Millisecond)
		if got := exec2.done(); len(got) != 0 {
			t.Errorf("leaving maintenance executed %v, want nothing (web runs here already)", got)
		}
	})

	t.Run("nothing runs: dropped; leaving maintenance starts it", func(t *testing.T) {
		dir := t.TempDir()
		writeSavedState(t, dir, true, "web")
		exec := &fakeResources{down: map[string]bool{adoptVIP: true, adoptSvc: true}}
		cl, _ := startAgentIn(t, dir, exec)
		st := waitStatus(t, cl, "web is dropped", func(st *Status) bool {
			return recentHas(st, "web no longer runs here") && len(st.Groups) == 1 && len(st.Groups[0].Holders) == 0
		})
		if st.Groups[0].Target != "" || !strings.Contains(st.Groups[0].Reason, "in maintenance") {
			t.Errorf("web placed on %q (%s); a node in maintenance takes no new group", st.Groups[0].Target, st.Groups[0].Reason)
		}
		exec.mu.Lock()
		exec.down = nil
		exec.mu.Unlock()
		if err := cl.Do(t.Context(), "maintenance", "", "", false); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, cl, "web is started out of maintenance", func(st *Status) bool {
			return slices.Equal(st.Groups[0].Holders, []string{"a"})
		})
		if got := exec.done(); !slices.Equal(got, []string{"start " + adoptVIP, "start " + adoptSvc}) {
			t.Errorf("executed %v, want the two starts", got)
		}
	})

	t.Run("partly runs: kept held and failed; leaving maintenance stops it", func(t *testing.T) {
		dir := t.TempDir()
		writeSavedState(t, dir, true, "web")
		exec := &fakeResources{down: map[string]bool{adoptSvc: true}}
		cl, _ := startAgentIn(t, dir, exec)
		waitStatus(t, cl, "web is held and marked failed", func(st *Status) bool {
			return recentHas(st, "web only partly runs here") && slices.Equal(st.Groups[0].Holders, []string{"a"})
		})
		time.Sleep(300 * time.Millisecond)
		if got := exec.done(); len(got) != 0 {
			t.Errorf("executed %v in maintenance, want nothing", got)
		}
		if err := cl.Do(t.Context(), "maintenance", "", "", false); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, cl, "web is stopped out of maintenance", func(st *Status) bool { return len(st.Groups[0].Holders) == 0 })
		if got := exec.done(); !slices.Equal(got, []string{"stop " + adoptSvc, "stop " + adoptVIP}) {
			t.Errorf("executed %v, want the stops in reverse order", got)
		}
	})

	t.Run("out of maintenance a restart holds nothing of the saved holds", func(t *testing.T) {
		dir := t.TempDir()
		writeSavedState(t, dir, false, "web")
		exec := &fakeResources{}
		cl, _ := startAgentIn(t, dir, exec)
		st := waitStatus(t, cl, "web is started through the decision", func(st *Status) bool {
			return slices.Equal(st.Groups[0].Holders, []string{"a"})
		})
		if recentHas(st, "maintenance:") {
			t.Errorf("a start out of maintenance adopted: %+v", st.Recent)
		}
		if got := exec.done(); !slices.Equal(got, []string{"start " + adoptVIP, "start " + adoptSvc}) {
			t.Errorf("executed %v, want web started again (the saved hold is not trusted)", got)
		}
	})
}

func TestSavedMaintenance(t *testing.T) {
	dir := t.TempDir()
	if on, err := SavedMaintenance(dir); on || err != nil {
		t.Errorf("no state file: %v, %v; want false, nil", on, err)
	}
	writeSavedState(t, dir, true)
	if on, err := SavedMaintenance(filepath.Join(dir, "state")); !on || err != nil {
		t.Errorf("maintenance state: %v, %v; want true, nil", on, err)
	}
	writeSavedState(t, dir, false, "web")
	if on, err := SavedMaintenance(filepath.Join(dir, "state")); on || err != nil {
		t.Errorf("normal state: %v, %v; want false, nil", on, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state", "state.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SavedMaintenance(filepath.Join(dir, "state")); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt state: %v; want an error", err)
	}
}
