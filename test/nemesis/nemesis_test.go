package nemesis

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/harules/harules/internal/clustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// Environment knobs of the short run.
const (
	// FaultsEnv is the number of faults of the short run (default 32: 16
	// on two nodes, 16 on three, every kind at least once).
	FaultsEnv = "NEMESIS_FAULTS"
	// SeedEnv seeds the schedule (default 1).
	SeedEnv = "NEMESIS_SEED"
	// JSONEnv names a file for the JSON report.
	JSONEnv = "NEMESIS_JSON"
	// KindsEnv restricts the schedule to a comma-separated list of fault
	// kinds (to replay one kind).
	KindsEnv = "NEMESIS_KINDS"
	// LogsEnv names a directory that receives the agents' logs.
	LogsEnv = "NEMESIS_LOGS"
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return v
}

// TestNemesis is the short seeded run: half the faults on two nodes with
// the documented guards, half on three nodes with quorum.
// It passes only with 0 violations inside the documented guarantees (VIP
// serving on two nodes, two MACs answering ARP, the service on two nodes)
// and 0 wrong final states.
func TestNemesis(t *testing.T) {
	if testing.Short() {
		t.Skip("the nemesis run takes minutes")
	}
	total := envInt(t, FaultsEnv, 32)
	seed := uint64(envInt(t, SeedEnv, 1))
	two := (total + 1) / 2
	var reports []*Report
	for _, c := range []struct {
		nodes, faults int
	}{{2, two}, {3, total - two}} {
		if c.faults == 0 {
			continue
		}
		t.Run(strconv.Itoa(c.nodes)+"nodes", func(t *testing.T) {
			cfg := Config{Nodes: c.nodes, Faults: c.faults, Seed: seed, LogDir: os.Getenv(LogsEnv)}
			if k := os.Getenv(KindsEnv); k != "" {
				cfg.Kinds = strings.Split(k, ",")
			}
			rep := Run(t, cfg)
			reports = append(reports, rep)
			t.Logf("\n%s", rep.Table())
			if rep.Aborted != "" {
				t.Errorf("run aborted: %s", rep.Aborted)
			}
			for _, f := range rep.Faults {
				if f.Violations() > 0 || f.WrongFinal != "" {
					t.Errorf("fault %s", f.Line())
				}
			}
			if v := rep.Violations(); v > 0 {
				t.Errorf("%d violations inside the guarantees and wrong final states (want 0); replay with %s=%d %s=%d",
					v, SeedEnv, seed, FaultsEnv, total)
			}
		})
	}
	if p := os.Getenv(JSONEnv); p != "" {
		if err := WriteJSON(p, reports); err != nil {
			t.Error(err)
		}
	}
}

// TestCheckerSeesInjectedSplitBrain checks the checker: a VIP added by hand
// on the node that does not hold it for 400 ms must show as split-brain
// samples, dual-MAC rounds and a violation.
func TestCheckerSeesInjectedSplitBrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real cluster")
	}
	rep := Run(t, Config{Nodes: 2, Faults: 1, Kinds: []string{"inject-dual"}})
	f := rep.Faults[0]
	t.Logf("%s", f.Line())
	// 400 ms at 20 ms: about 20 samples and 20 ARP rounds; half is plenty
	// on a loaded machine and zero means a blind checker.
	if f.SplitBrain < 5 || f.DualMAC < 5 {
		t.Errorf("checker saw %d split-brain samples and %d dual-MAC rounds for a 400 ms double VIP, want >= 5 of each", f.SplitBrain, f.DualMAC)
	}
	if !f.Inside || rep.Violations() == 0 {
		t.Errorf("an injected double VIP must count as a violation inside the guarantees: %s", f.Line())
	}
}
