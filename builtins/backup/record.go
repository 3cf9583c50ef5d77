package backup

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Kinds of backup sources.
const (
	KindFiles = "files"
	KindExec  = "exec"
)

// Outcome is the result of one backup run as kept in the catalogue.
type Outcome string

// Outcomes of a run.
const (
	OutcomeRunning     Outcome = "running"     // started, not finished (seen only after a crash)
	OutcomeOK          Outcome = "ok"          // complete and stored
	OutcomeFailed      Outcome = "failed"      // the source or the store failed; nothing stored
	OutcomeInterrupted Outcome = "interrupted" // the process died mid-run; leftovers removed
	OutcomeRefused     Outcome = "refused"     // not started: it would eat into the headroom
	OutcomePruned      Outcome = "pruned"      // was ok, deleted by retention
	OutcomeMissing     Outcome = "missing"     // was ok, its files vanished from the store
)

// StoredFile is one file of a stored backup with its size and checksum.
type StoredFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Copy is the state of one replica copy of a backup.
type Copy struct {
	Replica    string    `json:"replica"`
	Location   string    `json:"location,omitempty"` // where the copy lives, e.g. a directory or node
	Verified   bool      `json:"verified"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// Record describes one run of a job: the catalogue entry and, for stored
// backups, the content of meta.json.
type Record struct {
	ID          string       `json:"id"`
	Job         string       `json:"job"`
	Kind        string       `json:"kind"`
	Node        string       `json:"node,omitempty"`
	Start       time.Time    `json:"start"`
	End         time.Time    `json:"end,omitzero"`
	Bytes       int64        `json:"bytes"`  // size of the stored data file
	SHA256      string       `json:"sha256"` // SHA-256 of the stored data file
	Outcome     Outcome      `json:"outcome"`
	Error       string       `json:"error,omitempty"`
	Stderr      string       `json:"stderr,omitempty"` // exec kind: tail of the command's stderr
	Compression string       `json:"compression,omitempty"`
	Entries     int64        `json:"entries,omitempty"` // files kind: archive entries
	Files       []StoredFile `json:"files,omitempty"`   // data first, then manifest
	Want        []string     `json:"want_copies,omitempty"`
	Copies      []Copy       `json:"copies,omitempty"`
	PrunedAt    time.Time    `json:"pruned_at,omitzero"`
}

// Good reports whether the record is a complete stored backup.
func (r Record) Good() bool { return r.Outcome == OutcomeOK }

// Safe reports whether the backup is good and every wanted copy verified.
func (r Record) Safe() bool {
	if !r.Good() {
		return false
	}
	for _, want := range r.Want {
		c, ok := r.copyOn(want)
		if !ok || !c.Verified {
			return false
		}
	}
	return true
}

func (r Record) copyOn(replica string) (Copy, bool) {
	for _, c := range r.Copies {
		if c.Replica == replica {
			return c, true
		}
	}
	return Copy{}, false
}

func (r *Record) setCopy(c Copy) {
	for i := range r.Copies {
		if r.Copies[i].Replica == c.Replica {
			r.Copies[i] = c
			return
		}
	}
	r.Copies = append(r.Copies, c)
}

// DataFile returns the name of the data file inside the backup directory.
func (r Record) DataFile() string {
	if len(r.Files) > 0 {
		return r.Files[0].Name
	}
	return ""
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ErrInvalidName is returned for job names and IDs that are not safe path elements.
var ErrInvalidName = errors.New("invalid name")

func checkName(what, s string) error {
	if !validName.MatchString(s) {
		return fmt.Errorf("%s %q: %w (want [A-Za-z0-9][A-Za-z0-9._-]*)", what, s, ErrInvalidName)
	}
	return nil
}
