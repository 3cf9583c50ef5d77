package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

// maxHistoryOnPage bounds the runs the backups page lists per job (the API
// returns them all).
const maxHistoryOnPage = 20

// backupsView is GET /api/v1/backups and what the backups page shows.
type backupsView struct {
	PolicyPath string `json:"policy_path"`
	// PolicyHash is the hash of the file the jobs were read from; Running
	// says whether it is the running policy (when it is not, the jobs are
	// those a reload would run).
	PolicyHash string      `json:"policy_hash"`
	Running    bool        `json:"running"`
	Now        time.Time   `json:"now"`
	Jobs       []backupJob `json:"jobs"`
}

// backupJob is one backup(...) declaration with what is known of its runs.
type backupJob struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Schedule string    `json:"schedule"`
	Timezone string    `json:"timezone"`
	Group    string    `json:"group,omitempty"`
	CatchUp  bool      `json:"catch_up"`
	Target   string    `json:"target,omitempty"`
	CopyTo   string    `json:"copy_to,omitempty"`
	NextRun  time.Time `json:"next_run,omitzero"`
	// State is this agent's current or last run of the job.
	State *agent.BackupState `json:"state,omitempty"`
	// LastVerify is the newest verification of any backup of the job in
	// any store; Stores has the newest per store (target, copy, peer:NODE).
	LastVerify *agent.VerifyEntry `json:"last_verify,omitempty"`
	Stores     []storeVerify      `json:"stores"`
	// Operation is this agent's running or last verify or restore.
	Operation *agent.BackupOp `json:"operation,omitempty"`
	// History is the store's catalogue, newest first.
	History []backupRun  `json:"history"`
	Space   *backupSpace `json:"space,omitempty"`
	Error   string       `json:"error,omitempty"`

	// For the page only.
	NextText  string      `json:"-"`
	StateText string      `json:"-"`
	OpText    string      `json:"-"`
	Rows      []backupRow `json:"-"`
	More      int         `json:"-"`
}

// backupRun is a catalogue record with its safety spelled out.
type backupRun struct {
	backup.Record
	Safe bool `json:"safe"`
	// LastVerify is the newest verification of this backup in any store.
	LastVerify *agent.VerifyEntry `json:"last_verify,omitempty"`
}

// storeVerify is one store of a job with its newest verification.
type storeVerify struct {
	Store      string             `json:"store"`
	LastVerify *agent.VerifyEntry `json:"last_verify,omitempty"`
}

type backupRow struct {
	ID, Node, Start, End, Size, Outcome, Error, Copies string
	Good, Safe                                         bool
	Verify                                             string // newest verification, one line
	VerifyOK                                           bool
}

// backupSpace is the free space of the target's filesystem against the
// job's headroom.
type backupSpace struct {
	// Path is where statfs looked: the target, or its nearest existing
	// parent before the first run.
	Path            string  `json:"path"`
	TotalBytes      uint64  `json:"total_bytes"`
	FreeBytes       uint64  `json:"free_bytes"`
	FreePercent     float64 `json:"free_percent"`
	HeadroomPercent float64 `json:"headroom_percent"` // 0: the check is off
	// Enough: the free share is above the headroom (a run still needs room
	// for its own size on top).
	Enough bool `json:"enough"`
}

// Text is the page's one-line summary of the space.
func (sp *backupSpace) Text() string {
	t := fmt.Sprintf("%s free of %s (%.0f%%)", agent.SizeText(int64(sp.FreeBytes)), agent.SizeText(int64(sp.TotalBytes)), sp.FreePercent)
	if sp.HeadroomPercent == 0 {
		return t + ", headroom check off"
	}
	return t + fmt.Sprintf(", headroom %.0f%%", sp.HeadroomPercent)
}

// loadBackupPolicy loads the policy file for its backup jobs. The agent's
// running policy is the file as it was at the last (re)load: when the hashes
// match, these are the running jobs.
func (s *Server) loadBackupPolicy(ctx context.Context) (*policy.Policy, error) {
	p, err := rules.Load(ctx, s.b.PolicyPath(), rules.Options{})
	if err != nil {
		return nil, badRequest(http.StatusServiceUnavailable, "the policy file %s does not load, so its backup jobs are unknown: %v", s.b.PolicyPath(), err)
	}
	return p, nil
}

