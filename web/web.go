// Package web is harules' web console and REST API: an overview of the
// cluster as the local agent sees it (nodes, heartbeat paths, groups,
// alerts) kept live with server-sent events, the timeline of recent
// records with a chart of who held each group, operator actions (move a
// group, standby/online a node, maintenance mode, run a backup now) behind a
// confirmation step, the backup jobs with their stores' history, the
// running policy with its check result and a simulator page, plus
// Prometheus metrics at /metrics.
//
// Everything is behind authentication: tokens from a file only its owner can
// read (see LoadTokens), a session cookie for browsers (HttpOnly,
// SameSite=Strict, Secure under TLS, a CSRF token on every POST) and
// "Authorization: Bearer" for scripts. The agent starts it with Starter when
// `harules run --web-listen` is given; tests build a Server over any Backend.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/harules/harules/agent"
)

// Backend is what the console needs from a node agent; *agent.Agent
// implements it.
type Backend interface {
	// Status is the agent's latest status; nil before its first decision.
	Status() *agent.Status
	// Do applies an operator request: move (group, node), standby and
	// online (node), maintenance (on).
	Do(ctx context.Context, op, group, node string, on bool) error
	// PolicyPath is the running policy's main file; scenarios for the
	// simulate page are read from the scenarios/ folder beside it.
	PolicyPath() string
	// RunBackup starts a backup job of the running policy now (the agent
	// refuses a job bound to a group it does not hold).
	RunBackup(ctx context.Context, job string) error
}

var _ Backend = (*agent.Agent)(nil)

// Options configure a Server.
type Options struct {
	// TokenFile holds the access tokens (see LoadTokens). Required.
	TokenFile string
	// TLS marks the console as served over TLS: cookies get Secure.
	TLS bool
	// MetricsPublic serves /metrics without authentication (for a
	// Prometheus that cannot send a bearer token).
	MetricsPublic bool
	// RestoreRoot is the only directory console and API restores may write
	// under (a new directory or file inside it); "" means
	// DefaultRestoreRoot. The operator role steers the cluster but must not
	// become root's pen: a restore elsewhere is `harules backup restore`,
	// run as root on the node.
	RestoreRoot string
	// PollInterval is how often the status is polled for live updates
	// when the backend cannot say when it changes; 0 means 200ms.
	PollInterval time.Duration
	// LoginFailDelay slows down password guessing; 0 means 500ms.
	LoginFailDelay time.Duration
	Logger         *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultRestoreRoot is where console and API restores go unless
// Options.RestoreRoot says otherwise.
const DefaultRestoreRoot = "/var/lib/harules/restore"

//go:embed static templates
var assets embed.FS

// Server is the console's http.Handler.
type Server struct {
	b        Backend
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	tokens   []token
	sessions *sessions
	mux      *http.ServeMux
	pages    map[string]pageTemplate
	static   fs.FS
	hub      *hub
	metrics  *metrics
	// simSlot lets one simulation run at a time: a long scenario is CPU
	// work the agent's own loop must not starve behind.
	simSlot chan struct{}
}

var _ http.Handler = (*Server)(nil)

// New builds a console over b. It refuses to start without a usable token
// file.
func New(b Backend, opts Options) (*Server, error) {
	if opts.TokenFile == "" {
		return nil, errors.New("web console: a token file is required (ROLE:TOKEN lines, chmod 600)")
	}
	toks, err := LoadTokens(opts.TokenFile)
	if err != nil {
		return nil, err
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.RestoreRoot == "" {
		opts.RestoreRoot = DefaultRestoreRoot
	}
	if !filepath.IsAbs(opts.RestoreRoot) {
		return nil, fmt.Errorf("web console: restore root %q is not an absolute path", opts.RestoreRoot)
	}
	opts.RestoreRoot = filepath.Clean(opts.RestoreRoot)
	if opts.LoginFailDelay <= 0 {
		opts.LoginFailDelay = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s := &Server{b: b, opts: opts, log: opts.Logger.With("component", "web"), now: opts.Now, tokens: toks,
		sessions: newSessions(opts.Now, sessionLifetime), pages: pages, static: static,
		hub: newHub(), simSlot: make(chan struct{}, 1)}
	s.metrics = newMetrics(s)
	if hb, ok := b.(heartbeatSource); ok {
		s.metrics.registry.MustRegister(heartbeatCollector{hb})
	}
	s.routes()
	s.poll() // so the first page and scrape see the status
	return s, nil
}

// Run polls the backend's status until ctx ends, pushing changes to the
// open pages and counting them for the metrics.
func (s *Server) Run(ctx context.Context) {
	if src, ok := s.b.(statusNotifier); ok {
		s.follow(ctx, src)
		return
	}
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.hub.close()
			return
		case <-t.C:
			s.poll()
		}
	}
}

// statusNotifier is a backend that says when its status changes
// (*agent.Agent does); the console then needs no polling.
type statusNotifier interface {
	StatusChanged() <-chan struct{}
}

var _ statusNotifier = (*agent.Agent)(nil)

// follow updates the pages whenever the backend publishes a status: at
// once, and without waking every poll interval while nothing happens.
func (s *Server) follow(ctx context.Context, src statusNotifier) {
	for {
		// Take the channel before reading the status, so a status
		// published in between is not missed.
		changed := src.StatusChanged()
		s.poll()
		select {
		case <-ctx.Done():
			s.hub.close()
			return
		case <-changed:
		}
	}
}

func (s *Server) poll() {
	st := s.b.Status()
	if st == nil {
		return
	}
	if changed := s.hub.update(st); changed {
		s.metrics.observe(st)
	}
}

// ServeHTTP adds the security headers every response carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if s.opts.TLS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.page(false, s.logout))
	m.HandleFunc("GET /{$}", s.page(false, s.overviewPage))
	m.HandleFunc("GET /events", s.page(false, s.events))
	m.HandleFunc("GET /timeline", s.page(false, s.timelinePage))
	m.HandleFunc("GET /policy", s.page(false, s.policyPage))
	m.HandleFunc("GET /simulate", s.page(false, s.simulatePage))
	m.HandleFunc("POST /simulate", s.page(false, s.simulateForm))
	m.HandleFunc("GET /backups", s.page(false, s.backupsPage))
	m.HandleFunc("POST /backups/verify", s.page(true, s.backupVerifyForm))
	m.HandleFunc("GET /backups/restore", s.page(true, s.backupRestorePage))
	m.HandleFunc("POST /backups/restore", s.page(true, s.backupRestoreForm))
	m.HandleFunc("GET /confirm", s.page(true, s.confirmPage))
	m.HandleFunc("POST /action", s.page(true, s.actionForm))
	files := http.StripPrefix("/static/", http.FileServerFS(s.static))
	m.HandleFunc("GET /static/", s.page(false, func(w http.ResponseWriter, r *http.Request, _ *principal) { files.ServeHTTP(w, r) }))
	m.HandleFunc("GET /metrics", s.metricsHandler)

	m.HandleFunc("GET /api/v1/status", s.api(false, s.apiStatus))
	m.HandleFunc("GET /api/v1/records", s.api(false, s.apiRecords))
	m.HandleFunc("GET /api/v1/policy", s.api(false, s.apiPolicy))
	m.HandleFunc("GET /api/v1/scenarios", s.api(false, s.apiScenarios))
	m.HandleFunc("POST /api/v1/simulate", s.api(false, s.apiSimulate))
	m.HandleFunc("GET /api/v1/backups", s.api(false, s.apiBackups))
	m.HandleFunc("POST /api/v1/backups/run", s.api(true, s.apiBackupRun))
	m.HandleFunc("POST /api/v1/backups/verify", s.api(true, s.apiBackupVerify))
	m.HandleFunc("POST /api/v1/backups/restore", s.api(true, s.apiBackupRestore))
	m.HandleFunc("GET /api/v1/backups/verifications", s.api(false, s.apiBackupVerifications))
	for _, op := range []string{"move", "standby", "online", "maintenance", "cleanup"} {
		m.HandleFunc("POST /api/v1/"+op, s.api(true, s.apiOperator(op)))
	}
	m.HandleFunc("/api/", s.api(false, s.apiNotFound))
	m.HandleFunc("/", s.page(false, func(w http.ResponseWriter, r *http.Request, p *principal) {
		s.errorPage(w, r, p, http.StatusNotFound, "no such page: "+r.URL.Path)
	}))
	s.mux = m
}

