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
//
// Checks and their constructors (each validates its config):
//
//	NewTCP("10.0.0.5:5432")
//	NewHTTP(HTTPConfig{URL, ExpectStatus, BodyContains, BodyRegexp, InsecureSkipVerify})
//	NewExec(ExecConfig{Argv: []string{"/usr/local/bin/check"}})
//	NewProcessByPidfile("/run/app.pid"), NewProcessByName("haproxy")
//	NewICMP(ICMPConfig{Target: "192.0.2.1"}), NewARP(ARPConfig{Target: "192.0.2.1"})
//	NewDiskSpace(DiskSpaceConfig{Path, MinFreePercent, MinFreeInodesPercent}), NewWritable("/data")
//	NewLoad(LoadConfig{MaxPerCPU: 2}), NewMemory(MemoryConfig{MinAvailablePercent: 5})
//	NewPostgres(PostgresConfig{DSN, Query, Role, MaxLagBytes, MaxLagSeconds, MinSyncStandbys})
//	NewMySQL(MySQLConfig{DSN, Query, Role, MaxSecondsBehind})
//
// Typical wiring:
//
//	r := probes.NewRunner(probes.Options{Logger: log})
//	_ = r.Add(probes.Spec{Name: "pg", Check: pg, Every: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3})
//	go r.Run(ctx)
//	for f := range r.Changes() { ... }   // or poll r.Snapshot()
package probes
