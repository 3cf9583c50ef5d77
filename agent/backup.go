package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/builtins/backup/peer"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// backups runs scheduled backup jobs off the decision loop: a backup can
// take hours, failover must not wait for it.
//
// A store is opened (and its flock taken) only while a run uses it, so
// `harules backup verify/restore` can open it between runs.
type backups struct {
	mu      sync.Mutex
	stores  map[string]*backup.Store
	running map[string]bool
	users   map[string]int          // store dir -> runs using it
	state   map[string]*BackupState // job -> current or last run
	alerts  map[string]engine.Alert // job -> alert raised by its last run
	ops     map[string]*BackupOp    // job -> operator's running or last verify or restore
	// verifyLog records verify="after" checks (SetVerifyLog); nil: logs only.
	verifyLog *VerifyLog
	// record reports outcomes to the agent's records (nil: logs only).
	record func(engine.Record)
	// now is the clock of progress logging and states; nil means time.Now.
	now func() time.Time
	// progressEvery is the spacing of progress log lines; 0 means 5s.
	progressEvery time.Duration
	// lockWait bounds waiting for a store an operator's verify or restore
	// holds; 0 means 10 minutes.
	lockWait time.Duration
	// peerCreds authenticate peer copies (backup_peer.go); nil until loaded.
	peerCreds *peer.Credentials
	// observe sees every finished run (the agent's metrics); nil: nobody.
	observe func(BackupState)
	// succeeded hears of every good run (the agent gossips it, so a node
	// whose own run failed earlier clears its alert); nil: nobody.
	succeeded func(job string, at time.Time)
}

// BackupState is a job's current or last run on this node, as `harules
// status` shows it.
type BackupState struct {
	Job      string    `json:"job"`
	Running  bool      `json:"running"`
	Reason   string    `json:"reason,omitempty"` // why it ran: schedule, catch-up, operator
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	ID       string    `json:"id,omitempty"`
	Done     int64     `json:"done_bytes"`               // bytes stored so far (or in total)
	Estimate int64     `json:"estimate_bytes,omitempty"` // expected total, 0 when unknown
	Outcome  string    `json:"outcome,omitempty"`        // of a finished run: ok, failed, refused, unsafe
	Error    string    `json:"error,omitempty"`
}

// Outcomes of a run as BackupState reports them, besides backup.Outcome's.
const (
	// OutcomeUnsafe: stored, but a copy did not verify.
	OutcomeUnsafe = "unsafe"
)

// Alert names raised by backup runs; the next good run of the job clears them.
const (
	AlertBackupRefused = "backup-refused" // not enough free space for the headroom
	AlertBackupFailed  = "backup-failed"
	AlertBackupUnsafe  = "backup-unsafe" // stored, but the copy did not verify
)

// BackupReporter is implemented by executors that run backups; the agent
// merges what it reports into its status.
type BackupReporter interface {
	BackupStates() []BackupState
	BackupAlerts() []engine.Alert
}

var _ BackupReporter = (*Executor)(nil)

// JobFromPolicy builds a backup job from a backup(...) declaration; see
// backup.JobFromParams for the params it reads. `harules check` runs the same
// function, so a policy that loads has jobs that build.
func JobFromPolicy(b *policy.Backup) (backup.Job, string, string, error) {
	return backup.JobFromParams(b.Name, b.Kind, b.Params, b.Location)
}

func (b *backups) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// OnBackupRecord makes the executor report backup outcomes (done, failed,
// refused) as records, next to the engine's.
func (e *Executor) OnBackupRecord(f func(engine.Record)) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	e.bk.record = f
}

// OnBackupSucceeded makes the executor report every good run.
func (e *Executor) OnBackupSucceeded(f func(job string, at time.Time)) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	e.bk.succeeded = f
}

// ClearBackupAlerts drops the alert of every job whose run failed here
// before its newest good run anywhere (ok: job -> when that run finished):
// after a failover the job runs well on the peer, and this node's old
// failure is no longer news.
func (e *Executor) ClearBackupAlerts(ok map[string]time.Time) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	for job := range e.bk.alerts {
		st := e.bk.state[job]
		if st != nil && !st.Running && ok[job].After(st.Finished) {
			delete(e.bk.alerts, job)
			e.log.Info("backup alert cleared: the job has since succeeded on another node", "job", job, "failed_at", st.Finished, "succeeded_at", ok[job])
		}
	}
}

