// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/harules/harules/rules"
)

// Docs that cannot drift: the command outputs, example lists and snippets
// shown in README.md and docs/*.md are checked against real runs here, so a
// change that makes them wrong fails the tests.

// repoRoot is where README.md is, relative to this package.
const repoRoot = "../.."

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file  string
	line  int // of the first line inside the fence
	lang  string
	lines []string
}

func readDocBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.HasPrefix(l, "```") {
			if cur == nil {
				cur = &docBlock{file: file, line: n + 1, lang: strings.TrimPrefix(l, "```")}
			} else {
				blocks = append(blocks, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, l)
		}
	}
	return blocks
}

func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		rel, _ := filepath.Rel(repoRoot, f)
		out = append(out, rel)
	}
	return out
}

// shownRun is one "$ harules ..." command of a block with the output the
// docs show for it.
type shownRun struct {
	block  docBlock
	line   int
	args   []string
	echoRC bool
	output []string
}

func shownRuns(b docBlock) []shownRun {
	var runs []shownRun
	for i, l := range b.lines {
		if strings.HasPrefix(l, "$ ") {
			cmd := strings.TrimPrefix(l, "$ ")
			r := shownRun{block: b, line: b.line + i}
			if c, ok := strings.CutSuffix(cmd, "; echo rc=$?"); ok {
				cmd, r.echoRC = c, true
			}
			if j := strings.Index(cmd, "#"); j >= 0 {
				cmd = cmd[:j]
			}
			r.args = strings.Fields(cmd)
			runs = append(runs, r)
			continue
		}
		if len(runs) > 0 {
			runs[len(runs)-1].output = append(runs[len(runs)-1].output, l)
		}
	}
	return runs
}

// offline says whether a shown command can be rerun here: check, simulate
// and demo of files in the repository (the rest come from a live lab).
func (r shownRun) offline() bool {
	if len(r.args) < 2 || r.args[0] != "harules" {
		return false
	}
	switch r.args[1] {
	case "check", "simulate", "demo":
	default:
		return false
	}
	for _, a := range r.args[2:] {
		if strings.HasSuffix(a, ".star") {
			if _, err := os.Stat(a); err != nil {
				return false
			}
		}
	}
	return true
}

// matchShown reports whether the shown lines are the real output, where a
// line "..." (or "- ..." in a list, indented or not) stands for any number
// of lines; trailing spaces do not count.
func matchShown(shown, real []string) bool {
	trim := func(ls []string) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = strings.TrimRight(l, " ")
		}
		return out
	}
	shown, real = trim(shown), trim(real)
	for len(real) > 0 && real[len(real)-1] == "" {
		real = real[:len(real)-1]
	}
	var segs [][]string
	seg := []string{}
	for _, l := range shown {
		if t := strings.TrimSpace(l); t == "..." || t == "- ..." {
			segs = append(segs, seg)
			seg = []string{}
			continue
		}
		seg = append(seg, l)
	}
	segs = append(segs, seg)
	pos := 0
	for i, s := range segs {
		first, last := i == 0, i == len(segs)-1
		found := -1
		for at := pos; at+len(s) <= len(real); at++ {
			if first && at != 0 {
				break
			}
			if slices.Equal(real[at:at+len(s)], s) && (!last || at+len(s) == len(real)) {
				found = at
				break
			}
		}
		if found < 0 {
			return false
		}
		pos = found + len(s)
	}
	return true
}

