package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// File names inside a store.
const (
	historyFile    = "history.json"
	metaFile       = "meta.json"
	manifestFile   = "manifest.jsonl"
	partialPrefix  = ".partial-"
	deletingPrefix = ".deleting-"
	tmpPrefix      = ".tmp-"
	// historyKeep bounds the catalogue: runs without stored data beyond it are dropped.
	historyKeep = 500
)

// Errors of the store.
var (
	ErrLocked   = errors.New("backup store is in use by another process")
	ErrNotFound = errors.New("backup not found")
)

// Store is a target directory holding backups; see the package comment for
// the layout. One process at a time may open it (an flock guards it).
type Store struct {
	dir  string
	lock *os.File
	now  func() time.Time
	log  *slog.Logger
	mu   sync.Mutex // serialises catalogue read-modify-write
}

// StoreOption configures Open.
type StoreOption func(*Store)

// WithClock injects the clock used for catalogue times.
func WithClock(now func() time.Time) StoreOption { return func(s *Store) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) StoreOption { return func(s *Store) { s.log = l } }

// RecoverReport says what Recover found after an unclean stop.
type RecoverReport struct {
	RemovedPartial []string // job/id of half-written backups removed
	Adopted        []string // job/id of complete backups missing from the catalogue
	Missing        []string // job/id of catalogued backups whose files are gone
}

// Open opens (creating it if needed) the store at dir, takes its lock and
// runs Recover.
func Open(dir string, opts ...StoreOption) (*Store, *RecoverReport, error) {
	s := &Store{dir: dir, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("open store %s: %w", dir, ErrLocked)
		}
		return nil, nil, fmt.Errorf("open store %s: lock: %w", dir, err)
	}
	s.lock = lock
	rep, err := s.Recover()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, rep, nil
}

// Close releases the store's lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Jobs lists the jobs that have a catalogue or backups in the store.
func (s *Store) Jobs() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []string
	for _, e := range ents {
		if e.IsDir() && checkName("job", e.Name()) == nil {
			jobs = append(jobs, e.Name())
		}
	}
	return jobs, nil
}

// Recover cleans up after a crash or kill: half-written backups are removed
// and recorded as interrupted, complete backups missing from the catalogue
// are adopted from their meta.json, and catalogued backups whose files are
// gone are marked missing. It never removes a complete backup.
func (s *Store) Recover() (*RecoverReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &RecoverReport{}
	jobs, err := s.Jobs()
	if err != nil {
		return nil, err
	}
	for _, job := range jobs {
		if err := s.recoverJob(job, rep); err != nil {
			return nil, fmt.Errorf("recover %s: %w", job, err)
		}
	}
	return rep, nil
}

