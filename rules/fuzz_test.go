package rules_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harules/harules/rules"
)

// fuzzMain is where the fuzzed policy pretends to live, so its relative
// load()s reach the real library files of the bad corpus (lib/, cycle/).
const fuzzMain = "testdata/bad/fuzz-input.star"

// FuzzLoad feeds arbitrary source to Load: it must never panic, and every
// failure must be a non-empty rules.Errors whose entries name a file and a
// positive line, because that is what `harules check` prints.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata/bad", "testdata/good", "../examples"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".star") {
				return err
			}
			src, err := os.ReadFile(path)
			if err == nil {
				f.Add(src)
			}
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		read := func(path string) ([]byte, error) {
			if path == fuzzMain {
				return src, nil
			}
			// Only the test's own files: a fuzzed load("/x.star") must not
			// wander the file system.
			if !strings.HasPrefix(path, "testdata/") {
				return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
			}
			return os.ReadFile(path)
		}
		// A live context, as in the agent, so the cancellation hooks are set
		// up and released on every load.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A small step budget keeps endless loops from eating fuzz time.
		p, err := rules.Load(ctx, fuzzMain, rules.Options{ReadFile: read, MaxSteps: 200_000})
		if err == nil {
			if p == nil || len(p.Hash) != 16 || p.Cluster.Name == "" || len(p.Nodes) == 0 {
				t.Fatalf("Load succeeded with an incomplete policy: %+v", p)
			}
			return
		}
		var es rules.Errors
		if !errors.As(err, &es) {
			t.Fatalf("Load returned %T (%v); want rules.Errors", err, err)
		}
		if len(es) == 0 {
			t.Fatal("Load returned an empty rules.Errors")
		}
		for _, e := range es {
			if e.Pos.File == "" || e.Pos.Line <= 0 || e.Msg == "" {
				t.Fatalf("error without a position or message: %q (pos %+v)", e.Error(), e.Pos)
			}
		}
	})
}
