package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// This file runs operator verifies and restores of stored backups in the
// background (the console and the REST API start them) and records every
// verification in the verification log (backup_verify_log.go).

// Errors of verify and restore requests; the console maps them to 4xx.
var (
	ErrUnknownJob   = errors.New("unknown backup job")
	ErrUnknownStore = errors.New("unknown store")
	ErrNotStored    = errors.New("not a stored backup")
	ErrBusy         = errors.New("a verify or restore of this job is in progress")
	ErrBadTarget    = errors.New("unusable restore target")
	// ErrNoExecutor: the agent runs a test executor, which holds no stores.
	ErrNoExecutor = errors.New("this agent has no backup executor")
)

// BackupOp is an operator's verify or restore of one backup, running or
// finished.
type BackupOp struct {
	Op    string `json:"op"` // verify or restore
	Job   string `json:"job"`
	ID    string `json:"id"`
	Store string `json:"store,omitempty"` // verify: one store, or empty for all
	// Into describes a restore's target, e.g. "new directory /srv/restore".
	Into     string    `json:"into,omitempty"`
	By       string    `json:"by,omitempty"`
	Running  bool      `json:"running"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Bytes is what the operation reads (per store, times the stores of a
	// verify); Done is how much of it this process has read so far, from
	// the file offsets in /proc/self/fdinfo (local stores only).
	Bytes int64  `json:"bytes"`
	Done  int64  `json:"done_bytes"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Verified are the log entries a verify wrote.
	Verified []VerifyEntry `json:"verified,omitempty"`

	dirs   []string         // backup directories read, for Done
	doneAt map[string]int64 // largest offset seen per directory
}

// Text describes the operation in one line for the console.
func (o BackupOp) Text(now time.Time, format func(time.Time) string) string {
	what := o.Op + " of " + o.ID
	if o.Store != "" {
		what += " in " + o.Store
	}
	if o.Into != "" {
		what += " into " + o.Into
	}
	if o.Running {
		t := fmt.Sprintf("%s running since %s (%s)", what, format(o.Started), now.Sub(o.Started).Round(time.Second))
		if o.Bytes > 0 {
			t += fmt.Sprintf(": ~%s of %s read (%d%%)", SizeText(o.Done), SizeText(o.Bytes), min(100, 100*o.Done/o.Bytes))
		}
		return t
	}
	if o.OK {
		return fmt.Sprintf("%s ok at %s (took %s)", what, format(o.Finished), o.Finished.Sub(o.Started).Round(time.Millisecond))
	}
	return fmt.Sprintf("%s FAILED at %s: %s", what, format(o.Finished), FirstLine(o.Error))
}

// StoredBytes is the size of a backup's stored files.
func StoredBytes(rec backup.Record) int64 {
	var n int64
	for _, f := range rec.Files {
		n += f.Size
	}
	return n
}

// timedReplica notes when its Verify ran and how it ended, so one
// Runner.Verify (which also updates the catalogue's copies) yields an
// entry per store.
type timedReplica struct {
	backup.Replica
	now         func() time.Time
	ran         bool
	start, end  time.Time
	err         error
	locationStr string
}

// replicaError marks an error as a replica's, to tell it from the
// target's in Runner.Verify's joined error.
type replicaError struct{ err error }

func (e *replicaError) Error() string { return e.err.Error() }
func (e *replicaError) Unwrap() error { return e.err }

func (t *timedReplica) Location() string { return t.locationStr }

func (t *timedReplica) Verify(ctx context.Context, job, id string) error {
	t.ran, t.start = true, t.now()
	err := t.Replica.Verify(ctx, job, id)
	t.end, t.err = t.now(), err
	if err != nil {
		return &replicaError{err}
	}
	return nil
}

func locationOf(r backup.Replica) string {
	if l, ok := r.(backup.Locator); ok {
		return l.Location()
	}
	return ""
}

