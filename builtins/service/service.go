// Package service starts, stops and monitors the services an HA group runs:
// the executor behind harules' service(...) resource.
//
// Four kinds of service share one small interface, Runner:
//
//   - "process": harules runs the command in the foreground and supervises it
//     (own process group, SIGTERM then SIGKILL to the whole group on stop,
//     optionally killed by the kernel when the agent dies).
//   - "commands": LSB-like start/stop/monitor scripts.
//   - "ocf": ClusterLabs OCF resource agents, run exactly as Pacemaker runs
//     them, so existing agents (resource-agents package) work unchanged.
//   - "systemd": systemctl start/stop/is-active on a unit.
//
// Every action is bounded by its timeout even when the command hangs (the
// command's whole process group is killed) and is idempotent in the OCF
// sense: starting a running service and stopping a stopped one succeed.
//
// Typical use by the engine:
//
//	spec, err := service.SpecFromParams(res.Name, res.Params) // or fill a Spec
//	r, err := service.New(spec, service.Options{Owner: nodeName, Logger: log})
//	err = r.Start(ctx)
//	st, err := r.Monitor(ctx) // st.State: running, stopped, failed, promoted...
//	err = r.Stop(ctx)
//
// New validates the spec with messages that say what to fix; for OCF agents
// it reads the agent's meta-data (parameters, advised timeouts). Errors of
// actions are *ActionError (exit code, OCF code name, timeout, output tail).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kind says how a service is run.
type Kind string

// The service kinds.
const (
	KindProcess  Kind = "process"
	KindCommands Kind = "commands"
	KindOCF      Kind = "ocf"
	KindSystemd  Kind = "systemd"
)

// DefaultTimeout bounds an action whose timeout neither the spec nor (for
// OCF) the agent's meta-data gives. It is Pacemaker's default operation
// timeout.
const DefaultTimeout = 20 * time.Second

// DefaultMonitorInterval is passed to OCF agents as the monitor interval when
// neither the spec nor the agent's meta-data gives one. It must not be zero:
// agents treat a monitor with interval 0 as a one-off probe.
const DefaultMonitorInterval = 10 * time.Second

// Spec describes one service. It is plain data, filled by the engine from the
// policy; New validates it.
type Spec struct {
	// Name identifies the service in messages; for OCF it is also
	// OCF_RESOURCE_INSTANCE.
	Name string
	Kind Kind

	// Argv is the foreground command of a "process" service.
	Argv []string
	// Env adds variables (on top of the agent's environment) for "process"
	// and "commands" services.
	Env map[string]string
	// Dir is the working directory (absolute) for "process" and "commands".
	Dir string
	// KillWithAgent (process kind; nil means true) asks the kernel to kill
	// the service's main process when the agent dies (Pdeathsig), so a crashed
	// agent does not leave running a service the peer is about to start.
	KillWithAgent *bool

	// Start, Stop and Monitor are the argv of a "commands" service (LSB-like:
	// monitor exit 0 = running, 3 or 7 = stopped, anything else = failed).
	// For a "process" service, Monitor is an optional health check: while it
	// fails the service counts as failed, and Start waits (up to StartTimeout)
	// until it passes.
	Start, Stop, Monitor []string

	// Provider (default "heartbeat"), Agent, Params and OCFRoot (default
	// /usr/lib/ocf) name an OCF resource agent and its parameters.
	Provider string
	Agent    string
	Params   map[string]string
	OCFRoot  string

	// Unit is the systemd unit of a "systemd" service.
	Unit string

	// Timeouts of the actions. Zero means: the OCF agent's advised timeout,
	// else DefaultTimeout. For a process service StopTimeout is the grace
	// period between SIGTERM and SIGKILL.
	StartTimeout, StopTimeout, MonitorTimeout time.Duration
	// MonitorInterval is how often the engine monitors the service; OCF
	// agents receive it as OCF_RESKEY_CRM_meta_interval. Zero means the
	// agent's advised interval, else DefaultMonitorInterval.
	MonitorInterval time.Duration
}

