package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/database"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

func databaseCommand() *cli.Command {
	return &cli.Command{
		Name:      "database",
		Aliases:   []string{"db"},
		Usage:     "database chores the agent does not do by itself",
		ArgsUsage: "rejoin RESOURCE --primary DSN",
		Description: `harules database rejoin RESOURCE --primary DSN [--policy P]
    Turns this node's PostgreSQL server of the policy's database(RESOURCE)
    into a streaming standby of the new primary: stop, CHECKPOINT on the new
    primary, pg_rewind, standby.signal + primary_conninfo, start, wait until it
    streams. Run it on an old primary after a failover, before it may take the
    group again (otherwise it could come up as a second primary). pg_rewind
    needs wal_log_hints=on or data checksums; when it cannot run, the error
    gives the manual pg_basebackup re-clone.

Exit codes: 0 ok, 1 failed, 2 usage error.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Value: agent.DefaultPolicyPath, Usage: "policy file"},
			&cli.StringFlag{Name: "primary", Usage: "rejoin: libpq connection string of the new primary (also used as primary_conninfo)"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "rejoin: give up after this long"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) != 2 || args[0] != "rejoin" {
				return fail(exitUsage, "database: want rejoin RESOURCE --primary DSN; see harules database --help")
			}
			if c.String("primary") == "" {
				return fail(exitUsage, "database rejoin: give --primary \"host=... user=... application_name=...\" (the new primary)")
			}
			p, err := rules.Load(c.Context, c.String("policy"), rules.Options{})
			if err != nil {
				return fail(exitUsage, "invalid policy:\n%v", err)
			}
			r := findDatabase(p, args[1])
			if r == nil {
				return fail(exitUsage, "database rejoin: the policy declares no database(%q)", args[1])
			}
			if r.Params["engine"] != database.EnginePostgres {
				return fail(exitUsage, "database rejoin: %s is a %s database; rejoin is for PostgreSQL", args[1], r.Params["engine"])
			}
			cfg, err := database.PostgresConfigFromParams(r.Name, r.Params)
			if err != nil {
				return fail(exitUsage, "database rejoin: %v", err)
			}
			pg, err := database.NewPostgres(cfg)
			if err != nil {
				return fail(exitFailed, "database rejoin: %v", err)
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			slog.Info("rejoining as a standby", "database", r.Name, "primary", c.String("primary"))
			if err := pg.Rejoin(ctx, c.String("primary")); err != nil {
				return fail(exitFailed, "database rejoin: %v", err)
			}
			fmt.Fprintf(c.App.Writer, "%s: this node's server streams from the new primary as a standby\n", r.Name)
			return nil
		},
	}
}

func findDatabase(p *policy.Policy, name string) *policy.Resource {
	for _, g := range p.Groups {
		for _, r := range g.Resources {
			if r.Kind == policy.KindDatabase && r.Name == name {
				return r
			}
		}
	}
	return nil
}