func (s *Store) recoverJob(job string, rep *RecoverReport) error {
	jobDir := filepath.Join(s.dir, job)
	hist, err := s.loadHistory(job)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(jobDir)
	if err != nil {
		return err
	}
	changed := false
	present := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, partialPrefix):
			id := strings.TrimPrefix(name, partialPrefix)
			if err := os.RemoveAll(filepath.Join(jobDir, name)); err != nil {
				return err
			}
			rep.RemovedPartial = append(rep.RemovedPartial, job+"/"+id)
			s.log.Warn("backup: removed a half-written backup", "job", job, "id", id)
			hist = upsert(hist, Record{ID: id, Job: job}, func(r *Record) {
				if r.Outcome == OutcomeRunning || r.Outcome == "" {
					r.Outcome = OutcomeInterrupted
					r.End = s.now()
					r.Error = "the process stopped during the backup; its partial files were removed"
				}
			})
			changed = true
		case strings.HasPrefix(name, deletingPrefix), strings.HasPrefix(name, tmpPrefix):
			if err := os.RemoveAll(filepath.Join(jobDir, name)); err != nil {
				return err
			}
			changed = true
		case e.IsDir() && checkName("id", name) == nil:
			rec, err := readMeta(filepath.Join(jobDir, name))
			if err != nil {
				// Not ours or damaged: never delete what might be data.
				s.log.Error("backup: unreadable backup directory left in place", "job", job, "dir", name, "err", err)
				continue
			}
			present[rec.ID] = true
			if i := slices.IndexFunc(hist, func(r Record) bool { return r.ID == rec.ID }); i < 0 || hist[i].Outcome != OutcomeOK {
				hist = upsert(hist, rec, func(r *Record) { copies := r.Copies; *r = rec; r.Copies = copies })
				rep.Adopted = append(rep.Adopted, job+"/"+rec.ID)
				changed = true
			}
		}
	}
	for i := range hist {
		switch {
		case hist[i].Outcome == OutcomeRunning:
			hist[i].Outcome = OutcomeInterrupted
			hist[i].Error = "the process stopped during the backup"
			changed = true
		case hist[i].Outcome == OutcomeOK && !present[hist[i].ID]:
			hist[i].Outcome = OutcomeMissing
			hist[i].Error = "backup files are gone from the store"
			rep.Missing = append(rep.Missing, job+"/"+hist[i].ID)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := syncDir(jobDir); err != nil {
		return err
	}
	return s.saveHistory(job, hist)
}

// upsert updates the record with rec.ID (or appends rec) and applies fn.
func upsert(hist []Record, rec Record, fn func(*Record)) []Record {
	i := slices.IndexFunc(hist, func(r Record) bool { return r.ID == rec.ID })
	if i < 0 {
		hist = append(hist, rec)
		i = len(hist) - 1
	}
	fn(&hist[i])
	return hist
}

func readMeta(dir string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", metaFile, err)
	}
	if rec.ID != filepath.Base(dir) || len(rec.Files) == 0 {
		return rec, fmt.Errorf("%s: does not describe this directory", metaFile)
	}
	return rec, nil
}

func (s *Store) loadHistory(job string) ([]Record, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, job, historyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", job, err)
	}
	var hist []Record
	if err := json.Unmarshal(b, &hist); err != nil {
		return nil, fmt.Errorf("read history of %s: %w", job, err)
	}
	return hist, nil
}

// saveHistory replaces the catalogue atomically (temp file, fsync, rename,
// fsync of the directory), dropping the oldest runs that hold no data.
func (s *Store) saveHistory(job string, hist []Record) error {
	slices.SortStableFunc(hist, func(a, b Record) int { return a.Start.Compare(b.Start) })
	for drop := len(hist) - historyKeep; drop > 0; drop-- {
		i := slices.IndexFunc(hist, func(r Record) bool { return r.Outcome != OutcomeOK })
		if i < 0 {
			break
		}
		hist = slices.Delete(hist, i, i+1)
	}
	b, err := json.MarshalIndent(hist, "", " ")
	if err != nil {
		return err
	}
	// A first run refused for headroom records itself before any backup
	// created the job's directory.
	if err := os.MkdirAll(filepath.Join(s.dir, job), 0o750); err != nil {
		return fmt.Errorf("save history of %s: %w", job, err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, job), historyFile, b); err != nil {
		return fmt.Errorf("save history of %s: %w", job, err)
	}
	return nil
}

func writeFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// updateHistory applies fn to the job's catalogue record id (adding rec if absent).
func (s *Store) updateHistory(rec Record, fn func(*Record)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	hist, err := s.loadHistory(rec.Job)
	if err != nil {
		return err
	}
	return s.saveHistory(rec.Job, upsert(hist, rec, fn))
}

// History returns the catalogue of job, oldest first.
func (s *Store) History(job string) ([]Record, error) {
	if err := checkName("job", job); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadHistory(job)
}

// Backups returns the job's stored (good) backups, oldest first.
func (s *Store) Backups(job string) ([]Record, error) {
	hist, err := s.History(job)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(hist, func(r Record) bool { return !r.Good() }), nil
}

// Get returns the catalogue record of a backup.
func (s *Store) Get(job, id string) (Record, error) {
	hist, err := s.History(job)
	if err != nil {
		return Record{}, err
	}
	for _, r := range hist {
		if r.ID == id {
			return r, nil
		}
	}
	return Record{}, fmt.Errorf("%s/%s: %w", job, id, ErrNotFound)
}

