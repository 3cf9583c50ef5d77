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
		UsageText: "harules database rejoin [options] RESOURCE   (harules database rejoin --help)",
		Description: `Each subcommand has its own help: harules database rejoin --help.

Exit codes: 0 ok, 1 failed, 2 usage error.`,
		Subcommands: []*cli.Command{{
			Name:      "rejoin",
			Usage:     "make this node's server of database(RESOURCE) a replica of the new primary",
			ArgsUsage: "RESOURCE --primary DSN",
			Description: `Run it on an old primary after a failover, before it may take the group
again: it turns this node's server of the policy's database(RESOURCE)
into a replica of the new primary (otherwise it stays a stale server,
or comes up as a second primary).

PostgreSQL (engine="postgres"): --primary is a libpq connection string
("host=... user=... application_name=..."), also used as
primary_conninfo. Stop, CHECKPOINT on the new primary, pg_rewind,
standby.signal + primary_conninfo, start, wait until it streams.
pg_rewind needs wal_log_hints=on or data checksums; when it cannot run,
the error gives the manual pg_basebackup re-clone.

MariaDB (engine="mysql"): --primary is "user:password@tcp(host:port)/"
with the replication account (REPLICATION SLAVE) and the new primary's
address as this server must reach it. Refused, changing nothing, when
this server has transactions the new primary does not have (its last
GTID in a domain is in neither the primary's gtid_binlog_state nor its
gtid_slave_pos: it would diverge; rebuild it from a backup or clone of
the new primary), when --primary is this server, or when it is
read-only. Otherwise: read_only=ON, STOP SLAVE, RESET SLAVE ALL,
gtid_slave_pos = this server's gtid_current_pos, CHANGE MASTER TO ...
MASTER_USE_GTID=slave_pos, START SLAVE; it waits until
Slave_IO_Running and Slave_SQL_Running are Yes and the primary's GTID
position at the start is applied. The server keeps read_only=ON; the
agent makes it writable if the group moves back. Semi-synchronous
replication toward it is the servers' own configuration
(rpl_semi_sync_slave_enabled here, rpl_semi_sync_master_enabled there).

Exit codes: 0 ok, 1 failed (for a diverged MariaDB server: see the
message), 2 usage error.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "policy", Value: agent.DefaultPolicyPath, Usage: "policy file"},
				&cli.StringFlag{Name: "primary", Usage: "rejoin: the new primary: PostgreSQL, a libpq connection string (also used as primary_conninfo); MariaDB, user:password@tcp(host:port)/ with the replication account"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "rejoin: give up after this long"},
			},
			Action: func(c *cli.Context) error {
				args := c.Args().Slice()
				if len(args) != 1 {
					return fail(exitUsage, "database rejoin: want RESOURCE; see harules database rejoin --help")
				}
				if c.String("primary") == "" {
					return fail(exitUsage, "database rejoin: give --primary, the new primary (PostgreSQL: \"host=... user=... application_name=...\"; MariaDB: \"repl:password@tcp(host:3306)/\")")
				}
				p, err := rules.Load(c.Context, c.String("policy"), rules.Options{})
				if err != nil {
					return fail(exitUsage, "invalid policy:\n%v", err)
				}
				r := findDatabase(p, args[0])
				if r == nil {
					return fail(exitUsage, "database rejoin: the policy declares no database(%q)", args[0])
				}
				ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
				defer cancel()
				switch engine := r.Params["engine"]; engine {
				case database.EnginePostgres, "":
					return rejoinPostgres(ctx, c, r)
				case database.EngineMySQL:
					return rejoinMySQL(ctx, c, r)
				default:
					return fail(exitUsage, "database rejoin: %s has engine %q; rejoin knows postgres and mysql", r.Name, engine)
				}
			},
		}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail(exitUsage, "database: want rejoin RESOURCE --primary DSN; see harules database --help")
			}
			return fail(exitUsage, "database: unknown subcommand %q: want rejoin RESOURCE --primary DSN; see harules database --help", c.Args().First())
		},
	}
}
func rejoinPostgres(ctx context.Context, c *cli.Context, r *policy.Resource) error {
	cfg, err := database.PostgresConfigFromParams(r.Name, r.Params)
	if err != nil {
		return fail(exitUsage, "database rejoin: %v", err)
	}
	pg, err := database.NewPostgres(cfg)
	if err != nil {
		return fail(exitFailed, "database rejoin: %v", err)
	}
	slog.Info("rejoining as a standby", "database", r.Name, "primary", c.String("primary"))
	if err := pg.Rejoin(ctx, c.String("primary")); err != nil {
		return fail(exitFailed, "database rejoin: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "%s: this node's server streams from the new primary as a standby\n", r.Name)
	return nil
}

func rejoinMySQL(ctx context.Context, c *cli.Context, r *policy.Resource) error {
	if _, err := database.ParseMySQLSource(c.String("primary")); err != nil {
		return fail(exitUsage, "database rejoin: %v", err)
	}
	cfg, err := database.MySQLConfigFromParams(r.Name, r.Params)
	if err != nil {
		return fail(exitUsage, "database rejoin: %v", err)
	}
	// The resource's timeout bounds a promotion; a rejoin may have a long
	// way to catch up.
	cfg.Timeout = c.Duration("timeout")
	my, err := database.NewMySQL(cfg)
	if err != nil {
		return fail(exitFailed, "database rejoin: %v", err)
	}
	slog.Info("rejoining as a replica", "database", r.Name)
	if err := my.Rejoin(ctx, c.String("primary")); err != nil {
		return fail(exitFailed, "database rejoin: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "%s: this node's server replicates from the new primary (read-only, GTID slave_pos)\n", r.Name)
	return nil
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
