package e2epg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/dbtest"
	"github.com/harules/harules/internal/netnstest"
	"github.com/harules/harules/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

const (
	skipEnv = "HARULES_SKIP_ROOT_TESTS"
	runsEnv = "HARULES_E2EPG_RUNS"
	// pgPort is every server's port (each in its own namespace).
	pgPort = 5432
	// group is the default policy's group, which holds the database.
	group = clustertest.Group
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeTemplate()
	clustertest.RemoveBuild()
	os.Exit(code)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := fmt.Sprintf("THIS TEST NEEDS ROOT (network namespaces, mounts, PostgreSQL as user postgres); running as uid %d. Run `go test` as root, or set %s=1 to skip it.", os.Geteuid(), skipEnv)
	if os.Getenv(skipEnv) == "1" {
		t.Skip("SKIPPED: " + msg)
	}
	t.Fatal(msg)
}

// runs is how many times each case runs (HARULES_E2EPG_RUNS, default 1).
func runs(t *testing.T) int {
	v := os.Getenv(runsEnv)
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", runsEnv, v)
	}
	return n
}

// pgBin is the newest PostgreSQL server bin dir of the Debian packages.
func pgBin(t testing.TB) string {
	t.Helper()
	return pgtest.BinDir(t, "pg_basebackup")
}

type osUser struct {
	name     string
	uid, gid int
}