func (s *Server) backups(ctx context.Context) (*backupsView, *policy.Policy, error) {
	p, err := s.loadBackupPolicy(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	st := s.b.Status()
	v := &backupsView{PolicyPath: s.b.PolicyPath(), PolicyHash: p.Hash, Now: now, Jobs: []backupJob{}}
	local := map[string]agent.BackupState{}
	if st != nil {
		v.Running = st.PolicyHash == p.Hash
		for _, b := range st.Backups {
			local[b.Job] = b
		}
	}
	var verified []agent.VerifyEntry
	ops := map[string]agent.BackupOp{}
	if bo, ok := s.b.(backupOperator); ok {
		if verified, err = bo.VerifyLog().Read(); err != nil {
			s.log.Warn("web console: cannot read the verification log", "error", err.Error())
		}
		for _, op := range bo.BackupOps() {
			ops[op.Job] = op
		}
	}
	for _, b := range p.Backups {
		j := describeJob(b, now, local)
		describeVerifies(&j, b, verified, now)
		if op, ok := ops[b.Name]; ok {
			j.Operation = &op
			j.OpText = op.Text(now, clockText(op.Started, op.Running))
		}
		v.Jobs = append(v.Jobs, j)
	}
	return v, p, nil
}

// clockText renders times for the page: the clock time alone for the
// start of what is running now, the date too otherwise.
func clockText(started time.Time, running bool) func(time.Time) string {
	return func(t time.Time) string {
		if t.Equal(started) && running {
			return t.UTC().Format("15:04:05")
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
}

// describeVerifies fills in the last verify of the job, of each store and
// of each backup from the verification log and from the catalogue's copy
// states (a copy is verified on arrival when a run makes it).
func describeVerifies(j *backupJob, b *policy.Backup, log []agent.VerifyEntry, now time.Time) {
	entries := slices.DeleteFunc(slices.Clone(log), func(e agent.VerifyEntry) bool { return e.Job != b.Name })
	// A copy checked by a logged verify has its catalogue state refreshed
	// by that verify: only copies never verified since their run count
	// from the catalogue.
	logged := map[[2]string]bool{}
	for _, e := range entries {
		logged[[2]string{e.Store, e.ID}] = true
	}
	stores := []string{agent.StoreTarget}
	if j.CopyTo != "" {
		stores = append(stores, "copy")
	}
	for _, run := range j.History {
		for _, w := range run.Want {
			if !slices.Contains(stores, w) {
				stores = append(stores, w)
			}
		}
		if !run.Good() {
			continue
		}
		for _, c := range run.Copies {
			e := agent.VerifyEntry{Job: b.Name, Store: c.Replica, Location: c.Location, ID: run.ID, At: c.VerifiedAt, OK: c.Verified,
				Error: c.Error, Bytes: agent.StoredBytes(run.Record), Node: run.Node, By: "copy check in the catalogue"}
			if !c.Verified {
				e.At = run.End
			}
			if !e.At.IsZero() && !logged[[2]string{c.Replica, run.ID}] {
				entries = append(entries, e)
			}
		}
	}
	slices.SortStableFunc(entries, func(a, b agent.VerifyEntry) int { return a.At.Compare(b.At) })
	format := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " (" + ago(now, t) + ")" }
	if e, ok := agent.LastVerify(entries, b.Name, "", ""); ok {
		j.LastVerify = &e
	}
	for _, st := range stores {
		sv := storeVerify{Store: st}
		if e, ok := agent.LastVerify(entries, b.Name, st, ""); ok {
			sv.LastVerify = &e
		}
		j.Stores = append(j.Stores, sv)
	}
	for i := range j.History {
		id := j.History[i].ID
		e, ok := agent.LastVerify(entries, b.Name, "", id)
		if !ok {
			continue
		}
		j.History[i].LastVerify = &e
		if i >= len(j.Rows) {
			continue
		}
		// The row says how the backup fared in each store it was checked
		// in, and when it was last checked.
		var parts []string
		allOK := true
		for _, st := range stores {
			if se, ok := agent.LastVerify(entries, b.Name, st, id); ok {
				parts = append(parts, st+" "+verdict(se))
				allOK = allOK && se.OK
			}
		}
		j.Rows[i].Verify, j.Rows[i].VerifyOK = strings.Join(parts, ", ")+" · "+format(e.At), allOK
	}
}

func verdict(e agent.VerifyEntry) string {
	switch {
	case e.OK:
		return "ok"
	case e.Corrupt:
		return "CORRUPT"
	}
	return "FAILED"
}

func describeJob(b *policy.Backup, now time.Time, local map[string]agent.BackupState) backupJob {
	j := backupJob{Name: b.Name, Kind: b.Kind, Schedule: b.Schedule, Timezone: "UTC", Group: b.Group, CatchUp: b.CatchUp,
		History: []backupRun{}, Stores: []storeVerify{}, NextText: "-", StateText: "no run since the agent started"}
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	j.Timezone = loc.String()
	if b.Sched != nil {
		j.NextRun = b.Sched.Next(now.In(loc))
		j.NextText = fmt.Sprintf("%s (in %s)", j.NextRun.Format("2006-01-02 15:04 MST"), j.NextRun.Sub(now).Round(time.Second))
	}
	if s, ok := local[b.Name]; ok {
		j.State = &s
		j.StateText = s.Text(now, func(t time.Time) string {
			if t.Equal(s.Started) && s.Running {
				return t.UTC().Format("15:04:05")
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		})
	}
	job, target, copyTo, err := agent.JobFromPolicy(b)
	j.Target, j.CopyTo = target, copyTo
	if err != nil {
		j.Error = err.Error()
		return j
	}
	if sp, err := targetSpace(target, job.Headroom); err != nil {
		j.Error = err.Error()
	} else {
		j.Space = sp
	}
	hist, err := readHistory(target, b.Name)
	if err != nil {
		j.Error = strings.TrimPrefix(j.Error+"; "+err.Error(), "; ")
	}
	for i := len(hist) - 1; i >= 0; i-- {
		r := hist[i]
		j.History = append(j.History, backupRun{Record: r, Safe: r.Safe()})
		if len(j.Rows) < maxHistoryOnPage {
			j.Rows = append(j.Rows, runRow(r))
		} else {
			j.More++
		}
	}
	return j
}

func runRow(r backup.Record) backupRow {
	row := backupRow{ID: r.ID, Node: orDash(r.Node), Start: r.Start.UTC().Format("2006-01-02 15:04:05"), End: "-",
		Size: agent.SizeText(r.Bytes), Outcome: string(r.Outcome), Error: agent.FirstLine(r.Error), Good: r.Good(), Safe: r.Safe(), Copies: "-"}
	if !r.End.IsZero() {
		row.End = r.End.UTC().Format("15:04:05")
	}
	if r.Bytes == 0 && !r.Good() {
		row.Size = "-" // nothing was stored
	}
	var copies []string
	for _, c := range r.Copies {
		state := "verified"
		if !c.Verified {
			state = "NOT verified"
			if c.Error != "" {
				state += ": " + agent.FirstLine(c.Error)
			}
		}
		copies = append(copies, c.Replica+" "+state)
	}
	for _, w := range r.Want {
		if !slices.ContainsFunc(r.Copies, func(c backup.Copy) bool { return c.Replica == w }) {
			copies = append(copies, w+" missing")
		}
	}
	if len(copies) > 0 {
		row.Copies = strings.Join(copies, "; ")
	}
	return row
}

// readHistory reads a job's catalogue without opening (and so without
// locking or recovering) the store: the console only looks. The catalogue
// is replaced atomically, so a reader sees the old or the new one.
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

// targetSpace reads the free space of the filesystem holding target (or
// its nearest existing parent: the store directory appears at the first
// run). headroom is the job's setting: 0 the default, negative off.
func targetSpace(target string, headroom float64) (*backupSpace, error) {
	dir := filepath.Clean(target)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, fmt.Errorf("statfs %s: no existing directory on the path", target)
		}
		dir = parent
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", dir, err)
	}
	sp := &backupSpace{Path: dir, TotalBytes: st.Blocks * uint64(st.Bsize), FreeBytes: st.Bavail * uint64(st.Bsize)}
	switch {
	case headroom == 0:
		headroom = backup.DefaultHeadroom
	case headroom < 0:
		headroom = 0
	}
	sp.HeadroomPercent = headroom * 100
	if sp.TotalBytes > 0 {
		sp.FreePercent = 100 * float64(sp.FreeBytes) / float64(sp.TotalBytes)
	}
	sp.Enough = float64(sp.FreeBytes) > headroom*float64(sp.TotalBytes)
	return sp, nil
}

// checkBackupRun validates a "run now" request and tells what it will do.
func checkBackupRun(p *policy.Policy, st *agent.Status, job string) (*operation, error) {
	if st == nil {
		return nil, badRequest(http.StatusServiceUnavailable, "the agent has not decided yet; try again in a second")
	}
	names := make([]string, 0, len(p.Backups))
	var b *policy.Backup
	for _, x := range p.Backups {
		names = append(names, x.Name)
		if x.Name == job {
			b = x
		}
	}
	if job == "" {
		return nil, badRequest(http.StatusBadRequest, "job is required (jobs: %s)", orNone(strings.Join(names, ", ")))
	}
	if b == nil {
		return nil, badRequest(http.StatusNotFound, "unknown backup job %q (jobs: %s)", job, orNone(strings.Join(names, ", ")))
	}
	o := &operation{Op: "backup", Job: job, Title: "Run backup job " + job + " now"}
	o.Effects = append(o.Effects, fmt.Sprintf("%s starts a %s backup now, besides its schedule (%s).", st.Node, b.Kind, b.Schedule))
	if b.Group != "" {
		holders := []string{}
		for _, g := range st.Groups {
			if g.Name == b.Group {
				holders = g.Holders
			}
		}
		if slices.Contains(holders, st.Node) {
			o.Effects = append(o.Effects, fmt.Sprintf("The job is bound to group %s, which this node holds.", b.Group))
		} else {
			o.Effects = append(o.Effects, fmt.Sprintf("Warning: the job is bound to group %s, which this node (%s) does not hold (held by %s): the agent will refuse.",
				b.Group, st.Node, orNone(strings.Join(holders, ", "))))
		}
	}
	if _, target, _, err := agent.JobFromPolicy(b); err == nil {
		o.Effects = append(o.Effects, fmt.Sprintf("The backup is stored in %s; retention may prune older backups after it.", target))
	}
	for _, s := range st.Backups {
		if s.Job == job && s.Running {
			o.Effects = append(o.Effects, "Warning: a run of this job is in progress; the agent will refuse a second one.")
		}
	}
	return o, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// runBackup validates and sends a "run now" request to the backend.
func (s *Server) runBackup(ctx context.Context, job string) (*operation, error) {
	p, err := s.loadBackupPolicy(ctx)
	if err != nil {
		s.metrics.request("backup", err)
		return nil, err
	}
	op, err := checkBackupRun(p, s.b.Status(), job)
	if err != nil {
		s.metrics.request("backup", err)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = s.b.RunBackup(ctx, job)
	s.metrics.request("backup", err)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, badRequest(http.StatusServiceUnavailable, "the agent did not answer in time: %v", err)
		}
		return nil, badRequest(http.StatusConflict, "the agent refused: %v", err)
	}
	s.log.Info("web console: backup started by operator", "job", job)
	s.poll()
	return op, nil
}

func (s *Server) backupsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	v, _, err := s.backups(r.Context())
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	pd := pageData{Title: "Backups", Nav: "backups", Role: p.role, LoggedIn: true, Data: backupsPageView{backupsView: v, CanOperate: p.canOperate()}}
	if job := r.URL.Query().Get("started"); job != "" && slices.ContainsFunc(v.Jobs, func(j backupJob) bool { return j.Name == job }) {
		pd.Flash = "Backup job " + job + " started: its progress shows below."
	}
	for _, op := range []string{"verify", "restore"} {
		if job := r.URL.Query().Get(op); job != "" && slices.ContainsFunc(v.Jobs, func(j backupJob) bool { return j.Name == job }) {
			pd.Flash = strings.ToUpper(op[:1]) + op[1:] + " of a backup of " + job + " started: its progress shows below."
		}
	}
	if p.sess != nil {
		pd.CSRF = p.sess.csrf
	}
	// While a run is in progress the page follows it.
	if slices.ContainsFunc(v.Jobs, func(j backupJob) bool {
		return j.State != nil && j.State.Running || j.Operation != nil && j.Operation.Running
	}) {
		pd.Refresh = 2
	}
	s.renderData(w, http.StatusOK, "backups", pd)
}

