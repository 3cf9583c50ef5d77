package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

// Limits of a simulation requested through the console.
const (
	maxScenarioBytes = 128 << 10
	simulateTimeout  = 30 * time.Second
)

func (s *Server) policyInfo(ctx context.Context) (policyView, error) {
	path := s.b.PolicyPath()
	v := policyView{Path: path}
	if st := s.b.Status(); st != nil {
		v.RunningHash = st.PolicyHash
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return v, fmt.Errorf("read the policy file: %w", err)
	}
	v.Text = string(b)
	// Loading it again tells whether the file on disk is what runs.
	p, err := rules.Load(ctx, path, rules.Options{})
	v.Check = checkResult(p, err)
	if err != nil {
		v.DiskError = err.Error()
	} else {
		v.DiskHash, v.Files = p.Hash, p.Files
	}
	return v, nil
}

// policyCheck is the result of `harules check` on the policy file.
type policyCheck struct {
	OK bool `json:"ok"`
	// Summary of a valid policy, as check prints it.
	Summary *checkSummary `json:"summary,omitempty"`
	// Errors of an invalid one, in file order.
	Errors []checkError `json:"errors,omitempty"`
}

type checkSummary struct {
	Cluster string `json:"cluster"`
	Nodes   int    `json:"nodes"`
	Paths   int    `json:"paths"`
	Probes  int    `json:"probes"`
	Groups  int    `json:"groups"`
	Rules   int    `json:"rules"`
	Backups int    `json:"backups"`
	Hash    string `json:"hash"`
	// Detection is how long a peer stays silent on every path before it is
	// declared dead.
	Detection string `json:"detection"`
}

// checkError is one problem at file:line:col (line and col 0 when the
// problem has no position).
type checkError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
	// Text is "file:line:col: message", as check prints it.
	Text string `json:"text"`
}

func checkResult(p *policy.Policy, err error) policyCheck {
	if err == nil {
		return policyCheck{OK: true, Summary: &checkSummary{Cluster: p.Cluster.Name, Nodes: len(p.Nodes), Paths: len(p.Paths),
			Probes: len(p.Probes), Groups: len(p.Groups), Rules: len(p.Rules), Backups: len(p.Backups), Hash: p.Hash,
			Detection: p.DetectionTime().Round(time.Millisecond).String()}}
	}
	var c policyCheck
	var es rules.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			c.Errors = append(c.Errors, checkError{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Msg, Text: e.Error()})
		}
	}
	if len(c.Errors) == 0 {
		c.Errors = []checkError{{Message: err.Error(), Text: err.Error()}}
	}
	return c
}

// scenarioDir is where the simulate page finds scenario files: the
// scenarios/ folder beside the policy, as in the examples.
func (s *Server) scenarioDir() string {
	return filepath.Join(filepath.Dir(s.b.PolicyPath()), "scenarios")
}

func (s *Server) scenarioFiles() []string {
	matches, _ := filepath.Glob(filepath.Join(s.scenarioDir(), "*.star"))
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Base(m))
	}
	return out
}

// simulation is a finished simulation as the API returns it.
type simulation struct {
	OK     bool             `json:"ok"`
	Result *simulate.Result `json:"result"`
	Text   string           `json:"text"`
	SVG    string           `json:"svg"`
}

// simulateRequest names a scenario file beside the policy or carries the
// scenario's text.
type simulateRequest struct {
	File     string `json:"file"`
	Scenario string `json:"scenario"`
}

// runSimulation replays a scenario against the policy file as it is on
// disk (the simulate page is where an edited policy is tried before a
// reload).
func (s *Server) runSimulation(ctx context.Context, req simulateRequest) (*simulation, error) {
	var path string
	switch {
	case req.File != "" && req.Scenario != "":
		return nil, badRequest(http.StatusBadRequest, "give either file or scenario, not both")
	case req.File != "":
		if !slices.Contains(s.scenarioFiles(), req.File) {
			return nil, badRequest(http.StatusNotFound, "no scenario %q in %s (have: %s)", req.File, s.scenarioDir(), strings.Join(s.scenarioFiles(), ", "))
		}
		path = filepath.Join(s.scenarioDir(), req.File)
	case strings.TrimSpace(req.Scenario) != "":
		if len(req.Scenario) > maxScenarioBytes {
			return nil, badRequest(http.StatusRequestEntityTooLarge, "scenario longer than %d bytes", maxScenarioBytes)
		}
		dir, err := os.MkdirTemp("", "harules-web-scenario-")
		if err != nil {
			return nil, fmt.Errorf("scenario temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "pasted.star")
		if err := os.WriteFile(path, []byte(req.Scenario), 0o600); err != nil {
			return nil, fmt.Errorf("scenario temp file: %w", err)
		}
	default:
		return nil, badRequest(http.StatusBadRequest, "no scenario: pick a file or paste one")
	}
	select {
	case s.simSlot <- struct{}{}:
		defer func() { <-s.simSlot }()
	case <-ctx.Done():
		return nil, badRequest(http.StatusServiceUnavailable, "another simulation is running; try again")
	}
	ctx, cancel := context.WithTimeout(ctx, simulateTimeout)
	defer cancel()
	policyPath := s.b.PolicyPath()
	p, err := rules.Load(ctx, policyPath, rules.Options{})
	if err != nil {
		return nil, badRequest(http.StatusUnprocessableEntity, "the policy file does not load: %v", err)
	}
	sc, err := simulate.LoadScenario(ctx, path, p)
	if err != nil {
		return nil, badRequest(http.StatusUnprocessableEntity, "scenario: %v", err)
	}
	res, err := simulate.Run(ctx, p, policyPath, sc, simulate.Options{})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, badRequest(http.StatusUnprocessableEntity, "the simulation took longer than %s: shorten the scenario", simulateTimeout)
		}
		return nil, badRequest(http.StatusUnprocessableEntity, "simulation: %v", err)
	}
	var text, svg bytes.Buffer
	simulate.WriteText(&text, res, simulate.TextOptions{Quiet: true})
	if err := simulate.WriteSVG(&svg, res); err != nil {
		return nil, fmt.Errorf("draw the timeline: %w", err)
	}
	return &simulation{OK: res.OK, Result: res, Text: text.String(), SVG: svg.String()}, nil
}

type simulateView struct {
	Files    []string
	Dir      string
	File     string
	Scenario string
	Error    string
	Result   *simulation
	// SVG is the chart from simulate.WriteSVG, which escapes every text it
	// draws, so it can be inlined.
	SVG template.HTML
}

func (s *Server) simulatePage(w http.ResponseWriter, r *http.Request, p *principal) {
	s.render(w, http.StatusOK, "simulate", p, "Simulate", simulateView{Files: s.scenarioFiles(), Dir: s.scenarioDir()})
}

func (s *Server) simulateForm(w http.ResponseWriter, r *http.Request, p *principal) {
	v := simulateView{Files: s.scenarioFiles(), Dir: s.scenarioDir(), File: r.PostFormValue("file"), Scenario: r.PostFormValue("scenario")}
	req := simulateRequest{File: v.File, Scenario: v.Scenario}
	if strings.TrimSpace(req.Scenario) != "" {
		req.File = "" // pasted text wins over the file picker
	}
	res, err := s.runSimulation(r.Context(), req)
	code := http.StatusOK
	if err != nil {
		code = requestCode(err)
		v.Error = err.Error()
	} else {
		v.Result = res
		v.SVG = template.HTML(res.SVG) //nolint:gosec // escaped by simulate.WriteSVG
	}
	s.render(w, code, "simulate", p, "Simulate", v)
}
