package examples_test

import (
	"context"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/examples"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

// exampleDirs lists the example directories (those with a policy.star).
func exampleDirs(t *testing.T) []string {
	t.Helper()
	policies, err := filepath.Glob("*/policy.star")
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) < 3 {
		t.Fatalf("found %d example policies (%v), want at least web-active-standby, active-active and postgres", len(policies), policies)
	}
	var dirs []string
	for _, p := range policies {
		dirs = append(dirs, filepath.Dir(p))
	}
	return dirs
}

func loadPolicy(t *testing.T, dir string) *policy.Policy {
	t.Helper()
	p, err := rules.Load(context.Background(), filepath.Join(dir, "policy.star"), rules.Options{})
	if err != nil {
		t.Fatalf("example policy %s is invalid:\n%v", dir, err)
	}
	return p
}

// extraSeeds is how many other seeds each short scenario is replayed with.
const extraSeeds = 12

// runScenario runs one scenario file; a non-zero seed replaces the
// scenario's own.
func runScenario(t *testing.T, p *policy.Policy, dir, file string, seed int64) *simulate.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	sc, err := simulate.LoadScenario(ctx, file, p)
	if err != nil {
		t.Fatalf("scenario %s is invalid:\n%v", file, err)
	}
	if seed != 0 {
		sc.Seed = seed
	}
	res, err := simulate.Run(ctx, p, filepath.Join(dir, "policy.star"), sc, simulate.Options{})
	if err != nil {
		t.Fatalf("simulate %s: %v", file, err)
	}
	return res
}

func failedExpectations(res *simulate.Result) string {
	var lines []string
	for _, e := range res.Expectations {
		if !e.OK {
			lines = append(lines, e.Pos+": "+e.Expect+" ("+e.Detail+")")
		}
	}
	return strings.Join(lines, "\n")
}

// TestScenariosPass runs every examples/*/scenarios/*.star against its
// policy: the scenarios are the examples' test suite and must all pass.
func TestScenariosPass(t *testing.T) {
	for _, dir := range exampleDirs(t) {
		t.Run(dir, func(t *testing.T) {
			p := loadPolicy(t, dir)
			files, err := filepath.Glob(filepath.Join(dir, "scenarios", "*.star"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) == 0 {
				t.Fatalf("example %s has no scenarios/*.star: every example needs at least one scenario", dir)
			}
			for _, file := range files {
				t.Run(strings.TrimSuffix(filepath.Base(file), ".star"), func(t *testing.T) {
					res := runScenario(t, p, dir, file, 0)
					if len(res.Expectations) == 0 {
						t.Fatalf("%s checks nothing: add expect_* calls", file)
					}
					if !res.OK {
						t.Fatalf("%s failed:\n%s", file, failedExpectations(res))
					}
					// A scenario must not pass by luck of the node phases:
					// replay the short ones with other seeds.
					if time.Duration(res.Duration) > 10*time.Minute {
						return
					}
					for seed := int64(2); seed <= extraSeeds+1; seed++ {
						if res := runScenario(t, p, dir, file, seed); !res.OK {
							t.Errorf("%s fails with seed %d:\n%s", file, seed, failedExpectations(res))
						}
					}
				})
			}
		})
	}
}

// TestKnownSplitBrain runs the scenario kept outside scenarios/ because it
// must fail: a partition in which both gateways answer defeats the gateway
// guard, and the simulator must report the dual owner.
func TestKnownSplitBrain(t *testing.T) {
	const dir = "web-active-standby"
	files, err := filepath.Glob(filepath.Join(dir, "known-split-brain", "*.star"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s/known-split-brain/*.star scenario", dir)
	}
	p := loadPolicy(t, dir)
	for _, file := range files {
		res := runScenario(t, p, dir, file, 0)
		if res.OK {
			t.Errorf("%s passed; it documents a split brain and must fail", file)
		}
		if len(res.DualOwners) == 0 {
			t.Fatalf("%s: no dual owner reported", file)
		}
		w := res.DualOwners[0]
		if w.Group != "web" || strings.Join(w.Nodes, "+") != "node1+node2" || w.End <= w.Start {
			t.Errorf("%s: dual owner window %+v, want web on node1+node2 for a positive time", file, w)
		}
	}
}

// TestEmbedded checks that the embedded copy (used by `harules demo`)
// holds every example policy and scenario of the directory.
func TestEmbedded(t *testing.T) {
	for _, dir := range exampleDirs(t) {
		files, _ := filepath.Glob(filepath.Join(dir, "scenarios", "*.star"))
		for _, f := range append(files, filepath.Join(dir, "policy.star")) {
			if _, err := fs.Stat(examples.FS, path.Clean(filepath.ToSlash(f))); err != nil {
				t.Errorf("%s is not embedded in examples.FS: %v", f, err)
			}
		}
	}
}