type backupsPageView struct {
	*backupsView
	CanOperate bool
}

// VerifyText is a verification in one line for the page.
func (v backupsPageView) VerifyText(e *agent.VerifyEntry) string {
	return e.Text(func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " (" + ago(v.Now, t) + ")" })
}

func (s *Server) backupConfirmPage(w http.ResponseWriter, r *http.Request, p *principal, job string) {
	pol, err := s.loadBackupPolicy(r.Context())
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	op, err := checkBackupRun(pol, s.b.Status(), job)
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	s.render(w, http.StatusOK, "confirm", p, op.Title, confirmView{Op: op})
}

func (s *Server) backupAction(w http.ResponseWriter, r *http.Request, p *principal) {
	op, err := s.runBackup(r.Context(), r.PostFormValue("job"))
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	http.Redirect(w, r, "/backups?"+url.Values{"started": {op.Job}}.Encode(), http.StatusSeeOther)
}

func (s *Server) apiBackups(w http.ResponseWriter, r *http.Request, _ *principal) {
	v, _, err := s.backups(r.Context())
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// backupRunRequest is the body of POST /api/v1/backups/run.
type backupRunRequest struct {
	Job string `json:"job"`
}

func (s *Server) apiBackupRun(w http.ResponseWriter, r *http.Request, _ *principal) {
	var req backupRunRequest
	if !decodeBody(w, r, &req) {
		return
	}
	op, err := s.runBackup(r.Context(), req.Job)
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, operatorResponse{Result: "started", Title: op.Title, Effects: op.Effects})
}

