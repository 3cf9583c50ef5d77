// Package e2emysql proves the MySQL/MariaDB database resource with real
// servers under real agents: a MariaDB primary on node1 and a GTID replica
// on node2 of an internal/clustertest lab, `harules run` on both with the
// group [database(engine="mysql"), vip, service], and a client in the
// client namespace writing numbered rows through the VIP, each insert its
// own autocommit transaction. The tests crash node1, kill -9 its mariadbd,
// or move the group by hand (also to a replica lagging behind over
// asynchronous replication), and check that node2 is promoted (replication
// stopped and reset, read_only off) and takes writes on the VIP, that every
// acknowledged row is on the new primary, and that there were never two
// writable primaries (both servers' @@global.read_only and the VIP sampled
// throughout). They log the client's write-unavailability window. After a
// crash, TestRejoinOldPrimaryAndMoveBack brings node1 back read-only,
// rejoins it as node2's replica with `harules database rejoin` and moves
// the group back to it, losing nothing. TestStalePrimaryRefused brings
// node1 back without the rejoin and crashes node2: node1, behind the GTID
// position node2 last reported, is refused instead of made writable.
//
// The replication is semi-synchronous with rpl_semi_sync_master_wait_point
// = AFTER_SYNC: node1 acknowledges a commit to the client only after node2
// has its binlog events, which is what makes "no acknowledged row lost"
// hold for a crash (with plain asynchronous replication a crash may lose
// the last commits; a planned move loses none either way, because the
// resource waits for the replica to catch up with the fenced primary).
// Only node1 has the semi-sync primary side enabled, so the promoted node2
// (without a replica) does not wait rpl_semi_sync_master_timeout per write.
//
// Each node's mariadbd runs as user mysql in the node's namespace, with its
// own data dir, socket and tmpdir, on port 3306 of every address of that
// namespace (lan, backnet, the VIP when present, loopback). The agents
// reach their own server at 127.0.0.1:3306, so one policy serves both.
//
// The tests need root, the Debian package mariadb-server (10.11) and
// iproute2; the package has no code outside its tests.
// HARULES_E2EMYSQL_RUNS=N repeats every case N times and logs the median,
// minimum and maximum window.
package e2emysql
