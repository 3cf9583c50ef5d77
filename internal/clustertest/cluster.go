// Package clustertest runs real harules clusters in network namespaces for
// end-to-end tests and benchmarks.
//
// A Cluster is N HA nodes and one client, built with internal/netnstest:
//
//	lan bridge      198.51.100.0/24: nodeI eth0 = .I, client eth0 = .50 and
//	                the "gateway" .254 (a second address of the client),
//	                the ARP watcher's host "watch" .49
//	backnet bridge  203.0.113.0/24:  nodeI eth1 = .I
//
// The harules binary is built once per test process (Binary). Each node runs
// `harules run` (supervisor + agent child) in its namespace with its own
// state dir and control socket; the policy and its secret live in the
// cluster's directory. Independent of harules, every node runs a tiny TCP
// server on 0.0.0.0:AppPort that answers its node name (StartApps), so a
// client-side Prober sees which node owns the VIP, when, and the gap of a
// failover. An ARPWatcher (client side, broadcast who-has for the VIP) and an
// OwnershipSampler (netlink in every node namespace) detect two nodes
// holding the VIP at once.
//
// Everything (agents, services, namespaces, temp files) is removed in
// t.Cleanup even when the test fails; on failure the agents' logs are
// printed.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/netnstest"
)

// LogsEnv set to 1 prints the agents' logs even when the test passes.
const LogsEnv = "HARULES_E2E_LOGS"

// Options configures a cluster.
type Options struct {
	// Nodes is the number of HA nodes (default 2, at most 40).
	Nodes int
	// Policy shapes the default policy (see Policy).
	Policy PolicyOptions
	// PolicyText replaces the default policy when set.
	PolicyText string
	// NoHarules builds the topology only (no policy binary build); for
	// benchmarks of other HA managers on the same lab.
	NoHarules bool
	// IPv6 adds IPv6 addresses to every host (LanAddr6, BacknetAddr6,
	// ClientAddr6; the IPv4 ones stay) and makes the policy's heartbeat
	// paths and VIP IPv6 (VIP6); the prober, sampler and WaitOwner follow
	// the VIP. The ARP watcher stays IPv4-only.
	IPv6 bool
	// LogTail is how many lines of each agent log are printed when the test
	// fails (default 200; negative prints nothing).
	LogTail int
}

// Cluster is a lab of HA nodes plus a client.
type Cluster struct {
	t   testing.TB
	Lab *netnstest.Lab
	// Dir holds the policy, the secret, node state dirs and agent logs.
	Dir        string
	PolicyPath string
	Bin        string
	nodes      []string
	logTail    int
	// serviceName is unique per cluster (see PolicyOptions.ServiceName).
	serviceName string
	// vip is the VIP's address (VIP, or VIP6 in an IPv6 cluster).
	vip  string
	ipv6 bool

	mu      sync.Mutex
	agents  map[string]*agentProc
	crashed map[string]bool
	apps    []net.Listener
	// daemonLogs are the logs of StartDaemon processes.
	daemonLogs []string
}

type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	logf *os.File
}

// New builds the topology, writes the policy and secret, and registers
// cleanup. It does not start agents (Start/StartAll) or apps (StartApps).
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Nodes < 1 || o.Nodes > 40 {
		t.Fatalf("clustertest: Nodes=%d out of range 1..40", o.Nodes)
	}
	if o.LogTail == 0 {
		o.LogTail = 200
	}
	lab := netnstest.New(t)
	// Short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hrc-")
	if err != nil {
		t.Fatalf("clustertest: temp dir: %v", err)
	}
	c := &Cluster{t: t, Lab: lab, Dir: dir, PolicyPath: filepath.Join(dir, "policy.star"), logTail: o.LogTail,
		agents: map[string]*agentProc{}, crashed: map[string]bool{}, vip: VIP, ipv6: o.IPv6}
	if o.IPv6 {
		c.vip = VIP6
		o.Policy.IPv6 = true
	}
	t.Cleanup(c.cleanup)
	if !o.NoHarules {
		c.Bin = Binary(t)
	}

	lab.Bridge("lan")
	lab.Bridge("back")
	lab.Host("client")
	lab.Connect("client", "lan", "eth0", ClientAddr+"/24")
	lab.MustExec("client", "ip", "addr", "add", GatewayAddr+"/24", "dev", "eth0")
	// The ARP watcher asks from its own host: replies to its who-has would
	// otherwise refresh the client's neighbour cache and hide how long real
	// clients keep a stale MAC for the VIP.
	lab.Host("watch")
	lab.Connect("watch", "lan", "eth0", WatchAddr+"/24")
	if o.IPv6 {
		lab.MustExec("client", "ip", "-6", "addr", "add", ClientAddr6+"/64", "dev", "eth0")
	}
	for i := 1; i <= o.Nodes; i++ {
		n := NodeName(i)
		c.nodes = append(c.nodes, n)
		lab.Host(n)
		lab.Connect(n, "lan", "eth0", LanAddr(i)+"/24")
		lab.Connect(n, "back", "eth1", BacknetAddr(i)+"/24")
		if o.IPv6 {
			lab.MustExec(n, "ip", "-6", "addr", "add", LanAddr6(i)+"/64", "dev", "eth0")
			lab.MustExec(n, "ip", "-6", "addr", "add", BacknetAddr6(i)+"/64", "dev", "eth1")
		}
	}

	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("clustertest-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatalf("clustertest: secret: %v", err)
	}
	c.serviceName = "app-" + lab.Suffix()
	text := o.PolicyText
	if text == "" {
		text = c.Policy(o.Policy)
	}
	c.WritePolicy(text)
	return c
}

