package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/atomicfile"
	"github.com/harules/harules/internal/statesvg"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
	"github.com/harules/harules/web"
)

const supervisedEnv = "HARULES_SUPERVISED"

// lockFDEnv tells the supervised agent which file descriptor is the state
// directory's lock, taken by the supervisor (agent/lock.go).
const lockFDEnv = "HARULES_STATE_LOCK_FD"

var controlFlag = &cli.StringFlag{Name: "control", Value: agent.DefaultControlSocket, Usage: "control socket of the local agent", EnvVars: []string{"HARULES_CONTROL"}}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the node agent (the daemon)",
		Description: `Runs this node's agent: authenticated UDP heartbeats on every path of the
policy, the policy's probes, the same decision engine as simulate, and real
actions (VIPs with netlink + gratuitous ARP, services, OCF agents).

harules run is two processes: a small supervisor and the agent. If the agent
dies (crash, kill -9), the supervisor at once removes every VIP carrying
harules' label and stops the policy's services, so a crashed agent never
leaves an address the peer is taking over; once released it tells the
peers (an authenticated heartbeat: holds nothing, leaving), so they take
over at once; then it exits with the agent's status so systemd restarts it.
On start the agent releases whatever a previous run left and takes groups
only through the normal decision.

Liveness: the agent stops its heartbeats when its decision loop made no
pass for half the detection time, and exits (status 70) when it made none
for the detection time (at least 1 s), so the supervisor releases. Under
systemd (Type=notify) it sends READY=1 after the loop's first pass and
WATCHDOG=1 while the loop makes progress. --watchdog-device arms a watchdog
device as SBD does (docs/operations.md, "Processes, signals and liveness").

One run per state directory: before touching anything, run takes an
exclusive lock on STATE-DIR/run.lock (held by the supervisor and the agent
for their life; the file holds the supervisor's pid). A second run on the
node exits at once with status 4 and "another harules run (pid N) holds
...", releasing nothing.

Signals: SIGTERM/SIGINT hand the node's groups over (the peer takes them as
soon as they are stopped here) and release everything; SIGHUP reloads the
policy (a policy that fails check is refused and the old one keeps running);
SIGABRT to the supervisor (systemd's watchdog) kills the agent and releases.

In maintenance (harules maintenance on) none of this releases anything: a
stop leaves the resources running, the supervisor does not release after
the agent dies, and the next start adopts the groups that still run.

Before it touches anything, run checks what harules check --node checks
(the secret, the interfaces, programs, devices and directories this node
needs); a policy that fails is refused with exit 78, nothing released.

Pid files: the supervisor writes its pid to --pid-file (default harules.pid
next to the control socket: /run/harules/harules.pid), the agent its own to
agent.pid in the same directory (with --no-supervisor both hold the agent's).

Logs go to stderr as key=value lines (journald and grep both read them).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Value: agent.DefaultPolicyPath, Usage: "policy file"},
			&cli.StringFlag{Name: "node", Usage: "this node's name in the policy (default: the host name)"},
			&cli.StringFlag{Name: "state-dir", Value: agent.DefaultStateDir, Usage: "where the agent keeps its state"},
			controlFlag,
			&cli.BoolFlag{Name: "no-supervisor", Usage: "run the agent without the supervisor process"},
			&cli.StringFlag{Name: "pid-file", Usage: "where harules run writes its pid; agent.pid next to it gets the agent's (default: harules.pid next to --control)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "web-listen", Usage: "serve the web console, REST API and /metrics on HOST:PORT (a bare PORT is 127.0.0.1:PORT; default: off)"},
			&cli.StringFlag{Name: "web-tokens", Value: "/etc/harules/web-tokens", Usage: "web console tokens, one ROLE:TOKEN a line, ROLE read or operator (chmod 600)"},
			&cli.StringFlag{Name: "web-cert", Usage: "TLS certificate file of the web console (with --web-key)"},
			&cli.StringFlag{Name: "web-key", Usage: "TLS key file of the web console"},
			&cli.BoolFlag{Name: "web-metrics-public", Usage: "serve /metrics without a token"},
			&cli.StringFlag{Name: "watchdog-device", Usage: "arm this watchdog device (e.g. /dev/watchdog, softdog) and write to it while the decision loop makes progress: the machine reboots if the agent stops doing so for --watchdog-timeout (default: off)"},
			&cli.DurationFlag{Name: "watchdog-timeout", Value: agent.DefaultWatchdogTimeout, Usage: "timeout set on --watchdog-device; it must cover an agent restart"},
			&cli.StringFlag{Name: "web-restore-root", Value: "/var/lib/harules/restore", Usage: "console and API restores write only under this directory (restore elsewhere with 'harules backup restore' as root)"},
		},
		Action: func(c *cli.Context) error {
			node := c.String("node")
			if node == "" {
				h, err := os.Hostname()
				if err != nil {
					return fail(exitUsage, "run: --node is required (the host name is unknown: %v)", err)
				}
				node = h
			}
			log, err := newLogger(c.App.ErrWriter, c.String("log-level"))
			if err != nil {
				return fail(exitUsage, "run: %v", err)
			}
			pidFile := c.String("pid-file")
			if pidFile == "" {
				pidFile = filepath.Join(filepath.Dir(c.String("control")), "harules.pid")
			}
			agentPidFile := filepath.Join(filepath.Dir(pidFile), "agent.pid")
			if !c.Bool("no-supervisor") && os.Getenv(supervisedEnv) == "" {
				// The supervisor holds the state lock for its life and hands
				// it to the agent: a second run fails here (exit 4), before
				// anything else, and touches nothing. A policy that cannot
				// run is refused (exit 78) before the lock creates anything.
				if err := agent.ProbeStateLock(c.String("state-dir")); err != nil {
					return lockFailure(err)
				}
				if err := refuseUnrunnable(log, c.String("policy"), node, c.String("state-dir")); err != nil {
					return err
				}
				lock, err := agent.LockStateDir(c.String("state-dir"))
				if err != nil {
					return lockFailure(err)
				}
				defer lock.Close()
				defer writePidFile(log, pidFile)()
				return supervise(c.Context, log, c.String("policy"), node, c.String("state-dir"), lock)
			}
			lock, err := inheritedLock(c.String("state-dir"))
			if err != nil {
				return lockFailure(err)
			}
			if c.Bool("no-supervisor") {
				// After the lock: a second run must not overwrite the pid
				// file of the one that holds it.
				defer writePidFile(log, pidFile)()
			}
			a, err := agent.New(agent.Config{PolicyPath: c.String("policy"), Node: node, StateDir: c.String("state-dir"),
				ControlSocket: c.String("control"), Logger: log, Lock: lock, Systemd: agent.TakeSystemdEnv(),
				WatchdogDevice: c.String("watchdog-device"), WatchdogTimeout: c.Duration("watchdog-timeout"),
				WebListen: c.String("web-listen"), WebStart: web.Starter(web.ListenOptions{CertFile: c.String("web-cert"), KeyFile: c.String("web-key")}, web.Options{TokenFile: c.String("web-tokens"), MetricsPublic: c.Bool("web-metrics-public"), RestoreRoot: c.String("web-restore-root"), Logger: log})})
			if err != nil {
				return fail(exitConfig, "%v", err)
			}
			defer writePidFile(log, agentPidFile)()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					if err := a.Reload(c.Context); err != nil {
						log.Error("SIGHUP: reload refused", "error", err.Error())
					} else {
						log.Info("SIGHUP: policy reloaded")
					}
				}
			}()
			if err := a.Run(c.Context); err != nil {
				var pe *agent.PreflightError
				if errors.As(err, &pe) {
					return fail(exitConfig, "%v", err)
				}
				return lockFailure(err)
			}
			return nil
		},
	}
}

// inheritedLock is the state lock the supervisor handed down (nil when run
// without a supervisor: agent.Run takes the lock itself).
func inheritedLock(stateDir string) (*agent.StateLock, error) {
	v := os.Getenv(lockFDEnv)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a file descriptor", lockFDEnv, v)
	}
	return agent.InheritStateLock(os.NewFile(uintptr(fd), "state lock"), stateDir)
}

// lockFailure maps an error of run to its exit status: exitLocked when
// another run holds the state directory, exitFailed otherwise.
func lockFailure(err error) error {
	var le *agent.LockedError
	if errors.As(err, &le) {
		return fail(exitLocked, "%v", err)
	}
	return fail(exitFailed, "%v", err)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// supervise runs the agent as a child process and cleans up after it if it
// dies: the guarantee keepalived lacks (a killed keepalived leaves its VIP
// configured while the backup adds it too).
//
// A node in maintenance (its saved state says so) is left alone: its
// resources keep running while the agent is restarted, and peers do not
// take them over (docs/policy.md, maintenance mode).
// supervise runs the agent as a child holding lock (the state lock, taken
// by the caller before anything else, so a second run never gets here and
// never releases after the first's agent either).
func supervise(ctx context.Context, log *slog.Logger, policyPath, node, stateDir string, lock *agent.StateLock) error {
	self, err := os.Executable()
	if err != nil {
		return fail(exitInternal, "supervisor: %v", err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	// systemd's notify socket and watchdog are the agent's (it knows when
	// the decision loop makes progress), not the services' the supervisor
	// stops after a crash.
	sd := agent.TakeSystemdEnv()
	cmd.Env = append(append(os.Environ(), supervisedEnv+"=1", lockFDEnv+"=3"), sd.Environ()...)
	cmd.ExtraFiles = []*os.File{lock.File()} // fd 3 in the agent
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// The agent gets SIGTERM (a planned handover) if the supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fail(exitInternal, "supervisor: start agent: %v", err)
	}
	log.Info("supervisor started the agent", "pid", cmd.Process.Pid)
	// The policy the release needs is loaded now and at every SIGHUP, as
	// the agent does, not when the agent dies: a policy file that cannot
	// be read then (a hung mount, which may be what wedged the agent) must
	// not keep the VIPs up, and the release is faster.
	var pol atomic.Pointer[policy.Policy]
	loadPolicy := func() {
		p, err := rules.Load(context.Background(), policyPath, rules.Options{})
		if err != nil {
			log.Warn("supervisor: policy not loaded; the release after an agent death uses the previous one", "policy", policyPath, "error", err.Error())
			return
		}
		pol.Store(p)
	}
	go loadPolicy()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGABRT)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopping := false
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGABRT {
				// systemd's watchdog (WatchdogSec=) fired: the agent stopped
				// petting it, so it is stuck beyond its own exit. Kill it;
				// the death below releases and announces as after a crash.
				log.Error("SIGABRT (systemd's watchdog): the agent is stuck; killing it", "pid", cmd.Process.Pid)
				_ = cmd.Process.Kill()
				continue
			}
			if s != syscall.SIGHUP {
				stopping = true
			} else {
				go loadPolicy()
			}
			_ = cmd.Process.Signal(s)
		case <-ctx.Done():
			if !stopping {
				stopping = true
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
		case err := <-done:
			code := cmd.ProcessState.ExitCode()
			if stopping && err == nil {
				return nil
			}
			if code == exitConfig {
				// The agent refused its policy before touching anything.
				return fail(exitConfig, "agent refused the policy; nothing released")
			}
			raw := code // -1: killed by a signal
			if code <= 0 {
				code = exitFailed
			}
			if maintenanceSaysKeep(log, stateDir, false) {
				log.Error("agent died while the node is in maintenance; leaving its VIPs and services running (not released)", "error", fmt.Sprint(err), "exit_code", raw)
				return fail(code, "agent exited: %v", err)
			}
			log.Error("agent died; releasing its VIPs and services", "error", fmt.Sprint(err), "exit_code", raw)
			releaseAfterDeath(log, pol.Load(), policyPath, node, stateDir)
			return fail(code, "agent exited: %v", err)
		}
	}
}

// releaseAfterDeath releases everything the dead agent may have held and,
// once that succeeded, tells the peers (AnnounceReleased), so they take
// over at once rather than after the detection time. p is the supervisor's
// copy of the policy (nil: none loaded yet, so it is loaded now).
func releaseAfterDeath(log *slog.Logger, p *policy.Policy, policyPath, node, stateDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if p == nil {
		var err error
		if p, err = rules.Load(ctx, policyPath, rules.Options{}); err != nil {
			log.Error("release after agent death failed: cannot load the policy", "policy", policyPath, "error", err.Error())
			return
		}
	}
	if err := agent.ReleasePolicy(ctx, p, node, log); err != nil {
		log.Error("release after agent death incomplete; not announcing it to the peers (they take over after the detection time)", "error", err.Error())
		return
	}
	released := time.Since(start)
	if err := agent.AnnounceReleased(ctx, agent.AnnounceConfig{Policy: p, PolicyPath: policyPath, Node: node, StateDir: stateDir, Logger: log}); err != nil {
		log.Error("cannot announce the release to the peers; they take over after the detection time", "error", err.Error())
	}
	log.Info("released after agent death", "took", released.String(), "announced_after", time.Since(start).String())
}

// refuseUnrunnable is the supervisor's check of the policy before it starts
// the agent: what would make the agent refuse it (exit 78) is reported
// here, and nothing is started or released.
func refuseUnrunnable(log *slog.Logger, policyPath, node, stateDir string) error {
	p, err := rules.Load(context.Background(), policyPath, rules.Options{})
	if err != nil {
		return fail(exitConfig, "load policy %s:\n%v", policyPath, err)
	}
	if p.Node(node) == nil {
		return fail(exitConfig, "node %q is not declared in %s (nodes: %s); pass --node with one of them", node, policyPath, strings.Join(p.NodeNames(), ", "))
	}
	var pf agent.Preflight
	pf.CheckSecret(p, policyPath)
	pf.CheckNode(p, node, stateDir)
	for _, w := range pf.Warnings {
		log.Warn("preflight: " + w.Error())
	}
	if err := pf.Err(); err != nil {
		return fail(exitConfig, "%v", err)
	}
	return nil
}

// writePidFile writes this process's pid to path and returns the function
// that removes it again (only if it still holds this pid: another run
// pointed at the same file keeps its own). Failing to write it is logged,
// not fatal: nothing in harules reads it.
func writePidFile(log *slog.Logger, path string) func() {
	pid := strconv.Itoa(os.Getpid())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		err = atomicfile.Write(path, []byte(pid+"\n"), 0o644)
		if err != nil {
			log.Warn("cannot write the pid file", "path", path, "error", err.Error())
			return func() {}
		}
	} else {
		log.Warn("cannot write the pid file", "path", path, "error", err.Error())
		return func() {}
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == pid {
			os.Remove(path)
		}
	}
}

// maintenanceSaysKeep reports whether the node's saved state says it is
// in maintenance, so nothing may be released (unless forced). An unreadable
// state releases: a VIP left up while a peer takes it over is the worse
// failure.
func maintenanceSaysKeep(log *slog.Logger, stateDir string, force bool) bool {
	on, err := agent.SavedMaintenance(stateDir)
	switch {
	case err != nil:
		log.Error("cannot tell whether the node is in maintenance; releasing", "state_dir", stateDir, "error", err.Error())
		return false
	case on && force:
		log.Warn("the node is in maintenance, but --force: releasing anyway", "state_dir", stateDir)
		return false
	case on:
		log.Warn("the node is in maintenance (its saved state says so): nothing is released; resources keep running (--force releases anyway)", "state_dir", stateDir)
		return true
	}
	return false
}

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:  "release",
		Usage: "stop every resource of the policy on this node and remove harules' VIPs",
		Description: `What the supervisor does when the agent dies; also meant for systemd's
