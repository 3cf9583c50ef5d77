package simulate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

// TestInvalidScenarios: every mistake in a scenario is reported at its
// file:line:col with a message that says what is wrong.
func TestInvalidScenarios(t *testing.T) {
	cases := []struct {
		name, src string
		pos, msg  string
	}{
		{"unknown node", "scenario(duration = \"20s\")\nat(\"5s\", crash(\"node9\"))\n",
			"scenario.star:2:15", `crash: unknown node "node9": the policy declares node1, node2`},
		{"event after the end", "scenario(duration = \"20s\")\nat(\"5s\", crash(\"node1\"))\nat(\"30s\",\n   link_down(\"a\"))\n",
			"scenario.star:4:13", "event at 30s is after the end of the scenario (duration 20s)"},
		{"unknown path", "at(\"5s\", link_down(\"c\"))\n",
			"scenario.star:1:19", `link_down: unknown heartbeat path "c"`},
		{"unknown group", "at(\"5s\", operator_move(\"db\", \"node1\"))\n",
			"scenario.star:1:23", `operator_move: unknown group "db"`},
		{"unknown probe", "at(\"5s\", probe(\"pg\", node = \"node1\", ok = False))\n",
			"scenario.star:1:15", `probe: unknown probe "pg"`},
		{"bad offset", "at(\"soon\", crash(\"node1\"))\n",
			"scenario.star:1:3", `at: want a time offset like "10s" or "1h30m", got "soon"`},
		{"unknown backup", "expect_backup(\"weekly\")\n",
			"scenario.star:1:14", `expect_backup: unknown backup job "weekly"`},
		{"syntax error", "at(\"5s\", crash(\"node1\")\n",
			"scenario.star:2:1", "got end of file, want ')'"},
		{"bad start", "scenario(start = \"tomorrow\")\n",
			"scenario.star:1:9", `scenario: start "tomorrow" is not an RFC 3339 time`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pf, sf := writeFiles(t, withRules(""), tc.src)
			p := loadPolicy(t, pf)
			_, err := simulate.LoadScenario(context.Background(), sf, p)
			if err == nil {
				t.Fatal("scenario loaded; want an error")
			}
			var es rules.Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("want one positioned rules.Error, got %T: %v", err, err)
			}
			got := es[0].Error()
			if !strings.HasPrefix(got, sf[:len(sf)-len("scenario.star")]) {
				t.Errorf("error %q does not start with the scenario's path", got)
			}
			if !strings.Contains(got, tc.pos+": ") || !strings.Contains(got, tc.msg) {
				t.Errorf("error %q\nwant position %s and message containing %q", got, tc.pos, tc.msg)
			}
		})
	}
}