// VerifyStores verifies backup id of job in st (store StoreTarget) and in
// every replica of job, or only in the store named only. It returns the
// catalogue record (with the copies' state updated when every store was
// checked), one log entry per store checked (Node and By left empty), and
// the joined error. A record that is not a good backup wraps ErrNotStored.
func VerifyStores(ctx context.Context, st *backup.Store, job backup.Job, id, only string, now func() time.Time) (backup.Record, []VerifyEntry, error) {
	if now == nil {
		now = time.Now
	}
	rec, err := st.Get(job.Name, id)
	if err != nil {
		return rec, nil, err
	}
	if !rec.Good() {
		return rec, nil, fmt.Errorf("%s/%s: %w: its outcome is %s", job.Name, id, ErrNotStored, rec.Outcome)
	}
	size := StoredBytes(rec)
	entry := func(store, loc string, start, end time.Time, err error) VerifyEntry {
		e := VerifyEntry{Job: job.Name, Store: store, Location: loc, ID: id, At: start, Seconds: end.Sub(start).Seconds(),
			OK: err == nil, Corrupt: errors.Is(err, backup.ErrCorrupt), Bytes: size}
		if err != nil {
			e.Error = err.Error()
		}
		return e
	}
	switch only {
	case StoreTarget:
		start := now()
		err := st.Verify(ctx, job.Name, id)
		return rec, []VerifyEntry{entry(StoreTarget, st.Dir(), start, now(), err)}, err
	case "":
	default:
		i := slices.IndexFunc(job.Replicas, func(r backup.Replica) bool { return r.Name() == only })
		if i < 0 {
			return rec, nil, fmt.Errorf("%w %q for job %s (stores: %s)", ErrUnknownStore, only, job.Name, strings.Join(StoreNames(job), ", "))
		}
		r := job.Replicas[i]
		start := now()
		err := r.Verify(ctx, job.Name, id)
		return rec, []VerifyEntry{entry(r.Name(), locationOf(r), start, now(), err)}, err
	}
	timed := make([]*timedReplica, len(job.Replicas))
	reps := make([]backup.Replica, len(job.Replicas))
	for i, r := range job.Replicas {
		timed[i] = &timedReplica{Replica: r, now: now, locationStr: locationOf(r)}
		reps[i] = timed[i]
	}
	job.Replicas = reps
	start := now()
	rec, err = (&backup.Runner{Store: st, Now: now}).Verify(ctx, job, id)
	targetEnd := now()
	if len(timed) > 0 && timed[0].ran {
		targetEnd = timed[0].start
	}
	var targetErrs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var re *replicaError
			if !errors.As(e, &re) {
				targetErrs = append(targetErrs, e)
			}
		}
	} else if err != nil {
		targetErrs = append(targetErrs, err)
	}
	entries := []VerifyEntry{entry(StoreTarget, st.Dir(), start, targetEnd, errors.Join(targetErrs...))}
	for _, t := range timed {
		if t.ran {
			entries = append(entries, entry(t.Name(), t.locationStr, t.start, t.end, t.err))
		}
	}
	return rec, entries, err
}

// StoreNames lists the stores of a job: StoreTarget, then its replicas.
func StoreNames(job backup.Job) []string {
	names := []string{StoreTarget}
	for _, r := range job.Replicas {
		names = append(names, r.Name())
	}
	return names
}