type principalHandler func(w http.ResponseWriter, r *http.Request, p *principal)

// page guards a browser route: no session, back to the login page; a POST
// without the session's CSRF token or an operator route for a reader is
// refused.
func (s *Server) page(operator bool, h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, nil, http.StatusUnauthorized, "not logged in")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBodyBytes)
			if !csrfOK(r, p) {
				s.errorPage(w, r, p, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
				return
			}
		}
		if operator && !p.canOperate() {
			s.errorPage(w, r, p, http.StatusForbidden, "this needs the operator role; your token is read-only")
			return
		}
		h(w, r, p)
	}
}

// api guards a REST route; failures are JSON.
func (s *Server) api(operator bool, h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="harules"`)
			writeError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer TOKEN")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !csrfOK(r, p) {
			writeError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token header for a session request")
			return
		}
		if operator && !p.canOperate() {
			writeError(w, http.StatusForbidden, "this needs the operator role; the token is read-only")
			return
		}
		h(w, r, p)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is the body of every failed API request.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// hub remembers the latest status and wakes the live pages when it changes:
// each change closes the channel the waiting pages hold.
type hub struct {
	mu      sync.Mutex
	st      *agent.Status
	key     []byte
	version uint64
	changed chan struct{}
	closed  bool
}

func newHub() *hub { return &hub{changed: make(chan struct{})} }

// update stores st if it differs from the last one in anything but its
// timestamp, and reports whether it did.
func (h *hub) update(st *agent.Status) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st == h.st || h.closed {
		return false
	}
	cp := *st
	cp.Now = time.Time{}
	key, err := json.Marshal(&cp)
	if err == nil && string(key) == string(h.key) {
		h.st = st
		return false
	}
	h.st, h.key = st, key
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
	return true
}

// current returns the latest status, its version and a channel closed at
// the next change.
func (h *hub) current() (*agent.Status, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st, h.version, h.changed
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.changed)
	}
}

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}
