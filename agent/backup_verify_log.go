package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/internal/atomicfile"
)

// VerifyLogFile is the verification log's name in the agent's state
// directory. The agent (console and API verifies) and `harules backup
// verify` on the node append to the same file.
const VerifyLogFile = "backup-verify.json"

// verifyLogKeep bounds the log: the oldest entries go first. At ~300 bytes
// an entry the file stays under half a MiB.
const verifyLogKeep = 1000

// StoreTarget names a job's own store (params["target"]) in verify
// requests and log entries; copies go by their replica name ("copy" for
// params["copy_to"], "peer:NODE" for peer copies).
const StoreTarget = "target"

// VerifyEntry is one verification of one backup in one store.
type VerifyEntry struct {
	Job string `json:"job"`
	// Store is StoreTarget or a replica name; Location is its directory
	// or node:directory.
	Store    string    `json:"store"`
	Location string    `json:"location,omitempty"`
	ID       string    `json:"id"`
	At       time.Time `json:"at"` // when the check started
	Seconds  float64   `json:"seconds"`
	OK       bool      `json:"ok"`
	// Corrupt: the data did not match its checksums (not merely unreadable).
	Corrupt bool   `json:"corrupt,omitempty"`
	Error   string `json:"error,omitempty"`
	// Bytes is the size of the stored files that were checked.
	Bytes int64  `json:"bytes"`
	Node  string `json:"node,omitempty"`
	// By says who asked: console, api, cli.
	By string `json:"by,omitempty"`
}

// VerifyLog is the verification log at Path: a JSON array, oldest first,
// replaced atomically on every append under an flock on Path+".lock" (so
// the agent and the CLI never lose each other's entries).
type VerifyLog struct {
	Path string
}

// Read returns the entries, oldest first; a missing log is empty.
func (l VerifyLog) Read() ([]VerifyEntry, error) {
	b, err := os.ReadFile(l.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read verification log: %w", err)
	}
	var out []VerifyEntry
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("read verification log %s: %w", l.Path, err)
	}
	return out, nil
}

// Append adds entries, dropping the oldest beyond the bound.
func (l VerifyLog) Append(entries ...VerifyEntry) error {
	if len(entries) == 0 {
		return nil
	}
	lock, err := os.OpenFile(l.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("verification log: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("verification log: lock: %w", err)
	}
	all, err := l.Read()
	if err != nil {
		// A damaged log must not stop verifications from being recorded;
		// keep the damaged file beside it for a person to look at.
		_ = os.Rename(l.Path, l.Path+".damaged")
		all = nil
	}
	all = append(all, entries...)
	slices.SortStableFunc(all, func(a, b VerifyEntry) int { return a.At.Compare(b.At) })
	if len(all) > verifyLogKeep {
		all = all[len(all)-verifyLogKeep:]
	}
	b, err := json.MarshalIndent(all, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.Write(l.Path, b, 0o600)
}

// StateVerifyLog is the verification log of an agent whose state
// directory is stateDir.
func StateVerifyLog(stateDir string) VerifyLog {
	return VerifyLog{Path: filepath.Join(stateDir, VerifyLogFile)}
}

// LastVerify returns the newest entry of job in store (any store when
// store is empty) and, when id is not empty, of that backup.
func LastVerify(entries []VerifyEntry, job, store, id string) (VerifyEntry, bool) {
	for _, e := range slices.Backward(entries) {
		if e.Job == job && (store == "" || e.Store == store) && (id == "" || e.ID == id) {
			return e, true
		}
	}
	return VerifyEntry{}, false
}

// Text describes an entry in one line, e.g. "ok at 2026-11-26 09:00:00,
// 20261126T... in target, 4.0 MiB in 0.1s".
func (e VerifyEntry) Text(format func(time.Time) string) string {
	result := "ok"
	if !e.OK {
		result = "FAILED"
		if e.Corrupt {
			result = "CORRUPT"
		}
	}
	t := fmt.Sprintf("%s at %s, %s in %s, %s in %.1fs", result, format(e.At), e.ID, e.Store, SizeText(e.Bytes), e.Seconds)
	if e.By != "" {
		t += " (" + e.By + ")"
	}
	if e.Error != "" {
		t += ": " + FirstLine(e.Error)
	}
	return t
}