// acquire opens the store at dir, or shares the open one, until release.
// An operator's verify or restore may hold the store's lock for a while;
// the run waits for it rather than fail.
func (e *Executor) acquire(ctx context.Context, dir string) (*backup.Store, func(), error) {
	wait := e.bk.lockWait
	if wait == 0 {
		wait = 10 * time.Minute
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		st, err := e.tryAcquire(dir)
		if !errors.Is(err, backup.ErrLocked) || time.Now().After(deadline) {
			if err != nil {
				return nil, nil, err
			}
			release := func() {
				e.bk.mu.Lock()
				defer e.bk.mu.Unlock()
				if e.bk.users[dir]--; e.bk.users[dir] <= 0 {
					delete(e.bk.users, dir)
					delete(e.bk.stores, dir)
					if err := st.Close(); err != nil {
						e.log.Warn("closing backup store", "dir", dir, "error", err.Error())
					}
				}
			}
			return st, release, nil
		}
		if !logged {
			e.log.Warn("backup store is in use by another process (a verify or restore?); waiting for it", "dir", dir, "up_to", wait.String())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (e *Executor) tryAcquire(dir string) (*backup.Store, error) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	if e.bk.users == nil {
		e.bk.users = map[string]int{}
	}
	if s := e.bk.stores[dir]; s != nil {
		e.bk.users[dir]++
		return s, nil
	}
	s, rep, err := backup.Open(dir, backup.WithLogger(e.log))
	if err != nil {
		return nil, err
	}
	if rep != nil && (len(rep.RemovedPartial)+len(rep.Adopted)+len(rep.Missing) > 0) {
		e.log.Warn("backup store recovered after an unclean stop", "dir", dir, "recovery", fmt.Sprintf("%+v", *rep))
	}
	e.bk.stores[dir] = s
	e.bk.users[dir]++
	return s, nil
}

// Backup starts a backup job in the background and returns at once; the
// outcome is logged, kept in the store's history, shown in the status and,
// for a refused or failed run, raised as an alert.
func (e *Executor) Backup(_ context.Context, run engine.BackupRun) error {
	b := e.policyBackup(run.Job)
	if b == nil {
		return fmt.Errorf("backup %s: not in the running policy", run.Job)
	}
	job, target, copyTo, err := JobFromPolicy(b)
	if err == nil {
		var peers []backup.Replica
		peers, err = e.peerReplicas(b)
		job.Replicas = append(job.Replicas, peers...)
	}
	if err != nil {
		e.finish(run, BackupState{Job: run.Job, Reason: run.Reason, Started: e.bk.clock()}, backup.Record{}, err)
		return err
	}
	e.bk.mu.Lock()
	if e.bk.running[run.Job] {
		e.bk.mu.Unlock()
		return fmt.Errorf("backup %s: the previous run is still going; this one is skipped", run.Job)
	}
	e.bk.running[run.Job] = true
	if e.bk.state == nil {
		e.bk.state = map[string]*BackupState{}
	}
	state := &BackupState{Job: run.Job, Running: true, Reason: run.Reason, Started: e.bk.clock()}
	e.bk.state[run.Job] = state
	e.bk.mu.Unlock()
	job.Progress = e.progressLogger(state)
	go func() {
		defer func() {
			e.bk.mu.Lock()
			delete(e.bk.running, run.Job)
			e.bk.mu.Unlock()
		}()
		rec, err := e.runJob(context.Background(), job, target, copyTo, b.Params["verify"] == "after")
		e.finish(run, *state, rec, err)
	}()
	return nil
}

// runJob opens the stores a job needs for the duration of one run; with
// verifyAfter it then re-reads the new backup from the target (copies are
// checked on arrival anyway) and logs the check.
func (e *Executor) runJob(ctx context.Context, job backup.Job, target, copyTo string, verifyAfter bool) (backup.Record, error) {
	st, release, err := e.acquire(ctx, target)
	if err != nil {
		return backup.Record{}, fmt.Errorf("backup %s: open store %s: %w", job.Name, target, err)
	}
	defer release()
	if copyTo != "" {
		cs, releaseCopy, err := e.acquire(ctx, copyTo)
		if err != nil {
			return backup.Record{}, fmt.Errorf("backup %s: open copy store %s: %w", job.Name, copyTo, err)
		}
		defer releaseCopy()
		job.Replicas = append(job.Replicas, backup.NewDirReplica("copy", cs))
	}
	r := &backup.Runner{Store: st, Node: e.node, Log: e.log}
	rec, err := r.Run(ctx, job)
	if verifyAfter && rec.Good() {
		err = errors.Join(err, e.verifyAfter(ctx, st, job, rec))
	}
	return rec, err
}

// progressLogger returns a Job.Progress callback that keeps the state for
// status and logs a line every few seconds (not at every MiB).
func (e *Executor) progressLogger(state *BackupState) func(backup.Progress) {
	every := e.bk.progressEvery
	if every == 0 {
		every = 5 * time.Second
	}
	var last time.Time
	return func(p backup.Progress) {
		now := e.bk.clock()
		e.bk.mu.Lock()
		state.ID, state.Done, state.Estimate = p.ID, p.Done, p.Estimate
		e.bk.mu.Unlock()
		if last.IsZero() {
			last = state.Started
		}
		if now.Sub(last) < every {
			return
		}
		last = now
		attrs := []any{"job", p.Job, "id", p.ID, "done_bytes", p.Done, "elapsed", now.Sub(state.Started).Round(time.Second).String()}
		if p.Estimate > 0 {
			attrs = append(attrs, "estimate_bytes", p.Estimate, "percent", min(100, 100*p.Done/p.Estimate))
		}
		e.log.Info("backup progress", attrs...)
	}
}

// finish logs a run's outcome, keeps it for status, raises or clears the
// job's alert and reports a record.
func (e *Executor) finish(run engine.BackupRun, state BackupState, rec backup.Record, err error) {
	now := e.bk.clock()
	state.Running, state.Finished = false, now
	if rec.ID != "" {
		state.ID, state.Done = rec.ID, rec.Bytes
	}
	r := engine.Record{At: now, Node: e.node, Kind: engine.RecBackup, Reason: run.Reason}
	var alert *engine.Alert
	switch {
	case errors.Is(err, backup.ErrInsufficientHeadroom):
		state.Outcome, state.Error = string(backup.OutcomeRefused), err.Error()
		r.Text, r.Error = "backup "+run.Job+" refused: not enough free space for the headroom", err.Error()
		alert = &engine.Alert{Name: AlertBackupRefused, Severity: "critical", Node: e.node,
			Message: fmt.Sprintf("backup %s was refused on %s: %v; free space on the target or lower headroom_percent", run.Job, e.node, err)}
	case errors.Is(err, backup.ErrCopyFailed) && rec.Good():
		state.Outcome, state.Error = OutcomeUnsafe, err.Error()
		r.Text, r.Error = "backup "+run.Job+" stored as "+rec.ID+" but its copy did not verify", err.Error()
		alert = &engine.Alert{Name: AlertBackupUnsafe, Severity: "warning", Node: e.node,
			Message: fmt.Sprintf("backup %s/%s on %s is stored but not safe: %v", run.Job, rec.ID, e.node, err)}
	case err != nil:
		state.Outcome, state.Error = string(backup.OutcomeFailed), err.Error()
		r.Text, r.Error = "backup "+run.Job+" failed", err.Error()
		if rec.Stderr != "" {
			r.Error += "; stderr: " + rec.Stderr
		}
		alert = &engine.Alert{Name: AlertBackupFailed, Severity: "critical", Node: e.node,
			Message: fmt.Sprintf("backup %s failed on %s: %s", run.Job, e.node, r.Error)}
	default:
		state.Outcome = string(backup.OutcomeOK)
		r.Text = fmt.Sprintf("backup %s done: %s, %d bytes, sha256 %.12s, safe %t, took %s", run.Job, rec.ID, rec.Bytes, rec.SHA256, rec.Safe(),
			now.Sub(state.Started).Round(time.Millisecond))
	}
	e.bk.mu.Lock()
	if e.bk.state == nil {
		e.bk.state = map[string]*BackupState{}
	}
	if e.bk.alerts == nil {
		e.bk.alerts = map[string]engine.Alert{}
	}
	e.bk.state[run.Job] = &state
	if alert != nil {
		e.bk.alerts[run.Job] = *alert
	} else {
		delete(e.bk.alerts, run.Job)
	}
	record, observe, succeeded := e.bk.record, e.bk.observe, e.bk.succeeded
	e.bk.mu.Unlock()
	if observe != nil {
		observe(state)
	}
	if succeeded != nil && state.Outcome == string(backup.OutcomeOK) {
		succeeded(run.Job, now)
	}
	if record != nil {
		record(r) // the agent logs its records
		return
	}
	if r.Error != "" {
		e.log.Error(r.Text, "job", run.Job, "id", state.ID, "error", r.Error)
	} else {
		e.log.Info(r.Text, "job", run.Job, "id", state.ID)
	}
}

// BackupStates returns the current or last run of every job that ran on
// this node since the agent started, sorted by job.
func (e *Executor) BackupStates() []BackupState {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	out := make([]BackupState, 0, len(e.bk.state))
	for _, s := range e.bk.state {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b BackupState) int { return strings.Compare(a.Job, b.Job) })
	return out
}

// BackupAlerts returns the alerts of jobs whose last run was refused,
// failed or left an unverified copy, sorted by job.
func (e *Executor) BackupAlerts() []engine.Alert {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	jobs := slices.Sorted(maps.Keys(e.bk.alerts))
	out := make([]engine.Alert, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, e.bk.alerts[j])
	}
	return out
}

