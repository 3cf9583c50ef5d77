package clustertest

import (
	"fmt"
	"strings"
)

// Fixed addresses of the lab. Node i (1-based) is 198.51.100.i on the lan
// bridge (eth0) and 203.0.113.i on the backnet bridge (eth1).
const (
	VIP         = "198.51.100.100"
	VIPPrefix   = VIP + "/24"
	ClientAddr  = "198.51.100.50"
	WatchAddr   = "198.51.100.49"
	GatewayAddr = "198.51.100.254"
	// AppPort is where every node's name server listens (0.0.0.0).
	AppPort = 8080
	// Group is the group the default policy declares.
	Group = "web"
	// LanPort and BacknetPort are the heartbeat ports of the default policy.
	LanPort     = 7001
	BacknetPort = 7002
)

// The IPv6 lab (Options.IPv6): the same hosts also have these addresses,
// and the policy uses them for heartbeats and the VIP.
const (
	VIP6        = "2001:db8::100"
	VIP6Prefix  = VIP6 + "/64"
	ClientAddr6 = "2001:db8::50"
)

// LanAddr6 is node i's IPv6 address on the lan bridge (i from 1).
func LanAddr6(i int) string { return fmt.Sprintf("2001:db8::%d", i) }

// BacknetAddr6 is node i's IPv6 address on the backnet bridge (i from 1).
func BacknetAddr6(i int) string { return fmt.Sprintf("2001:db8:1::%d", i) }

// LanAddr is node i's address on the lan bridge (i from 1).
func LanAddr(i int) string { return fmt.Sprintf("198.51.100.%d", i) }

// BacknetAddr is node i's address on the backnet bridge (i from 1).
func BacknetAddr(i int) string { return fmt.Sprintf("203.0.113.%d", i) }

// NodeName is the policy name of node i (i from 1).
func NodeName(i int) string { return fmt.Sprintf("node%d", i) }

// PolicyOptions shapes the default policy: one active/standby group "web"
// with the VIP and a service, two heartbeat paths (lan, backnet) and a
// path-down alert rule.
type PolicyOptions struct {
	// Cluster name; default "e2e".
	Cluster string
	// Interval and Misses of both heartbeat paths; default 100ms and 15:
	// a dead peer is declared after ~1.5 s, which does not flap on a busy
	// 2-core CI machine (load 15 stalls processes for hundreds of ms).
	Interval string
	Misses   int
	// Failback of the placement, "manual" (default) or "auto", and its
	// delay (default "0s").
	Failback      string
	FailbackDelay string
	// GatewayGuard adds probe "gateway" (ICMP to GatewayAddr every 200 ms)
	// and rule gateway_guard("gateway").
	GatewayGuard bool
	// ServiceCommand is the group's service command as a Starlark
	// expression (a string or a list); default a long sleep (the answering
	// server runs outside harules, see Cluster.StartApps).
	ServiceCommand string
	// ServiceName names the group's service; default "app". Cluster.Policy
	// makes it unique per cluster: harules marks service processes with
	// node/service and ends every marked process it did not start, so two
	// clusters on one machine (parallel tests) with equal names would kill
	// each other's services.
	ServiceName string
	// Extra is appended verbatim (more rules, probes...).
	Extra string
	// Resources are Starlark resource expressions put first in the group's
	// resources, in order (e.g. a shared disk(...) the service needs).
	Resources []string
	// IPv6 makes both heartbeat paths and the VIP IPv6 (LanAddr6,
	// BacknetAddr6, VIP6Prefix); Options.IPv6 sets it.
	IPv6 bool
	// DiskHeartbeat, when set, adds a third heartbeat path "disk" of kind
	// "disk" on that device (a formatted lease area, see LoopDevice), with
	// the interval and misses of the UDP paths.
	DiskHeartbeat string
}

// Policy renders the default policy for n nodes.
func Policy(n int, o PolicyOptions) string {
	if o.Cluster == "" {
		o.Cluster = "e2e"
	}
	if o.Interval == "" {
		o.Interval = "100ms"
	}
	if o.Misses == 0 {
		o.Misses = 15
	}
	if o.Failback == "" {
		o.Failback = "manual"
	}
	if o.FailbackDelay == "" {
		o.FailbackDelay = "0s"
	}
	if o.ServiceName == "" {
		o.ServiceName = "app"
	}
	if o.ServiceCommand == "" {
		o.ServiceCommand = `["sleep", "1000000"]`
	}
	var b strings.Builder
	b.WriteString("load(\"@stdlib//placement.star\", \"active_standby\")\n")
	b.WriteString("load(\"@stdlib//rules.star\", \"gateway_guard\", \"path_down_alert\")\n")
	fmt.Fprintf(&b, "cluster(name = %q, secret_file = \"secret\")\n", o.Cluster)
	var names []string
	for i := 1; i <= n; i++ {
		lan, back := LanAddr(i), BacknetAddr(i)
		if o.IPv6 {
			lan, back = LanAddr6(i), BacknetAddr6(i)
		}
		fmt.Fprintf(&b, "node(%q, address = %q, addresses = {\"backnet\": %q})\n", NodeName(i), lan, back)
		names = append(names, fmt.Sprintf("%q", NodeName(i)))
	}
	fmt.Fprintf(&b, "heartbeat(\"lan\", interval = %q, misses = %d, port = %d)\n", o.Interval, o.Misses, LanPort)
	fmt.Fprintf(&b, "heartbeat(\"backnet\", interval = %q, misses = %d, port = %d)\n", o.Interval, o.Misses, BacknetPort)
	if o.DiskHeartbeat != "" {
		fmt.Fprintf(&b, "heartbeat(\"disk\", kind = \"disk\", device = %q, interval = %q, misses = %d)\n", o.DiskHeartbeat, o.Interval, o.Misses)
	}
	vipPrefix := VIPPrefix
	if o.IPv6 {
		vipPrefix = VIP6Prefix
	}
	var extraResources string
	for _, r := range o.Resources {
		extraResources += "        " + r + ",\n"
	}
	if o.GatewayGuard {
		fmt.Fprintf(&b, "probe(\"gateway\", check.gateway(%q), every = \"200ms\", timeout = \"150ms\", fall = 2, rise = 1)\n", GatewayAddr)
	}
	fmt.Fprintf(&b, `group(%q,
    resources = [
%s        vip(%q, interface = "eth0", arp_count = 2, arp_interval = "50ms"),
        service(%q, command = %s),
    ],
    placement = active_standby([%s], failback = %q, failback_delay = %q),
)
`, Group, extraResources, vipPrefix, o.ServiceName, o.ServiceCommand, strings.Join(names, ", "), o.Failback, o.FailbackDelay)
	b.WriteString("rule(\"path-alert\", when = path_down_alert())\n")
	if o.GatewayGuard {
		b.WriteString("rule(\"gateway-guard\", when = gateway_guard(\"gateway\"))\n")
	}
	if o.Extra != "" {
		b.WriteString(o.Extra)
		b.WriteString("\n")
	}
	return b.String()
}