ExecStopPost=, so the node holds nothing once the service is down.

A node in maintenance (its saved state in --state-dir says so) is left
alone: nothing is released, so harules can be restarted or upgraded while
the services keep running. --force releases anyway. Under systemd
(ExecStopPost), nothing is released either when harules run exited 78: it
refused its policy before touching anything.

While a harules run holds --state-dir (its lock, STATE-DIR/run.lock), release
touches nothing and exits with status 4: it would tear down the running
agent's VIPs and services.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Value: agent.DefaultPolicyPath, Usage: "policy file"},
			&cli.StringFlag{Name: "node", Usage: "this node's name (default: the host name)"},
			&cli.StringFlag{Name: "state-dir", Value: agent.DefaultStateDir, Usage: "the agent's state directory (tells whether the node is in maintenance)"},
			&cli.BoolFlag{Name: "force", Usage: "release even when the node is in maintenance"},
		},
		Action: func(c *cli.Context) error {
			node := c.String("node")
			if node == "" {
				node, _ = os.Hostname()
			}
			log, _ := newLogger(c.App.ErrWriter, "info")
			if os.Getenv("SERVICE_RESULT") != "" && os.Getenv("EXIT_STATUS") == strconv.Itoa(exitConfig) {
				// systemd's ExecStopPost after run refused its policy
				// (exit 78): it touched nothing, and a previous run's
				// resources were released when that run ended.
				log.Info("harules run refused its policy and touched nothing; nothing to release")
				return nil
			}
			// Held while releasing, so no run starts meanwhile either.
			lock, err := agent.LockStateDir(c.String("state-dir"))
			var locked *agent.LockedError
			switch {
			case errors.As(err, &locked):
				return fail(exitLocked, "release: %v", err)
			case err != nil:
				// No lock file (a read-only state dir?): no agent can have
				// taken it either; releasing is the safe side.
				log.Warn("release: cannot take the state lock; releasing anyway", "error", err.Error())
			default:
				defer lock.Close()
			}
			if maintenanceSaysKeep(log, c.String("state-dir"), c.Bool("force")) {
				return nil
			}
			if err := agent.Release(c.Context, c.String("policy"), node, log); err != nil {
				return fail(exitFailed, "%v", err)
			}
			return nil
		},
	}
}

func maintenanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "maintenance",
		Usage:     "put this node in maintenance mode (on) or take it out (off)",
		ArgsUsage: "on|off",
		Description: `In maintenance the node decides but does not act: what it holds keeps
running unmanaged, it takes no new group, and peers do not take its groups
over even when it goes silent. harules itself may then be stopped, upgraded
and started again: nothing is handed over or released, and the new run
adopts the groups that still run. See docs/policy.md, "Maintenance mode".`,
		Flags: []cli.Flag{controlFlag},
		Action: func(c *cli.Context) error {
			arg := c.Args().First()
			if c.NArg() != 1 || (arg != "on" && arg != "off") {
				return fail(exitUsage, "maintenance: want on or off")
			}
			if err := agent.NewClient(c.String("control")).Do(c.Context, "maintenance", "", "", arg == "on"); err != nil {
				return fail(exitFailed, "%v", err)
			}
			if arg == "on" {
				fmt.Fprintln(c.App.Writer, "maintenance on: accepted; this node now decides but does not act, and `harules run` may be restarted without moving anything")
			} else {
				fmt.Fprintln(c.App.Writer, "maintenance off: accepted; this node acts on its decisions again")
			}
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the cluster as the local agent sees it",
		Description: `Prints this node's view of the cluster: nodes, heartbeat paths (with
the measured round-trip time), groups, backups and alerts.

--svg FILE also draws it as a standalone SVG picture: the nodes as boxes
around this node, one line per heartbeat path (green up, red down, grey
unknown) labelled with RTT and loss, the groups inside the node holding
them (red on both holders in a split brain, "→ node" while moving), the
groups nobody holds and the alerts. --svg - writes the picture to standard
output instead of the text; --quiet writes only the picture.`,
		Flags: []cli.Flag{controlFlag,
			&cli.BoolFlag{Name: "json", Usage: "print the status document as JSON"},
			&cli.StringFlag{Name: "svg", Usage: "also draw the cluster state as an SVG picture into `FILE` (- for standard output, instead of the text)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "with --svg: print nothing but the picture"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("quiet") && c.String("svg") == "" {
				return fail(exitUsage, "--quiet only goes with --svg FILE")
			}
			st, err := agent.NewClient(c.String("control")).Status(c.Context)
			if err != nil {
				return fail(exitFailed, "%v", err)
			}
			switch out := c.String("svg"); out {
			case "":
			case "-":
				_, err := c.App.Writer.Write(statesvg.Render(st, statesvg.Options{}))
				return err
			default:
				if err := atomicfile.Write(out, statesvg.Render(st, statesvg.Options{}), 0o644); err != nil {
					return fail(exitFailed, "write the picture: %v", err)
				}
				if c.Bool("quiet") {
					return nil
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(c.App.Writer, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, st *agent.Status) {
	fmt.Fprintf(w, "cluster %s, seen from %s (policy %s, incarnation %d, harules %s)\n\n", st.Cluster, st.Node, st.PolicyHash, st.Incarnation, orDash(st.Version))
	// The control API fills in the heartbeat counters, with the RTT each
	// path measured to each peer.
	rtt := map[string]float64{}
	for _, hs := range st.Heartbeats {
		for _, r := range hs.RTT {
			rtt[r.Peer+"/"+hs.Path] = r.SmoothedSeconds
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tSINCE\tMODE\tHOLDS\tPATHS")
	for _, n := range st.Nodes {
		var paths []string
		for _, p := range n.Paths {
			state := "up"
			if !p.Up {
				state = fmt.Sprintf("DOWN(%d missed)", p.Missed)
			} else if secs, ok := rtt[n.Name+"/"+p.Name]; ok {
				state = fmt.Sprintf("up(rtt %s)", agent.FormatRTT(secs))
			}
			paths = append(paths, p.Name+"="+state)
		}
		mode := "active"
		switch {
		case n.Maintenance:
			mode = "maintenance"
		case n.Standby:
			mode = "standby"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.State, n.Since.Format(time.RFC3339), mode, strings.Join(n.Holds, ","), strings.Join(paths, " "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSHOULD RUN ON\tHELD BY\tWHY")
	for _, g := range st.Groups {
		why := g.Reason
		if g.Wait != "" {
			why = g.Wait + "; " + why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, orNone(g.Target), orNone(strings.Join(g.Holders, ",")), why)
	}
	tw.Flush()
	if len(st.Backups) > 0 {
		fmt.Fprintln(w, "\nBACKUPS ON THIS NODE")
		for _, b := range st.Backups {
			fmt.Fprintf(w, "  %s: %s\n", b.Job, b.Text(st.Now, func(t time.Time) string { return t.Format(time.RFC3339) }))
		}
	}
	if len(st.Alerts) > 0 {
		fmt.Fprintln(w, "\nALERTS")
		for _, a := range st.Alerts {
			fmt.Fprintf(w, "  %s [%s] %s\n", a.Name, a.Severity, a.Message)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func operatorCommand(name, usage, args string, nargs int, op string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: args,
		Flags:     []cli.Flag{controlFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != nargs {
				return fail(exitUsage, "%s: want %s", name, args)
			}
			group, node := "", c.Args().Get(0)
			switch op {
			case "move":
				group, node = c.Args().Get(0), c.Args().Get(1)
			case "cleanup":
				group, node = c.Args().Get(0), ""
			}
			if err := agent.NewClient(c.String("control")).Do(c.Context, op, group, node, false); err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return fail(exitFailed, "%v", err)
			}
			fmt.Fprintf(c.App.Writer, "%s %s: accepted; `harules status` shows the result\n", name, strings.Join(c.Args().Slice(), " "))
			return nil
		},
	}
}
