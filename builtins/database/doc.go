// Package database makes a node's database server the writable primary and
// stops it being one: the executor side of the policy's
// database(name, engine=..., dsn=..., data_dir=..., max_lag_bytes=...,
// synchronous=...) resource.
//
// The engine starts a group's resources on the new owner and stops them in
// reverse order on the old one, so for a database Start means "become the
// primary" and Stop means "stop being the primary". Stop runs on the old
// owner before Start runs on the new one: the old primary is shut down (or
// made read-only) before the standby is promoted and the VIP moves, so no
// write can land on two servers.
//
// Usage from an executor:
//
//	db, err := database.New(r.Name, r.Params, log) // engine from params
//	err = db.Start(ctx)   // promote / make writable (refuses a lagging standby)
//	err = db.Stop(ctx)    // fast shutdown (PostgreSQL) or read_only (MySQL)
//	err = db.Monitor(ctx) // reachable and primary
//
// PostgreSQL: Start promotes a streaming standby with pg_promote after
// checking its replay lag against max_lag_bytes (Patroni's
// maximum_lag_on_failover), starting the server with pg_ctl first when it
// is down; with synchronous=true it then keeps or clears
// synchronous_standby_names (on_promote_sync) so the new primary either
// blocks writes until a standby attaches (zero loss) or accepts them at
// once (availability). Stop is a fast shutdown of a primary; a standby keeps
// running. (*Postgres).Rejoin turns an old primary into a standby of the new
// one with pg_rewind.
//
// MySQL/MariaDB: Start promotes a replica (when its source still answers
// read-only, as after a planned move, first receives and applies the
// source's whole binlog; then applies the relay log, STOP/RESET REPLICA
// ALL) and clears read_only; Stop sets read_only (super_read_only where it
// exists) and succeeds on a server that is not running. StartWith with
// StartInfo.Takeover (the holder was declared dead) skips the source:
// no catch-up probe, and the IO thread is KILLed rather than stopped (a
// semi-sync replica's STOP waits for the dead source). (*MySQL).Rejoin
// makes an old MariaDB primary a read-only GTID replica of the new one,
// refusing with ErrErrantTransactions when it would diverge.
//
// Positions: (*Postgres).Position and (*MySQL).Position tell how far the
// server's history has got (timeline and LSN; MariaDB gtid_current_pos).
// The agent publishes them in its heartbeat reports and passes the peers'
// last ones to StartWith (StartInfo.Peers); Start then refuses with
// ErrBehindPeer (unless force) a server that is behind one of them, e.g. an
// old primary on a timeline a promoted standby has left.
package database
