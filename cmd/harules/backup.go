package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

func backupCommand() *cli.Command {
	policyFlag := &cli.StringFlag{Name: "policy", Value: agent.DefaultPolicyPath, Usage: "policy file declaring the backup jobs"}
	stateDirFlag := &cli.StringFlag{Name: "state-dir", Value: agent.DefaultStateDir, Usage: "the agent's state directory, where verifications are recorded"}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}
	// nargs checks a subcommand's positional arguments.
	nargs := func(sub, want string, n int, action func(c *cli.Context, args []string) error) cli.ActionFunc {
		return func(c *cli.Context) error {
			if c.NArg() != n {
				return fail(exitUsage, "backup %s: want %s; see harules backup %s --help", sub, want, sub)
			}
			return action(c, c.Args().Slice())
		}
	}
	return &cli.Command{
		Name:      "backup",
		Usage:     "list, run, verify and restore the policy's backup jobs",
		UsageText: "harules backup list|run|verify|restore [options] [arguments...]   (harules backup SUBCOMMAND --help)",
		Description: `The backup jobs are the policy's backup(...) declarations; their backups
live in the store directory params["target"] (and copies in params["copy_to"]).
Each subcommand has its own help: harules backup list --help.

verify and restore lock the store; while a backup runs there, they say so
and exit 1 (try again when ` + "`harules status`" + ` shows it finished).

Exit codes: 0 ok, 1 failed, corrupt or refused, 2 usage error.`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "every job with its schedule, next run, last verify and the store's history",
				Description: `Every job with its schedule, group and next run, its last verify in each
store (from STATE-DIR/backup-verify.json), and the store's history: id,
start, end, bytes, SHA-256 prefix, outcome, safe/copies.`,
				Flags: []cli.Flag{policyFlag, controlFlag, jsonFlag, stateDirFlag,
					&cli.TimestampFlag{Name: "now", Layout: time.RFC3339, Usage: "compute next runs as of this time (RFC 3339)"}},
				Action: nargs("list", "no arguments", 0, func(c *cli.Context, _ []string) error { return backupList(c) }),
			},
			{
				Name:      "run",
				Usage:     "ask the local agent to run a job now",
				ArgsUsage: "JOB",
				Description: `Asks the local agent to run JOB now. A job bound to a group runs only on
the node holding the group; elsewhere the agent refuses, naming that node.
--wait waits for the outcome (exit 1 if it failed or was refused).`,
				Flags: []cli.Flag{controlFlag, &cli.BoolFlag{Name: "wait", Usage: "wait for the run to finish and print its outcome"},
					&cli.BoolFlag{Name: "json", Usage: "with --wait: print the outcome as JSON"}},
				Action: nargs("run", "JOB", 1, func(c *cli.Context, a []string) error { return backupRun(c, a[0]) }),
			},
			{
				Name:      "verify",
				Usage:     "re-read a backup and its copies and check every checksum",
				ArgsUsage: "JOB ID",
				Description: `Re-reads the backup and its copies and checks every checksum; exit 1 if
anything is corrupt or missing. ID "latest" is the newest good backup.
--store checks one store only (target, copy or peer:NODE). Each store's
result is appended to the verification log STATE-DIR/backup-verify.json
(default /var/lib/harules), which the console shows as "last verify".`,
				Flags: []cli.Flag{policyFlag, jsonFlag, stateDirFlag,
					&cli.StringFlag{Name: "store", Usage: `check only this store ("target", "copy" or "peer:NODE"); default all`}},
				Action: nargs("verify", "JOB ID", 2, func(c *cli.Context, a []string) error { return backupVerify(c, a[0], a[1]) }),
			},
			{
				Name:      "restore",
				Usage:     "restore a backup (checked against its checksums while it is restored)",
				ArgsUsage: "JOB ID (--to DIR | --to-dsn DSN | --to-file PATH)",
				Description: `  --to DIR          kind files: DIR missing or empty
  --to-dsn DSN      kind postgres: pg_restore into DSN's (existing) database
  --to-file PATH    stream kinds: the dump, "-" for stdout
The backup is checked against its checksums while it is restored.`,
				Flags: []cli.Flag{policyFlag, jsonFlag,
					&cli.StringFlag{Name: "to", Usage: "directory to restore a files backup into"},
					&cli.StringFlag{Name: "to-dsn", Usage: "PostgreSQL connection string of the (existing) database to pg_restore into"},
					&cli.StringFlag{Name: "to-file", Usage: `write the dump of a stream backup to this file ("-": stdout)`}},
				Action: nargs("restore", "JOB ID and --to DIR, --to-dsn DSN or --to-file PATH", 2, func(c *cli.Context, a []string) error { return backupRestore(c, a[0], a[1]) }),
			},
		},
		// Reached without a known subcommand.
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail(exitUsage, "backup: want list, run JOB, verify JOB ID or restore JOB ID; see harules backup --help")
			}
			return fail(exitUsage, "backup: unknown subcommand %q: want list, run, verify or restore", c.Args().First())
		},
	}
}

