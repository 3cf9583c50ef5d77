package backup

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// Entry types in a manifest.
const (
	typeFile    = "file"
	typeDir     = "dir"
	typeSymlink = "symlink"
	typeFifo    = "fifo"
	typeChar    = "char"
	typeBlock   = "block"
	typeHard    = "hardlink" // another name of an earlier regular file (Link)
)

// ManifestEntry describes one archive entry. File names are arbitrary
// bytes on Linux; names that are not valid UTF-8 go into the *_raw fields
// (base64 in JSON) so that no byte is lost.
type ManifestEntry struct {
	Path    string `json:"path,omitempty"`
	PathRaw []byte `json:"path_raw,omitempty"`
	Type    string `json:"type"`
	Size    int64  `json:"size,omitempty"`
	Mode    uint32 `json:"mode"` // permission and setuid/setgid/sticky bits
	MTimeNS int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256,omitempty"` // regular files: SHA-256 of the content
	Link    string `json:"link,omitempty"`
	LinkRaw []byte `json:"link_raw,omitempty"`
	Sparse  bool   `json:"sparse,omitempty"`
	Changed bool   `json:"changed,omitempty"` // the file changed size while it was read
}

func splitRaw(s string) (string, []byte) {
	if utf8.ValidString(s) {
		return s, nil
	}
	return "", []byte(s)
}

func (e *ManifestEntry) setPath(p string) { e.Path, e.PathRaw = splitRaw(p) }
func (e *ManifestEntry) setLink(l string) { e.Link, e.LinkRaw = splitRaw(l) }

// Name returns the entry's path exactly as archived.
func (e ManifestEntry) Name() string {
	if e.PathRaw != nil {
		return string(e.PathRaw)
	}
	return e.Path
}

// Target returns a symlink's target exactly as archived.
func (e ManifestEntry) Target() string {
	if e.LinkRaw != nil {
		return string(e.LinkRaw)
	}
	return e.Link
}

type manifestWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func newManifestWriter(w io.Writer) *manifestWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &manifestWriter{bw: bw, enc: enc}
}

func (m *manifestWriter) add(e ManifestEntry) error {
	if err := m.enc.Encode(e); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

func (m *manifestWriter) flush() error { return m.bw.Flush() }

// manifestReader reads entries one by one, in archive order.
type manifestReader struct {
	dec  *json.Decoder
	line int
}

func newManifestReader(r io.Reader) *manifestReader {
	return &manifestReader{dec: json.NewDecoder(bufio.NewReaderSize(r, 64<<10))}
}

// next returns the next entry, or io.EOF after the last.
func (m *manifestReader) next() (ManifestEntry, error) {
	var e ManifestEntry
	if !m.dec.More() {
		return e, io.EOF
	}
	m.line++
	if err := m.dec.Decode(&e); err != nil {
		return e, fmt.Errorf("manifest entry %d: %w", m.line, err)
	}
	return e, nil
}
