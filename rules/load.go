// Package rules loads harules policy files: it executes the Starlark files
// with the harules vocabulary, resolves load() of "@stdlib//" and relative
// files (with a cache and cycle detection), validates the result and returns
// a compiled, frozen *policy.Policy. Every problem is reported as
// file:line:col: message.
package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/harules/harules/builtins"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/stdlib"
)

// MaxLoadSteps bounds the top-level execution of a policy and its loads.
const MaxLoadSteps = 50_000_000

// StdlibPrefix marks library files shipped with harules.
const StdlibPrefix = "@stdlib//"

// fileOptions are the Starlark dialect of policies: set() and recursion-free,
// but top-level if/for allowed so policies can build node lists in loops.
var fileOptions = &syntax.FileOptions{Set: true, TopLevelControl: true, While: true}

// Error is one problem in a policy, at a position.
type Error struct {
	Pos policy.Pos
	Msg string
}

func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errors is every problem found in a policy, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Options tune loading.
type Options struct {
	// Print receives print() output of policy files; nil discards it.
	Print func(msg string)
	// ReadFile reads a policy file; nil means os.ReadFile.
	ReadFile func(path string) ([]byte, error)
	// MaxSteps bounds the execution of each file; 0 means MaxLoadSteps.
	MaxSteps uint64
}

type loadEntry struct {
	globals starlark.StringDict
	err     error
	loading bool
}

type loader struct {
	ctx      context.Context
	opts     Options
	cache    map[string]*loadEntry
	files    []string
	contents map[string][]byte
	universe starlark.StringDict
	// loading is the chain of files being executed, outermost first, so a
	// load cycle can be reported as the whole loop.
	loading []string
	stops   []func() bool
}

// Load executes the policy file at path and returns the compiled policy, or
// Errors listing every problem with its position.
func Load(ctx context.Context, path string, opts Options) (*policy.Policy, error) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = MaxLoadSteps
	}
	var declErrs Errors
	l := &loader{ctx: ctx, opts: opts, cache: map[string]*loadEntry{}, contents: map[string][]byte{}}
	l.universe = continuingUniverse(builtins.Universe(), &declErrs, path, opts.MaxSteps)
	defer func() {
		for _, stop := range l.stops {
			stop()
		}
	}()
	c := builtins.NewCollector()
	thread := l.newThread("policy " + path)
	c.Attach(thread)
	if _, err := l.exec(thread, filepath.Clean(path)); err != nil {
		errs := append(declErrs, toErrors(err, path, l.opts.MaxSteps)...)
		sortErrors(errs)
		return nil, errs
	}
	if len(declErrs) > 0 {
		// Validation would mostly repeat them (a node that failed to
		// declare is then "unknown" wherever it is named).
		sortErrors(declErrs)
		return nil, declErrs
	}
	p := &policy.Policy{Nodes: c.Nodes, Paths: c.Paths, Probes: c.Probes, Groups: c.Groups, Rules: c.Rules, Backups: c.Backups, Notifiers: c.Notifiers, Files: l.files}
	if c.Cluster != nil {
		p.Cluster = *c.Cluster
	}
	// The hash must be equal on nodes that keep the same policy under
	// different paths (/etc/harules/policy.star, a checkout elsewhere): it
	// covers the contents and the names of loaded files relative to the main
	// file's directory, never the main file's own path.
	h := sha256.New()
	dir := filepath.Dir(filepath.Clean(path))
	for i, f := range l.files {
		name := f
		switch {
		case i == 0:
			name = "@main"
		case !strings.HasPrefix(f, "@"):
			if rel, err := filepath.Rel(dir, f); err == nil && !strings.HasPrefix(rel, "..") {
				name = filepath.ToSlash(rel)
			}
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(l.contents[f]))
		h.Write(l.contents[f])
	}
	p.Hash = hex.EncodeToString(h.Sum(nil))[:16]
	p.Index()
	if errs := Validate(p, filepath.Clean(path)); len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func (l *loader) newThread(name string) *starlark.Thread {
	t := &starlark.Thread{Name: name, Load: l.load}
	t.Print = func(_ *starlark.Thread, msg string) {
		if l.opts.Print != nil {
			l.opts.Print(msg)
		}
	}
	t.SetMaxExecutionSteps(l.opts.MaxSteps)
	if l.ctx.Done() != nil {
		// Stopped when Load returns: a long-lived context (an agent that
		// reloads its policy) must not keep every loaded policy alive.
		l.stops = append(l.stops, context.AfterFunc(l.ctx, func() { t.Cancel("policy loading cancelled") }))
	}
	return t
}