// VIPAddr is the address of the default policy's VIP (VIP, or VIP6 in an
// IPv6 cluster).
func (c *Cluster) VIPAddr() string { return c.vip }

// Nodes returns the HA node names (node1..nodeN).
func (c *Cluster) Nodes() []string { return slices.Clone(c.nodes) }

// NS returns the full namespace name of a node, "client" or "watch".
func (c *Cluster) NS(name string) string { return c.Lab.NS(name) }

// Policy renders the default policy for this cluster's nodes, with a
// service name unique to the cluster unless o names one.
func (c *Cluster) Policy(o PolicyOptions) string {
	if o.ServiceName == "" {
		o.ServiceName = c.serviceName
	}
	o.IPv6 = o.IPv6 || c.ipv6
	return Policy(len(c.nodes), o)
}

// ServiceName is the name of the default policy's service in this cluster.
func (c *Cluster) ServiceName() string { return c.serviceName }

// WritePolicy replaces the policy file (agents read it on start and reload).
func (c *Cluster) WritePolicy(text string) {
	c.t.Helper()
	if err := os.WriteFile(c.PolicyPath, []byte(text), 0o644); err != nil {
		c.t.Fatalf("clustertest: write policy: %v", err)
	}
}

// StateDir is a node's --state-dir.
func (c *Cluster) StateDir(node string) string { return filepath.Join(c.Dir, node) }

// ControlSocket is a node's control socket.
func (c *Cluster) ControlSocket(node string) string { return filepath.Join(c.Dir, node, "ctl.sock") }

// LogPath is the file a node's agent logs go to (appended across restarts).
func (c *Cluster) LogPath(node string) string { return filepath.Join(c.Dir, node+".log") }

// Start starts `harules run` on node and waits until its control socket
// answers a status request.
func (c *Cluster) Start(node string) {
	c.t.Helper()
	c.mu.Lock()
	if p := c.agents[node]; p != nil && !p.exited() {
		c.mu.Unlock()
		c.t.Fatalf("clustertest: agent on %s is already running", node)
	}
	c.mu.Unlock()
	if c.Bin == "" {
		c.t.Fatalf("clustertest: cluster built with NoHarules")
	}
	if err := os.MkdirAll(c.StateDir(node), 0o700); err != nil {
		c.t.Fatalf("clustertest: state dir: %v", err)
	}
	logf, err := os.OpenFile(c.LogPath(node), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("clustertest: log file: %v", err)
	}
	fmt.Fprintf(logf, "===== clustertest: start %s at %s =====\n", node, time.Now().Format(time.RFC3339Nano))
	cmd := c.Lab.Command(node, c.Bin, "run", "--policy", c.PolicyPath, "--node", node,
		"--state-dir", c.StateDir(node), "--control", c.ControlSocket(node))
	cmd.Env = append(os.Environ(), "HARULES_NODE="+node)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("clustertest: start agent on %s: %v", node, err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{}), logf: logf}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.mu.Lock()
	c.agents[node] = p
	c.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Status(node); err == nil {
			return
		} else if p.exited() {
			c.t.Fatalf("clustertest: agent on %s exited during start (%v); log:\n%s", node, p.err, c.tail(node, 60))
		} else if time.Now().After(deadline) {
			c.t.Fatalf("clustertest: agent on %s did not answer on its control socket within 30s: %v; log:\n%s", node, err, c.tail(node, 60))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartAll starts every node's agent, node1 first, and waits until every
// agent sees every peer alive.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for _, n := range c.nodes {
		c.Start(n)
	}
	c.WaitFor(30*time.Second, "every agent sees every peer alive", func() bool {
		for _, n := range c.nodes {
			st, err := c.Status(n)
			if err != nil {
				return false
			}
			for _, ns := range st.Nodes {
				if ns.State != "alive" {
					return false
				}
			}
			if len(st.Nodes) != len(c.nodes) {
				return false
			}
		}
		return true
	})
}