// backupOperator is what verify and restore need from the backend;
// *agent.Agent implements it. A backend without it (a test double) answers
// 501.
type backupOperator interface {
	VerifyBackup(ctx context.Context, req agent.VerifyRequest) (agent.BackupOp, error)
	PlanRestore(ctx context.Context, req agent.RestoreRequest) (agent.RestorePlan, error)
	RestoreBackup(ctx context.Context, req agent.RestoreRequest) (agent.BackupOp, error)
	BackupOps() []agent.BackupOp
	VerifyLog() agent.VerifyLog
}

var _ backupOperator = (*agent.Agent)(nil)

func (s *Server) operator() (backupOperator, error) {
	if bo, ok := s.b.(backupOperator); ok {
		return bo, nil
	}
	return nil, badRequest(http.StatusNotImplemented, "this console's backend cannot verify or restore backups")
}

// backupOpError turns the agent's refusal into a request error with the
// status the user's mistake deserves.
func backupOpError(err error) error {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, agent.ErrUnknownJob), errors.Is(err, backup.ErrNotFound), errors.Is(err, agent.ErrUnknownStore):
		code = http.StatusNotFound
	case errors.Is(err, backup.ErrInvalidName), errors.Is(err, agent.ErrBadTarget):
		code = http.StatusBadRequest
	case errors.Is(err, agent.ErrBusy), errors.Is(err, backup.ErrTargetNotEmpty), errors.Is(err, agent.ErrNotStored):
		code = http.StatusConflict
	case errors.Is(err, agent.ErrNoExecutor):
		code = http.StatusNotImplemented
	}
	return badRequest(code, "%v", err)
}

