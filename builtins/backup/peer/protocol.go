package peer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/harules/harules/builtins/backup"
)

// ProtocolVersion is sent in every request; a receiver refuses others.
const ProtocolVersion = 1

// Operations of a request.
const (
	OpPut    = "put"
	OpVerify = "verify"
	OpDelete = "delete"
)

// maxLine bounds a request or response line (a record with its files).
const maxLine = 1 << 20

// Request is the first line a sender writes after the handshake.
type Request struct {
	Version int    `json:"v"`
	Op      string `json:"op"`
	From    string `json:"from,omitempty"` // sending node, for logs
	Job     string `json:"job"`
	ID      string `json:"id"`
	// Record is the sender's record of the backup (put): the receiver
	// checks every file against its sizes and SHA-256 sums.
	Record *backup.Record `json:"record,omitempty"`
}

// Response is the receiver's answer. To a put it first answers Ready (send
// the files) unless it already holds an intact copy, then the outcome.
type Response struct {
	Ready    bool   `json:"ready,omitempty"`
	OK       bool   `json:"ok"`
	Corrupt  bool   `json:"corrupt,omitempty"`
	NotFound bool   `json:"not_found,omitempty"`
	Error    string `json:"error,omitempty"`
}

// RemoteError is a failure the receiver reported. errors.Is matches
// backup.ErrCorrupt and backup.ErrNotFound as the receiver classified it.
type RemoteError struct {
	Node     string
	Msg      string
	Corrupt  bool
	NotFound bool
}

func (e *RemoteError) Error() string { return "on " + e.Node + ": " + e.Msg }

// Is lets errors.Is see the receiver's classification.
func (e *RemoteError) Is(target error) bool {
	return (e.Corrupt && target == backup.ErrCorrupt) || (e.NotFound && target == backup.ErrNotFound)
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one JSON line of at most maxLine bytes into v.
func readLine(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return err
		}
		line = append(line, chunk...)
		if len(line) > maxLine {
			return fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if !isPrefix {
			break
		}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("bad message: %w", err)
	}
	return nil
}

// exactReader yields exactly n bytes of r, and io.ErrUnexpectedEOF if r ends
// first: a stream cut short must not look like a short file.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if errors.Is(err, io.EOF) && e.n > 0 {
		err = io.ErrUnexpectedEOF
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// idleConn pushes the read and write deadlines forward on every call, so
// a stalled peer is given up after idle without bounding a long transfer.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}