// Options carries what the agent, not the policy, decides.
type Options struct {
	// Logger receives one line per action; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock used to measure actions; nil means time.Now.
	Now func() time.Time
	// Output receives everything a process service writes to stdout and
	// stderr (the last few KiB are kept for Status.Message anyway).
	Output io.Writer
	// SystemdDir is checked to tell whether systemd is PID 1; default
	// /run/systemd/system.
	SystemdDir string
	// Systemctl is the systemctl binary; default "systemctl" from PATH.
	Systemctl string
	// MetaDataTimeout bounds the OCF meta-data call New makes; default 5s.
	MetaDataTimeout time.Duration
	// Owner identifies this agent among all agents on the machine (e.g. the
	// node name). Every process service carries HARULES_SERVICE=Owner/Name in
	// its environment; with Owner set, a runner finds processes with its
	// marker that it did not start or that left its process group (left by
	// a crashed agent, whose Pdeathsig reached only the main process, or a
	// service that called setsid): Monitor reports them as failed, Start and
	// Stop kill them. Give every agent on one machine its own Owner.
	Owner string
	// PollInterval is how often a stopping process group or a starting
	// process's health check is polled; default 50ms.
	PollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SystemdDir == "" {
		o.SystemdDir = "/run/systemd/system"
	}
	if o.Systemctl == "" {
		o.Systemctl = "systemctl"
	}
	if o.MetaDataTimeout <= 0 {
		o.MetaDataTimeout = 5 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	return o
}

// Runner acts on one service. Implementations serialise their actions.
type Runner interface {
	// Start starts the service; starting a running service succeeds.
	Start(ctx context.Context) error
	// Stop stops the service; stopping a stopped service succeeds.
	Stop(ctx context.Context) error
	// Monitor reports the service's state. A non-nil error means the check
	// itself could not give a trustworthy answer (it timed out, could not be
	// run, or the OCF agent reported a configuration or installation
	// problem); State is then StateFailed, as Pacemaker treats it.
	Monitor(ctx context.Context) (Status, error)
}

// Validator is implemented by runners that can check their configuration
// without acting (OCF validate-all).
type Validator interface {
	Validate(ctx context.Context) error
}

// State is what a monitor found.
type State int

// The states. The zero value is StateUnknown so that an unset Status never
// reads as running.
const (
	StateUnknown State = iota
	StateRunning
	StateStopped
	StateFailed
	// StatePromoted is OCF_RUNNING_MASTER (8): running in the promoted role.
	StatePromoted
	// StateFailedPromoted is OCF_FAILED_MASTER (9): failed in the promoted role.
	StateFailedPromoted
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	case StateFailed:
		return "failed"
	case StatePromoted:
		return "promoted"
	case StateFailedPromoted:
		return "failed-promoted"
	}
	return "unknown"
}

// Status is the result of a monitor.
type Status struct {
	State State
	// ExitCode is the exit code of the monitor command: the OCF code for an
	// "ocf" service, the LSB code for "commands", systemctl's for "systemd",
	// the health check's for "process". -1 when no command ran or it was
	// killed.
	ExitCode int
	// Message explains the state: the OCF exit reason or the tail of the
	// command's (or the process's) output, or how the process ended.
	Message string
}

func (s Status) String() string {
	out := s.State.String()
	if s.ExitCode >= 0 {
		out += fmt.Sprintf(" (exit %d)", s.ExitCode)
	}
	if s.Message != "" {
		out += ": " + s.Message
	}
	return out
}

// ErrTimeout is wrapped by errors of actions that ran out of time.
var ErrTimeout = errors.New("timed out")

