package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/harules/harules/simulate"
)

var update = flag.Bool("update", false, "rewrite simulate/testdata/golden/* from the current output")

// goldenCases are example scenarios whose whole timeline is pinned: any
// change in what the engine decides, when, or how it is printed shows up as
// a diff to review (regenerate with go test ./simulate -run Golden -update).
var goldenCases = []struct{ name, policy, scenario string }{
	{"web-node-crash", "../examples/web-active-standby/policy.star", "../examples/web-active-standby/scenarios/node-crash.star"},
	{"web-one-path-down", "../examples/web-active-standby/policy.star", "../examples/web-active-standby/scenarios/one-path-down.star"},
	{"web-split-brain", "../examples/web-active-standby/policy.star", "../examples/web-active-standby/known-split-brain/partition-without-guard.star"},
	{"active-active-failback", "../examples/active-active/policy.star", "../examples/active-active/scenarios/recovery-failback.star"},
	{"postgres-backup-failover", "../examples/postgres/policy.star", "../examples/postgres/scenarios/backup-after-failover.star"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			txt, js := textAndJSON(t, runFiles(t, tc.policy, tc.scenario))
			// A second run must give the same bytes, or golden files are noise.
			txt2, js2 := textAndJSON(t, runFiles(t, tc.policy, tc.scenario))
			if txt != txt2 || js != js2 {
				t.Fatalf("two runs differ:\n%s", firstDiff(txt+js, txt2+js2))
			}
			for ext, got := range map[string]string{".txt": txt, ".json": js} {
				file := filepath.Join("testdata", "golden", tc.name+ext)
				if *update {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (create it with: go test ./simulate -run Golden -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the output (review, then go test ./simulate -run Golden -update):\n%s", file, firstDiff(string(want), got))
				}
			}
		})
	}
}

func runFiles(t *testing.T, policyFile, scenarioFile string) *simulate.Result {
	t.Helper()
	p := loadPolicy(t, policyFile)
	sc, err := simulate.LoadScenario(context.Background(), scenarioFile, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulate.Run(context.Background(), p, policyFile, sc, simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// textAndJSON renders a result as `harules simulate` does, as text and JSON.
func textAndJSON(t *testing.T, res *simulate.Result) (string, string) {
	t.Helper()
	var txt, js bytes.Buffer
	simulate.WriteText(&txt, res, simulate.TextOptions{})
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		t.Fatalf("encode result: %v", err)
	}
	return txt.String(), js.String()
}

// firstDiff shows the first differing line of two texts.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return "(no difference)"
}
