package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Output is where a Source writes: the backup stream and, for sources that
// have one, a manifest (one JSON line per entry, in stream order).
type Output struct {
	Data     io.Writer
	Manifest io.Writer
}

// Summary is what a Source reports about the stream it wrote.
type Summary struct {
	Compression string // "gzip" or "" (stored as produced)
	Entries     int64  // files kind: number of archive entries
	HasManifest bool   // the Manifest writer was used
	Stderr      string // exec kind: tail of stderr, kept for the operator
}

// Source produces one backup stream. Implementations: *Files and *Exec.
type Source interface {
	Kind() string
	// Backup writes the stream; it must stop promptly when ctx is done.
	Backup(ctx context.Context, out Output) (Summary, error)
}

// Estimator is implemented by sources that can estimate the size of a run
// without history (used for the headroom check of a job's first run).
type Estimator interface {
	EstimateSize(ctx context.Context) (int64, error)
}

// stderrTail keeps at most the last limit bytes written to it.
type stderrTail struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Command is a program with arguments and extra environment, used both to
// produce a backup stream (Exec) and to consume one on restore (ExecSink).
type Command struct {
	Path string
	Args []string
	Env  []string // added to the environment of this process, e.g. PGPASSWORD=...
	Dir  string
}

// String renders the command for logs; environment values are not shown.
func (c Command) String() string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

func (c Command) cmd(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	// Own process group so cancellation kills helpers the command forks;
	// Pdeathsig so a killed harules does not leave a dump running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec is a source that runs a command and stores its stdout, e.g.
// `pg_dump -Fc`. A non-zero exit status fails the backup; stderr is kept.
type Exec struct {
	Command
	// Compress gzips the stream (for text dumps; pg_dump -Fc is compressed already).
	Compress bool
}

var _ Source = (*Exec)(nil)

// Kind implements Source.
func (e *Exec) Kind() string { return KindExec }

// Backup implements Source.
func (e *Exec) Backup(ctx context.Context, out Output) (Summary, error) {
	sum := Summary{}
	if e.Path == "" {
		return sum, errors.New("exec source: no command")
	}
	stderr := &stderrTail{limit: 16 << 10}
	w := out.Data
	var zw io.WriteCloser
	if e.Compress {
		zw = newGzipWriter(w, defaultLevel)
		w = zw
		sum.Compression = "gzip"
	}
	cmd := e.cmd(ctx)
	cmd.Stdout = w
	cmd.Stderr = stderr
	err := cmd.Run()
	sum.Stderr = stderr.String()
	if err != nil {
		if ctx.Err() != nil {
			return sum, fmt.Errorf("exec %s: %w", e.Path, ctx.Err())
		}
		return sum, fmt.Errorf("exec %s: %w (stderr: %s)", e.Path, err, lastLine(sum.Stderr))
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return sum, fmt.Errorf("exec %s: compress: %w", e.Path, err)
		}
	}
	return sum, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// PostgresDump returns a source running `pg_dump -Fc` (custom format,
// compressed, restorable with pg_restore) against dsn, a libpq connection
// string or URI. Extra args are appended (e.g. "--schema=app").
func PostgresDump(dsn string, args ...string) *Exec {
	a := []string{"--format=custom", "--no-password", "--dbname=" + dsn}
	return &Exec{Command: Command{Path: "pg_dump", Args: append(a, args...)}}
}

// PostgresBasebackup returns a source running pg_basebackup: a physical copy
// of the whole cluster (every database, roles, settings) as a tar stream
// with the WAL needed to make it consistent (--wal-method=fetch), gzipped.
// Restore: extract it into an empty data directory owned by postgres and
// start the server there. The connection needs the REPLICATION privilege;
// the server must have a single tablespace (pg_basebackup writes a tar to
// stdout only then).
func PostgresBasebackup(dsn string, args ...string) *Exec {
	a := []string{"--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--no-password", "--dbname=" + dsn}
	return &Exec{Command: Command{Path: "pg_basebackup", Args: append(a, args...)}, Compress: true}
}

// MySQLDump returns a source running mariadb-dump (or mysqldump where
// mariadb-dump is absent) with options for a consistent online dump of
// InnoDB tables; args name the connection and databases, e.g.
// "--socket=/run/mysqld/mysqld.sock", "--all-databases". The text output is gzipped.
func MySQLDump(args ...string) *Exec {
	path := "mariadb-dump"
	if _, err := exec.LookPath(path); err != nil {
		path = "mysqldump"
	}
	a := []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob"}
	return &Exec{Command: Command{Path: path, Args: append(a, args...)}, Compress: true}
}

// ExecSink is a restore hook for exec backups: a command that reads the
// (decompressed) stream on stdin, e.g. pg_restore.
type ExecSink struct{ Command }

// Restore runs the command with r as stdin; a non-zero exit fails.
func (s ExecSink) Restore(ctx context.Context, r io.Reader) error {
	stderr := &stderrTail{limit: 16 << 10}
	cmd := s.cmd(ctx)
	cmd.Stdin = r
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restore with %s: %w (output: %s)", s.Path, err, lastLine(stderr.String()))
	}
	return nil
}

// PostgresRestore returns a sink running pg_restore into the database named
// by dsn (which must exist). Extra args are appended (e.g. "--clean").
func PostgresRestore(dsn string, args ...string) ExecSink {
	a := []string{"--no-password", "--exit-on-error", "--dbname=" + dsn}
	return ExecSink{Command{Path: "pg_restore", Args: append(a, args...)}}
}

// MySQLRestore returns a sink feeding the SQL dump to the mariadb (or mysql) client.
func MySQLRestore(args ...string) ExecSink {
	path := "mariadb"
	if _, err := exec.LookPath(path); err != nil {
		path = "mysql"
	}
	return ExecSink{Command{Path: path, Args: args}}
}
