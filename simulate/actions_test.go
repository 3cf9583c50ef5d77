package simulate_test

import (
	"testing"
	"time"
)

// TestSlowStartWhileOperatorMovesBackAndForth: node1's starts and stops of
// web take 2 s each while an operator moves web back and forth faster than
// that. Decisions go on during the actions (heartbeats keep arriving, no
// peer is declared dead), a start in flight counts as held, so node2 never
// starts beside it, and the group ends where the last request put it.
func TestSlowStartWhileOperatorMovesBackAndForth(t *testing.T) {
	res := simulateSrc(t, withRules(""), `
scenario(duration = "40s")
at("5s", slow_actions("node1", "web", "2s"))
at("5s", slow_actions("node2", "web", "2s"))
at("6s", operator_move("web", "node2"))
at("6.5s", operator_move("web", "node1"))
at("7s", operator_move("web", "node2"))
at("12s", operator_move("web", "node1"))
at("13s", operator_move("web", "node2"))
expect_single_owner()
expect_owner("web", "node2", at = "39s")
`)
	mustOK(t, res)
	if d := find(res, "", "peer", "is dead"); len(d) > 0 {
		t.Errorf("a peer was declared dead during slow actions: %v", d)
	}
}

// TestFailedStopKeepsGroupOnNode: node1 cannot stop web (fail_stops) when
// an operator moves it away. What a failed stop was to end may still run,
// so web stays held on node1 and node2 does not start it (no dual owner)
// until a stop succeeds; then it moves.
func TestFailedStopKeepsGroupOnNode(t *testing.T) {
	res := simulateSrc(t, withRules(""), `
scenario(duration = "30s")
at("5s", fail_stops("node1", "web"))
at("6s", operator_move("web", "node2"))
at("15s", fail_stops("node1", "web", fixed = True))
expect_single_owner()
expect_owner("web", "node1", at = "14s")
expect_alert("stop-failed", node = "node1", at = "10s")
expect_owner("web", "node2", at = "20s")
`)
	mustOK(t, res)
}

// TestFailedStartRollbackThatFailsBlocksTakeover: node1's start of web
// fails and so does the stop undoing it; node2 must not start web while
// node1 may still run it.
func TestFailedStartRollbackThatFailsBlocksTakeover(t *testing.T) {
	res := simulateSrc(t, withRules(""), `
scenario(duration = "30s", boot = ["node2"])
at("1s", fail_starts("node1", "web"))
at("1s", fail_stops("node1", "web"))
at("2s", boot("node1"))
at("2.5s", operator_move("web", "node1"))
at("15s", fail_stops("node1", "web", fixed = True))
expect_single_owner()
expect_alert("stop-failed", node = "node1", at = "10s")
expect_owner("web", "node2", at = "25s")
`)
	mustOK(t, res)
}

const threeNodesQuorum = `
load("@stdlib//placement.star", "active_standby")
load("@stdlib//rules.star", "quorum")
cluster(name = "q")
node("node1", address = "198.51.100.1")
node("node2", address = "198.51.100.2")
node("node3", address = "198.51.100.3")
heartbeat("lan", interval = "200ms", misses = 5)
group("web", resources = [vip("198.51.100.10/24", interface = "eth0")],
      placement = active_standby(["node1", "node2", "node3"], failback = "manual"))
rule("quorum", when = quorum(settle = "1s"))
`

// TestPlannedMoveWaitsForTargetQuorumSettle: an operator moves web to a
// node that has just rejoined and whose quorum rule still keeps it in
// standby (settling). The holder must keep web until the target may start
// it, then hand it over: no outage. Before, the holder stopped at once and
// web was down until the target's settle ended (1.7 s).
func TestPlannedMoveWaitsForTargetQuorumSettle(t *testing.T) {
	res := simulateSrc(t, threeNodesQuorum, `
scenario(duration = "30s")
at("5s", crash("node3"))
at("10s", boot("node3"))
at("10.3s", operator_move("web", "node3"))
expect_owner("web", "node3", at = "20s")
expect_single_owner()
`)
	mustOK(t, res)
	for _, o := range res.Outages {
		if time.Duration(o.Start) > 5*time.Second && o.End > o.Start {
			t.Errorf("web was down from %s to %s during a planned move", time.Duration(o.Start), time.Duration(o.End))
		}
	}
}
