package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/harules/harules/builtins/backup"
)

// StoreFunc opens (or shares) the store that keeps job's copies on this
// node and returns a release function. It fails for jobs this node does not
// receive copies of.
type StoreFunc func(ctx context.Context, job string) (*backup.Store, func(), error)

// ServerConfig configures a receiver.
type ServerConfig struct {
	Credentials *Credentials
	Stores      StoreFunc
	Logger      *slog.Logger
	// IdleTimeout gives up a connection on which nothing moved for this
	// long; 0 means 2 minutes.
	IdleTimeout time.Duration
	// MaxConns bounds concurrent connections; 0 means 4.
	MaxConns int
}

// handshakeTimeout bounds the TLS handshake, so idle connections from
// strangers do not hold a slot.
const handshakeTimeout = 10 * time.Second

// Server receives peer copies.
type Server struct {
	cfg    ServerConfig
	ln     net.Listener
	tls    *tls.Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}
}

// Listen starts a receiver on addr (host:port).
func Listen(addr string, cfg ServerConfig) (*Server, error) {
	if cfg.Credentials == nil || cfg.Stores == nil {
		return nil, errors.New("peer copy receiver: Credentials and Stores are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer copy receiver: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, tls: cfg.Credentials.ServerConfig(), ctx: ctx, cancel: cancel, slots: make(chan struct{}, cfg.MaxConns)}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the receiver listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the receiver; transfers in flight are cut and their partial
// copies removed.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.cfg.Logger.Error("peer copy receiver stopped accepting", "err", err)
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.cfg.Logger.Warn("peer copy: too many connections; refusing one", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.serve(conn)
		}()
	}
}

func (s *Server) serve(raw net.Conn) {
	log := s.cfg.Logger.With("remote", raw.RemoteAddr().String())
	stop := context.AfterFunc(s.ctx, func() { raw.Close() })
	defer stop()
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(raw, s.tls)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		log.Warn("peer copy: connection refused: TLS handshake failed (wrong cluster secret, replay or not a harules peer)", "err", err)
		return
	}
	raw.SetDeadline(time.Time{})
	conn := idleConn{Conn: tc, idle: s.cfg.IdleTimeout}
	r := bufio.NewReaderSize(conn, 256<<10)
	var req Request
	if err := readLine(r, &req); err != nil {
		log.Warn("peer copy: bad request", "err", err)
		writeLine(conn, Response{Error: "bad request: " + err.Error()})
		return
	}
	log = log.With("op", req.Op, "from", req.From, "job", req.Job, "id", req.ID)
	resp := s.handle(log, conn, r, req)
	if err := writeLine(conn, resp); err != nil {
		log.Warn("peer copy: cannot answer", "err", err)
		return
	}
	// A clean close tells the sender the answer is complete.
	tc.CloseWrite()
}

func (s *Server) handle(log *slog.Logger, conn io.Writer, r *bufio.Reader, req Request) Response {
	if req.Version != ProtocolVersion {
		return Response{Error: fmt.Sprintf("protocol version %d, this node speaks %d", req.Version, ProtocolVersion)}
	}
	st, release, err := s.cfg.Stores(s.ctx, req.Job)
	if err != nil {
		log.Warn("peer copy: refused", "err", err)
		return failure(err)
	}
	defer release()
	switch req.Op {
	case OpVerify:
		err = st.Verify(s.ctx, req.Job, req.ID)
		if err != nil {
			log.Error("peer copy: verify failed", "err", err)
		}
	case OpDelete:
		if err = st.Delete(req.Job, req.ID); errors.Is(err, backup.ErrNotFound) {
			err = nil
		}
		if err == nil {
			log.Info("peer copy: deleted")
		}
	case OpPut:
		err = s.put(log, conn, r, st, req)
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		return failure(err)
	}
	return Response{OK: true}
}

func (s *Server) put(log *slog.Logger, conn io.Writer, r *bufio.Reader, st *backup.Store, req Request) error {
	rec := req.Record
	if rec == nil || rec.Job != req.Job || rec.ID != req.ID || !rec.Good() || len(rec.Files) == 0 {
		return errors.New("put: the request carries no complete record of this backup")
	}
	for _, f := range rec.Files {
		if f.Size < 0 || len(f.SHA256) != 64 {
			return fmt.Errorf("put: file %q has no valid size and SHA-256", f.Name)
		}
	}
	if err := st.Verify(s.ctx, req.Job, req.ID); err == nil {
		if have, _ := st.Get(req.Job, req.ID); have.SHA256 == rec.SHA256 {
			log.Info("peer copy: already held and intact")
			return nil
		}
	}
	if err := writeLine(conn, Response{Ready: true}); err != nil {
		return err
	}
	next := 0
	open := func(name string) (io.ReadCloser, error) {
		// Import reads the files in the record's order, as the sender sends them.
		if next >= len(rec.Files) || rec.Files[next].Name != name {
			return nil, fmt.Errorf("put: file %q requested out of order", name)
		}
		next++
		return io.NopCloser(&exactReader{r: r, n: rec.Files[next-1].Size}), nil
	}
	start := time.Now()
	if err := st.Import(s.ctx, *rec, open); err != nil {
		log.Error("peer copy: not stored", "err", err)
		return err
	}
	log.Info("peer copy: stored and verified", "bytes", rec.Bytes, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func failure(err error) Response {
	return Response{Error: err.Error(), Corrupt: errors.Is(err, backup.ErrCorrupt), NotFound: errors.Is(err, backup.ErrNotFound)}
}