func (s *Store) backupDir(job, id string) string { return filepath.Join(s.dir, job, id) }

// stored returns the record of a stored backup from its meta.json.
func (s *Store) stored(job, id string) (Record, error) {
	if err := checkName("job", job); err != nil {
		return Record{}, err
	}
	if err := checkName("id", id); err != nil {
		return Record{}, err
	}
	rec, err := readMeta(s.backupDir(job, id))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("%s/%s: %w", job, id, ErrNotFound)
	}
	return rec, err
}

// OpenFile opens one file of a stored backup (for copies and inspection).
func (s *Store) OpenFile(job, id, name string) (*os.File, error) {
	if _, err := s.stored(job, id); err != nil {
		return nil, err
	}
	if name != filepath.Base(name) {
		return nil, fmt.Errorf("backup file %q: %w", name, ErrInvalidName)
	}
	return os.Open(filepath.Join(s.backupDir(job, id), name))
}

// pending is a backup being written under its partial name.
type pending struct {
	s        *Store
	rec      Record
	dir      string
	data     *os.File
	manifest *os.File
}

// begin creates the partial directory for rec (ID, Job set) and marks the
// run as running in the catalogue, so a crash is visible after Recover.
func (s *Store) begin(rec Record, dataName string, withManifest bool) (*pending, error) {
	if err := checkName("job", rec.Job); err != nil {
		return nil, err
	}
	if err := checkName("id", rec.ID); err != nil {
		return nil, err
	}
	jobDir := filepath.Join(s.dir, rec.Job)
	if err := os.MkdirAll(jobDir, 0o750); err != nil {
		return nil, fmt.Errorf("begin backup: %w", err)
	}
	p := &pending{s: s, rec: rec, dir: filepath.Join(jobDir, partialPrefix+rec.ID)}
	if err := os.Mkdir(p.dir, 0o750); err != nil {
		return nil, fmt.Errorf("begin backup: %w", err)
	}
	var err error
	if p.data, err = os.OpenFile(filepath.Join(p.dir, dataName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); err != nil {
		p.remove()
		return nil, fmt.Errorf("begin backup: %w", err)
	}
	if withManifest {
		if p.manifest, err = os.OpenFile(filepath.Join(p.dir, manifestFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); err != nil {
			p.remove()
			return nil, fmt.Errorf("begin backup: %w", err)
		}
	}
	rec.Outcome = OutcomeRunning
	if err := s.updateHistory(rec, func(r *Record) { *r = rec }); err != nil {
		p.remove()
		return nil, err
	}
	return p, nil
}

func (p *pending) remove() {
	if p.data != nil {
		p.data.Close()
	}
	if p.manifest != nil {
		p.manifest.Close()
	}
	if err := os.RemoveAll(p.dir); err != nil {
		p.s.log.Error("backup: cannot remove partial backup", "dir", p.dir, "err", err)
	}
}

// abort removes the partial files and records the failed run.
func (p *pending) abort(rec Record) error {
	p.remove()
	return p.s.updateHistory(rec, func(r *Record) { *r = rec })
}

// commit fsyncs the files, writes meta.json, renames the directory into
// place and fsyncs the job directory; only then is the backup in the store.
func (p *pending) commit(rec Record) error {
	for _, f := range []*os.File{p.data, p.manifest} {
		if f == nil {
			continue
		}
		if err := f.Sync(); err != nil {
			p.remove()
			return fmt.Errorf("commit backup: fsync: %w", err)
		}
		if err := f.Close(); err != nil {
			p.remove()
			return fmt.Errorf("commit backup: %w", err)
		}
	}
	p.data, p.manifest = nil, nil
	meta, err := json.MarshalIndent(rec, "", " ")
	if err == nil {
		err = writeFileAtomic(p.dir, metaFile, meta)
	}
	if err == nil {
		err = os.Rename(p.dir, p.s.backupDir(rec.Job, rec.ID))
	}
	if err == nil {
		err = syncDir(filepath.Dir(p.dir))
	}
	if err != nil {
		p.remove()
		return fmt.Errorf("commit backup: %w", err)
	}
	return p.s.updateHistory(rec, func(r *Record) { copies := r.Copies; *r = rec; r.Copies = copies })
}

// Delete removes a stored backup and marks it pruned. The directory is first
// renamed away so a crash never leaves a half-deleted backup that looks whole.
func (s *Store) Delete(job, id string) error {
	if _, err := s.stored(job, id); err != nil {
		return err
	}
	jobDir := filepath.Join(s.dir, job)
	gone := filepath.Join(jobDir, deletingPrefix+id)
	if err := os.Rename(s.backupDir(job, id), gone); err != nil {
		return fmt.Errorf("delete %s/%s: %w", job, id, err)
	}
	if err := syncDir(jobDir); err != nil {
		return err
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete %s/%s: %w", job, id, err)
	}
	return s.updateHistory(Record{ID: id, Job: job}, func(r *Record) {
		r.Outcome = OutcomePruned
		r.PrunedAt = s.now()
	})
}

// Import stores a copy of a backup made elsewhere: each file is read with
// open, written under the partial name and checked against rec's checksums
// on arrival (after fsync, by reading it back) before it is renamed into place.
func (s *Store) Import(ctx context.Context, rec Record, open func(name string) (io.ReadCloser, error)) error {
	if !rec.Good() || len(rec.Files) == 0 {
		return fmt.Errorf("import %s/%s: not a complete backup", rec.Job, rec.ID)
	}
	if _, err := s.stored(rec.Job, rec.ID); err == nil {
		if err := s.Verify(ctx, rec.Job, rec.ID); err == nil {
			return nil // already here and intact
		}
		if err := s.Delete(rec.Job, rec.ID); err != nil {
			return err
		}
	}
	rec.Copies, rec.Want = nil, nil
	p, err := s.begin(Record{ID: rec.ID, Job: rec.Job, Kind: rec.Kind, Node: rec.Node, Start: rec.Start}, rec.Files[0].Name, false)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		failed := rec
		failed.Outcome, failed.Error = OutcomeFailed, err.Error()
		p.abort(failed)
		return fmt.Errorf("import %s/%s: %w", rec.Job, rec.ID, err)
	}
	p.data.Close()
	p.data = nil
	for _, sf := range rec.Files {
		if err := copyVerified(ctx, filepath.Join(p.dir, sf.Name), sf, open); err != nil {
			return fail(err)
		}
	}
	return p.commit(rec)
}

func copyVerified(ctx context.Context, path string, sf StoredFile, open func(string) (io.ReadCloser, error)) error {
	if sf.Name != filepath.Base(sf.Name) || sf.Name == metaFile {
		return fmt.Errorf("file %q: %w", sf.Name, ErrInvalidName)
	}
	src, err := open(sf.Name)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, ctxReader{ctx, src})
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	size, sum, err := hashFile(ctx, path)
	if err != nil {
		return err
	}
	if size != sf.Size || sum != sf.SHA256 {
		return corruptf("%s arrived with %d bytes, SHA-256 %s; want %d bytes, %s", sf.Name, size, sum, sf.Size, sf.SHA256)
	}
	return nil
}

