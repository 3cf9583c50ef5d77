package main

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/examples"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "simulate the built-in example: an Active/Standby web service whose active node crashes",
		Description: `Runs the embedded example policy (examples/web-active-standby) through its
node-crash scenario on a simulated clock and prints the timeline. Nothing on
this machine is touched. The same files are in the repository's examples/.`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print one JSON document"}},
		Action: func(c *cli.Context) error {
			dir, err := os.MkdirTemp("", "harules-demo-")
			if err != nil {
				return fail(exitInternal, "demo: %v", err)
			}
			defer os.RemoveAll(dir)
			if err := os.CopyFS(dir, examples.FS); err != nil {
				return fail(exitInternal, "demo: unpack examples: %v", err)
			}
			// Run from the unpacked copy so positions read like the repository's.
			if err := os.Chdir(dir); err != nil {
				return fail(exitInternal, "demo: %v", err)
			}
			policyFile := filepath.Join("web-active-standby", "policy.star")
			p, err := rules.Load(c.Context, policyFile, rules.Options{})
			if err != nil {
				return fail(exitInternal, "demo: embedded policy invalid: %v", err)
			}
			sc, err := simulate.LoadScenario(c.Context, filepath.Join("web-active-standby", "scenarios", "node-crash.star"), p)
			if err != nil {
				return fail(exitInternal, "demo: embedded scenario invalid: %v", err)
			}
			res, err := simulate.Run(c.Context, p, "examples/web-active-standby/policy.star", sc, simulate.Options{})
			if err != nil {
				return fail(exitInternal, "demo: %v", err)
			}
			res.Scenario = "examples/web-active-standby/scenarios/node-crash.star"
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"ok": res.OK, "results": []*simulate.Result{res}}); err != nil {
					return fail(exitInternal, "write JSON: %v", err)
				}
			} else {
				simulate.WriteText(c.App.Writer, res, simulate.TextOptions{})
			}
			if !res.OK {
				return fail(exitFailed, "demo: an expectation failed")
			}
			return nil
		},
	}
}
