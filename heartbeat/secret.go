package heartbeat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/harules/harules/internal/atomicfile"
)

// maxSecretFileSize guards against pointing the agent at a large file.
const maxSecretFileSize = 64 * 1024

// LoadSecret reads the cluster secret from path. It refuses a file that
// group or others may access (fix: chmod 600 PATH), a file that is not a
// regular file, and a secret shorter than MinSecretSize bytes after
// trailing newlines are trimmed.
func LoadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: load secret: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("heartbeat: load secret %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("heartbeat: load secret %s: not a regular file (%s)", path, info.Mode().Type())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("heartbeat: load secret %s: mode %04o lets group/other access the cluster secret; fix with: chmod 600 %s",
			path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("heartbeat: load secret %s: %w", path, err)
	}
	if len(data) > maxSecretFileSize {
		return nil, fmt.Errorf("heartbeat: load secret %s: larger than %d bytes; is this the right file?", path, maxSecretFileSize)
	}
	for bytes.HasSuffix(data, []byte("\n")) {
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
	}
	if len(data) < MinSecretSize {
		return nil, fmt.Errorf("heartbeat: load secret %s: secret is %d bytes, need at least %d (e.g. head -c 32 /dev/urandom | base64 > %s)",
			path, len(data), MinSecretSize, path)
	}
	return data, nil
}

// NextIncarnation returns an incarnation number greater than any returned
// before for statePath and records it there. It is the later of the wall
// clock in Unix nanoseconds and the stored value plus one, so incarnations
// keep growing even when the clock steps back across a restart. A missing
// state file starts from the clock.
func NextIncarnation(statePath string, now func() time.Time) (uint64, error) {
	if now == nil {
		now = time.Now
	}
	next := uint64(max(now().UnixNano(), 1))
	data, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("heartbeat: read incarnation: %w", err)
	default:
		prev, perr := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
		if perr != nil {
			return 0, fmt.Errorf("heartbeat: incarnation file %s is corrupt (%w); remove it to start from the clock", statePath, perr)
		}
		if prev >= next {
			next = prev + 1
		}
	}
	if err := atomicfile.Write(statePath, []byte(strconv.FormatUint(next, 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("heartbeat: store incarnation: %w", err)
	}
	return next, nil
}
