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
	// History is the store's catalogue, newest first.
	History []backupRun  `json:"history"`
	Space   *backupSpace `json:"space,omitempty"`
	Error   string       `json:"error,omitempty"`

	// For the page only.
	NextText  string      `json:"-"`
	StateText string      `json:"-"`
	Rows      []backupRow `json:"-"`
	More      int         `json:"-"`
}

// backupRun is a catalogue record with its safety spelled out.
type backupRun struct {
	backup.Record
	Safe bool `json:"safe"`
}

type backupRow struct {
	ID, Node, Start, End, Size, Outcome, Error, Copies string
	Good, Safe                                         bool
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
	for _, b := range p.Backups {
		v.Jobs = append(v.Jobs, describeJob(b, now, local))
	}
	return v, p, nil
}

func describeJob(b *policy.Backup, now time.Time, local map[string]agent.BackupState) backupJob {
	j := backupJob{Name: b.Name, Kind: b.Kind, Schedule: b.Schedule, Timezone: "UTC", Group: b.Group, CatchUp: b.CatchUp,
		History: []backupRun{}, NextText: "-", StateText: "no run since the agent started"}
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
	if p.sess != nil {
		pd.CSRF = p.sess.csrf
	}
	// While a run is in progress the page follows it.
	if slices.ContainsFunc(v.Jobs, func(j backupJob) bool { return j.State != nil && j.State.Running }) {
		pd.Refresh = 2
	}
	s.renderData(w, http.StatusOK, "backups", pd)
}

type backupsPageView struct {
	*backupsView
	CanOperate bool
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