// FindRecord reads a job's catalogue in target without locking the store
// and returns backup id ("latest": the newest good one). It fails with
// backup.ErrNotFound, backup.ErrInvalidName or ErrNotStored.
func FindRecord(target, job, id string) (backup.Record, error) {
	if id == "" {
		return backup.Record{}, fmt.Errorf("the backup id is required (an id from the history, or \"latest\"): %w", backup.ErrInvalidName)
	}
	b, err := os.ReadFile(filepath.Join(target, job, "history.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return backup.Record{}, fmt.Errorf("read history of %s: %w", job, err)
	}
	var hist []backup.Record
	if len(b) > 0 {
		if err := json.Unmarshal(b, &hist); err != nil {
			return backup.Record{}, fmt.Errorf("read history of %s in %s: %w", job, target, err)
		}
	}
	if id == "latest" {
		for _, r := range slices.Backward(hist) {
			if r.Good() {
				return r, nil
			}
		}
		return backup.Record{}, fmt.Errorf("job %s has no stored backup in %s: %w", job, target, backup.ErrNotFound)
	}
	for _, r := range hist {
		if r.ID == id {
			if !r.Good() {
				return r, fmt.Errorf("%s/%s: %w: its outcome is %s", job, id, ErrNotStored, r.Outcome)
			}
			return r, nil
		}
	}
	return backup.Record{}, fmt.Errorf("%s/%s is not in the history of %s: %w", job, id, target, backup.ErrNotFound)
}

// VerifyRequest asks for a verify of one backup (ID, "latest" when empty)
// in one store (all when empty).
type VerifyRequest struct {
	Job   string `json:"job"`
	Store string `json:"store,omitempty"`
	ID    string `json:"id,omitempty"`
	By    string `json:"-"`
}

// RestoreRequest asks for a restore of one backup into a new place, one of:
// Dir, a directory that is missing or empty (kind files: the file tree;
// postgres method basebackup: a new data directory); Database, a database
// that does not exist yet (postgres method dump: created, then
// pg_restore'd into); File, a file that does not exist yet (every kind but
// files: the dump itself, decompressed).
type RestoreRequest struct {
	Job      string `json:"job"`
	ID       string `json:"id"`
	Dir      string `json:"dir,omitempty"`
	Database string `json:"database,omitempty"`
	File     string `json:"file,omitempty"`
	By       string `json:"-"`
}

// RestorePlan is a checked restore request and what it will do.
type RestorePlan struct {
	Request RestoreRequest
	Record  backup.Record
	Target  string // the job's store
	Into    string
	Effects []string

	dsn string // postgres: the job's connection string
}

// jobOf finds a job of the running policy and builds it.
func (e *Executor) jobOf(name string) (*policy.Backup, backup.Job, string, string, error) {
	b := e.policyBackup(name)
	if b == nil {
		var names []string
		if e.Policy != nil {
			for _, x := range e.Policy().Backups {
				names = append(names, x.Name)
			}
		}
		return nil, backup.Job{}, "", "", fmt.Errorf("%w %q in the running policy (jobs: %s)", ErrUnknownJob, name, orNone(strings.Join(names, ", ")))
	}
	job, target, copyTo, err := JobFromPolicy(b)
	return b, job, target, copyTo, err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// PlanRestore checks a restore request against the running policy, the
// store and the target, and says what the restore will do. The target
// must be new: a restore never writes over existing data.
func (e *Executor) PlanRestore(req RestoreRequest) (RestorePlan, error) {
	plan := RestorePlan{Request: req}
	b, job, target, _, err := e.jobOf(req.Job)
	if err != nil {
		return plan, err
	}
	rec, err := FindRecord(target, req.Job, req.ID)
	if err != nil {
		return plan, err
	}
	plan.Record, plan.Target, plan.Request.ID, plan.dsn = rec, target, rec.ID, b.Params["dsn"]
	from := fmt.Sprintf("backup %s/%s (%s, %s stored, taken %s on %s) from the store %s", req.Job, rec.ID, rec.Kind, SizeText(rec.Bytes),
		rec.Start.UTC().Format("2006-01-02 15:04:05 UTC"), orNone(rec.Node), target)
	protected := []string{target}
	if f, ok := job.Source.(*backup.Files); ok {
		protected = append(protected, f.Root)
	}
	if c := b.Params["copy_to"]; c != "" {
		protected = append(protected, c)
	}
	method := "dump"
	if m := b.Params["method"]; m != "" {
		method = m
	}
	set := 0
	for _, t := range []string{req.Dir, req.Database, req.File} {
		if t != "" {
			set++
		}
	}
	if set > 1 {
		return plan, fmt.Errorf("%w: give one of dir, database or file", ErrBadTarget)
	}
	switch {
	case b.Kind == "postgres" && method == "dump" && req.Database != "":
		if err := checkNewDatabase(req.Database); err != nil {
			return plan, err
		}
		dsn := b.Params["dsn"]
		exists, err := postgresDatabaseExists(dsn, req.Database)
		if err != nil {
			return plan, err
		}
		if exists {
			return plan, fmt.Errorf("%w: database %s exists: a restore never writes into an existing database; choose a new name",
				backup.ErrTargetNotEmpty, req.Database)
		}
		plan.Into = "new database " + req.Database
		plan.Effects = append(plan.Effects,
			fmt.Sprintf("The %s is checked against its SHA-256 first.", from),
			fmt.Sprintf("Then the database %s is created (CREATE DATABASE, on the server of the job's dsn %q; it fails if the name was taken meanwhile) and the dump is loaded into it with pg_restore --exit-on-error.", req.Database, orNone(dsn)),
			"No other database is touched. If pg_restore fails, the new database may hold a partial restore: drop it before trying again.")
		return plan, nil
	case b.Kind == "postgres" && method == "basebackup" && req.Dir != "":
		dir, err := newDirTarget(req.Dir, protected)
		if err != nil {
			return plan, err
		}
		plan.Into = "new data directory " + dir
		plan.Request.Dir = dir
		plan.Effects = append(plan.Effects,
			fmt.Sprintf("The %s (a pg_basebackup tar stream of the whole cluster) is extracted with tar into %s, created with mode 0700 if missing; the restore refuses to start if it is not empty.", from, dir),
			"The stream is checked against its SHA-256 as it is read; if it does not match, the restore fails and the directory must not be used.",
			"No server is started or stopped: to use the copy, make the directory owned by postgres and start a server on it with its own port or socket.")
		return plan, nil
	case rec.Kind == backup.KindFiles:
		if req.File != "" || req.Dir == "" {
			return plan, fmt.Errorf("%w: job %s backs up files: give dir, a new or empty directory to restore into", ErrBadTarget, req.Job)
		}
		dir, err := newDirTarget(req.Dir, protected)
		if err != nil {
			return plan, err
		}
		plan.Into = "new directory " + dir
		plan.Request.Dir = dir
		plan.Effects = append(plan.Effects,
			fmt.Sprintf("The %s is extracted into %s, which is created if missing; the restore refuses to start if it is not empty.", from, dir),
			fmt.Sprintf("%d archive entries are each checked against the manifest while they are written, and the archive against its SHA-256.", rec.Entries),
			"Nothing else is touched: the live data and the store stay as they are. If the check fails, the directory may hold a partial tree to remove.")
	default:
		if req.Dir != "" || req.Database != "" || req.File == "" {
			want := "file, a new file to write the dump into"
			switch {
			case b.Kind == "postgres" && method == "dump":
				want = "database, a new database to restore into, or " + want
			case b.Kind == "postgres" && method == "basebackup":
				want = "dir, a new data directory to extract the cluster into, or " + want
			}
			return plan, fmt.Errorf("%w: job %s is kind %s: give %s", ErrBadTarget, req.Job, jobKind(b), want)
		}
		file, err := newFileTarget(req.File, protected)
		if err != nil {
			return plan, err
		}
		plan.Into = "new file " + file
		plan.Request.File = file
		plan.Effects = append(plan.Effects,
			fmt.Sprintf("The %s is decompressed into %s; it is written under a temporary name and appears under that name only once its SHA-256 matched.", from, file),
			"The restore refuses to replace a file that exists. No database is touched: load the dump yourself (pg_restore, mariadb) when you choose.")
	}
	return plan, nil
}

// newDirTarget checks a restore directory: absolute, missing or empty, and
// neither inside nor around the job's live data and stores.
func newDirTarget(dir string, protected []string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%w: %q is not an absolute path", ErrBadTarget, dir)
	}
	dir = filepath.Clean(dir)
	if err := outside(dir, protected); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("%w: %s: %v", ErrBadTarget, dir, err)
	case len(ents) > 0:
		return "", fmt.Errorf("%w: %s is not empty (%d entries): a restore never writes over existing files; choose a new directory",
			backup.ErrTargetNotEmpty, dir, len(ents))
	}
	return dir, nil
}

