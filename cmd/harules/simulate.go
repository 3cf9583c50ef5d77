package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

func simulateCommand() *cli.Command {
	return &cli.Command{
		Name:      "simulate",
		Usage:     "replay scenarios against a policy on a simulated clock",
		ArgsUsage: "POLICY.star --scenario SCENARIO.star",
		Description: `Runs one engine per node, exactly as the live agents do, each fed only
what that node could see, and prints a timeline: time, node, what happened
or was done, and why. Scenarios are Starlark files:

  scenario(name = "primary crash", duration = "60s")
  at("10s", crash("node1"))
  at("40s", boot("node1"))
  at("20s", link_down("backnet"))           # every node; or link_down("lan", node = "node1")
  at("25s", probe("http", node = "node1", ok = False))
  at("30s", operator_move("web", "node2"), operator_standby("node1"))
  expect_owner("web", "node2", at = "15s")  # None = nobody
  expect_single_owner()                     # never two owners at once
  expect_no_actions(start = "20s", end = "30s")
  expect_alert("path-down", node = "node2", at = "22s")
  expect_backup("nightly", node = "node2", count = 1)

--scenario takes a glob, so the scenarios kept beside a policy run as its
test suite. Exit 0 when every expectation holds, 1 when one fails, 2 when the
policy or a scenario is invalid.

--json prints {"ok": bool, "results": [ ... ]} with, per scenario: records
(at, node, kind, group, text, reason, error), final_placement,
outages, dual_owners, expectations (expect, pos, ok, detail), stats.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "scenario", Aliases: []string{"s"}, Usage: "scenario file or glob (repeatable)", Required: true},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "hide placement reasoning; show events, actions and results"},
			&cli.StringFlag{Name: "svg", Usage: "also draw the timeline as a standalone SVG file (with several scenarios: FILE-<scenario>.svg)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fail(exitUsage, "simulate: give exactly one policy file, e.g. harules simulate policy.star --scenario 'tests/*.star'")
			}
			policyFile := c.Args().First()
			p, err := rules.Load(c.Context, policyFile, rules.Options{})
			if err != nil {
				return fail(exitUsage, "invalid policy:\n%v", err)
			}
			var files []string
			for _, pat := range c.StringSlice("scenario") {
				m, err := filepath.Glob(pat)
				if err != nil {
					return fail(exitUsage, "bad --scenario pattern %q: %v", pat, err)
				}
				if len(m) == 0 {
					return fail(exitUsage, "--scenario %q matches no file", pat)
				}
				files = append(files, m...)
			}
			sort.Strings(files)
			var results []*simulate.Result
			ok := true
			for _, f := range files {
				sc, err := simulate.LoadScenario(c.Context, f, p)
				if err != nil {
					return fail(exitUsage, "invalid scenario:\n%v", err)
				}
				res, err := simulate.Run(c.Context, p, policyFile, sc, simulate.Options{})
				if err != nil {
					return fail(exitInternal, "%v", err)
				}
				ok = ok && res.OK
				results = append(results, res)
				if out := c.String("svg"); out != "" {
					if len(files) > 1 {
						out = strings.TrimSuffix(out, ".svg") + "-" + strings.TrimSuffix(filepath.Base(f), ".star") + ".svg"
					}
					if err := writeSVG(out, res); err != nil {
						return fail(exitInternal, "write SVG: %v", err)
					}
				}
				if !c.Bool("json") {
					simulate.WriteText(c.App.Writer, res, simulate.TextOptions{Quiet: c.Bool("quiet")})
					fmt.Fprintln(c.App.Writer)
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"ok": ok, "results": results}); err != nil {
					return fail(exitInternal, "write JSON: %v", err)
				}
			}
			if !ok {
				var failed []string
				for _, r := range results {
					for _, e := range r.Expectations {
						if !e.OK {
							failed = append(failed, fmt.Sprintf("%s: %s (%s)", e.Pos, e.Expect, e.Detail))
						}
					}
				}
				return fail(exitFailed, "%d expectation(s) failed:\n  %s", len(failed), joinLines(failed))
			}
			return nil
		},
	}
}

func writeSVG(path string, res *simulate.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := simulate.WriteSVG(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func joinLines(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}