func (s *Server) verifyBackup(ctx context.Context, req agent.VerifyRequest) (agent.BackupOp, error) {
	if req.Job == "" {
		return agent.BackupOp{}, badRequest(http.StatusBadRequest, "job is required")
	}
	bo, err := s.operator()
	if err != nil {
		return agent.BackupOp{}, err
	}
	op, err := bo.VerifyBackup(ctx, req)
	if err != nil {
		return op, backupOpError(err)
	}
	s.log.Info("web console: backup verify started by operator", "job", op.Job, "id", op.ID, "store", op.Store, "by", req.By)
	return op, nil
}

func (s *Server) planRestore(ctx context.Context, req agent.RestoreRequest) (agent.RestorePlan, error) {
	switch {
	case req.Job == "":
		return agent.RestorePlan{}, badRequest(http.StatusBadRequest, "job is required")
	case req.ID == "":
		return agent.RestorePlan{}, badRequest(http.StatusBadRequest, "id is required (an id from the history, or \"latest\")")
	}
	for _, target := range []string{req.Dir, req.File} {
		if target == "" {
			continue
		}
		if err := s.underRestoreRoot(target); err != nil {
			return agent.RestorePlan{}, err
		}
	}
	bo, err := s.operator()
	if err != nil {
		return agent.RestorePlan{}, err
	}
	plan, err := bo.PlanRestore(ctx, req)
	if err != nil {
		return plan, backupOpError(err)
	}
	return plan, nil
}