func newFileTarget(file string, protected []string) (string, error) {
	if !filepath.IsAbs(file) {
		return "", fmt.Errorf("%w: %q is not an absolute path", ErrBadTarget, file)
	}
	file = filepath.Clean(file)
	if err := outside(file, protected); err != nil {
		return "", err
	}
	if _, err := os.Lstat(file); err == nil {
		return "", fmt.Errorf("%w: %s exists: a restore never replaces a file; choose a new name", backup.ErrTargetNotEmpty, file)
	}
	if fi, err := os.Stat(filepath.Dir(file)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%w: the directory of %s does not exist", ErrBadTarget, file)
	}
	return file, nil
}

// outside refuses a path equal to, inside or around one of protected.
func outside(path string, protected []string) error {
	for _, p := range protected {
		p = filepath.Clean(p)
		if PathWithin(path, p) || PathWithin(p, path) {
			return fmt.Errorf("%w: %s overlaps %s, which is live data or a backup store of the job", ErrBadTarget, path, p)
		}
	}
	return nil
}

// PathWithin reports whether path is dir or lies below it (both clean and
// absolute).
func PathWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// startOp registers op as the job's running operation and runs fn in the
// background; one verify or restore per job at a time.
// It returns the operation as it starts (op itself belongs to the
// goroutine from then on).
func (e *Executor) startOp(op *BackupOp, fn func(ctx context.Context, op *BackupOp) error) (BackupOp, error) {
	e.bk.mu.Lock()
	if cur := e.bk.ops[op.Job]; cur != nil && cur.Running {
		e.bk.mu.Unlock()
		return BackupOp{}, fmt.Errorf("%w: %s of %s started at %s", ErrBusy, cur.Op, cur.ID, cur.Started.UTC().Format(time.RFC3339))
	}
	if e.bk.ops == nil {
		e.bk.ops = map[string]*BackupOp{}
	}
	op.Running, op.Started = true, e.bk.clock()
	e.bk.ops[op.Job] = op
	started := *op
	e.bk.mu.Unlock()
	go func() {
		err := fn(context.Background(), op)
		now := e.bk.clock()
		e.bk.mu.Lock()
		op.Running, op.Finished, op.OK = false, now, err == nil
		if err != nil {
			op.Error = err.Error()
		}
		done := *op
		record := e.bk.record
		e.bk.mu.Unlock()
		r := engine.Record{At: now, Node: e.node, Kind: engine.RecBackup, Reason: "operator request (" + done.By + ")",
			Text: fmt.Sprintf("%s backup %s/%s: ok, took %s", done.Op, done.Job, done.ID, now.Sub(done.Started).Round(time.Millisecond))}
		if err != nil {
			r.Text, r.Error = fmt.Sprintf("%s backup %s/%s failed", done.Op, done.Job, done.ID), err.Error()
		}
		if record != nil {
			record(r)
		} else if err != nil {
			e.log.Error(r.Text, "error", r.Error)
		} else {
			e.log.Info(r.Text)
		}
	}()
	return started, nil
}

