// Package builtins is the Starlark vocabulary of harules policies: the
// declarations (cluster, node, heartbeat, probe, check.*, group, vip, disk,
// service, database, placement, rule, backup), the decisions rules return
// (move, ban, prefer, no_takeover, stop, standby, alert), and the Starlark
// view of facts that rules read.
//
// Declarations only record typed values in a Collector; nothing here does
// I/O. The Go code that really acts lives in the sub-packages (vip, service,
// backup, ...), behind the engine's executor.
package builtins