// BackupAccepted is the control API's answer to a backup request.
type BackupAccepted struct {
	Job     string    `json:"job"`
	Node    string    `json:"node"`
	Started time.Time `json:"started"`
}

// RunBackup asks the loop to run a backup job now (`harules backup run`).
// The run goes on in the background; its outcome shows in the status.
func (a *Agent) RunBackup(ctx context.Context, job string) error {
	req := controlRequest{op: "backup", job: job, reply: make(chan error, 1)}
	select {
	case a.control <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backupNow starts job on this node if it may run here: a job bound to a
// group runs only on the node holding the group. It runs on the loop
// goroutine, which owns the policy and the held groups.
func (a *Agent) backupNow(now time.Time, job string) error {
	var b *policy.Backup
	names := make([]string, 0, len(a.node.Policy.Backups))
	for _, x := range a.node.Policy.Backups {
		names = append(names, x.Name)
		if x.Name == job {
			b = x
		}
	}
	if b == nil {
		return fmt.Errorf("no backup job %q in the running policy (jobs: %s)", job, strings.Join(names, ", "))
	}
	if b.Group != "" {
		if _, held := a.node.State.Holds[b.Group]; !held {
			return notHolderError(b, a.cfg.Node, a.Status())
		}
	}
	run := engine.BackupRun{Job: job, Node: a.cfg.Node, Scheduled: now, Reason: "operator request (harules backup run)"}
	err := a.exec.Backup(context.Background(), run)
	rec := engine.Record{At: now, Node: a.cfg.Node, Kind: engine.RecBackup, Text: "run backup " + job, Reason: run.Reason}
	if err != nil {
		rec.Error = err.Error()
	}
	a.record(rec)
	return err
}

// notHolderError explains that a group-bound job runs elsewhere, naming the
// node that holds the group according to this node's status.
func notHolderError(b *policy.Backup, self string, st *Status) error {
	var holders []string
	target := ""
	if st != nil {
		for _, g := range st.Groups {
			if g.Name == b.Group {
				holders, target = g.Holders, g.Target
			}
		}
	}
	switch {
	case len(holders) > 0:
		return fmt.Errorf("backup %s runs where group %s is, and %s holds it, not %s: run `harules backup run %s` on %s",
			b.Name, b.Group, strings.Join(holders, ","), self, b.Name, holders[0])
	case target != "" && target != self:
		return fmt.Errorf("backup %s runs where group %s is; no node holds it now (it should run on %s), so the backup cannot run on %s",
			b.Name, b.Group, target, self)
	}
	return fmt.Errorf("backup %s runs where group %s is; %s does not hold it and no node does now", b.Name, b.Group, self)
}

// serveBackupRequest answers POST /v1/backup {"job": NAME}.
func (a *Agent) serveBackupRequest(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Job string `json:"job"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Job == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want a JSON body {"job": NAME}`})
		return
	}
	started := a.now()
	if err := a.RunBackup(r.Context(), body.Job); err != nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, BackupAccepted{Job: body.Job, Node: a.cfg.Node, Started: started})
}
