package main

import (
	"errors"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/urfave/cli/v2"
)

// gcPercent reads the current GOGC (SetGCPercent returns the old value).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// keepGCPercent restores the test binary's GOGC when the test ends.
func keepGCPercent(t *testing.T) {
	old := gcPercent()
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestTuneAgentRuntimeLowersGOGCUnlessTheEnvironmentSetsIt(t *testing.T) {
	keepGCPercent(t)
	debug.SetGCPercent(100)
	if got := tuneAgentRuntime(envOf(nil)); got != agentGCPercent || gcPercent() != agentGCPercent {
		t.Fatalf("without GOGC: returned %d, GOGC now %d; want both %d", got, gcPercent(), agentGCPercent)
	}
	debug.SetGCPercent(200)
	if got := tuneAgentRuntime(envOf(map[string]string{"GOGC": "200"})); got != 0 || gcPercent() != 200 {
		t.Fatalf("with GOGC=200 in the environment: returned %d, GOGC now %d; want 0 and 200 (the operator's setting kept)", got, gcPercent())
	}
}

func TestIsSupervisor(t *testing.T) {
	for _, tc := range []struct {
		noSupervisor bool
		env          map[string]string
		want         bool
	}{
		{false, nil, true},
		{true, nil, false},
		{false, map[string]string{supervisedEnv: "1"}, false},
	} {
		if got := isSupervisor(tc.noSupervisor, envOf(tc.env)); got != tc.want {
			t.Errorf("isSupervisor(no-supervisor=%v, env %v) = %v, want %v", tc.noSupervisor, tc.env, got, tc.want)
		}
	}
}

// The supervisor keeps Go's defaults, the agent gets agentGCPercent, and a
// Before the command already had still runs.
func TestWithAgentRuntimeTunesOnlyTheAgentAndKeepsBefore(t *testing.T) {
	keepGCPercent(t)
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		wantGC int
	}{
		{[]string{"x", "run"}, nil, 100},                                              // supervisor
		{[]string{"x", "run", "--no-supervisor"}, nil, agentGCPercent},                // agent alone
		{[]string{"x", "run"}, map[string]string{supervisedEnv: "1"}, agentGCPercent}, // supervised agent
	} {
		debug.SetGCPercent(100)
		beforeRan := false
		cmd := &cli.Command{Name: "run", Flags: []cli.Flag{&cli.BoolFlag{Name: "no-supervisor"}},
			Before: func(*cli.Context) error { beforeRan = true; return nil },
			Action: func(*cli.Context) error { return nil }}
		app := &cli.App{Commands: []*cli.Command{withAgentRuntime(cmd, envOf(tc.env))}}
		if err := app.Run(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if gcPercent() != tc.wantGC || !beforeRan {
			t.Errorf("%v env %v: GOGC %d, earlier Before ran: %v; want GOGC %d and the earlier Before run", tc.args, tc.env, gcPercent(), beforeRan, tc.wantGC)
		}
	}
	// An error of the earlier Before still stops the command.
	stop := errors.New("stop")
	cmd := &cli.Command{Name: "run", Flags: []cli.Flag{&cli.BoolFlag{Name: "no-supervisor"}},
		Before: func(*cli.Context) error { return stop },
		Action: func(*cli.Context) error { t.Error("the action ran although Before failed"); return nil }}
	app := &cli.App{Commands: []*cli.Command{withAgentRuntime(cmd, envOf(nil))}, ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run([]string{"x", "run", "--no-supervisor"}); !errors.Is(err, stop) {
		t.Fatalf("error %v, want the earlier Before's", err)
	}
}

// The real `harules run` is wired: the agent process (--no-supervisor)
// has agentGCPercent by the time its action runs, even when the action
// then fails on a missing policy.
func TestRunCommandTunesTheAgent(t *testing.T) {
	keepGCPercent(t)
	debug.SetGCPercent(100)
	t.Setenv("GOGC", "")
	code, _, stderr := harules(t, "run", "--no-supervisor", "--node", "n1",
		"--policy", filepath.Join(t.TempDir(), "missing.star"), "--state-dir", t.TempDir(), "--control", filepath.Join(t.TempDir(), "c.sock"))
	if code != exitConfig {
		t.Fatalf("harules run with a missing policy: exit %d, want %d (stderr %q)", code, exitConfig, stderr)
	}
	if gcPercent() != agentGCPercent {
		t.Fatalf("GOGC after harules run --no-supervisor: %d, want %d", gcPercent(), agentGCPercent)
	}
}
