package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/harules/harules/builtins/backup"
)

// Replica keeps copies on a peer node's receiver. It implements
// backup.Replica and backup.Locator.
type Replica struct {
	node     string
	addr     string
	from     string
	location string
	creds    *Credentials
	// DialTimeout bounds connecting and the handshake; 0 means 10 s.
	DialTimeout time.Duration
	// IdleTimeout gives up when nothing moved for this long while sending;
	// 0 means 2 minutes.
	IdleTimeout time.Duration
	// AnswerTimeout bounds the wait for the peer's answer after the data
	// was sent (it re-reads the copy); 0 means 1 hour.
	AnswerTimeout time.Duration
}

var (
	_ backup.Replica = (*Replica)(nil)
	_ backup.Locator = (*Replica)(nil)
)

// ReplicaName is the name of the copy on node in Record.Want and Copies.
func ReplicaName(node string) string { return "peer:" + node }

// NewReplica returns the replica on node, whose receiver listens on addr
// (host:port). from names the sending node in the peer's logs; location
// is recorded in Copy.Location (e.g. "node2:/var/backups").
func NewReplica(node, addr, from, location string, creds *Credentials) *Replica {
	return &Replica{node: node, addr: addr, from: from, location: location, creds: creds}
}

// Name implements backup.Replica.
func (p *Replica) Name() string { return ReplicaName(p.node) }

// Location implements backup.Locator.
func (p *Replica) Location() string { return p.location }

// Put implements backup.Replica: it streams the files to the peer, which
// stores them only after checking them against rec.
func (p *Replica) Put(ctx context.Context, rec backup.Record, open func(string) (io.ReadCloser, error)) error {
	err := p.exchange(ctx, Request{Op: OpPut, Job: rec.Job, ID: rec.ID, Record: &rec}, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		for _, f := range rec.Files {
			if err := sendFile(bw, f, open); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("replica %s: put %s/%s: %w", p.Name(), rec.Job, rec.ID, err)
	}
	return nil
}

func sendFile(w io.Writer, f backup.StoredFile, open func(string) (io.ReadCloser, error)) error {
	rc, err := open(f.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.CopyN(w, rc, f.Size); err != nil {
		return fmt.Errorf("send %s: %w", f.Name, err)
	}
	return nil
}

// Verify implements backup.Replica: the peer re-reads its copy.
func (p *Replica) Verify(ctx context.Context, job, id string) error {
	if err := p.exchange(ctx, Request{Op: OpVerify, Job: job, ID: id}, nil); err != nil {
		return fmt.Errorf("replica %s: verify %s/%s: %w", p.Name(), job, id, err)
	}
	return nil
}

// Delete implements backup.Replica.
func (p *Replica) Delete(ctx context.Context, job, id string) error {
	if err := p.exchange(ctx, Request{Op: OpDelete, Job: job, ID: id}, nil); err != nil {
		return fmt.Errorf("replica %s: delete %s/%s: %w", p.Name(), job, id, err)
	}
	return nil
}

// exchange runs one request on a fresh connection; send, if set, writes
// the body once the peer said it is ready for it.
func (p *Replica) exchange(ctx context.Context, req Request, send func(io.Writer) error) error {
	dialTimeout, idle, answer := orDefault(p.DialTimeout, 10*time.Second), orDefault(p.IdleTimeout, 2*time.Minute), orDefault(p.AnswerTimeout, time.Hour)
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: p.creds.ClientConfig()}
	raw, err := d.DialContext(dctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("connect to %s at %s: %w", p.node, p.addr, err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := idleConn{Conn: raw, idle: idle}
	req.Version, req.From = ProtocolVersion, p.from
	if err := writeLine(conn, req); err != nil {
		return p.ctxErr(ctx, err)
	}
	r := bufio.NewReader(raw)
	readAnswer := func() (Response, error) {
		var resp Response
		raw.SetReadDeadline(time.Now().Add(answer))
		if err := readLine(r, &resp); err != nil {
			return resp, p.ctxErr(ctx, fmt.Errorf("no answer from %s: %w", p.node, err))
		}
		return resp, nil
	}
	resp, err := readAnswer()
	if err != nil {
		return err
	}
	if resp.Ready {
		if send == nil {
			return fmt.Errorf("%s asked for data this request has none of", p.node)
		}
		if err := send(conn); err != nil {
			// The peer may have refused mid-stream; its reason beats "broken pipe".
			raw.SetReadDeadline(time.Now().Add(time.Second))
			var why Response
			if rerr := readLine(r, &why); rerr == nil && why.Error != "" {
				err = fmt.Errorf("%w (%s said: %s)", err, p.node, why.Error)
			}
			return p.ctxErr(ctx, err)
		}
		if resp, err = readAnswer(); err != nil {
			return err
		}
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "refused without a reason"
		}
		return &RemoteError{Node: p.node, Msg: resp.Error, Corrupt: resp.Corrupt, NotFound: resp.NotFound}
	}
	return nil
}

// ctxErr prefers the context's error: a cancelled run closes the
// connection, and "use of closed connection" would hide why.
func (p *Replica) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return errors.Join(cerr, err)
	}
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