// New validates spec and returns the Runner for its kind. For an OCF service
// it runs the agent's meta-data action to check the parameters and learn the
// advised timeouts.
func New(spec Spec, opts Options) (Runner, error) {
	opts = opts.withDefaults()
	if err := checkCommon(&spec); err != nil {
		return nil, err
	}
	switch spec.Kind {
	case KindProcess:
		return newProcess(spec, opts)
	case KindCommands:
		return newCommands(spec, opts)
	case KindOCF:
		return newOCF(spec, opts)
	default:
		return newSystemd(spec, opts)
	}
}

// checkCommon checks what every kind shares and rejects fields that belong to
// another kind, since a stray field usually means a typo in the policy.
func checkCommon(spec *Spec) error {
	if err := checkName(spec.Name); err != nil {
		return err
	}
	switch spec.Kind {
	case KindProcess, KindCommands, KindOCF, KindSystemd:
	default:
		return fmt.Errorf("service %q: unknown kind %q; use %q, %q, %q or %q",
			spec.Name, spec.Kind, KindProcess, KindCommands, KindOCF, KindSystemd)
	}
	var problems []string
	stray := func(set bool, field string, kinds ...Kind) {
		if !set {
			return
		}
		for _, k := range kinds {
			if k == spec.Kind {
				return
			}
		}
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = fmt.Sprintf("%q", k)
		}
		problems = append(problems, fmt.Sprintf("%s is set but only applies to kind %s", field, strings.Join(names, " or ")))
	}
	stray(len(spec.Argv) > 0, "Argv", KindProcess)
	stray(len(spec.Env) > 0, "Env", KindProcess, KindCommands)
	stray(spec.Dir != "", "Dir", KindProcess, KindCommands)
	stray(spec.KillWithAgent != nil, "KillWithAgent", KindProcess)
	stray(len(spec.Start) > 0, "Start", KindCommands)
	stray(len(spec.Stop) > 0, "Stop", KindCommands)
	stray(len(spec.Monitor) > 0, "Monitor", KindCommands, KindProcess)
	stray(spec.Provider != "", "Provider", KindOCF)
	stray(spec.Agent != "", "Agent", KindOCF)
	stray(len(spec.Params) > 0, "Params", KindOCF)
	stray(spec.OCFRoot != "", "OCFRoot", KindOCF)
	stray(spec.Unit != "", "Unit", KindSystemd)
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"StartTimeout", spec.StartTimeout}, {"StopTimeout", spec.StopTimeout},
		{"MonitorTimeout", spec.MonitorTimeout}, {"MonitorInterval", spec.MonitorInterval}} {
		if t.d < 0 {
			problems = append(problems, fmt.Sprintf("%s is negative (%s); leave it zero for the default", t.name, t.d))
		}
	}
	if spec.Dir != "" && !filepath.IsAbs(spec.Dir) {
		problems = append(problems, fmt.Sprintf("Dir %q must be an absolute path", spec.Dir))
	}
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			problems = append(problems, fmt.Sprintf("Env name %q is not a valid variable name", k))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("service %q (kind %q): %s", spec.Name, spec.Kind, strings.Join(problems, "; "))
	}
	return nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("service name is empty; give every service a name")
	}
	if len(name) > 63 {
		return fmt.Errorf("service name %q is longer than 63 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r)) {
			return fmt.Errorf("service name %q may only contain letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// checkArgv rejects an empty command or an empty program name.
func checkArgv(field string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%s is empty; give the command as a list of arguments, e.g. [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]", field)
	}
	if argv[0] == "" {
		return fmt.Errorf("%s[0] (the program) is empty", field)
	}
	return nil
}

// environ returns the agent's environment with extra set on top, sorted by
// name so the child's environment does not depend on map order.
func environ(extra map[string]string) []string {
	env := os.Environ()
	if len(extra) == 0 {
		return env
	}
	keep := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, overridden := extra[k]; !overridden {
			keep = append(keep, kv)
		}
	}
	for _, k := range sortedKeys(extra) {
		keep = append(keep, k+"="+extra[k])
	}
	return keep
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
