package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/harules/harules/agent"
)

// harulesDaemon drives `harules run` (supervisor + agent) on both nodes.
type harulesDaemon struct {
	bin      string
	logLevel string
	env      []string // added to the environment of harules run
	flags    []string // added to the command line of harules run
	topo     *topology
	dir      string // per-interval directory: policy, secret, state, sockets, logs
	proc     map[string]*proc
	// clients are reused: a new agent.Client per status poll would leave
	// an idle keep-alive connection (and a goroutine) in the agent per
	// poll, inflating the agent's idle memory that the bench measures.
	clients map[string]*agent.Client
}

var _ daemon = (*harulesDaemon)(nil)

func newHarules(bin, logLevel string, env, flags []string, root string, topo *topology) *harulesDaemon {
	return &harulesDaemon{bin: bin, logLevel: logLevel, env: env, flags: flags, topo: topo, dir: root, proc: map[string]*proc{}, clients: map[string]*agent.Client{}}
}

func (h *harulesDaemon) Name() string { return "harules" }
func (h *harulesDaemon) Home() string { return "" }

// harulesPolicy is the VIP-only policy of the benchmark: the service runs on
// both nodes outside HA, as with keepalived.
func harulesPolicy(interval time.Duration) string {
	return fmt.Sprintf(`load("@stdlib//placement.star", "active_standby")
cluster(name = "bench", secret_file = "secret")
node("node1", address = %q, addresses = {"backnet": %q})
node("node2", address = %q, addresses = {"backnet": %q})
heartbeat("lan", interval = %q, misses = 3, port = 7001)
heartbeat("backnet", interval = %q, misses = 3, port = 7002)
group("vip", resources = [vip(%q, interface = "eth0", arp_count = 3, arp_interval = "50ms")],
      placement = active_standby(["node1", "node2"]))
`, lanAddr["node1"], backAddr["node1"], lanAddr["node2"], backAddr["node2"], interval, interval, vipCIDR)
}

func (h *harulesDaemon) Configure(interval time.Duration) error {
	h.dir = filepath.Join(filepath.Dir(h.dir), "harules-"+interval.String())
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.dir, "secret"), []byte("bench-failover-secret-0123456789\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.dir, "policy.star"), []byte(harulesPolicy(interval)), 0o644)
}

func (h *harulesDaemon) socket(node string) string { return filepath.Join(h.dir, node+".sock") }

func (h *harulesDaemon) client(node string) *agent.Client {
	sock := h.socket(node)
	c := h.clients[sock]
	if c == nil {
		c = agent.NewClient(sock)
		h.clients[sock] = c
	}
	return c
}

func (h *harulesDaemon) Start(_ context.Context, node string) error {
	if h.proc[node].alive() {
		return fmt.Errorf("harules already runs on %s", node)
	}
	args := append([]string{h.bin, "run",
		"--policy", filepath.Join(h.dir, "policy.star"), "--node", node,
		"--state-dir", filepath.Join(h.dir, node+"-state"), "--control", h.socket(node), "--log-level", h.logLevel}, h.flags...)
	p, err := startProc(h.topo.ns[node], filepath.Join(h.dir, node+".log"), h.env, args...)
	if err != nil {
		return err
	}
	h.proc[node] = p
	return nil
}

func (h *harulesDaemon) Running(node string) bool { return h.proc[node].alive() }

// agentPID is the supervised agent: the supervisor's only child.
func (h *harulesDaemon) agentPID(node string) (int, error) {
	p := h.proc[node]
	if !p.alive() {
		return 0, fmt.Errorf("harules does not run on %s", node)
	}
	kids := childPIDs(p.pid())
	if len(kids) != 1 {
		return 0, fmt.Errorf("harules supervisor on %s has children %v, want exactly the agent", node, kids)
	}
	return kids[0], nil
}

func (h *harulesDaemon) KillAgent(ctx context.Context, node string) error {
	pid, err := h.agentPID(node)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 agent %d: %w", pid, err)
	}
	// The supervisor releases the VIP and exits with the agent's status.
	_ = h.proc[node].wait(ctx, 30*time.Second)
	return nil
}

func (h *harulesDaemon) KillAll(_ context.Context, node string) error {
	p := h.proc[node]
	if !p.alive() {
		return fmt.Errorf("harules does not run on %s", node)
	}
	p.killGroup()
	<-p.done
	return nil
}

func (h *harulesDaemon) Switchover(ctx context.Context, from, to string) error {
	out, err := exec.CommandContext(ctx, h.bin, "move", "vip", to, "--control", h.socket(from)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("harules move vip %s: %v: %s", to, err, out)
	}
	return nil
}

func (h *harulesDaemon) Stop(ctx context.Context, node string) error {
	p := h.proc[node]
	if !p.alive() {
		return nil
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	return p.wait(ctx, 40*time.Second)
}

func (h *harulesDaemon) Steady(ctx context.Context, holder string) error {
	for _, node := range nodeNames {
		if _, err := h.agentPID(node); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := h.client(node).Status(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errNotSteady, node, err)
		}
		for _, n := range st.Nodes {
			if n.State != "alive" {
				return fmt.Errorf("%w: %s sees %s %s", errNotSteady, node, n.Name, n.State)
			}
		}
		for _, g := range st.Groups {
			if g.Name != "vip" {
				continue
			}
			if !slices.Equal(g.Holders, []string{holder}) {
				return fmt.Errorf("%w: %s sees vip held by %v", errNotSteady, node, g.Holders)
			}
			// A node whose takeover was refused (its ARP probe found the
			// peer still holding the VIP after a false death) stays
			// ineligible for failure_timeout; a run started now would
			// measure that, not a failover.
			if strings.Contains(g.Reason, "failed there") {
				return fmt.Errorf("%w: %s: %s", errNotSteady, node, g.Reason)
			}
		}
	}
	return nil
}

func (h *harulesDaemon) PIDs(node string) []int { return h.proc[node].groupPIDs() }