// underRestoreRoot refuses a console or API restore target outside the
// restore root: a new file or directory anywhere would let the operator
// role drop root-owned content into /etc/cron.d or a systemd drop-in.
func (s *Server) underRestoreRoot(target string) error {
	root := s.opts.RestoreRoot
	if !filepath.IsAbs(target) {
		return badRequest(http.StatusBadRequest, "%q is not an absolute path", target)
	}
	clean := filepath.Clean(target)
	rel, err := filepath.Rel(root, clean)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return badRequest(http.StatusBadRequest, "restores from the console go under %s (a new directory or file inside it; set with --web-restore-root); to restore elsewhere run `harules backup restore` as root on the node", root)
	}
	// A symlink inside the root could lead back out of it.
	if resolved, err := filepath.EvalSymlinks(filepath.Dir(clean)); err == nil {
		if r, err := filepath.Rel(root, resolved); err != nil || r == ".." || strings.HasPrefix(r, "../") {
			if rr, err := filepath.EvalSymlinks(root); err != nil || !agent.PathWithin(resolved, rr) {
				return badRequest(http.StatusBadRequest, "%s leads out of the restore root %s through a symbolic link", target, root)
			}
		}
	}
	return nil
}

func (s *Server) restoreBackup(ctx context.Context, req agent.RestoreRequest) (agent.BackupOp, agent.RestorePlan, error) {
	plan, err := s.planRestore(ctx, req)
	if err != nil {
		return agent.BackupOp{}, plan, err
	}
	bo, _ := s.operator()
	op, err := bo.RestoreBackup(ctx, req)
	if err != nil {
		return op, plan, backupOpError(err)
	}
	s.log.Info("web console: backup restore started by operator", "job", op.Job, "id", op.ID, "into", op.Into, "by", req.By)
	return op, plan, nil
}

// backupVerifyForm is the history's "verify" button.
func (s *Server) backupVerifyForm(w http.ResponseWriter, r *http.Request, p *principal) {
	op, err := s.verifyBackup(r.Context(), agent.VerifyRequest{Job: r.PostFormValue("job"), ID: r.PostFormValue("id"),
		Store: r.PostFormValue("store"), By: "console"})
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	http.Redirect(w, r, "/backups?"+url.Values{"verify": {op.Job}}.Encode()+"#job-"+op.Job, http.StatusSeeOther)
}

// restoreView is the restore page: a form asking for the target, or, once
// one is given and checked, the confirmation.
type restoreView struct {
	Job, ID, Kind, Method, Dir, Database, File string
	Record                                     *backup.Record
	Plan                                       *agent.RestorePlan
	Error                                      string
	// Root is the restore root every console target must lie under.
	Root string
}

