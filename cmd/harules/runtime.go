package main

import (
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// agentGCPercent is the agent's GOGC unless the environment sets GOGC.
//
// The agent's live heap is about 1.5 MB, and Go's default (GOGC=100, at
// least 4 MB between collections) keeps mostly garbage: 50 cut the agent's
// private memory (RssAnon) from 5.8-7.2 MB to 4.7-5.4 MB in
// bench/failover, with no measurable change in idle CPU (see its
// README). The supervisor keeps Go's defaults: it never reaches 4 MB of
// heap, and a lower GOGC (or a GOMAXPROCS change) made it collect or
// stop the world once and grow by 0.3-0.5 MB instead.
const agentGCPercent = 50

// tuneAgentRuntime applies the agent's runtime defaults and returns the
// GOGC it set (0: the environment's GOGC was kept). getenv reads the
// environment (os.Getenv; a map in tests).
func tuneAgentRuntime(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		return 0
	}
	debug.SetGCPercent(agentGCPercent)
	return agentGCPercent
}

// isSupervisor tells whether `harules run` with these flags runs the
// supervisor in this process (run.go starts the agent as its child, with
// supervisedEnv set) rather than the agent.
func isSupervisor(noSupervisor bool, getenv func(string) string) bool {
	return !noSupervisor && getenv(supervisedEnv) == ""
}

// withAgentRuntime makes cmd (the run command) tune the runtime of the
// agent process before its action runs, keeping any Before the command
// already has. Only the agent is tuned: simulate and check are short,
// CPU-bound runs that are better off with Go's defaults.
func withAgentRuntime(cmd *cli.Command, getenv func(string) string) *cli.Command {
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		if !isSupervisor(c.Bool("no-supervisor"), getenv) {
			tuneAgentRuntime(getenv)
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	return cmd
}