// listedJob is one job of `backup list --json`.
type listedJob struct {
	Name     string         `json:"name"`
	Kind     string         `json:"kind"`
	Schedule string         `json:"schedule"`
	Timezone string         `json:"timezone"`
	Group    string         `json:"group,omitempty"`
	CatchUp  bool           `json:"catch_up"`
	Target   string         `json:"target,omitempty"`
	CopyTo   string         `json:"copy_to,omitempty"`
	NextRun  time.Time      `json:"next_run,omitzero"`
	History  []listedRecord `json:"history"`
	// Local is the local agent's current or last run of the job (when the
	// agent is reachable and ran the job since it started).
	Local *agent.BackupState `json:"local,omitempty"`
	// LastVerify is the newest verification of the job in each store that
	// has one, from the verification log in --state-dir.
	LastVerify []agent.VerifyEntry `json:"last_verify,omitempty"`
	Error      string              `json:"error,omitempty"`
}

// listedRecord is a catalogue record with its safety spelled out.
type listedRecord struct {
	backup.Record
	Safe bool `json:"safe"`
}

func loadPolicy(c *cli.Context) (*policy.Policy, error) {
	p, err := rules.Load(c.Context, c.String("policy"), rules.Options{})
	if err != nil {
		return nil, fail(exitUsage, "load policy %s:\n%v", c.String("policy"), err)
	}
	return p, nil
}

func findJob(p *policy.Policy, name, file string) (*policy.Backup, error) {
	var names []string
	for _, b := range p.Backups {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return nil, fail(exitUsage, "no backup job %q in %s (jobs: %s)", name, file, orNone(strings.Join(names, ", ")))
}

// nextRun is when the job's schedule fires next after now, in its time zone.
func nextRun(b *policy.Backup, now time.Time) time.Time {
	if b.Sched == nil {
		return time.Time{}
	}
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	return b.Sched.Next(now.In(loc))
}

// readHistory reads a job's catalogue without locking the store, so list
// works while the agent is writing a backup (the catalogue is replaced
// atomically, so a reader sees the old or the new one).
func readHistory(target, job string) ([]backup.Record, error) {
	b, err := os.ReadFile(filepath.Join(target, job, "history.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", job, err)
	}
	var hist []backup.Record
	if err := json.Unmarshal(b, &hist); err != nil {
		return nil, fmt.Errorf("read history of %s in %s: %w", job, target, err)
	}
	return hist, nil
}

func backupList(c *cli.Context) error {
	p, err := loadPolicy(c)
	if err != nil {
		return err
	}
	now := time.Now()
	if t := c.Timestamp("now"); t != nil {
		now = *t
	}
	local := localBackupStates(c.Context, c.String("control"))
	verified, verr := agent.StateVerifyLog(c.String("state-dir")).Read()
	if verr != nil {
		fmt.Fprintf(c.App.ErrWriter, "warning: %v\n", verr)
	}
	var jobs []listedJob
	failed := false
	for _, b := range p.Backups {
		j := listedJob{Name: b.Name, Kind: b.Kind, Schedule: b.Schedule, Timezone: "UTC", Group: b.Group, CatchUp: b.CatchUp,
			NextRun: nextRun(b, now), History: []listedRecord{}}
		if b.Location != nil {
			j.Timezone = b.Location.String()
		}
		_, target, copyTo, err := agent.JobFromPolicy(b)
		j.Target, j.CopyTo = target, copyTo
		if err == nil {
			var hist []backup.Record
			hist, err = readHistory(target, b.Name)
			for _, r := range hist {
				j.History = append(j.History, listedRecord{Record: r, Safe: r.Safe()})
			}
		}
		if err != nil {
			j.Error, failed = err.Error(), true
		}
		if s, ok := local[b.Name]; ok {
			j.Local = &s
		}
		var stores []string
		for _, e := range verified {
			if e.Job == b.Name && !slices.Contains(stores, e.Store) {
				stores = append(stores, e.Store)
			}
		}
		for _, st := range stores {
			if e, ok := agent.LastVerify(verified, b.Name, st, ""); ok {
				j.LastVerify = append(j.LastVerify, e)
			}
		}
		jobs = append(jobs, j)
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"policy": c.String("policy"), "now": now, "jobs": jobsOrEmpty(jobs)}); err != nil {
			return err
		}
	} else {
		printBackupList(w, jobs, now)
	}
	if failed {
		return fail(exitFailed, "backup list: some jobs could not be read (see above)")
	}
	return nil
}