func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (c *Cluster) proc(node string) *agentProc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.agents[node]
	if p == nil {
		c.t.Fatalf("clustertest: no agent was started on %s", node)
	}
	return p
}

// Running reports whether node's supervisor process is still running.
func (c *Cluster) Running(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.agents[node]
	return p != nil && !p.exited()
}

// SupervisorPID is the pid of node's `harules run` supervisor.
func (c *Cluster) SupervisorPID(node string) int {
	c.t.Helper()
	return c.proc(node).cmd.Process.Pid
}

// AgentPID is the pid of the agent child of node's supervisor.
func (c *Cluster) AgentPID(node string) int {
	c.t.Helper()
	sup := c.SupervisorPID(node)
	kids, err := childrenOf(sup)
	if err != nil {
		c.t.Fatalf("clustertest: children of %d: %v", sup, err)
	}
	if len(kids) != 1 {
		c.t.Fatalf("clustertest: supervisor %d on %s has %d children (%v), want exactly the agent", sup, node, len(kids), kids)
	}
	return kids[0]
}

// KillAgent sends SIGKILL to node's agent child only (the supervisor stays
// and is expected to release the VIP and services, then exit). It returns
// the time of the kill.
func (c *Cluster) KillAgent(node string) time.Time {
	c.t.Helper()
	pid := c.AgentPID(node)
	at := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("clustertest: kill -9 agent %d on %s: %v", pid, node, err)
	}
	return at
}

// Crash simulates a node losing power: every process in its namespace
// (supervisor, agent, services) is frozen first, so it cannot react to
// what follows (an agent drops a VIP whose link loses its carrier and
// tells its peer on the links still up); then its links go down and the
// processes get SIGKILL. The VIP stays configured in
// the dead namespace, like RAM state of a frozen machine; Recover "reboots"
// it. It returns the time the links went down.
func (c *Cluster) Crash(node string) time.Time {
	c.t.Helper()
	at := time.Now()
	// Crashed from the moment the test pulls the plug: on a loaded machine
	// taking two links down with ip(8) can take a while, and the samplers
	// must not count the dying node's VIP (on a link going down) beside the
	// survivor's.
	c.mu.Lock()
	c.crashed[node] = true
	c.mu.Unlock()
	c.signalNamespace(node, syscall.SIGSTOP)
	for _, ifname := range []string{"eth0", "eth1"} {
		c.Lab.SetLink(node, ifname, false)
	}
	c.killNamespace(node)
	c.mu.Lock()
	p := c.agents[node]
	c.mu.Unlock()
	if p != nil {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("clustertest: supervisor on %s survived SIGKILL for 10s", node)
		}
	}
	return at
}

// StartDaemon runs argv inside node as a plain process (another HA
// manager for a benchmark, a helper server...). Its output is appended to
// Dir/<name>.log, printed when the test fails; it is killed with its
// process group at cleanup (and by Crash). env is added to the test's
// environment.
func (c *Cluster) StartDaemon(node, name string, env []string, argv ...string) *exec.Cmd {
	c.t.Helper()
	path := filepath.Join(c.Dir, name+".log")
	logf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("clustertest: log file: %v", err)
	}
	cmd := c.Lab.Command(node, argv...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("clustertest: start %s on %s: %v", name, node, err)
	}
	go func() {
		_ = cmd.Wait()
		logf.Close()
	}()
	c.mu.Lock()
	c.daemonLogs = append(c.daemonLogs, path)
	c.mu.Unlock()
	return cmd
}

