// Package probes runs the live health probes of the harules node agent.
//
// A policy declares probes with probe(name, check, every=..., timeout=...,
// rise=..., fall=...). This package provides the checks themselves (TCP,
// HTTP, exec, process, ICMP and ARP gateway reachability, disk space and
// writability, load and memory, PostgreSQL and MySQL/MariaDB) and a Runner
// that schedules them and turns their raw results into debounced Facts the
// engine consumes.
//
// Two rules shape the design. First, the runner never blocks on a check: every
// run happens in its own goroutine under a deadline, and a check that ignores
// its context (a hung NFS statfs, a stopped database) is abandoned at the
// deadline and reported as a timeout; at most one such stray run per probe is
// outstanding, so a hung dependency cannot pile up goroutines. Second, the
// state logic (rise/fall thresholds and flap damping) lives in Debouncer, a
// pure type driven by injected times, so the simulator can reuse it verbatim.
package probes
