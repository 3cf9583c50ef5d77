package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate policy files",
		ArgsUsage: "POLICY.star [MORE.star...]",
		Description: `Loads each policy and reports every problem as file:line:col: message
(syntax, unknown names, wrong argument types, bad durations and cron lines,
references to nodes, groups or probes that do not exist, impossible
placements). Prints a short summary of a valid policy.

Exit 0 when every policy is valid, 1 when one has errors, 2 on usage errors.`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print results as JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail(exitUsage, "check: give a policy file, e.g. harules check /etc/harules/policy.star")
			}
			type result struct {
				File    string         `json:"file"`
				OK      bool           `json:"ok"`
				Errors  []string       `json:"errors,omitempty"`
				Summary map[string]any `json:"summary,omitempty"`
			}
			var results []result
			bad := false
			for _, file := range c.Args().Slice() {
				p, err := rules.Load(c.Context, file, rules.Options{})
				r := result{File: file, OK: err == nil}
				if err != nil {
					bad = true
					var es rules.Errors
					if errors.As(err, &es) {
						for _, e := range es {
							r.Errors = append(r.Errors, e.Error())
						}
					} else {
						r.Errors = []string{err.Error()}
					}
				} else {
					r.Summary = summary(p)
				}
				results = append(results, r)
			}
			out := c.App.Writer
			if c.Bool("json") {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				_ = enc.Encode(results)
			} else {
				for _, r := range results {
					for _, e := range r.Errors {
						fmt.Fprintln(c.App.ErrWriter, e)
					}
					if r.OK {
						s := r.Summary
						fmt.Fprintf(out, "%s: ok: cluster %q, %d nodes, %d heartbeat paths, %d probes, %d groups, %d rules, %d backups (policy %s)\n",
							r.File, s["cluster"], s["nodes"], s["paths"], s["probes"], s["groups"], s["rules"], s["backups"], s["hash"])
						fmt.Fprintf(out, "  a dead peer is declared after %s without heartbeats on every path\n", s["detection"])
					}
				}
			}
			if bad {
				return fail(exitFailed, "")
			}
			return nil
		},
	}
}

func summary(p *policy.Policy) map[string]any {
	return map[string]any{"cluster": p.Cluster.Name, "nodes": len(p.Nodes), "paths": len(p.Paths), "probes": len(p.Probes),
		"groups": len(p.Groups), "rules": len(p.Rules), "backups": len(p.Backups), "hash": p.Hash,
		"detection": p.DetectionTime().Round(time.Millisecond).String()}
}