// backupRestorePage asks where to restore and then confirms exactly what
// will happen; only the POST from the confirmation starts the restore.
func (s *Server) backupRestorePage(w http.ResponseWriter, r *http.Request, p *principal) {
	q := r.URL.Query()
	req := agent.RestoreRequest{Job: q.Get("job"), ID: q.Get("id"), Dir: strings.TrimSpace(q.Get("dir")),
		Database: strings.TrimSpace(q.Get("database")), File: strings.TrimSpace(q.Get("file")), By: "console"}
	v := restoreView{Job: req.Job, ID: req.ID, Dir: req.Dir, Database: req.Database, File: req.File, Root: s.opts.RestoreRoot}
	pol, err := s.loadBackupPolicy(r.Context())
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	i := slices.IndexFunc(pol.Backups, func(b *policy.Backup) bool { return b.Name == req.Job })
	if i < 0 {
		s.errorPage(w, r, p, http.StatusNotFound, fmt.Sprintf("unknown backup job %q", req.Job))
		return
	}
	v.Kind, v.Method = pol.Backups[i].Kind, pol.Backups[i].Params["method"]
	if v.Kind == "postgres" && v.Method == "" {
		v.Method = "dump"
	}
	_, target, _, err := agent.JobFromPolicy(pol.Backups[i])
	if err == nil {
		var rec backup.Record
		rec, err = agent.FindRecord(target, req.Job, req.ID)
		v.Record = &rec
	}
	if err != nil {
		err = backupOpError(err)
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	code := http.StatusOK
	if req.Dir != "" || req.Database != "" || req.File != "" {
		plan, err := s.planRestore(r.Context(), req)
		if err != nil {
			v.Error, code = err.Error(), requestCode(err)
		} else {
			v.Plan = &plan
		}
	}
	s.render(w, code, "backup-restore", p, "Restore "+req.Job+"/"+req.ID, v)
}

func (s *Server) backupRestoreForm(w http.ResponseWriter, r *http.Request, p *principal) {
	op, _, err := s.restoreBackup(r.Context(), agent.RestoreRequest{Job: r.PostFormValue("job"), ID: r.PostFormValue("id"),
		Dir: r.PostFormValue("dir"), Database: r.PostFormValue("database"), File: r.PostFormValue("file"), By: "console"})
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	http.Redirect(w, r, "/backups?"+url.Values{"restore": {op.Job}}.Encode()+"#job-"+op.Job, http.StatusSeeOther)
}

// backupOpResponse answers POST /api/v1/backups/verify and /restore.
type backupOpResponse struct {
	Result    string         `json:"result"`
	Operation agent.BackupOp `json:"operation"`
	Effects   []string       `json:"effects,omitempty"`
}

func (s *Server) apiBackupVerify(w http.ResponseWriter, r *http.Request, _ *principal) {
	var req agent.VerifyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	req.By = "api"
	op, err := s.verifyBackup(r.Context(), req)
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusAccepted, backupOpResponse{Result: "started", Operation: op})
}

func (s *Server) apiBackupRestore(w http.ResponseWriter, r *http.Request, _ *principal) {
	var req agent.RestoreRequest
	if !decodeBody(w, r, &req) {
		return
	}
	req.By = "api"
	op, plan, err := s.restoreBackup(r.Context(), req)
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusAccepted, backupOpResponse{Result: "started", Operation: op, Effects: plan.Effects})
}

// apiBackupVerifications is GET /api/v1/backups/verifications: the whole
// verification log, oldest first (?job= filters).
func (s *Server) apiBackupVerifications(w http.ResponseWriter, r *http.Request, _ *principal) {
	bo, err := s.operator()
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	entries, err := bo.VerifyLog().Read()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	if job := r.URL.Query().Get("job"); job != "" {
		entries = slices.DeleteFunc(entries, func(e agent.VerifyEntry) bool { return e.Job != job })
	}
	if entries == nil {
		entries = []agent.VerifyEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"verifications": entries})
}