// StartVerify checks a backup (the newest good one when req.ID is empty)
// in the background and appends the outcome to log; it returns once the
// request is known to be valid.
func (e *Executor) StartVerify(req VerifyRequest, log VerifyLog, policyPath string) (BackupOp, error) {
	b, job, target, copyTo, err := e.jobOf(req.Job)
	if err != nil {
		return BackupOp{}, err
	}
	if req.ID == "" {
		req.ID = "latest"
	}
	rec, err := FindRecord(target, req.Job, req.ID)
	if err != nil {
		return BackupOp{}, err
	}
	peers, err := PeerReplicasForRecord(e.Policy(), policyPath, b, rec)
	if err != nil {
		return BackupOp{}, err
	}
	stores := []string{StoreTarget}
	if copyTo != "" {
		stores = append(stores, "copy")
	}
	for _, p := range peers {
		stores = append(stores, p.Name())
	}
	if req.Store != "" && !slices.Contains(stores, req.Store) {
		return BackupOp{}, fmt.Errorf("%w %q for job %s (stores: %s)", ErrUnknownStore, req.Store, req.Job, strings.Join(stores, ", "))
	}
	op := &BackupOp{Op: "verify", Job: req.Job, ID: rec.ID, Store: req.Store, By: req.By, Bytes: StoredBytes(rec)}
	if req.Store == "" {
		op.Bytes *= int64(len(stores))
	}
	return e.startOp(op, func(ctx context.Context, op *BackupOp) error {
		st, release, err := e.acquire(ctx, target)
		if err != nil {
			return fmt.Errorf("verify %s: open store %s: %w", req.Job, target, err)
		}
		defer release()
		e.readingDir(op, filepath.Join(target, req.Job, rec.ID))
		if copyTo != "" {
			cs, releaseCopy, err := e.acquire(ctx, copyTo)
			if err != nil {
				return fmt.Errorf("verify %s: open copy store %s: %w", req.Job, copyTo, err)
			}
			defer releaseCopy()
			job.Replicas = append(job.Replicas, backup.NewDirReplica("copy", cs))
			e.readingDir(op, filepath.Join(copyTo, req.Job, rec.ID))
		}
		job.Replicas = append(job.Replicas, peers...)
		_, entries, verr := VerifyStores(ctx, st, job, rec.ID, req.Store, e.bk.clock)
		for i := range entries {
			entries[i].Node, entries[i].By = e.node, req.By
		}
		e.bk.mu.Lock()
		op.Verified = entries
		e.bk.mu.Unlock()
		if err := log.Append(entries...); err != nil {
			return errors.Join(verr, fmt.Errorf("the outcome could not be recorded: %w", err))
		}
		return verr
	})
}