// ctxReader stops a copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func hashFile(ctx context.Context, path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Verify re-reads a stored backup: every file's size and SHA-256, and for
// the files kind every archive entry against the manifest. A mismatch is
// reported as ErrCorrupt.
func (s *Store) Verify(ctx context.Context, job, id string) error {
	rec, err := s.stored(job, id)
	if err != nil {
		return err
	}
	dir := s.backupDir(job, id)
	for _, sf := range rec.Files {
		if rec.Kind == KindFiles && sf.Name == rec.DataFile() {
			continue // checked below while walking the archive
		}
		size, sum, err := hashFile(ctx, filepath.Join(dir, sf.Name))
		if err != nil {
			return fmt.Errorf("verify %s/%s: %w", job, id, err)
		}
		if size != sf.Size || sum != sf.SHA256 {
			return fmt.Errorf("verify %s/%s: %w", job, id, corruptf("%s has %d bytes, SHA-256 %s; want %d bytes, %s", sf.Name, size, sum, sf.Size, sf.SHA256))
		}
	}
	if rec.Kind != KindFiles {
		return nil
	}
	data, err := os.Open(filepath.Join(dir, rec.DataFile()))
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", job, id, err)
	}
	defer data.Close()
	manifest, err := os.Open(filepath.Join(dir, manifestFile))
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", job, id, err)
	}
	defer manifest.Close()
	sum, entries, err := walkArchive(ctx, data, manifest, func(*tar.Header, io.Reader) error { return nil })
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", job, id, err)
	}
	if sum != rec.SHA256 {
		return fmt.Errorf("verify %s/%s: %w", job, id, corruptf("archive SHA-256 %s, want %s", sum, rec.SHA256))
	}
	if entries != rec.Entries {
		return fmt.Errorf("verify %s/%s: %w", job, id, corruptf("archive has %d entries, want %d", entries, rec.Entries))
	}
	return nil
}

