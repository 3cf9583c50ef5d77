package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"time"
)

// DefaultHeadroom is the share of the target filesystem kept free.
const DefaultHeadroom = 0.30

// ErrInsufficientHeadroom: a run would leave less free space than the
// headroom. The error is a *HeadroomError carrying the numbers.
var ErrInsufficientHeadroom = errors.New("insufficient storage headroom")

// ErrCopyFailed: the backup is stored but some replica copy did not
// verify, so it is not safe yet. Returned with the good Record.
var ErrCopyFailed = errors.New("backup copy failed")

// HeadroomError reports a refused (or stopped) run with the numbers an
// alert needs. errors.Is(err, ErrInsufficientHeadroom) holds.
type HeadroomError struct {
	Job      string
	Target   string
	Needed   uint64  // estimated bytes of the run (or bytes already written)
	Free     uint64  // free bytes on the target filesystem
	Total    uint64  // size of the target filesystem
	Headroom float64 // share to keep free
	Reserve  uint64  // Headroom*Total in bytes
	Pruned   int     // backups pruned by retention while trying to make room
}

func (e *HeadroomError) Error() string {
	return fmt.Sprintf("backup %s: %s: need %d bytes, %d free of %d, must keep %.0f%% (%d bytes) free (pruned %d)",
		e.Job, ErrInsufficientHeadroom, e.Needed, e.Free, e.Total, e.Headroom*100, e.Reserve, e.Pruned)
}

// Is makes errors.Is(err, ErrInsufficientHeadroom) true.
func (e *HeadroomError) Is(target error) bool { return target == ErrInsufficientHeadroom }

// Progress is reported during a run.
type Progress struct {
	Job, ID  string
	Done     int64 // bytes stored so far
	Estimate int64 // expected total, 0 when unknown
}

// Job is one configured backup job.
type Job struct {
	Name      string
	Source    Source
	Retention Retention
	// Headroom is the share of the target filesystem kept free; 0 means
	// DefaultHeadroom, a negative value disables the check.
	Headroom float64
	Replicas []Replica
	// Progress, when set, is called every few MiB and at the end.
	Progress func(Progress)
}

func (j Job) headroom() float64 {
	switch {
	case j.Headroom == 0:
		return DefaultHeadroom
	case j.Headroom < 0:
		return 0
	}
	return j.Headroom
}

