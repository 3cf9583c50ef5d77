// Command nemesis runs the long randomized fault run of test/nemesis:
//
//	go run ./test/nemesis/cmd -faults 300 -seed 7 -json nemesis.json
//
// It needs root (network namespaces). The faults are split between the
// two-node and the three-node cluster as -nodes says. It exits 1 when a
// violation inside the documented guarantees or a wrong final state was
// found.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/test/nemesis"
)

func main() {
	testing.Init()
	faults := flag.Int("faults", 300, "number of faults")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()%1_000_000), "seed of the schedule")
	nodes := flag.String("nodes", "both", `cluster size: "2", "3" or "both" (half the faults on each)`)
	interval := flag.Duration("interval", 100*time.Millisecond, "heartbeat interval")
	misses := flag.Int("misses", 5, "heartbeat misses")
	jsonPath := flag.String("json", "", "write the JSON report to this file")
	kinds := flag.String("kinds", "", "comma-separated fault kinds to draw from (default: all)")
	logDir := flag.String("logs", "", "copy the agents' logs to this directory")
	flag.Parse()
	_ = flag.Set("test.v", "true")

	var runs []nemesis.Config
	switch *nodes {
	case "2":
		runs = append(runs, nemesis.Config{Nodes: 2, Faults: *faults})
	case "3":
		runs = append(runs, nemesis.Config{Nodes: 3, Faults: *faults})
	case "both":
		two := (*faults + 1) / 2
		runs = append(runs, nemesis.Config{Nodes: 2, Faults: two}, nemesis.Config{Nodes: 3, Faults: *faults - two})
	default:
		fmt.Fprintf(os.Stderr, "nemesis: -nodes %q: want 2, 3 or both\n", *nodes)
		os.Exit(2)
	}
	fmt.Printf("nemesis: seed %d, %d faults\n", *seed, *faults)

	var reports []*nemesis.Report
	test := func(t *testing.T) {
		t.Cleanup(clustertest.RemoveBuild)
		for _, cfg := range runs {
			if cfg.Faults == 0 {
				continue
			}
			cfg.Seed, cfg.Interval, cfg.Misses, cfg.LogDir = *seed, *interval, *misses, *logDir
			if *kinds != "" {
				cfg.Kinds = strings.Split(*kinds, ",")
			}
			t.Run(fmt.Sprintf("%dnodes", cfg.Nodes), func(t *testing.T) {
				rep := nemesis.Run(t, cfg)
				reports = append(reports, rep)
				fmt.Printf("\n%s\n", rep.Table())
				if rep.Violations() > 0 || rep.Aborted != "" {
					t.Fail()
				}
			})
		}
		if *jsonPath != "" {
			if err := nemesis.WriteJSON(*jsonPath, reports); err != nil {
				t.Error(err)
			}
		}
	}
	match := func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) }
	// testing.Main gives the run a real *testing.T (clustertest needs one),
	// cleanups included; it exits with the test's status.
	testing.Main(match, []testing.InternalTest{{Name: "Nemesis", F: test}}, nil, nil)
}
