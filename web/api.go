package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/harules/harules/engine"
)

const maxAPIBodyBytes = maxScenarioBytes + 4096

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request, _ *principal) {
	st := s.b.Status()
	if st == nil {
		writeError(w, http.StatusServiceUnavailable, "the agent has not decided yet; try again in a second")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// recordsResponse is GET /api/v1/records: newest first.
type recordsResponse struct {
	Total   int             `json:"total"`
	Records []engine.Record `json:"records"`
}

func (s *Server) apiRecords(w http.ResponseWriter, r *http.Request, _ *principal) {
	st := s.b.Status()
	if st == nil {
		writeError(w, http.StatusServiceUnavailable, "the agent has not decided yet; try again in a second")
		return
	}
	q := r.URL.Query()
	f := filterFromQuery(q)
	if f.Kind != "" && !contains(recordKinds, f.Kind) {
		writeError(w, http.StatusBadRequest, "unknown kind %q (kinds: %s)", f.Kind, strings.Join(recordKinds, ", "))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer, not %q", l)
			return
		}
		f.Limit = n
	}
	writeJSON(w, http.StatusOK, recordsResponse{Total: len(st.Recent), Records: f.apply(st.Recent)})
}

// policyResponse is GET /api/v1/policy.
type policyResponse struct {
	Path        string      `json:"path"`
	RunningHash string      `json:"running_hash"`
	DiskHash    string      `json:"disk_hash,omitempty"`
	DiskError   string      `json:"disk_error,omitempty"`
	Files       []string    `json:"files,omitempty"`
	Check       policyCheck `json:"check"`
	Text        string      `json:"text"`
}

func (s *Server) apiPolicy(w http.ResponseWriter, r *http.Request, _ *principal) {
	v, err := s.policyInfo(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, policyResponse{Path: v.Path, RunningHash: v.RunningHash, DiskHash: v.DiskHash, DiskError: v.DiskError, Files: v.Files, Check: v.Check, Text: v.Text})
}

func (s *Server) apiScenarios(w http.ResponseWriter, r *http.Request, _ *principal) {
	files := s.scenarioFiles()
	if files == nil {
		files = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dir": s.scenarioDir(), "files": files})
}

func (s *Server) apiSimulate(w http.ResponseWriter, r *http.Request, _ *principal) {
	var req simulateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.runSimulation(r.Context(), req)
	if err != nil {
		writeError(w, requestCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// operatorRequest is the body of the operator endpoints.
type operatorRequest struct {
	Group string `json:"group"`
	Node  string `json:"node"`
	On    *bool  `json:"on"`
}

// operatorResponse tells what was accepted.
type operatorResponse struct {
	Result  string   `json:"result"`
	Title   string   `json:"title"`
	Effects []string `json:"effects"`
}

func (s *Server) apiOperator(op string) principalHandler {
	return func(w http.ResponseWriter, r *http.Request, _ *principal) {
		var req operatorRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if op == "maintenance" && req.On == nil {
			writeError(w, http.StatusBadRequest, `maintenance needs {"on": true} or {"on": false}`)
			return
		}
		on := req.On != nil && *req.On
		applied, err := s.apply(r.Context(), op, req.Group, req.Node, on)
		if err != nil {
			writeError(w, requestCode(err), "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, operatorResponse{Result: "accepted", Title: applied.Title, Effects: applied.Effects})
	}
}

func (s *Server) apiNotFound(w http.ResponseWriter, r *http.Request, _ *principal) {
	known := map[string]string{
		"/api/v1/status": "GET", "/api/v1/records": "GET", "/api/v1/policy": "GET", "/api/v1/scenarios": "GET", "/api/v1/backups": "GET", "/api/v1/backups/run": "POST",
		"/api/v1/simulate": "POST", "/api/v1/move": "POST", "/api/v1/standby": "POST", "/api/v1/online": "POST", "/api/v1/maintenance": "POST", "/api/v1/cleanup": "POST",
	}
	if m, ok := known[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		writeError(w, http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, m)
		return
	}
	writeError(w, http.StatusNotFound, "no such endpoint %s (see docs/api.md)", r.URL.Path)
}

// decodeBody reads one JSON object, rejecting unknown fields so a typo
// ("grop") is an error rather than a silently empty field.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "send the body as application/json, not %s", ct)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
		default:
			writeError(w, http.StatusBadRequest, "malformed JSON body: %v", err)
		}
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed JSON body: more than one value")
		return false
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