func postgresUser(t testing.TB) osUser {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("system user postgres is missing (%v): apt-get install -y postgresql", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{name: "postgres", uid: uid, gid: gid}
}

// runAs runs argv as u in the root namespace and returns its output.
func runAs(ctx context.Context, u osUser, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return string(out), nil
}

// The initdb'd data directory every test copies, made once per test binary.
var tmpl struct {
	mu     sync.Mutex
	parent string
}

// template returns a fresh primary's data directory: trust auth, listening
// on every address of its namespace (the lan address and the VIP), WAL and
// replication for a synchronous standby, pg_rewind-ready.
func template(t testing.TB, bin string, u osUser) string {
	t.Helper()
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	if tmpl.parent != "" {
		return filepath.Join(tmpl.parent, "data")
	}
	parent, err := os.MkdirTemp("", "hrpg-tmpl-")
	if err != nil {
		t.Fatalf("template dir: %v", err)
	}
	chownAll(t, parent, u)
	data := filepath.Join(parent, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := runAs(ctx, u, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(parent)
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := `
listen_addresses = '0.0.0.0'
port = 5432
wal_level = replica
synchronous_standby_names = '*'
wal_log_hints = on
wal_keep_size = '64MB'
shared_buffers = '16MB'
max_connections = 40
logging_collector = off
log_line_prefix = '%m [%p] '
# A standby whose primary restarted reconnects within 200 ms, not 5 s.
wal_retrieve_retry_interval = '200ms'
`
	hba := "host all all 198.51.100.0/24 trust\nhost replication all 198.51.100.0/24 trust\n"
	appendFile(t, filepath.Join(data, "postgresql.conf"), conf)
	appendFile(t, filepath.Join(data, "pg_hba.conf"), hba)
	tmpl.parent = parent
	return data
}

func removeTemplate() {
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	if tmpl.parent != "" {
		os.RemoveAll(tmpl.parent)
		tmpl.parent = ""
	}
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("append to %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatalf("append to %s: %v", path, err)
	}
}

func chownAll(t testing.TB, dir string, u osUser) {
	t.Helper()
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", dir, err)
	}
}

// pgLab is a clustertest cluster whose group "web" is
// [database("db"), vip, service], with a PostgreSQL primary on node1 and a
// synchronous standby on node2.
type pgLab struct {
	t   *testing.T
	c   *clustertest.Cluster
	bin string
	as  osUser
	// base holds node1/ and node2/ (each data/ and sock/) and cur/, where
	// each node's namespace sees its own directory.
	base, cur string
	clientNS  string
}

// nodeDir is node's own directory as the root namespace sees it.
func (l *pgLab) nodeDir(node string) string { return filepath.Join(l.base, node) }

// DSN the agents use: the server's socket dir under the common path.
func (l *pgLab) agentDSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres connect_timeout=2", filepath.Join(l.cur, "sock"), pgPort)
}

// labPolicy is the operator's policy for the lab: heartbeats every 200 ms,
// a peer dead after 5 misses; the database first in the group (the VIP
// follows, so clients only reach a writable primary); a postgres probe on
// every node and a rule that moves the group away from an owner whose
// probe has failed for 2 s (the resource monitor usually acts first).
func (l *pgLab) labPolicy() clustertest.PolicyOptions {
	db := fmt.Sprintf(`database("db", engine = "postgres", dsn = %q, data_dir = %q, synchronous = True, on_promote_sync = "clear", max_lag_bytes = %d, timeout = "30s")`,
		l.agentDSN(), filepath.Join(l.cur, "data"), 16<<20)
	extra := fmt.Sprintf(`load("@stdlib//rules.star", "move_when_failing")
probe("pg", check.postgres(%q), every = "500ms", timeout = "400ms", fall = 2, rise = 1)
rule("db-health", when = move_when_failing(%q, "pg"), for_ = "2s")
`, l.agentDSN(), group)
	return clustertest.PolicyOptions{Interval: "200ms", Misses: 5, Resources: []string{db}, Extra: extra}
}

// newPgLab builds the lab, starts both servers (node2 cloned from node1
// with pg_basebackup and streaming synchronously), creates the table and
// starts both agents; node1 holds the group when it returns.
func newPgLab(t *testing.T) *pgLab {
	t.Helper()
	requireRoot(t)
	l := &pgLab{t: t, bin: pgBin(t), as: postgresUser(t)}
	for _, tool := range []string{"setpriv", "mount", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y util-linux mount iproute2", tool)
		}
	}
	base, err := os.MkdirTemp("", "hrpg-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	// Registered before the cluster: removed after its cleanup killed
	// every process (servers included) in the namespaces.
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	l.base, l.cur = base, filepath.Join(base, "cur")
	for _, d := range []string{l.cur, l.nodeDir("node1"), l.nodeDir("node2"), filepath.Join(l.nodeDir("node1"), "sock"), filepath.Join(l.nodeDir("node2"), "sock")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		chownAll(t, d, l.as)
	}

	l.c = clustertest.New(t, clustertest.Options{Policy: l.labPolicy()})
	l.clientNS = l.c.NS("client")
	// The agents start through a wrapper that gives their mount namespace
	// the node's own directory at the common path.
	wrapper := filepath.Join(base, "harules-node.sh")
	script := fmt.Sprintf("#!/bin/sh\nmount --bind %q/\"$HARULES_NODE\" %q || exit 1\nexec %q \"$@\"\n", base, l.cur, l.c.Bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l.c.Bin = wrapper

	// node1: a primary from the template.
	tpl := template(t, l.bin, l.as)
	if out, err := exec.Command("cp", "-a", tpl, filepath.Join(l.nodeDir("node1"), "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy template: %v\n%s", err, out)
	}
	appendFile(t, filepath.Join(l.nodeDir("node1"), "data", "postgresql.conf"),
		fmt.Sprintf("unix_socket_directories = '%s'\ncluster_name = 'node1'\n", filepath.Join(l.cur, "sock")))
	l.startServer("node1")
	l.waitServer("node1", false)

	// node2: a synchronous standby cloned over the lan.
	out, err := l.c.Lab.Exec("node2", "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
		filepath.Join(l.bin, "pg_basebackup"), "-D", filepath.Join(l.nodeDir("node2"), "data"), "-R", "-X", "stream", "-c", "fast",
		"-d", fmt.Sprintf("host=%s port=%d user=postgres application_name=node2", clustertest.LanAddr(1), pgPort))
	if err != nil {
		t.Fatalf("pg_basebackup on node2: %v\n%s", err, out)
	}
	appendFile(t, filepath.Join(l.nodeDir("node2"), "data", "postgresql.conf"), "cluster_name = 'node2'\n")
	l.startServer("node2")
	l.waitServer("node2", true)
	l.waitFor(30*time.Second, "node2 streams to node1 as its synchronous standby", func() bool {
		var n int
		err := l.query("node1", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'", &n)
		return err == nil && n == 1
	})
	if err := l.exec("node1", "CREATE TABLE rows (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		t.Fatalf("create table: %v", err)
	}

	l.c.StartAll()
	l.c.WaitOwner("node1", group, "node1", 30*time.Second)
	// The agent's start released the group (a fast shutdown of the
	// primary) and its promotion started the server again before the
	// standby was back, so on_promote_sync="clear" emptied
	// synchronous_standby_names; the monitor re-arms it once the standby
	// streams. Only from then on is no acknowledged write lost.
	l.waitSynchronous("node1")
	return l
}

// waitSynchronous waits until node's primary replicates synchronously.
func (l *pgLab) waitSynchronous(node string) {
	l.t.Helper()
	l.waitFor(30*time.Second, node+" has synchronous_standby_names set and a synchronous standby streaming", func() bool {
		var names string
		var n int
		err := l.query(node, `SELECT current_setting('synchronous_standby_names'),
			(SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync')`, &names, &n)
		return err == nil && names != "" && n == 1
	})
}

// startServer runs node's postmaster in the node's namespace, in a mount
// namespace of its own where the node's directory is the common path.
func (l *pgLab) startServer(node string) {
	l.t.Helper()
	script := fmt.Sprintf("mount --bind %q %q && exec setpriv --reuid=postgres --regid=postgres --init-groups %q -D %q",
		l.nodeDir(node), l.cur, filepath.Join(l.bin, "postgres"), filepath.Join(l.cur, "data"))
	l.c.StartDaemon(node, "postgres-"+node, nil, "sh", "-c", script)
}

// postmasterPID reads node's postmaster.pid.
func (l *pgLab) postmasterPID(node string) int {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.nodeDir(node), "data", "postmaster.pid"))
	if err != nil {
		l.t.Fatalf("postmaster.pid of %s: %v", node, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		l.t.Fatalf("postmaster.pid of %s: %q", node, first)
	}
	return pid
}

// waitServer waits until node's server answers over the lan in the role
// wanted (standby: in recovery).
func (l *pgLab) waitServer(node string, standby bool) {
	l.t.Helper()
	l.waitFor(60*time.Second, fmt.Sprintf("the server of %s answers (standby=%v)", node, standby), func() bool {
		var rec bool
		return l.query(node, "SELECT pg_is_in_recovery()", &rec) == nil && rec == standby
	})
}

func (l *pgLab) waitFor(timeout time.Duration, what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientConfig is a pgx config for host from the client namespace: every
// connection is dialled there.
func (l *pgLab) clientConfig(host string, connectTimeout time.Duration) *pgx.ConnConfig {
	l.t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", host, pgPort))
	if err != nil {
		l.t.Fatalf("pgx config: %v", err)
	}
	cfg.ConnectTimeout = connectTimeout
	ns := l.clientNS
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := netnstest.DoIn(ns, func() error {
			var d net.Dialer
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return cfg
}

// query runs one query on node's server (over the lan, from the client
// namespace) and scans one row.
func (l *pgLab) query(node, sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.clientConfig(clustertest.LanAddr(nodeIndex(node)), 2*time.Second))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

func (l *pgLab) exec(node, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.clientConfig(clustertest.LanAddr(nodeIndex(node)), 2*time.Second))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// rowsOn returns the row numbers stored on node's server.
func (l *pgLab) rowsOn(node string) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.clientConfig(clustertest.LanAddr(nodeIndex(node)), 2*time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT n FROM rows")
	if err != nil {
		return nil, err
	}
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ns))
	for _, n := range ns {
		out[n] = true
	}
	return out, nil
}

func nodeIndex(node string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(node, "node"))
	if err != nil {
		panic("not a node name: " + node)
	}
	return i
}

// ack is one insert the client saw committed (Server: the cluster_name of
// the server that committed it).
type ack = dbtest.Ack

// writer inserts rows 1, 2, 3... through the VIP, each in its own
// transaction, one at a time, and records the acknowledged ones. A failed
// insert (unknown outcome) is not retried: the next one gets a new number.
type writer struct {
	stop chan struct{}
	done chan struct{}
	dbtest.Writes
}

func (l *pgLab) startWriter() *writer {
	l.t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	cfg := l.clientConfig(clustertest.VIP, 500*time.Millisecond)
	go w.run(cfg)
	l.t.Cleanup(func() { w.Stop() })
	return w
}

func (w *writer) run(cfg *pgx.ConnConfig) {
	defer close(w.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var n int64
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := pgx.ConnectConfig(ctx, cfg.Copy())
			cancel()
			if err != nil {
				w.Fail(err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			conn = c
		}
		n++
		// A commit waits for the synchronous standby; on a busy 2-core
		// machine that can take a while, but a dead server must not hold
		// the client for long.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var server string
		err := conn.QueryRow(ctx, "INSERT INTO rows (n) VALUES ($1) RETURNING current_setting('cluster_name')", n).Scan(&server)
		cancel()
		if err != nil {
			w.Fail(err)
			closeCtx, c2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
			conn.Close(closeCtx)
			c2()
			conn = nil
			continue
		}
		w.Add(ack{N: n, At: time.Now(), Server: server})
	}
}

// Stop ends the writer (idempotent) and returns every acknowledgement.
func (w *writer) Stop() []ack {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.Acks()
}

// roleSample is one pg_is_in_recovery() answer (or failure) of a server;
// Writable means it was not in recovery (a primary).
type roleSample = dbtest.RoleSample

// startRoleSampler asks both servers over the lan, concurrently, every
// interval whether they are in recovery, on connections kept open between
// rounds.
func (l *pgLab) startRoleSampler(interval time.Duration) *dbtest.RoleSampler {
	l.t.Helper()
	nodes := l.c.Nodes()
	cfgs := map[string]*pgx.ConnConfig{}
	for _, n := range nodes {
		cfgs[n] = l.clientConfig(clustertest.LanAddr(nodeIndex(n)), 200*time.Millisecond)
	}
	var mu sync.Mutex
	conns := map[string]*pgx.Conn{}
	// Registered before the sampler's own cleanup, so it runs after the
	// sampler stopped.
	l.t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close(context.Background())
		}
	})
	return dbtest.StartRoleSampler(l.t, nodes, interval, func(ctx context.Context, n string) (bool, error) {
		mu.Lock()
		conn := conns[n]
		mu.Unlock()
		var err error
		if conn == nil {
			conn, err = pgx.ConnectConfig(ctx, cfgs[n].Copy())
		}
		var inRecovery bool
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
		}
		mu.Lock()
		if err != nil && conn != nil {
			go conn.Close(context.Background())
			conn = nil
		}
		if conn == nil {
			delete(conns, n)
		} else {
			conns[n] = conn
		}
		mu.Unlock()
		return !inRecovery, err
	})
}