// StartRestore restores a backup into a new place in the background once
// PlanRestore accepted the request.
func (e *Executor) StartRestore(req RestoreRequest) (BackupOp, error) {
	plan, err := e.PlanRestore(req)
	if err != nil {
		return BackupOp{}, err
	}
	req = plan.Request
	rec := plan.Record
	op := &BackupOp{Op: "restore", Job: req.Job, ID: rec.ID, Into: plan.Into, By: req.By, Bytes: rec.Bytes}
	return e.startOp(op, func(ctx context.Context, op *BackupOp) error {
		st, release, err := e.acquire(ctx, plan.Target)
		if err != nil {
			return fmt.Errorf("restore %s: open store %s: %w", req.Job, plan.Target, err)
		}
		defer release()
		e.readingDir(op, filepath.Join(plan.Target, req.Job, rec.ID))
		switch {
		case req.Database != "":
			return restorePostgresDatabase(ctx, st, req.Job, rec.ID, plan.dsn, req.Database)
		case req.Dir != "" && rec.Kind != backup.KindFiles:
			return restoreDataDir(ctx, st, req.Job, rec.ID, req.Dir)
		case req.Dir != "":
			err := st.RestoreFiles(ctx, req.Job, rec.ID, req.Dir, backup.RestoreOptions{})
			if err != nil && !errors.Is(err, backup.ErrTargetNotEmpty) {
				err = fmt.Errorf("%w (%s may hold a partial tree: remove it before trying again)", err, req.Dir)
			}
			return err
		}
		return RestoreToFile(ctx, st, req.Job, rec.ID, req.File)
	})
}

// RestoreToFile writes a stream backup's dump to path, which must not
// exist. It is written under a temporary name and linked into place only
// once the stream matched its checksum, so a corrupt dump never appears
// under path and an existing file is never replaced.
func RestoreToFile(ctx context.Context, st *backup.Store, job, id, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".harules-restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := st.RestoreStream(ctx, job, id, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("restore into %s: %w: it appeared during the restore", path, backup.ErrTargetNotEmpty)
		}
		return fmt.Errorf("restore into %s: %w", path, err)
	}
	return nil
}

// SetVerifyLog sets where the executor records the checks a job with
// params verify="after" makes after each run.
func (e *Executor) SetVerifyLog(l VerifyLog) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	e.bk.verifyLog = &l
}