// Crashed reports whether node is crashed (and not recovered).
func (c *Cluster) Crashed(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed[node]
}

// Recover "reboots" a crashed node: removes addresses harules had added
// (they do not survive a reboot) and brings its links up. Start the agent
// again with Start.
func (c *Cluster) Recover(node string) {
	c.t.Helper()
	c.Lab.MustExec(node, "ip", "addr", "flush", "dev", "eth0", "label", "eth0:hr*")
	c.Lab.MustExec(node, "ip", "addr", "flush", "dev", "eth1", "label", "eth1:hr*")
	if c.ipv6 {
		// IPv6 addresses have no labels (harules marks them with an
		// address protocol this iproute2 may not filter on): the VIP is
		// the only one harules adds here; absent is fine.
		_, _ = c.Lab.Exec(node, "ip", "-6", "addr", "del", VIP6Prefix, "dev", "eth0")
	}
	for _, ifname := range []string{"eth0", "eth1"} {
		c.Lab.SetLink(node, ifname, true)
	}
	c.mu.Lock()
	c.crashed[node] = false
	c.mu.Unlock()
}

// killNamespace kills every process in node's namespace. They are all
// stopped (SIGSTOP) before any is killed: the agent gets SIGTERM when its
// supervisor dies (Pdeathsig), and a crash must not turn into a planned
// handover.
func (c *Cluster) killNamespace(node string) {
	pids := c.signalNamespace(node, syscall.SIGSTOP)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// signalNamespace sends sig to every process in node's namespace and
// returns their pids.
func (c *Cluster) signalNamespace(node string, sig syscall.Signal) []int {
	out, err := exec.Command("ip", "netns", "pids", c.NS(node)).Output()
	if err != nil {
		c.t.Errorf("clustertest: ip netns pids %s: %v", c.NS(node), err)
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
	return pids
}

// Stop sends SIGTERM (planned handover) to node's supervisor and waits up
// to timeout for it to exit. It returns the time of the signal.
func (c *Cluster) Stop(node string, timeout time.Duration) time.Time {
	c.t.Helper()
	p := c.proc(node)
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("clustertest: SIGTERM %s: %v", node, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		c.t.Fatalf("clustertest: agent on %s did not exit within %s of SIGTERM; log:\n%s", node, timeout, c.tail(node, 60))
	}
	if p.err != nil {
		c.t.Errorf("clustertest: agent on %s exited with %v after SIGTERM", node, p.err)
	}
	return at
}

// WaitExit waits up to timeout for node's supervisor to exit and returns
// its exit error.
func (c *Cluster) WaitExit(node string, timeout time.Duration) error {
	c.t.Helper()
	p := c.proc(node)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		c.t.Fatalf("clustertest: supervisor on %s still running after %s", node, timeout)
		return nil
	}
}

// Reload sends SIGHUP to node's supervisor (forwarded to the agent).
func (c *Cluster) Reload(node string) {
	c.t.Helper()
	if err := c.proc(node).cmd.Process.Signal(syscall.SIGHUP); err != nil {
		c.t.Fatalf("clustertest: SIGHUP %s: %v", node, err)
	}
}

// Client returns a control client for node's agent.
func (c *Cluster) Client(node string) *agent.Client { return agent.NewClient(c.ControlSocket(node)) }

// Status asks node's agent for its status.
func (c *Cluster) Status(node string) (*agent.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Client(node).Status(ctx)
}

// MustStatus is Status that fails the test on error.
func (c *Cluster) MustStatus(node string) *agent.Status {
	c.t.Helper()
	st, err := c.Status(node)
	if err != nil {
		c.t.Fatalf("clustertest: status of %s: %v", node, err)
	}
	return st
}

func (c *Cluster) do(via, op, group, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Client(via).Do(ctx, op, group, node, false)
}

// Move asks via's agent to move group to node (`harules move`).
func (c *Cluster) Move(via, group, node string) error { return c.do(via, "move", group, node) }

// Standby asks via's agent to put node in standby.
func (c *Cluster) Standby(via, node string) error { return c.do(via, "standby", "", node) }

// Online asks via's agent to take node out of standby.
func (c *Cluster) Online(via, node string) error { return c.do(via, "online", "", node) }

// SetLink brings a node's interface (eth0 = lan, eth1 = backnet) up or down.
func (c *Cluster) SetLink(node, ifname string, up bool) { c.Lab.SetLink(node, ifname, up) }

// Blackhole adds (on) or removes a blackhole route for addr inside node:
// the node's packets to addr are dropped, while ARP and the rest of the
// link keep working (cut one IP path without cutting the link).
func (c *Cluster) Blackhole(node, addr string, on bool) {
	c.t.Helper()
	op := "add"
	if !on {
		op = "del"
	}
	c.Lab.MustExec(node, "ip", "route", op, "blackhole", addr+"/32")
}

// Owners returns the nodes that hold group according to via's agent,
// leaving out peers via considers dead: a dead peer's last report still
// lists what it held (its holdings are unknown), which says nothing about
// who serves now.
func (c *Cluster) Owners(via, group string) []string {
	st, err := c.Status(via)
	if err != nil {
		return nil
	}
	dead := map[string]bool{}
	for _, n := range st.Nodes {
		if n.Name != via && n.State != "alive" {
			dead[n.Name] = true
		}
	}
	for _, g := range st.Groups {
		if g.Name == group {
			var out []string
			for _, h := range g.Holders {
				if !dead[h] {
					out = append(out, h)
				}
			}
			return out
		}
	}
	return nil
}

// WaitFor polls cond every 20 ms until it holds, failing the test after
// timeout.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("clustertest: timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitOwner waits until via's agent reports exactly owner holding group
// and the VIP is configured on owner only.
func (c *Cluster) WaitOwner(via, group, owner string, timeout time.Duration) {
	c.t.Helper()
	c.WaitFor(timeout, fmt.Sprintf("%s reports %s held by %s alone and the VIP is on %s only", via, group, owner, owner), func() bool {
		h := c.Owners(via, group)
		if len(h) != 1 || h[0] != owner {
			return false
		}
		v := c.VIPHolders()
		return len(v) == 1 && v[0] == owner
	})
}

// StartApps starts, on every node, a TCP server on 0.0.0.0:AppPort that
// writes the node's name and closes; it runs in the test process (a socket
// opened inside the namespace), independent of harules.
func (c *Cluster) StartApps() {
	c.t.Helper()
	for _, n := range c.nodes {
		var ln net.Listener
		err := c.Lab.Do(n, func() error {
			var err error
			if c.ipv6 {
				// Dual-stack: answers on the IPv6 VIP and the IPv4 addresses.
				ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", AppPort))
			} else {
				ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", AppPort))
			}
			return err
		})
		if err != nil {
			c.t.Fatalf("clustertest: app server on %s: %v", n, err)
		}
		c.mu.Lock()
		c.apps = append(c.apps, ln)
		c.mu.Unlock()
		go serveName(ln, n)
	}
}

func serveName(ln net.Listener, name string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(conn, name+"\n")
		_ = conn.Close()
	}
}

