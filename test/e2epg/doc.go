// Package e2epg proves the database resource (issue 4) with real servers
// under real agents: a PostgreSQL 15 primary on node1 and a synchronous
// streaming standby on node2 of an internal/clustertest lab, `harules run`
// on both with the group [database(synchronous=True), vip, service], and a
// client in the client namespace writing numbered rows through the VIP,
// each insert its own transaction. The tests crash node1, kill -9 its
// postmaster, or move the group by hand, and check that node2 is promoted
// and takes writes on the VIP, that every acknowledged row is on the new
// primary, and that there were never two writable primaries (the servers'
// pg_is_in_recovery() and the VIP sampled throughout). They log the
// client's write-unavailability window. TestStalePrimaryRefused crashes
// both nodes in turn and checks that the old primary, behind the position
// node2 last reported, is refused instead of serving its stale timeline.
//
// One policy serves both nodes, so the servers' data directory and socket
// directory must have the same path on both. Each node's processes (the
// agent started through a small wrapper, and the server) run in the private
// mount namespace `ip netns exec` gives them, where the node's own directory
// is bind-mounted on a common path.
//
// The tests need root, the Debian package postgresql (15), util-linux
// (setpriv, mount) and iproute2; the package has no code outside its tests.
// HARULES_E2EPG_RUNS=N repeats every case N times and logs the median
// window.
package e2epg
