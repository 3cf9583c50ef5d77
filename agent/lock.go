package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFileName is the single-instance lock in the state directory.
const LockFileName = "run.lock"

// StateLock is the single-instance lock of a state directory: an exclusive
// flock(2) on StateDir/run.lock, held for the life of `harules run`. A
// second run on the node (same state directory) must not start: its start
// would release every VIP and service the first one holds. The kernel drops
// the lock when the holder dies, so a crash never leaves it behind; the file
// keeps the pid of the process that took it, for the refusal message.
type StateLock struct {
	f    *os.File
	path string
}

// LockedError says that another live process holds the state directory's
// lock.
type LockedError struct {
	Path string
	PID  int // 0 when the file does not say
}

func (e *LockedError) Error() string {
	who := "another harules run"
	if e.PID > 0 {
		who += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	return who + " holds " + e.Path + ": an agent already runs on this state directory; nothing was touched"
}

// LockStateDir takes the lock of dir without waiting (creating dir and the
// file if needed) and writes this process's pid into it. When another
// process holds it, the error is a *LockedError naming that process.
func LockStateDir(dir string) (*StateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, PID: lockHolder(path)}
		}
		return nil, fmt.Errorf("state lock %s: %w", path, err)
	}
	l := &StateLock{f: f, path: path}
	if err := l.writePID(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// InheritStateLock adopts the lock of dir taken by the parent process (the
// supervisor) and handed down as f. The flock belongs to the open file
// that both processes share, so taking it again here succeeds only if that
// file really is the held lock of dir. f is made close-on-exec, so that no
// service the agent starts keeps the lock after the agent is gone.
func InheritStateLock(f *os.File, dir string) (*StateLock, error) {
	path := filepath.Join(dir, LockFileName)
	syscall.CloseOnExec(int(f.Fd()))
	want, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inherited state lock: %w", err)
	}
	got, err := f.Stat()
	if err != nil || !os.SameFile(want, got) {
		return nil, fmt.Errorf("inherited state lock: file descriptor %d is not %s", f.Fd(), path)
	}
	if err := flock(f); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, PID: lockHolder(path)}
		}
		return nil, fmt.Errorf("inherited state lock %s: %w", path, err)
	}
	return &StateLock{f: f, path: path}, nil
}

// File is the locked file (the supervisor hands it to the agent).
func (l *StateLock) File() *os.File { return l.f }

// Path is the lock file's path.
func (l *StateLock) Path() string { return l.path }

// Close releases the lock (for every process sharing the file once all of
// them closed it or exited).
func (l *StateLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (l *StateLock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("state lock %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("state lock %s: %w", l.path, err)
	}
	return nil
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// lockHolder reads the pid the holder wrote (0 if unreadable).
func lockHolder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// ProbeStateLock reports a LockedError when another run holds dir's lock,
// without creating anything: a run that is about to refuse its policy
// (preflight) must still say first that another run is there, and must not
// leave a state directory behind either. It is only a probe; the lock is
// taken with LockStateDir.
func ProbeStateLock(dir string) error {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil // no lock file: nobody holds it
	}
	defer f.Close()
	if err := flock(f); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return &LockedError{Path: path, PID: lockHolder(path)}
		}
		return nil
	}
	// Closing the file drops the probe's lock at once.
	return nil
}