// localBackupStates asks the local agent, if one answers, which backups it
// is running or ran; list works without an agent too.
func localBackupStates(ctx context.Context, socket string) map[string]agent.BackupState {
	if _, err := os.Stat(socket); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := agent.NewClient(socket).Status(ctx)
	if err != nil {
		return nil
	}
	out := map[string]agent.BackupState{}
	for _, b := range st.Backups {
		out[b.Job] = b
	}
	return out
}

func jobsOrEmpty(j []listedJob) []listedJob {
	if j == nil {
		return []listedJob{}
	}
	return j
}

func printBackupList(w io.Writer, jobs []listedJob, now time.Time) {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "the policy declares no backup jobs")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tSCHEDULE\tGROUP\tNEXT RUN\tTARGET")
	for _, j := range jobs {
		next := "-"
		if !j.NextRun.IsZero() {
			next = fmt.Sprintf("%s (in %s)", j.NextRun.Format(time.RFC3339), j.NextRun.Sub(now).Round(time.Second))
		}
		target := j.Target
		if j.CopyTo != "" {
			target += " (copy " + j.CopyTo + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\n", j.Name, j.Kind, j.Schedule, j.Timezone, orNone(j.Group), next, orNone(target))
	}
	tw.Flush()
	for _, j := range jobs {
		fmt.Fprintf(w, "\n%s: ", j.Name)
		if j.Local != nil {
			fmt.Fprintf(w, "on this node: %s\n%s: ", j.Local.Text(time.Now(), func(t time.Time) string { return t.Format(time.RFC3339) }), j.Name)
		}
		for _, e := range j.LastVerify {
			fmt.Fprintf(w, "last verify in %s: %s\n%s: ", e.Store, e.Text(func(t time.Time) string { return t.Format(time.RFC3339) }), j.Name)
		}
		switch {
		case j.Error != "":
			fmt.Fprintf(w, "ERROR: %s\n", j.Error)
			continue
		case len(j.History) == 0:
			fmt.Fprintf(w, "no runs in %s yet\n", j.Target)
			continue
		}
		fmt.Fprintf(w, "%d runs in %s, newest last\n", len(j.History), j.Target)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNODE\tSTART\tEND\tBYTES\tSHA256\tOUTCOME\tSAFE\tCOPIES")
		for _, r := range j.History {
			end := "-"
			if !r.End.IsZero() {
				end = r.End.Format(time.RFC3339)
			}
			sum := "-"
			if r.SHA256 != "" {
				sum = r.SHA256[:min(12, len(r.SHA256))]
			}
			outcome := string(r.Outcome)
			if r.Error != "" {
				outcome += ": " + agent.FirstLine(r.Error)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, orNone(r.Node), r.Start.Format(time.RFC3339), end, r.Bytes, sum,
				outcome, yesNo(r.Safe), copiesText(r.Record))
		}
		tw.Flush()
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func copiesText(r backup.Record) string {
	if len(r.Copies) == 0 && len(r.Want) == 0 {
		return "-"
	}
	var parts []string
	for _, c := range r.Copies {
		state := "verified"
		if !c.Verified {
			state = "NOT VERIFIED"
			if c.Error != "" {
				state += " (" + agent.FirstLine(c.Error) + ")"
			}
		}
		parts = append(parts, c.Replica+": "+state)
	}
	for _, want := range r.Want {
		if !slices.ContainsFunc(r.Copies, func(c backup.Copy) bool { return c.Replica == want }) {
			parts = append(parts, want+": missing")
		}
	}
	return strings.Join(parts, ", ")
}

func backupRun(c *cli.Context, job string) error {
	cl := agent.NewClient(c.String("control"))
	acc, err := cl.Backup(c.Context, job)
	if err != nil {
		return fail(exitFailed, "backup run %s: %v", job, err)
	}
	w := c.App.Writer
	if !c.Bool("wait") {
		fmt.Fprintf(w, "backup %s started on %s; `harules status` shows its progress, `harules backup list` its result\n", job, acc.Node)
		return nil
	}
	if !c.Bool("json") {
		fmt.Fprintf(w, "backup %s started on %s; waiting for it to finish\n", job, acc.Node)
	}
	st, err := waitBackup(c.Context, cl, acc, 500*time.Millisecond)
	if err != nil {
		return fail(exitFailed, "backup run %s: %v", job, err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "backup %s %s on %s: id %s, %d bytes, took %s\n", job, st.Outcome, acc.Node, orNone(st.ID), st.Done,
			st.Finished.Sub(st.Started).Round(time.Millisecond))
	}
	if st.Outcome != string(backup.OutcomeOK) {
		return fail(exitFailed, "backup %s %s: %s", job, st.Outcome, st.Error)
	}
	return nil
}

// waitBackup polls the agent's status until the run it accepted finished.
func waitBackup(ctx context.Context, cl *agent.Client, acc agent.BackupAccepted, every time.Duration) (agent.BackupState, error) {
	for {
		st, err := cl.Status(ctx)
		if err != nil {
			return agent.BackupState{}, err
		}
		for _, b := range st.Backups {
			if b.Job == acc.Job && !b.Running && !b.Finished.Before(acc.Started) {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return agent.BackupState{}, fmt.Errorf("stopped waiting (the run goes on): %w", ctx.Err())
		case <-time.After(every):
		}
	}
}

// openJobStore opens the store of a job (and its copy store), failing
// clearly when the store does not exist or a running backup holds it.
func openJobStore(b *policy.Backup) (backup.Job, *backup.Store, func(), error) {
	job, target, copyTo, err := agent.JobFromPolicy(b)
	if err != nil {
		return job, nil, nil, fail(exitUsage, "%v", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(dir string) (*backup.Store, error) {
		if _, err := os.Stat(dir); err != nil {
			return nil, fail(exitFailed, "backup store %s of job %s: %v", dir, b.Name, err)
		}
		s, _, err := backup.Open(dir, backup.WithLogger(quiet))
		if errors.Is(err, backup.ErrLocked) {
			return nil, fail(exitFailed, "backup store %s is in use (a backup of this node is running now; `harules status` shows it): try again when it finished", dir)
		}
		if err != nil {
			return nil, fail(exitFailed, "%v", err)
		}
		return s, nil
	}
	st, err := open(target)
	if err != nil {
		return job, nil, nil, err
	}
	closeAll := func() { st.Close() }
	if copyTo != "" {
		cs, err := open(copyTo)
		if err != nil {
			st.Close()
			return job, nil, nil, err
		}
		job.Replicas = append(job.Replicas, backup.NewDirReplica("copy", cs))
		closeAll = func() { cs.Close(); st.Close() }
	}
	return job, st, closeAll, nil
}

// resolveID turns "latest" into the newest good backup's ID and checks
// that the backup exists.
func resolveID(st *backup.Store, job, id string) (backup.Record, error) {
	if id == "latest" {
		good, err := st.Backups(job)
		if err != nil {
			return backup.Record{}, fail(exitFailed, "%v", err)
		}
		if len(good) == 0 {
			return backup.Record{}, fail(exitFailed, "job %s has no good backup in %s", job, st.Dir())
		}
		return good[len(good)-1], nil
	}
	rec, err := st.Get(job, id)
	if errors.Is(err, backup.ErrInvalidName) {
		return rec, fail(exitUsage, "%v", err)
	}
	if err != nil {
		return rec, fail(exitFailed, "%v (`harules backup list` shows the IDs)", err)
	}
	if !rec.Good() {
		return rec, fail(exitFailed, "%s/%s is not a stored backup: its outcome is %s", job, id, rec.Outcome)
	}
	return rec, nil
}

// backupCheckResult is the JSON of verify and restore.
type backupCheckResult struct {
	Job     string        `json:"job"`
	ID      string        `json:"id"`
	OK      bool          `json:"ok"`
	Corrupt bool          `json:"corrupt"`
	Error   string        `json:"error,omitempty"`
	Into    string        `json:"into,omitempty"`
	Record  *listedRecord `json:"record,omitempty"`
	// Verified: one entry per store checked, as appended to the agent's
	// verification log; Recorded says where (or why not).
	Verified []agent.VerifyEntry `json:"verified,omitempty"`
	Recorded string              `json:"recorded,omitempty"`
}

// recordVerifies appends a verify's entries to the verification log in the
// agent's state directory, the file the console reads "last verify" from.
// The CLI writes the file itself (under the log's flock) rather than asking
// the agent, so the record is kept whether or not the agent runs. It says
// where the entries went, or why they did not.
func recordVerifies(stateDir string, entries []agent.VerifyEntry) string {
	if len(entries) == 0 {
		return ""
	}
	if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
		return fmt.Sprintf("not recorded: no agent state directory %s (--state-dir)", stateDir)
	}
	for i := range entries {
		entries[i].By = "cli"
	}
	log := agent.StateVerifyLog(stateDir)
	if err := log.Append(entries...); err != nil {
		return "not recorded: " + err.Error()
	}
	return "recorded in " + log.Path
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func backupVerify(c *cli.Context, jobName, id string) error {
	p, err := loadPolicy(c)
	if err != nil {
		return err
	}
	b, err := findJob(p, jobName, c.String("policy"))
	if err != nil {
		return err
	}
	job, st, closeStores, err := openJobStore(b)
	if err != nil {
		return err
	}
	defer closeStores()
	rec, err := resolveID(st, jobName, id)
	if err != nil {
		return err
	}
	// Copies on peer nodes are checked there, over the cluster's channel.
	peers, err := agent.PeerReplicasForRecord(p, c.String("policy"), b, rec)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	job.Replicas = append(job.Replicas, peers...)
	rec, entries, verr := agent.VerifyStores(c.Context, st, job, rec.ID, c.String("store"), time.Now)
	if errors.Is(verr, agent.ErrUnknownStore) {
		return fail(exitUsage, "backup verify: %v", verr)
	}
	res := backupCheckResult{Job: jobName, ID: rec.ID, OK: verr == nil, Corrupt: errors.Is(verr, backup.ErrCorrupt),
		Record: &listedRecord{Record: rec, Safe: rec.Safe()}, Verified: entries}
	if verr != nil {
		res.Error = verr.Error()
	}
	res.Recorded = recordVerifies(c.String("state-dir"), entries)
	w := c.App.Writer
	if c.Bool("json") {
		if err := printJSON(w, res); err != nil {
			return err
		}
	} else {
		if verr == nil {
			fmt.Fprintf(w, "%s/%s: ok: %s, %d bytes, SHA-256 %s", jobName, rec.ID, rec.DataFile(), rec.Bytes, rec.SHA256)
			if rec.Entries > 0 {
				fmt.Fprintf(w, ", %d archive entries checked against the manifest", rec.Entries)
			}
			fmt.Fprintln(w)
		}
		for _, cp := range rec.Copies {
			state := "verified"
			if !cp.Verified {
				state = "NOT VERIFIED: " + cp.Error
			}
			fmt.Fprintf(w, "  copy %s at %s: %s\n", cp.Replica, orNone(cp.Location), state)
		}
		if res.Recorded != "" {
			fmt.Fprintf(w, "  %s\n", res.Recorded)
		}
	}
	if verr != nil {
		what := "verify failed"
		if res.Corrupt {
			what = "CORRUPT"
		}
		return fail(exitFailed, "%s/%s: %s: %v", jobName, rec.ID, what, verr)
	}
	return nil
}

func backupRestore(c *cli.Context, jobName, id string) error {
	to, toDSN, toFile := c.String("to"), c.String("to-dsn"), c.String("to-file")
	set := 0
	for _, s := range []string{to, toDSN, toFile} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return fail(exitUsage, "backup restore: give exactly one of --to DIR (files), --to-dsn DSN (postgres) or --to-file PATH (dumps)")
	}
	p, err := loadPolicy(c)
	if err != nil {
		return err
	}
	b, err := findJob(p, jobName, c.String("policy"))
	if err != nil {
		return err
	}
	switch {
	case to != "" && b.Kind != "files":
		return fail(exitUsage, "backup restore: job %s is kind %s; --to DIR restores kind files (use --to-dsn for postgres, --to-file for a dump)", jobName, b.Kind)
	case toDSN != "" && b.Kind != "postgres":
		return fail(exitUsage, "backup restore: --to-dsn restores kind postgres; job %s is kind %s", jobName, b.Kind)
	case toFile != "" && b.Kind == "files":
		return fail(exitUsage, "backup restore: job %s is kind files; restore it with --to DIR", jobName)
	}
	_, st, closeStores, err := openJobStore(b)
	if err != nil {
		return err
	}
	defer closeStores()
	rec, err := resolveID(st, jobName, id)
	if err != nil {
		return err
	}
	res := backupCheckResult{Job: jobName, ID: rec.ID, Record: &listedRecord{Record: rec, Safe: rec.Safe()}}
	var rerr error
	switch {
	case to != "":
		res.Into = to
		rerr = st.RestoreFiles(c.Context, jobName, rec.ID, to, backup.RestoreOptions{})
	case toDSN != "":
		res.Into = "postgres database " + toDSN
		rerr = st.RestoreStreamTo(c.Context, jobName, rec.ID, backup.PostgresRestore(toDSN))
	default:
		res.Into = toFile
		rerr = restoreToFile(c.Context, st, jobName, rec.ID, toFile, c.App.Writer)
	}
	res.OK, res.Corrupt = rerr == nil, errors.Is(rerr, backup.ErrCorrupt)
	if rerr != nil && !res.Corrupt && !errors.Is(rerr, backup.ErrTargetNotEmpty) && c.Context.Err() == nil {
		// A damaged archive can surface as a decompression error; a full
		// verify says whether the backup itself is corrupt.
		if verr := st.Verify(c.Context, jobName, rec.ID); errors.Is(verr, backup.ErrCorrupt) {
			res.Corrupt = true
			rerr = fmt.Errorf("%w; the backup is corrupt: %v", rerr, verr)
		}
	}
	if rerr != nil {
		res.Error = rerr.Error()
	}
	w := c.App.Writer
	if toFile == "-" {
		w = c.App.ErrWriter // stdout carries the dump
	}
	if c.Bool("json") {
		if err := printJSON(w, res); err != nil {
			return err
		}
	} else if rerr == nil {
		fmt.Fprintf(w, "restored %s/%s (%s, %d bytes, SHA-256 %.12s, from %s) into %s; checked against its checksums\n",
			jobName, rec.ID, rec.Kind, rec.Bytes, rec.SHA256, rec.Start.Format(time.RFC3339), res.Into)
	}
	if rerr != nil {
		hint := ""
		if to != "" && !errors.Is(rerr, backup.ErrTargetNotEmpty) {
			hint = fmt.Sprintf(" (%s may hold a partial tree: remove it before trying again)", to)
		}
		return fail(exitFailed, "restore %s/%s into %s failed: %v%s", jobName, rec.ID, res.Into, rerr, hint)
	}
	return nil
}

// restoreToFile writes a stream backup's dump to path ("-": stdout); see
// agent.RestoreToFile (the console's restore writes dumps the same way).
func restoreToFile(ctx context.Context, st *backup.Store, job, id, path string, stdout io.Writer) error {
	if path == "-" {
		return st.RestoreStream(ctx, job, id, stdout)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; choose a new file", path)
	}
	return agent.RestoreToFile(ctx, st, job, id, path)
}
