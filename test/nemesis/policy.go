package nemesis

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

// The guards of docs/policy.md ("Split brain: what the guards can and cannot
// do"), as the docs write them, so the run tests what the docs promise:
// the gateway probe, gateway_guard, self_fence and takeover_delay_guard
// (which derives the takeover delay from the probe and heartbeat timing).
const (
	gatewayProbeEvery = time.Second
	gatewayProbeFall  = 2
)

// guardsTwoNodes are the probe and rules docs/policy.md recommends for two
// nodes: gateway guard, self-fence and takeover delay.
func guardsTwoNodes(time.Duration) string {
	return fmt.Sprintf(`probe("gateway", check.gateway(%q), every = %q, fall = %d, rise = 1)
rule("gateway-guard", when = gateway_guard("gateway"))
rule("self-fence", when = self_fence("gateway"))
rule("takeover-delay", when = takeover_delay_guard("gateway"))
`, clustertest.GatewayAddr, gatewayProbeEvery.String(), gatewayProbeFall)
}

// guardsQuorum is the quorum rule docs/policy.md recommends for three or
// more nodes (its load is in the policy's header).
var guardsQuorum = fmt.Sprintf("rule(\"quorum\", when = quorum(settle = %q))\n", quorumSettle.String())

// quorumSettle is the settle docs/policy.md uses.
const quorumSettle = time.Second

// serviceScript is the group's service: a marker file per node, written by
// start and removed by stop, whose start and stop can be made slow or
// failing at run time by files the nemesis writes (ctl/NODE/slow-start holds
// the seconds to sleep, ctl/NODE/fail-stop makes stop exit 1...). The app
// server answers through the VIP only while the marker exists, so a client
// answer means "the service runs where the VIP is".
const serviceScript = `#!/bin/sh
# nemesis service: start/stop/monitor a marker file; slowed or failed on demand.
set -u
n=${HARULES_NODE:?HARULES_NODE not set}
d=%s/$n
mkdir -p "$d"
case "$1" in
start|stop)
	if [ -f "$d/slow-$1" ]; then sleep "$(cat "$d/slow-$1")"; fi
	if [ -f "$d/fail-$1" ]; then echo "nemesis: $1 fails on purpose" >&2; exit 1; fi
	if [ "$1" = start ]; then touch "$d/running"; else rm -f "$d/running"; fi
	;;
monitor)
	[ -f "$d/running" ]
	;;
*)
	echo "usage: $0 start|stop|monitor" >&2; exit 2
	;;
esac
`

// policyText renders the nemesis policy for n nodes: two heartbeat paths,
// one group (VIP + the switchable script service) and the documented
// guards for the cluster size.
func policyText(n int, cfg Config, script string) string {
	var b strings.Builder
	b.WriteString("load(\"@stdlib//placement.star\", \"active_standby\")\n")
	if n == 2 {
		b.WriteString("load(\"@stdlib//rules.star\", \"gateway_guard\", \"path_down_alert\", \"self_fence\", \"takeover_delay_guard\")\n")
	} else {
		b.WriteString("load(\"@stdlib//rules.star\", \"path_down_alert\", \"quorum\")\n")
	}
	// failure_timeout shorter than the default minute: a short run fails
	// starts on purpose on both nodes, and a group banned everywhere for a
	// minute would only measure the ban.
	fmt.Fprintf(&b, "cluster(name = \"nemesis\", secret_file = \"secret\", failure_timeout = %q)\n", cfg.FailureTimeout.String())
	var names []string
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "node(%q, address = %q, addresses = {\"backnet\": %q})\n",
			clustertest.NodeName(i), clustertest.LanAddr(i), clustertest.BacknetAddr(i))
		names = append(names, fmt.Sprintf("%q", clustertest.NodeName(i)))
	}
	fmt.Fprintf(&b, "heartbeat(\"lan\", interval = %q, misses = %d, port = %d)\n", cfg.Interval.String(), cfg.Misses, clustertest.LanPort)
	fmt.Fprintf(&b, "heartbeat(\"backnet\", interval = %q, misses = %d, port = %d)\n", cfg.Interval.String(), cfg.Misses, clustertest.BacknetPort)
	fmt.Fprintf(&b, `group(%q,
    resources = [
        vip(%q, interface = "eth0", arp_count = 2, arp_interval = "50ms"),
        service("nemesis-svc", start = [%q, "start"], stop = [%q, "stop"], monitor = [%q, "monitor"]),
    ],
    placement = active_standby([%s], failback = "manual"),
)
`, clustertest.Group, clustertest.VIPPrefix, script, script, script, strings.Join(names, ", "))
	b.WriteString("rule(\"path-alert\", when = path_down_alert())\n")
	if n == 2 {
		b.WriteString(guardsTwoNodes(cfg.Interval))
	} else {
		b.WriteString(guardsQuorum)
	}
	return b.String()
}

// writeServiceScript writes the service script into dir and returns its
// path and the control directory the faults toggle.
func writeServiceScript(dir string) (script, ctl string, err error) {
	ctl = filepath.Join(dir, "ctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		return "", "", fmt.Errorf("control dir: %w", err)
	}
	script = filepath.Join(dir, "nemesis-svc.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(serviceScript, ctl)), 0o755); err != nil {
		return "", "", fmt.Errorf("service script: %w", err)
	}
	return script, ctl, nil
}
