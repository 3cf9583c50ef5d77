package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Role is what an authenticated user may do.
type Role string

// Roles. A reader sees everything and may run simulations (they change
// nothing); an operator may also move groups and put nodes in standby.
const (
	RoleRead     Role = "read"
	RoleOperator Role = "operator"
)

// minTokenLen keeps guessable tokens out of the token file.
const minTokenLen = 16

// token is one line of the token file; only its hash is kept.
type token struct {
	sum  [sha256.Size]byte
	role Role
}

// LoadTokens reads a token file: one "ROLE:TOKEN" per line, ROLE being
// "read" or "operator"; blank lines and lines starting with # are ignored.
// The file must not be readable by group or others (chmod 600): anyone who
// reads it can run the cluster.
func LoadTokens(path string) ([]token, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("web token file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("web token file %s has mode %04o: it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("web token file: %w", err)
	}
	toks, err := parseTokens(b)
	if err != nil {
		return nil, fmt.Errorf("web token file %s: %w", path, err)
	}
	return toks, nil
}

func parseTokens(b []byte) ([]token, error) {
	var toks []token
	seen := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		role, secret, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want ROLE:TOKEN with ROLE read or operator", n)
		}
		r := Role(strings.TrimSpace(role))
		if r != RoleRead && r != RoleOperator {
			return nil, fmt.Errorf("line %d: unknown role %q: want read or operator", n, role)
		}
		secret = strings.TrimSpace(secret)
		if len(secret) < minTokenLen {
			return nil, fmt.Errorf("line %d: token shorter than %d characters (make one with: openssl rand -hex 24)", n, minTokenLen)
		}
		sum := sha256.Sum256([]byte(secret))
		if seen[sum] {
			return nil, fmt.Errorf("line %d: the same token appears twice", n)
		}
		seen[sum] = true
		toks = append(toks, token{sum: sum, role: r})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("no tokens: add a line like operator:$(openssl rand -hex 24)")
	}
	return toks, nil
}

// roleOf returns the role of a presented token; every entry is compared so
// the time taken does not tell which one matched.
func roleOf(toks []token, presented string) (Role, bool) {
	sum := sha256.Sum256([]byte(presented))
	var role Role
	for _, t := range toks {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			role = t.role
		}
	}
	return role, role != ""
}

// session is a logged-in browser.
type session struct {
	role    Role
	csrf    string
	expires time.Time
}

// sessions holds the browser sessions in memory: a restart logs everyone
// out, which is acceptable for an operator console.
type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	ttl time.Duration
	max int
	m   map[string]*session
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, max: 1000, m: map[string]*session{}}
}

func (s *sessions) create(role Role) (id string, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	if len(s.m) >= s.max { // drop the session closest to expiry
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	id = randomString()
	sess = &session{role: role, csrf: randomString(), expires: now.Add(s.ttl)}
	s.m[id] = sess
	return id, sess
}

func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if s.now().After(sess.expires) {
		delete(s.m, id)
		return nil, false
	}
	return sess, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b)
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Cookie names.
const (
	sessionCookie    = "harules_session"
	loginCSRFCookie  = "harules_login"
	csrfHeader       = "X-CSRF-Token"
	csrfField        = "csrf"
	sessionLifetime  = 12 * time.Hour
	loginCookieLife  = 10 * time.Minute
	maxFormBodyBytes = 256 << 10
)

// principal is who made a request and how.
type principal struct {
	role Role
	// sess is nil for bearer-token requests: they need no CSRF token, as a
	// browser never attaches an Authorization header on its own.
	sess   *session
	sessID string
}

func (p *principal) canOperate() bool { return p.role == RoleOperator }

// authenticate finds the bearer token or the session cookie of a request.
func (s *Server) authenticate(r *http.Request) (*principal, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, false
		}
		role, ok := roleOf(s.tokens, strings.TrimSpace(tok))
		if !ok {
			return nil, false
		}
		return &principal{role: role}, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	sess, ok := s.sessions.get(c.Value)
	if !ok {
		return nil, false
	}
	return &principal{role: sess.role, sess: sess, sessID: c.Value}, true
}

// csrfOK checks the CSRF token of a state-changing request made with a
// session cookie: the X-CSRF-Token header (scripts) or the csrf form field.
func csrfOK(r *http.Request, p *principal) bool {
	if p.sess == nil {
		return true
	}
	got := r.Header.Get(csrfHeader)
	if got == "" && isForm(r) {
		got = r.PostFormValue(csrfField)
	}
	return equalSecret(got, p.sess.csrf)
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.TLS})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.TLS})
}