// Runner executes jobs against a store.
type Runner struct {
	Store *Store
	Node  string
	Now   func() time.Time
	Log   *slog.Logger
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// progressEvery is how often (in bytes) progress is reported and the
// headroom rechecked during a run.
const progressEvery = 2 << 20

// Run executes one backup of job: headroom check (pruning by retention
// first if short), stream into the store, commit, copy to replicas,
// prune by retention. The returned Record is what the catalogue holds. A
// refused run returns a *HeadroomError; a stored backup whose copies failed
// returns a good Record and an error wrapping ErrCopyFailed.
func (r *Runner) Run(ctx context.Context, job Job) (Record, error) {
	start := r.now()
	rec := Record{ID: newID(start), Job: job.Name, Kind: job.Source.Kind(), Node: r.Node, Start: start}
	for _, rep := range job.Replicas {
		rec.Want = append(rec.Want, rep.Name())
	}
	if err := checkName("job", job.Name); err != nil {
		return rec, err
	}
	estimate := r.estimate(ctx, job)
	if err := r.ensureHeadroom(ctx, job, uint64(estimate)); err != nil {
		rec.Outcome, rec.End, rec.Error = OutcomeRefused, r.now(), err.Error()
		if herr := r.Store.updateHistory(rec, func(x *Record) { *x = rec }); herr != nil {
			err = errors.Join(err, herr)
		}
		r.log().Error("backup refused", "job", job.Name, "err", err)
		return rec, err
	}

	dataName := "data.dump"
	if rec.Kind == KindFiles {
		dataName = "data.tar.gz"
	} else if e, ok := job.Source.(*Exec); ok && e.Compress {
		dataName = "data.dump.gz"
	}
	p, err := r.Store.begin(rec, dataName, rec.Kind == KindFiles)
	if err != nil {
		return rec, fmt.Errorf("backup %s: %w", job.Name, err)
	}
	data := &meteredWriter{w: p.data, h: sha256.New(), job: job, rec: &rec, estimate: estimate, runner: r}
	out := Output{Data: data}
	var manifest *meteredWriter
	if p.manifest != nil {
		manifest = &meteredWriter{w: p.manifest, h: sha256.New()}
		out.Manifest = manifest
	}
	r.log().Info("backup started", "job", job.Name, "id", rec.ID, "estimate", estimate)
	sum, err := job.Source.Backup(ctx, out)
	rec.End = r.now()
	rec.Stderr, rec.Compression, rec.Entries = sum.Stderr, sum.Compression, sum.Entries
	if data.err != nil { // the store stopped the source (headroom); that is the cause
		err = data.err
	}
	if err != nil {
		rec.Outcome, rec.Error = OutcomeFailed, err.Error()
		if aerr := p.abort(rec); aerr != nil {
			err = errors.Join(err, aerr)
		}
		r.log().Error("backup failed", "job", job.Name, "id", rec.ID, "err", err)
		return rec, fmt.Errorf("backup %s: %w", job.Name, err)
	}
	rec.Bytes, rec.SHA256 = data.n, hex.EncodeToString(data.h.Sum(nil))
	rec.Files = []StoredFile{{Name: dataName, Size: data.n, SHA256: rec.SHA256}}
	if manifest != nil {
		rec.Files = append(rec.Files, StoredFile{Name: manifestFile, Size: manifest.n, SHA256: hex.EncodeToString(manifest.h.Sum(nil))})
	}
	rec.Outcome = OutcomeOK
	if err := p.commit(rec); err != nil {
		rec.Outcome, rec.Error = OutcomeFailed, err.Error()
		r.Store.updateHistory(rec, func(x *Record) { *x = rec })
		return rec, fmt.Errorf("backup %s: %w", job.Name, err)
	}
	if job.Progress != nil {
		job.Progress(Progress{Job: job.Name, ID: rec.ID, Done: rec.Bytes, Estimate: estimate})
	}
	r.log().Info("backup stored", "job", job.Name, "id", rec.ID, "bytes", rec.Bytes, "took", rec.End.Sub(rec.Start))

	copyErr := r.copyAll(ctx, job, &rec)
	if _, err := r.Prune(ctx, job); err != nil {
		r.log().Error("backup prune failed", "job", job.Name, "err", err)
	}
	return rec, copyErr
}

// copyAll copies a stored backup to every replica and records the outcome.
func (r *Runner) copyAll(ctx context.Context, job Job, rec *Record) error {
	var errs []error
	open := func(name string) (io.ReadCloser, error) { return r.Store.OpenFile(rec.Job, rec.ID, name) }
	for _, rep := range job.Replicas {
		c := Copy{Replica: rep.Name()}
		if l, ok := rep.(Locator); ok {
			c.Location = l.Location()
		}
		if err := rep.Put(ctx, *rec, open); err != nil {
			c.Error = err.Error()
			errs = append(errs, err)
			r.log().Error("backup copy failed", "job", job.Name, "id", rec.ID, "replica", rep.Name(), "err", err)
		} else {
			c.Verified, c.VerifiedAt = true, r.now()
		}
		rec.setCopy(c)
	}
	if len(job.Replicas) > 0 {
		if err := r.Store.updateHistory(*rec, func(x *Record) { x.Copies = rec.Copies }); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("backup %s/%s: %w: %w", rec.Job, rec.ID, ErrCopyFailed, errors.Join(errs...))
	}
	return nil
}

// Prune deletes the job's backups that retention does not keep, locally
// and on the replicas, and returns them.
func (r *Runner) Prune(ctx context.Context, job Job) ([]Record, error) {
	backups, err := r.Store.Backups(job.Name)
	if err != nil {
		return nil, err
	}
	var pruned []Record
	for _, b := range prunable(job.Retention.Select(backups, r.now())) {
		if err := ctx.Err(); err != nil {
			return pruned, err
		}
		if err := r.Store.Delete(b.Job, b.ID); err != nil {
			return pruned, err
		}
		for _, rep := range job.Replicas {
			if err := rep.Delete(ctx, b.Job, b.ID); err != nil {
				r.log().Error("backup: cannot prune copy", "job", b.Job, "id", b.ID, "replica", rep.Name(), "err", err)
			}
		}
		r.log().Info("backup pruned", "job", b.Job, "id", b.ID)
		pruned = append(pruned, b)
	}
	return pruned, nil
}

// estimate guesses the size of the next run: the last good one plus 10%,
// else the source's own estimate, else 0.
func (r *Runner) estimate(ctx context.Context, job Job) int64 {
	if backups, err := r.Store.Backups(job.Name); err == nil && len(backups) > 0 {
		last := backups[len(backups)-1]
		var n int64
		for _, f := range last.Files {
			n += f.Size
		}
		return n + n/10
	}
	if e, ok := job.Source.(Estimator); ok {
		n, err := e.EstimateSize(ctx)
		if err == nil {
			return n
		}
		r.log().Warn("backup: cannot estimate size", "job", job.Name, "err", err)
	}
	return 0
}

func (r *Runner) headroomCheck(job Job, needed uint64) (*HeadroomError, error) {
	u, err := r.Store.Usage()
	if err != nil {
		return nil, err
	}
	h := job.headroom()
	reserve := uint64(math.Ceil(h * float64(u.Total)))
	if u.Free >= reserve && u.Free-reserve >= needed {
		return nil, nil
	}
	return &HeadroomError{Job: job.Name, Target: r.Store.Dir(), Needed: needed, Free: u.Free, Total: u.Total, Headroom: h, Reserve: reserve}, nil
}

// ensureHeadroom checks the headroom for a run of about needed bytes,
// pruning by retention once if short.
func (r *Runner) ensureHeadroom(ctx context.Context, job Job, needed uint64) error {
	if job.headroom() == 0 {
		return nil
	}
	short, err := r.headroomCheck(job, needed)
	if err != nil || short == nil {
		return err
	}
	pruned, err := r.Prune(ctx, job)
	if err != nil {
		return errors.Join(short, err)
	}
	if short, err = r.headroomCheck(job, needed); err != nil || short == nil {
		return err
	}
	short.Pruned = len(pruned)
	return short
}

// meteredWriter hashes and counts what is stored; for the data stream it
// also reports progress and stops the run if the filesystem falls into
// the headroom (the estimate may have been low).
type meteredWriter struct {
	w        io.Writer
	h        hash.Hash
	n        int64
	job      Job
	rec      *Record
	estimate int64
	runner   *Runner
	next     int64 // n at which to report and recheck
	err      error
}

func (m *meteredWriter) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.w.Write(p)
	m.h.Write(p[:n])
	m.n += int64(n)
	if err != nil {
		return n, err
	}
	if m.runner != nil && m.n >= m.next {
		m.next = m.n + progressEvery
		if m.job.Progress != nil {
			m.job.Progress(Progress{Job: m.job.Name, ID: m.rec.ID, Done: m.n, Estimate: m.estimate})
		}
		if m.job.headroom() > 0 {
			if short, err := m.runner.headroomCheck(m.job, 0); err == nil && short != nil {
				short.Needed = uint64(m.n)
				m.err = short
				return n, short
			}
		}
	}
	return n, nil
}