// RestoreFiles restores a files backup into dest (missing or empty). Every
// file is checked against the manifest while it is written, and the whole
// archive against its SHA-256.
func (s *Store) RestoreFiles(ctx context.Context, job, id, dest string, opts RestoreOptions) error {
	rec, err := s.stored(job, id)
	if err != nil {
		return err
	}
	if rec.Kind != KindFiles {
		return fmt.Errorf("restore %s/%s: kind %s has no file tree; use RestoreStream", job, id, rec.Kind)
	}
	dir := s.backupDir(job, id)
	data, err := os.Open(filepath.Join(dir, rec.DataFile()))
	if err != nil {
		return fmt.Errorf("restore %s/%s: %w", job, id, err)
	}
	defer data.Close()
	manifest, err := os.Open(filepath.Join(dir, manifestFile))
	if err != nil {
		return fmt.Errorf("restore %s/%s: %w", job, id, err)
	}
	defer manifest.Close()
	sum, err := extractArchive(ctx, data, manifest, dest, opts)
	if err != nil {
		return fmt.Errorf("restore %s/%s: %w", job, id, err)
	}
	if sum != rec.SHA256 {
		return fmt.Errorf("restore %s/%s: %w", job, id, corruptf("archive SHA-256 %s, want %s", sum, rec.SHA256))
	}
	return nil
}

// RestoreStream writes an exec backup's stream (decompressed) to w, then
// checks the stored file's SHA-256; on a mismatch it returns ErrCorrupt, so
// a consumer must treat what it received as bad.
func (s *Store) RestoreStream(ctx context.Context, job, id string, w io.Writer) error {
	rec, err := s.stored(job, id)
	if err != nil {
		return err
	}
	data, err := os.Open(filepath.Join(s.backupDir(job, id), rec.DataFile()))
	if err != nil {
		return fmt.Errorf("restore %s/%s: %w", job, id, err)
	}
	defer data.Close()
	h := sha256.New()
	tee := io.TeeReader(ctxReader{ctx, data}, h)
	var r io.Reader = tee
	if rec.Compression == "gzip" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("restore %s/%s: %w", job, id, corruptf("gzip: %v", err))
		}
		r = zr
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("restore %s/%s: %w", job, id, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // trailing bytes count too
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 {
		return fmt.Errorf("restore %s/%s: %w", job, id, corruptf("stream SHA-256 %s, want %s", got, rec.SHA256))
	}
	return nil
}

// Usage is the space of the filesystem holding the store, in bytes.
type Usage struct {
	Total, Free uint64 // Free counts what an unprivileged writer may use
}

// Usage reads the filesystem usage with statfs.
func (s *Store) Usage() (Usage, error) { return statfsUsage(s.dir) }

func statfsUsage(dir string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return Usage{Total: st.Blocks * uint64(st.Bsize), Free: st.Bavail * uint64(st.Bsize)}, nil
}

func newID(start time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return start.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}