// Log returns node's whole agent log.
func (c *Cluster) Log(node string) string {
	b, _ := os.ReadFile(c.LogPath(node))
	return string(b)
}

func (c *Cluster) tail(node string, n int) string { return tailFile(c.LogPath(node), n) }

// tailFile returns the last n lines of a log, very long lines cut.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 2000 {
			lines[i] = l[:2000] + " ...(cut)"
		}
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	apps := c.apps
	c.apps = nil
	agents := c.agents
	c.mu.Unlock()
	for _, ln := range apps {
		_ = ln.Close()
	}
	for _, p := range agents {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, n := range c.nodes {
		c.killNamespace(n)
	}
	for _, p := range agents {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		_ = p.logf.Close()
	}
	if (c.t.Failed() || os.Getenv(LogsEnv) == "1") && c.logTail > 0 {
		for _, n := range c.nodes {
			if _, err := os.Stat(c.LogPath(n)); err == nil {
				c.t.Logf("----- last %d lines of the agent log of %s -----\n%s", c.logTail, n, tailFile(c.LogPath(n), c.logTail))
			}
		}
		c.mu.Lock()
		logs := slices.Clone(c.daemonLogs)
		c.mu.Unlock()
		for _, path := range logs {
			c.t.Logf("----- last %d lines of %s -----\n%s", c.logTail, filepath.Base(path), tailFile(path, c.logTail))
		}
	}
	_ = os.RemoveAll(c.Dir)
}

// childrenOf lists the pids whose parent is pid (from /proc).
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which may contain spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
				kids = append(kids, n)
			}
		}
	}
	return kids, nil
}
