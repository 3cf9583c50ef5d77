package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate policy files and what run needs (--node: on this node; --faults: run each through a standard set of faults)",
		ArgsUsage: "POLICY.star [MORE.star...]",
		Description: `Loads each policy and reports every problem as file:line:col: message
(syntax, unknown names, wrong argument types, bad durations and cron lines,
references to nodes, groups or probes that do not exist, impossible
placements). Prints a short summary of a valid policy.

It also checks what harules run needs, as run will (run refuses a policy
that fails these, exit 78, before it touches anything):
  the cluster secret: with 2 or more nodes, cluster(secret_file=...) must
  name a regular file (relative to the policy file's directory) of mode
  0600 or stricter holding at least 16 bytes;
  with --node NAME, the facts of that node (run check on it): interfaces
  named in vip() exist, service programs and OCF agents exist and are
  executable, disk devices exist, --state-dir and the backup stores are
  writable. Only the groups and backups NAME may run count; a program or
  service dir under a disk() mountpoint of the same group is not looked
  for (it is there once the disk is mounted).
Not being root, what cannot be read or written is a warning, not an error.
--policy-only skips these (a policy checked away from its nodes, e.g. in CI).

Exit 0 when every policy is valid, 1 when one has errors, 2 on usage errors.

--faults also runs each valid policy through the fault matrix with the
simulator (crash of each node holding a group, isolation of each node, each
heartbeat path down, and with 3+ nodes each pair cut apart and the active
node's crash while another is down; 60s runs, fault at 10s, recovery at 40s)
and prints, per fault, the groups that moved, the longest outage, any SPLIT
BRAIN, groups left stopped and alerts raised. See docs/simulate.md.
With --faults: exit 0 when no fault produces a split brain, 1 when one does,
2 when a policy is invalid (or on usage errors).`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print results as JSON"},
			&cli.BoolFlag{Name: "faults", Usage: "run each policy through the fault matrix (exit 1 on a split brain)"},
			&cli.StringFlag{Name: "node", Usage: "also check this node's facts (interfaces, programs, devices, directories): run it on the node"},
			&cli.StringFlag{Name: "state-dir", Value: agent.DefaultStateDir, Usage: "with --node: the agent's state directory, which must be writable"},
			&cli.BoolFlag{Name: "policy-only", Usage: "check the policy only, not the secret and node facts run needs"},
			&cli.StringSliceFlag{Name: "isolation-probe", Usage: "with --faults: this probe fails on an isolated node (e.g. the gateway probe; repeatable)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "with --faults: seed of heartbeat and probe phases and jitter"},
			&cli.IntFlag{Name: "seeds", Value: 1, Usage: "with --faults: also look for a split brain with the next seeds (--seeds 13: seed to seed+12)"},
			&cli.DurationFlag{Name: "outage-limit", Value: 5 * time.Second, Usage: "with --faults: the summary counts faults with an outage longer than this"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail(exitUsage, "check: give a policy file, e.g. harules check /etc/harules/policy.star")
			}
			faults := c.Bool("faults")
			if c.Bool("policy-only") && c.String("node") != "" {
				return fail(exitUsage, "check: --node checks a node's facts, --policy-only skips them: give one")
			}
			if !faults {
				for _, f := range []string{"isolation-probe", "seed", "seeds", "outage-limit"} {
					if c.IsSet(f) {
						return fail(exitUsage, "check: --%s only applies with --faults", f)
					}
				}
			}
			type result struct {
				File   string   `json:"file"`
				OK     bool     `json:"ok"`
				Errors []string `json:"errors,omitempty"`
				// Warnings: what this user could not check (not root).
				Warnings []string         `json:"warnings,omitempty"`
				Summary  map[string]any   `json:"summary,omitempty"`
				Faults   *simulate.Matrix `json:"faults,omitempty"`
			}
			var results []result
			invalid, splitBrain := false, false
			for _, file := range c.Args().Slice() {
				p, err := rules.Load(c.Context, file, rules.Options{})
				r := result{File: file, OK: err == nil}
				if err != nil {
					invalid = true
					r.Errors = errorLines(err)
				} else {
					r.Summary = summary(p)
					if !c.Bool("policy-only") {
						var pf agent.Preflight
						pf.CheckSecret(p, file)
						if node := c.String("node"); node != "" {
							pf.CheckNode(p, node, c.String("state-dir"))
						}
						r.Errors, r.Warnings = errorLines(pf.Errors), errorLines(pf.Warnings)
						if len(pf.Errors) > 0 {
							r.OK, invalid, r.Summary = false, true, nil
							results = append(results, r)
							continue
						}
					}
					if faults {
						m, err := simulate.RunMatrix(c.Context, p, file, simulate.MatrixOptions{
							Seed: c.Int64("seed"), Seeds: c.Int("seeds"), IsolationProbes: c.StringSlice("isolation-probe"), OutageLimit: c.Duration("outage-limit")})
						if err != nil {
							if c.Context.Err() != nil {
								return fail(exitInternal, "%s: %v", file, err)
							}
							return fail(exitUsage, "%s: %v", file, err)
						}
						r.Faults = m
						r.OK = !m.SplitBrain()
						splitBrain = splitBrain || m.SplitBrain()
					}
				}
				results = append(results, r)
			}
			out := c.App.Writer
			if c.Bool("json") {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return fail(exitInternal, "write JSON: %v", err)
				}
			} else {
				for _, r := range results {
					for _, e := range r.Errors {
						fmt.Fprintln(c.App.ErrWriter, e)
					}
					for _, w := range r.Warnings {
						fmt.Fprintln(c.App.ErrWriter, "warning:", w)
					}
					if r.Summary != nil {
						s := r.Summary
						fmt.Fprintf(out, "%s: ok: cluster %q, %s, %s, %s, %s, %s, %s (policy %s)\n",
							r.File, s["cluster"], plural(s["nodes"], "node"), plural(s["paths"], "heartbeat path"), plural(s["probes"], "probe"),
							plural(s["groups"], "group"), plural(s["rules"], "rule"), plural(s["backups"], "backup"), s["hash"])
						fmt.Fprintf(out, "  a dead peer is declared after %s without heartbeats on every path\n", s["detection"])
					}
					if r.Faults != nil {
						fmt.Fprintln(out)
						if err := simulate.WriteMatrixText(out, r.Faults); err != nil {
							return fail(exitInternal, "write fault matrix: %v", err)
						}
					}
				}
			}
			switch {
			case !faults && invalid:
				return fail(exitFailed, "")
			case invalid:
				return fail(exitUsage, "")
			case splitBrain:
				if c.Bool("json") {
					return fail(exitFailed, "")
				}
				return fail(exitFailed, "split brain under %s", splitBrainFaults(results, func(r result) *simulate.Matrix { return r.Faults }))
			}
			return nil
		},
	}
}

// errorLines lists a load error as file:line:col: message lines.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	var es rules.Errors
	if !errors.As(err, &es) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

// splitBrainFaults names the faults that produced a split brain, as
// "policy.star: isolate node1, ...".
func splitBrainFaults[R any](results []R, matrix func(R) *simulate.Matrix) string {
	var parts []string
	for _, r := range results {
		m := matrix(r)
		if m == nil {
			continue
		}
		var names []string
		for _, f := range m.Faults {
			if len(f.SplitBrain) > 0 {
				names = append(names, f.Name)
			}
		}
		if len(names) > 0 {
			parts = append(parts, m.Policy+": "+strings.Join(names, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// plural is "1 group", "2 groups" (n is an int of a summary).
func plural(n any, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%v %ss", n, noun)
}

func summary(p *policy.Policy) map[string]any {
	return map[string]any{"cluster": p.Cluster.Name, "nodes": len(p.Nodes), "paths": len(p.Paths), "probes": len(p.Probes),
		"groups": len(p.Groups), "rules": len(p.Rules), "backups": len(p.Backups), "hash": p.Hash,
		"detection": p.DetectionTime().Round(time.Millisecond).String()}
}