// verifyAfter re-reads a new backup from the target store and records the
// check; a failure means what is on disk is not what was written.
func (e *Executor) verifyAfter(ctx context.Context, st *backup.Store, job backup.Job, rec backup.Record) error {
	_, entries, err := VerifyStores(ctx, st, job, rec.ID, StoreTarget, e.bk.clock)
	for i := range entries {
		entries[i].Node, entries[i].By = e.node, "after backup"
	}
	e.bk.mu.Lock()
	log := e.bk.verifyLog
	e.bk.mu.Unlock()
	if log != nil {
		if lerr := log.Append(entries...); lerr != nil {
			e.log.Warn("backup: the check after the run could not be recorded", "job", job.Name, "id", rec.ID, "error", lerr.Error())
		}
	}
	if err != nil {
		return fmt.Errorf("backup %s/%s is stored but did not verify when read back (params verify=\"after\"): %w", job.Name, rec.ID, err)
	}
	return nil
}

func (e *Executor) readingDir(op *BackupOp, dir string) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	op.dirs = append(op.dirs, dir)
}

// BackupOps returns the running or last verify or restore of every job,
// sorted by job, with the bytes read so far.
func (e *Executor) BackupOps() []BackupOp {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	out := make([]BackupOp, 0, len(e.bk.ops))
	for _, op := range e.bk.ops {
		if op.Running && len(op.dirs) > 0 {
			if op.doneAt == nil {
				op.doneAt = map[string]int64{}
			}
			op.Done = 0
			for _, d := range op.dirs {
				op.doneAt[d] = max(op.doneAt[d], readOffset(d))
				op.Done += op.doneAt[d]
			}
			op.Done = min(op.Done, op.Bytes)
		}
		c := *op
		c.Verified = slices.Clone(op.Verified)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b BackupOp) int { return strings.Compare(a.Job, b.Job) })
	return out
}

// readOffset sums the file offsets of this process's open files under dir:
// how far a verify or restore has read the backup's files.
func readOffset(dir string) int64 {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	var n int64
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !strings.HasPrefix(link, dir+"/") {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "pos:"); ok {
				if pos, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					n += pos
				}
			}
		}
	}
	return n
}

// backupOperator is the executor's side of operator verifies and restores.
type backupOperator interface {
	StartVerify(VerifyRequest, VerifyLog, string) (BackupOp, error)
	StartRestore(RestoreRequest) (BackupOp, error)
	PlanRestore(RestoreRequest) (RestorePlan, error)
	BackupOps() []BackupOp
}

var _ backupOperator = (*Executor)(nil)

func (a *Agent) backupOperator() (backupOperator, error) {
	if op, ok := a.exec.(backupOperator); ok {
		return op, nil
	}
	return nil, ErrNoExecutor
}

// VerifyBackup starts a verify of a stored backup (see Executor.StartVerify);
// the outcome is appended to the verification log in the state directory.
func (a *Agent) VerifyBackup(_ context.Context, req VerifyRequest) (BackupOp, error) {
	op, err := a.backupOperator()
	if err != nil {
		return BackupOp{}, err
	}
	return op.StartVerify(req, a.VerifyLog(), a.cfg.PolicyPath)
}

// PlanRestore checks a restore request and says what it will do.
func (a *Agent) PlanRestore(_ context.Context, req RestoreRequest) (RestorePlan, error) {
	op, err := a.backupOperator()
	if err != nil {
		return RestorePlan{}, err
	}
	return op.PlanRestore(req)
}

// RestoreBackup starts a restore into a new directory or file.
func (a *Agent) RestoreBackup(_ context.Context, req RestoreRequest) (BackupOp, error) {
	op, err := a.backupOperator()
	if err != nil {
		return BackupOp{}, err
	}
	return op.StartRestore(req)
}

// BackupOps returns the running or last verify or restore of each job.
func (a *Agent) BackupOps() []BackupOp {
	op, err := a.backupOperator()
	if err != nil {
		return nil
	}
	return op.BackupOps()
}

// VerifyLog is this agent's verification log.
func (a *Agent) VerifyLog() VerifyLog { return StateVerifyLog(a.cfg.StateDir) }