// TestDocsCommandOutputs reruns every `$ harules check|simulate|demo`
// shown in README.md and docs/*.md on the repository's files and compares
// the output shown (policy hashes, summaries, fault matrices). check runs
// with --policy-only: the secret the examples name (/etc/harules/secret)
// is the installed node's, not this machine's.
func TestDocsCommandOutputs(t *testing.T) {
	files := docFiles(t)
	var blocks []docBlock
	for _, f := range files {
		blocks = append(blocks, readDocBlocks(t, f)...)
	}
	t.Chdir(repoRoot)
	verified := 0
	for _, b := range blocks {
		for _, r := range shownRuns(b) {
			if !r.offline() {
				continue
			}
			args := r.args
			if args[1] == "check" {
				args = append([]string{"harules", "check", "--policy-only"}, args[2:]...)
			}
			code, out, errOut := harules(t, args[1:]...)
			real := strings.Split(out+errOut, "\n")
			if r.echoRC {
				real = append(real[:len(real)-1], "rc="+strconv.Itoa(code))
			}
			if !matchShown(r.output, real) {
				t.Errorf("%s:%d: `%s` shows\n%s\nbut prints (exit %d)\n%s", r.block.file, r.line, strings.Join(r.args, " "),
					strings.Join(r.output, "\n"), code, out+errOut)
			}
			verified++
		}
	}
	if verified < 4 {
		t.Fatalf("only %d shown commands verified; the docs parser lost them", verified)
	}
	t.Logf("%d shown command outputs verified", verified)
}

// TestDocsExampleLists: every examples/NAME is listed in the README's
// Examples section and in docs/policy.md's list, and no listed one is
// missing.
func TestDocsExampleLists(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*", "policy.star"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	readme := readFile(t, "README.md")
	section := readme[strings.Index(readme, "## Examples"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	policyDoc := readFile(t, "docs/policy.md")
	i := strings.Index(policyDoc, "Complete, tested examples live in")
	list := policyDoc[i : i+strings.Index(policyDoc[i:], "\n\n")]
	var names []string
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		names = append(names, name)
		if !strings.Contains(section, "[`examples/"+name+"`](examples/"+name+")") {
			t.Errorf("README.md's Examples section does not list examples/%s", name)
		}
		if !strings.Contains(list, "`"+name+"`") {
			t.Errorf("docs/policy.md's example list does not name %s:\n%s", name, list)
		}
	}
	for _, m := range regexp.MustCompile("\\[`examples/([a-z0-9-]+)`\\]").FindAllStringSubmatch(section, -1) {
		if _, err := os.Stat(filepath.Join(repoRoot, "examples", m[1], "policy.star")); err != nil {
			t.Errorf("README.md lists examples/%s, which does not exist", m[1])
		}
	}
}

// TestDocsReadmeSnippets: the README's policy is a valid policy, and its
// scenario is the node-crash scenario of examples/web-active-standby (line
// for line; the examples tests run that one against its policy), so the
// timings it shows are the example's.
func TestDocsReadmeSnippets(t *testing.T) {
	var policySrc, scenario []string
	for _, b := range readDocBlocks(t, "README.md") {
		if b.lang != "python" {
			continue
		}
		src := strings.Join(b.lines, "\n")
		switch {
		case strings.Contains(src, "cluster(") && policySrc == nil:
			policySrc = b.lines
		case strings.Contains(src, "scenario(") && scenario == nil:
			scenario = b.lines
		}
	}
	if policySrc == nil || scenario == nil {
		t.Fatal("README.md has no policy or no scenario block")
	}
	p := filepath.Join(t.TempDir(), "policy.star")
	if err := os.WriteFile(p, []byte(strings.Join(policySrc, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Load(context.Background(), p, rules.Options{}); err != nil {
		t.Errorf("README.md's policy does not load:\n%v", err)
	}
	example := readFile(t, "examples/web-active-standby/scenarios/node-crash.star")
	norm := func(l string) string {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		return strings.Join(strings.Fields(l), " ")
	}
	var exampleLines []string
	for _, l := range strings.Split(example, "\n") {
		exampleLines = append(exampleLines, norm(l))
	}
	for _, l := range scenario {
		if n := norm(l); n != "" && !slices.Contains(exampleLines, n) {
			t.Errorf("README.md's scenario line %q is not in examples/web-active-standby/scenarios/node-crash.star", l)
		}
	}
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