// load implements load() statements.
func (l *loader) load(thread *starlark.Thread, module string) (starlark.StringDict, error) {
	from := thread.CallFrame(0).Pos.Filename()
	var key string
	switch {
	case strings.HasPrefix(module, StdlibPrefix):
		key = module
	case strings.HasPrefix(module, "@"):
		return nil, fmt.Errorf("unknown repository in %q: only %sNAME.star and paths relative to the policy are supported", module, StdlibPrefix)
	case filepath.IsAbs(module):
		key = filepath.Clean(module)
	default:
		key = filepath.Join(filepath.Dir(from), module)
	}
	if !strings.HasSuffix(key, ".star") {
		return nil, fmt.Errorf("load(%q): policy files end in .star", module)
	}
	e := l.cache[key]
	if e != nil {
		if e.loading {
			chain := append([]string(nil), l.loading[slices.Index(l.loading, key):]...)
			return nil, fmt.Errorf("load cycle: %s (files must not load each other)", strings.Join(append(chain, key), " loads "))
		}
		return e.globals, e.err
	}
	// A loaded module shares the collector, so library functions may declare
	// rules and groups on behalf of the caller.
	child := l.newThread("load " + key)
	child.SetLocal("harules.collector", thread.Local("harules.collector"))
	globals, err := l.exec(child, key)
	return globals, err
}

func (l *loader) exec(thread *starlark.Thread, key string) (starlark.StringDict, error) {
	e := &loadEntry{loading: true}
	l.cache[key] = e
	l.loading = append(l.loading, key)
	defer func() {
		e.loading = false
		l.loading = l.loading[:len(l.loading)-1]
	}()
	var src []byte
	var err error
	if name, ok := strings.CutPrefix(key, StdlibPrefix); ok {
		src, err = fs.ReadFile(stdlib.FS, name)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("no library file %q in @stdlib (have: %s)", name, strings.Join(stdlibNames(), ", "))
		}
	} else {
		src, err = l.opts.ReadFile(key)
	}
	if err != nil {
		e.err = err
		return nil, err
	}
	l.files = append(l.files, key)
	l.contents[key] = src
	e.globals, e.err = starlark.ExecFileOptions(fileOptions, thread, key, src, l.universe)
	return e.globals, e.err
}

func stdlibNames() []string {
	entries, _ := fs.ReadDir(stdlib.FS, ".")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// toErrors converts Starlark's error kinds into positioned Errors.
func toErrors(err error, path string, maxSteps uint64) Errors {
	var se syntax.Error
	var re resolve.ErrorList
	var ee *starlark.EvalError
	var pe *fs.PathError
	switch {
	case errors.As(err, &se):
		return Errors{{Pos: fromSyntax(se.Pos), Msg: se.Msg}}
	case errors.As(err, &re):
		out := make(Errors, len(re))
		for i, e := range re {
			out[i] = Error{Pos: fromSyntax(e.Pos), Msg: undefinedHint(e.Msg)}
		}
		return out
	case errors.As(err, &ee):
		return Errors{evalErrorAt(ee, path, maxSteps)}
	case errors.As(err, &pe):
		return Errors{{Pos: policy.Pos{File: path}, Msg: fmt.Sprintf("cannot read policy: %v", pe.Err)}}
	}
	return Errors{{Pos: policy.Pos{File: path, Line: 1, Col: 1}, Msg: err.Error()}}
}

// evalErrorAt places a runtime error at the innermost frame in an operator's
// file: for an error raised by a built-in that is the call site in the
// policy; for one raised inside @stdlib, the policy line that called the
// library (operators cannot edit @stdlib), with the library line noted.
func evalErrorAt(ee *starlark.EvalError, path string, maxSteps uint64) Error {
	msg := ee.Msg
	if strings.HasSuffix(msg, "too many steps") {
		msg = fmt.Sprintf("policy stopped after %d steps (is there an endless loop?): %s", maxSteps, msg)
	}
	if strings.Contains(msg, "frozen") {
		msg += " (values from load() are read-only; copy one to change it, e.g. list(X))"
	}
	var lib *syntax.Position
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		p := ee.CallStack[i].Pos
		if p.Filename() == "<builtin>" || p.Line <= 0 {
			continue
		}
		if strings.HasPrefix(p.Filename(), StdlibPrefix) {
			if lib == nil {
				lib = &p
			}
			continue
		}
		if lib != nil {
			msg += fmt.Sprintf(" (raised at %s)", fromSyntax(*lib))
		}
		return Error{Pos: fromSyntax(p), Msg: msg}
	}
	if lib != nil {
		return Error{Pos: fromSyntax(*lib), Msg: msg}
	}
	return Error{Pos: policy.Pos{File: path, Line: 1, Col: 1}, Msg: msg}
}

// undefinedHint adds a "did you mean" to the resolver's "undefined: NAME"
// for misspelt harules and Starlark built-ins, which the resolver cannot
// suggest itself.
func undefinedHint(msg string) string {
	name, ok := strings.CutPrefix(msg, "undefined: ")
	if !ok || strings.Contains(name, " ") {
		return msg
	}
	known := builtins.Universe().Keys()
	known = append(known, starlark.Universe.Keys()...)
	if n := policy.Closest(name, known); n != "" {
		return fmt.Sprintf("%s (did you mean %s?)", msg, n)
	}
	return msg
}

func fromSyntax(p syntax.Position) policy.Pos {
	return policy.Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}
