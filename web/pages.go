package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/version"
)

type pageTemplate = *template.Template

const loginCSS = `body{margin:0;font:15px/1.5 system-ui,sans-serif;background:#1d2430;color:#1d2430}
.login{max-width:340px;margin:12vh auto;background:#fff;padding:1.5em 2em;border-radius:8px}
label{display:block;margin:.8em 0 .3em}input{width:100%;padding:.45em;font:inherit}
button{margin-top:1em;padding:.45em 1.2em;font:inherit}.bad{color:#b3261e}.muted{color:#667085;font-size:.9em}`

var loginCSSHash = func() string {
	sum := sha256.Sum256([]byte(loginCSS))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}()

// parsePages builds one template set per page: the layout plus the page.
func parsePages() (map[string]pageTemplate, error) {
	funcs := template.FuncMap{
		"join":  strings.Join,
		"lower": strings.ToLower,
		// plural: {{plural .Groups "group"}} is "1 group", "2 groups".
		"plural": func(n int, noun string) string {
			if n == 1 {
				return "1 " + noun
			}
			return strconv.Itoa(n) + " " + noun + "s"
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/overview_body.html")
	if err != nil {
		return nil, fmt.Errorf("web templates: %w", err)
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]pageTemplate{}
	for _, f := range files {
		name := path.Base(f)
		if name == "layout.html" || name == "overview_body.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, fmt.Errorf("web template %s: %w", name, err)
		}
		out[strings.TrimSuffix(name, ".html")] = t
	}
	return out, nil
}

// pageData is what every page template receives.
type pageData struct {
	Title    string
	Nav      string
	Role     Role
	CSRF     string
	LoggedIn bool
	Flash    string
	Data     any
	// Refresh, when set, reloads the page every that many seconds (the
	// backups page while a run is in progress).
	Refresh int
}

// Version is the build the console runs, shown in every page's footer
// (the same line as harules version).
func (pageData) Version() string { return version.Get().String() }

func (s *Server) render(w http.ResponseWriter, code int, name string, p *principal, title string, data any) {
	pd := pageData{Title: title, Nav: name, Data: data}
	if p != nil {
		pd.Role, pd.LoggedIn = p.role, true
		if p.sess != nil {
			pd.CSRF = p.sess.csrf
		}
	}
	s.renderData(w, code, name, pd)
}

func (s *Server) renderData(w http.ResponseWriter, code int, name string, pd pageData) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", pd); err != nil {
		s.log.Error("render page", "page", name, "error", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, p *principal, code int, msg string) {
	s.render(w, code, "error", p, http.StatusText(code), msg)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.showLogin(w, http.StatusOK, "")
}

// showLogin renders the login form with a fresh login CSRF token, bound to
// a short-lived cookie (double submit: another site can neither read the
// cookie nor set it).
func (s *Server) showLogin(w http.ResponseWriter, code int, msg string) {
	tok := randomString()
	s.setCookie(w, loginCSRFCookie, tok, loginCookieLife)
	// The login page is served before authentication, so it carries its
	// small style inline (allowed by hash) rather than from /static/.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src '"+loginCSSHash+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	s.renderData(w, code, "login", pageData{Title: "Log in", Nav: "login", CSRF: tok, Flash: msg, Data: template.CSS(loginCSS)})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBodyBytes)
	c, err := r.Cookie(loginCSRFCookie)
	if err != nil || !equalSecret(r.PostFormValue(csrfField), c.Value) {
		s.showLogin(w, http.StatusForbidden, "The login form expired or came from elsewhere; try again.")
		return
	}
	role, ok := roleOf(s.tokens, strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		s.log.Warn("web console: failed login", "remote", r.RemoteAddr)
		select { // slow down guessing
		case <-time.After(s.opts.LoginFailDelay):
		case <-r.Context().Done():
		}
		s.showLogin(w, http.StatusUnauthorized, "Wrong token.")
		return
	}
	id, _ := s.sessions.create(role)
	s.setCookie(w, sessionCookie, id, sessionLifetime)
	s.clearCookie(w, loginCSRFCookie)
	s.log.Info("web console: login", "role", role, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *principal) {
	if p.sessID != "" {
		s.sessions.remove(p.sessID)
	}
	s.clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request, p *principal) {
	s.poll()
	st, _, _ := s.hub.current()
	if st == nil {
		s.errorPage(w, r, p, http.StatusServiceUnavailable, "the agent has not decided yet; reload in a second")
		return
	}
	pd := pageData{Title: "Overview", Nav: "overview", Role: p.role, LoggedIn: true, Data: s.overview(st, p.canOperate()),
		Flash: doneMessage(st, r.URL.Query())}
	if p.sess != nil {
		pd.CSRF = p.sess.csrf
	}
	s.renderData(w, http.StatusOK, "overview", pd)
}

// events streams the rendered overview body each time the status changes
// (server-sent events); the page's script swaps it in.
func (s *Server) events(w http.ResponseWriter, r *http.Request, p *principal) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	var sent uint64
	for {
		st, version, changed := s.hub.current()
		if st != nil && version != sent {
			var buf bytes.Buffer
			if err := s.pages["overview"].ExecuteTemplate(&buf, "overview_body", s.overview(st, p.canOperate())); err != nil {
				s.log.Error("render live overview", "error", err)
				return
			}
			if err := writeEvent(w, "overview", version, buf.String()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			sent = version
		}
		if s.hub.isClosed() {
			return
		}
		// A stream outlives neither its session (logout, expiry) nor the
		// console.
		if p.sess != nil {
			if _, ok := s.sessions.get(p.sessID); !ok {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func writeEvent(w http.ResponseWriter, event string, id uint64, data string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\nid: %d\n", event, id)
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := fmt.Fprint(w, b.String())
	return err
}

type timelineView struct {
	Filter  recordFilter
	Nodes   []string
	Kinds   []string
	Groups  []string
	Records []recordRow
	Total   int
	// Chart and Windows: who held each group, from all the records (the
	// group filter applies; node and kind do not, the chart needs them).
	Chart   template.HTML
	Windows []windowRow
}

type recordRow struct {
	At, Node, Kind, Group, Text, Reason, Error string
}

func filterFromQuery(q url.Values) recordFilter {
	return recordFilter{Node: q.Get("node"), Kind: q.Get("kind"), Group: q.Get("group")}
}

func (s *Server) timelinePage(w http.ResponseWriter, r *http.Request, p *principal) {
	st := s.b.Status()
	if st == nil {
		s.errorPage(w, r, p, http.StatusServiceUnavailable, "the agent has not decided yet; reload in a second")
		return
	}
	f := filterFromQuery(r.URL.Query())
	v := timelineView{Filter: f, Kinds: recordKinds, Total: len(st.Recent)}
	for _, n := range st.Nodes {
		v.Nodes = append(v.Nodes, n.Name)
	}
	for _, g := range st.Groups {
		v.Groups = append(v.Groups, g.Name)
	}
	spans, windows := holderSpans(st, st.Recent)
	if f.Group != "" {
		spans = slices.DeleteFunc(spans, func(s holderSpan) bool { return s.Group != f.Group })
		windows = slices.DeleteFunc(windows, func(w failoverWindow) bool { return w.Group != f.Group })
	}
	v.Chart, v.Windows = holderChart(st, spans), windowRows(windows)
	for _, rec := range f.apply(st.Recent) {
		v.Records = append(v.Records, recordRow{At: rec.At.UTC().Format("2006-01-02 15:04:05.000"), Node: rec.Node, Kind: rec.Kind,
			Group: rec.Group, Text: rec.Text, Reason: rec.Reason, Error: rec.Error})
	}
	s.render(w, http.StatusOK, "timeline", p, "Timeline", v)
}

type policyView struct {
	Path        string
	Text        string
	RunningHash string
	DiskHash    string
	DiskError   string
	Files       []string
	Check       policyCheck
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, p *principal) {
	v, err := s.policyInfo(r.Context())
	if err != nil {
		s.errorPage(w, r, p, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.render(w, http.StatusOK, "policy", p, "Policy", v)
}

type confirmView struct {
	Op *operation
}

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request, p *principal) {
	q := r.URL.Query()
	if q.Get("op") == "backup" {
		s.backupConfirmPage(w, r, p, q.Get("job"))
		return
	}
	op, err := checkOperation(s.b.Status(), q.Get("op"), q.Get("group"), q.Get("node"), q.Get("on") == "true")
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	s.render(w, http.StatusOK, "confirm", p, op.Title, confirmView{Op: op})
}

func (s *Server) actionForm(w http.ResponseWriter, r *http.Request, p *principal) {
	if r.PostFormValue("op") == "backup" {
		s.backupAction(w, r, p)
		return
	}
	op, err := s.apply(r.Context(), r.PostFormValue("op"), r.PostFormValue("group"), r.PostFormValue("node"), r.PostFormValue("on") == "true")
	if err != nil {
		s.errorPage(w, r, p, requestCode(err), err.Error())
		return
	}
	q := url.Values{"done": {op.Op}, "group": {op.Group}, "node": {op.Node}, "on": {strconv.FormatBool(op.On)}}
	http.Redirect(w, r, "/?"+q.Encode(), http.StatusSeeOther)
}

// apply validates and sends an operator request to the backend.
func (s *Server) apply(ctx context.Context, opName, group, node string, on bool) (*operation, error) {
	op, err := checkOperation(s.b.Status(), opName, group, node, on)
	if err != nil {
		s.metrics.request(opName, err)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = s.b.Do(ctx, op.Op, op.Group, op.Node, op.On)
	s.metrics.request(op.Op, err)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, badRequest(http.StatusServiceUnavailable, "the agent did not answer in time: %v", err)
		}
		return nil, badRequest(http.StatusConflict, "the agent refused: %v", err)
	}
	s.log.Info("web console: operator request applied", "op", op.Op, "group", op.Group, "node", op.Node)
	s.poll()
	return op, nil
}

// doneMessage confirms an accepted action on the overview. It is rebuilt
// from the operation rather than taken from the URL, so a crafted link
// cannot put arbitrary text on the console.
func doneMessage(st *agent.Status, q url.Values) string {
	if q.Get("done") == "" {
		return ""
	}
	op, err := checkOperation(st, q.Get("done"), q.Get("group"), q.Get("node"), q.Get("on") == "true")
	if err != nil {
		return ""
	}
	return op.Title + ": accepted"
}

func requestCode(err error) int {
	var re *requestError
	if errors.As(err, &re) {
		return re.code
	}
	return http.StatusBadRequest
}