// Verify re-reads a backup in the store and every replica's copy, records
// which copies verified, and returns the updated record. Errors wrap
// ErrCorrupt (or ErrNotFound) naming where the problem is.
func (r *Runner) Verify(ctx context.Context, job Job, id string) (Record, error) {
	rec, err := r.Store.Get(job.Name, id)
	if err != nil {
		return rec, err
	}
	var errs []error
	if err := r.Store.Verify(ctx, job.Name, id); err != nil {
		errs = append(errs, err)
	}
	for _, rep := range job.Replicas {
		c := Copy{Replica: rep.Name()}
		if l, ok := rep.(Locator); ok {
			c.Location = l.Location()
		}
		if err := rep.Verify(ctx, job.Name, id); err != nil {
			c.Error = err.Error()
			errs = append(errs, err)
		} else {
			c.Verified, c.VerifiedAt = true, r.now()
		}
		rec.setCopy(c)
	}
	if err := r.Store.updateHistory(rec, func(x *Record) { x.Copies = rec.Copies }); err != nil {
		errs = append(errs, err)
	}
	return rec, errors.Join(errs...)
}

// StreamRestorer consumes an exec backup's stream on restore; ExecSink
// (pg_restore, mariadb) implements it.
type StreamRestorer interface {
	Restore(ctx context.Context, r io.Reader) error
}

var _ StreamRestorer = ExecSink{}

// RestoreStreamTo verifies an exec backup, then feeds its stream to sink.
func (s *Store) RestoreStreamTo(ctx context.Context, job, id string, sink StreamRestorer) error {
	if err := s.Verify(ctx, job, id); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	streamErr := make(chan error, 1)
	go func() {
		err := s.RestoreStream(ctx, job, id, pw)
		pw.CloseWithError(err)
		streamErr <- err
	}()
	err := sink.Restore(ctx, pr)
	pr.CloseWithError(errors.New("restore consumer finished"))
	serr := <-streamErr
	if serr != nil && err == nil {
		return serr
	}
	return err
}

// pathOf returns where a stored backup's file lives (for tests and tools).
func (s *Store) pathOf(job, id, name string) string {
	return filepath.Join(s.backupDir(job, id), name)
}
