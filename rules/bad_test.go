package rules_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/harules/harules/rules"
)

// want is one expected error of a malformed policy, written in the policy
// itself as "# want: [FILE:]LINE:COL: substring". FILE (relative to the
// policy's directory) is only given when the error is in another file. In
// the substring, "..." matches anything, so messages that embed the
// testdata path can still be pinned.
type want struct {
	file      string
	line, col int
	substr    string
}

var wantLine = regexp.MustCompile(`^# want: (?:(\S+\.star):)?(\d+):(\d+): (.+)$`)

// readWants returns the "# want:" lines at the top of a policy file.
func readWants(t *testing.T, path string) []want {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wants []want
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "# want:") {
			break
		}
		m := wantLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: malformed want line %q (want \"# want: [FILE:]LINE:COL: substring\")", path, line)
		}
		w := want{file: path, substr: m[4]}
		if m[1] != "" {
			w.file = filepath.Join(filepath.Dir(path), m[1])
		}
		w.line, _ = strconv.Atoi(m[2])
		w.col, _ = strconv.Atoi(m[3])
		wants = append(wants, w)
	}
	if len(wants) == 0 {
		t.Fatalf("%s: no \"# want:\" line at the top of the file", path)
	}
	return wants
}

// containsInOrder reports whether the "..."-separated parts of pattern
// occur in s in order.
func containsInOrder(s, pattern string) bool {
	for _, part := range strings.Split(pattern, "...") {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// TestBadPolicies loads every malformed policy of testdata/bad and checks
// that exactly the expected errors come back, each at its file:line:col.
func TestBadPolicies(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.star")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("only %d malformed policies in testdata/bad; the corpus should hold at least 40", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".star"), func(t *testing.T) {
			t.Parallel()
			wants := readWants(t, file)
			p, err := rules.Load(context.Background(), file, rules.Options{})
			if err == nil {
				t.Fatalf("Load(%s) succeeded (policy %s); want errors:\n%s", file, p.Hash, formatWants(wants))
			}
			var es rules.Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load(%s) returned %T (%v); want rules.Errors", file, err, err)
			}
			if len(es) != len(wants) {
				t.Fatalf("Load(%s) returned %d errors:\n%v\nwant %d:\n%s", file, len(es), es, len(wants), formatWants(wants))
			}
			for i, w := range wants {
				e := es[i]
				if e.Pos.File != w.file || e.Pos.Line != w.line || e.Pos.Col != w.col || !containsInOrder(e.Msg, w.substr) {
					t.Errorf("error %d:\n got  %s\n want %s:%d:%d: ...%s...", i, e, w.file, w.line, w.col, w.substr)
				}
			}
		})
	}
}

func formatWants(ws []want) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "  %s:%d:%d: %s\n", w.file, w.line, w.col, w.substr)
	}
	return b.String()
}

// TestErrorString checks the printed form the CLI shows: one
// file:line:col: message per line.
func TestErrorString(t *testing.T) {
	_, err := rules.Load(context.Background(), "testdata/bad/several_errors.star", rules.Options{})
	if err == nil {
		t.Fatal("several_errors.star loaded without error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 {
		t.Fatalf("error text has %d lines, want 2:\n%s", len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "testdata/bad/several_errors.star:1:1: no ") {
			t.Errorf("line %q does not start with file:line:col", l)
		}
	}
}

// TestMissingPolicyFile: a policy that cannot be read is an Errors naming
// the file, not a panic or a bare *PathError.
func TestMissingPolicyFile(t *testing.T) {
	_, err := rules.Load(context.Background(), "testdata/does-not-exist.star", rules.Options{})
	var es rules.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("Load(missing file) = %v; want one rules.Error", err)
	}
	if es[0].Pos.File != "testdata/does-not-exist.star" || !strings.Contains(es[0].Msg, "no such file") {
		t.Errorf("error = %q; want it to name the file and say it does not exist", es[0])
	}
}

// TestMaxStepsOption: Options.MaxSteps replaces the default step budget
// and the error reports the budget that applied.
func TestMaxStepsOption(t *testing.T) {
	_, err := rules.Load(context.Background(), "testdata/bad/runaway_loop.star", rules.Options{MaxSteps: 1000})
	if err == nil || !strings.Contains(err.Error(), "policy stopped after 1000 steps (is there an endless loop?)") {
		t.Fatalf("Load with MaxSteps 1000 = %v", err)
	}
	// The example is far below the default budget and loads with a small one.
	if _, err := rules.Load(context.Background(), "../examples/web-active-standby/policy.star", rules.Options{MaxSteps: 100_000}); err != nil {
		t.Errorf("example with MaxSteps 100000: %v", err)
	}
}

// TestLoadCancelled: a cancelled context stops a runaway policy long
// before the step limit.
func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := rules.Load(ctx, "testdata/bad/runaway_loop.star", rules.Options{})
	if err == nil || !strings.Contains(err.Error(), "policy loading cancelled") {
		t.Fatalf("Load with a cancelled context = %v; want an error saying loading was cancelled", err)
	}
}