// roleTimeline summarises the samples as runs of equal state per node.
func roleTimeline(samples []roleSample) string {
	return dbtest.RoleTimeline(samples, "standby", "PRIMARY")
}

// window is the client's write unavailability around a failover.
type window struct {
	// LastOld is the last insert acknowledged by the old primary before
	// the event, FirstNew the first acknowledged by the new primary.
	LastOld, FirstNew ack
	Event             time.Time
}

// Gap is the time between the two acknowledgements.
func (w window) Gap() time.Duration { return w.FirstNew.At.Sub(w.LastOld.At) }

// FromEvent is the time from the event to the first write on the new
// primary.
func (w window) FromEvent() time.Duration { return w.FirstNew.At.Sub(w.Event) }

func (w window) String() string {
	return fmt.Sprintf("writes unavailable for %s (last ack from %s #%d, first from %s #%d %s after the event)",
		w.Gap().Round(time.Millisecond), w.LastOld.Server, w.LastOld.N, w.FirstNew.Server, w.FirstNew.N, w.FromEvent().Round(time.Millisecond))
}

// writeWindow finds the switch from old to new in acks.
func writeWindow(acks []ack, event time.Time, old, new string) (window, error) {
	w := window{Event: event}
	var haveOld bool
	for _, a := range acks {
		switch {
		case a.Server == old && a.At.Before(event):
			w.LastOld, haveOld = a, true
		case a.Server == new && !a.At.Before(event):
			if !haveOld {
				return w, errors.New("no insert was acknowledged by " + old + " before the event")
			}
			w.FirstNew = a
			return w, nil
		}
	}
	return w, fmt.Errorf("no insert was acknowledged by %s after the event", new)
}
