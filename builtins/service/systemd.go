package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// SystemdRunner drives a systemd unit (kind "systemd") with systemctl start,
// stop and is-active. systemctl start and stop are idempotent themselves.
//
// Only the error path and the command construction are tested on the build
// machine (PID 1 is not systemd there); the live path against a real systemd
// is untested here.
type SystemdRunner struct {
	spec      Spec
	opts      Options
	log       *slog.Logger
	systemctl string
	slots     chan struct{}
}

var _ Runner = (*SystemdRunner)(nil)

func newSystemd(spec Spec, opts Options) (*SystemdRunner, error) {
	unit := spec.Unit
	if unit == "" {
		return nil, fmt.Errorf("service %q: kind systemd needs Unit (e.g. \"nginx.service\")", spec.Name)
	}
	if strings.HasPrefix(unit, "-") || strings.ContainsAny(unit, " \t\n/\x00") {
		return nil, fmt.Errorf("service %q: Unit %q is not a unit name (no leading '-', spaces or '/')", spec.Name, unit)
	}
	if _, err := os.Stat(opts.SystemdDir); err != nil {
		return nil, fmt.Errorf("service %q: kind systemd needs systemd as PID 1, but %s does not exist on this machine; use kind \"process\" or \"commands\" instead: %w",
			spec.Name, opts.SystemdDir, err)
	}
	systemctl, err := exec.LookPath(opts.Systemctl)
	if err != nil {
		return nil, fmt.Errorf("service %q: kind systemd: systemctl not found: %w", spec.Name, err)
	}
	spec.StartTimeout = orDefault(spec.StartTimeout, DefaultTimeout)
	spec.StopTimeout = orDefault(spec.StopTimeout, DefaultTimeout)
	spec.MonitorTimeout = orDefault(spec.MonitorTimeout, DefaultTimeout)
	return &SystemdRunner{
		spec:      spec,
		opts:      opts,
		log:       opts.Logger.With("service", spec.Name, "kind", KindSystemd, "unit", unit),
		systemctl: systemctl,
		slots:     make(chan struct{}, 1),
	}, nil
}

// systemctlArgv builds the command line of one action.
func systemctlArgv(systemctl, verb, unit string) []string {
	return []string{systemctl, verb, unit}
}

func (r *SystemdRunner) acquire(ctx context.Context, action string) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service %q: %s: waiting for the previous action: %w", r.spec.Name, action, ctx.Err())
	}
}

func (r *SystemdRunner) release() { <-r.slots }

// Start runs systemctl start UNIT (which waits until the unit is up).
func (r *SystemdRunner) Start(ctx context.Context) error {
	return r.run(ctx, "start", r.spec.StartTimeout)
}

// Stop runs systemctl stop UNIT.
func (r *SystemdRunner) Stop(ctx context.Context) error {
	return r.run(ctx, "stop", r.spec.StopTimeout)
}

func (r *SystemdRunner) run(ctx context.Context, verb string, timeout time.Duration) error {
	if err := r.acquire(ctx, verb); err != nil {
		return err
	}
	defer r.release()
	began := r.opts.Now()
	res := runCommand(ctx, systemctlArgv(r.systemctl, verb, r.spec.Unit), os.Environ(), "", timeout, false)
	if res.err != nil || res.exitCode != 0 {
		err := &ActionError{Service: r.spec.Name, Action: "systemctl " + verb, ExitCode: res.exitCode, TimedOut: res.timedOut, Output: res.output, Err: res.err}
		r.log.Warn("service action failed", "action", verb, "err", err)
		return err
	}
	r.log.Info("service action done", "action", verb, "took", r.opts.Now().Sub(began))
	return nil
}

// Monitor runs systemctl is-active UNIT. Units on their way up or down
// (activating, deactivating, reloading) count as running: something of the
// service may run, and a peer must not start it too.
func (r *SystemdRunner) Monitor(ctx context.Context) (Status, error) {
	if err := r.acquire(ctx, "monitor"); err != nil {
		return Status{State: StateFailed, ExitCode: -1}, err
	}
	defer r.release()
	res := runCommand(ctx, systemctlArgv(r.systemctl, "is-active", r.spec.Unit), os.Environ(), "", r.spec.MonitorTimeout, true)
	if res.err != nil {
		return Status{State: StateFailed, ExitCode: -1, Message: messageTail(res.output)},
			&ActionError{Service: r.spec.Name, Action: "systemctl is-active", ExitCode: -1, TimedOut: res.timedOut, Output: res.output, Err: res.err}
	}
	return isActiveStatus(res.exitCode, res.stdout, res.output)
}

// isActiveStatus maps systemctl is-active's answer to a Status.
func isActiveStatus(exitCode int, stdout, stderr string) (Status, error) {
	word := strings.TrimSpace(stdout)
	if i := strings.IndexByte(word, '\n'); i >= 0 {
		word = word[:i]
	}
	st := Status{ExitCode: exitCode, Message: word}
	switch word {
	case "active", "reloading", "refreshing", "activating", "deactivating":
		st.State = StateRunning
	case "inactive":
		st.State = StateStopped
	case "failed":
		st.State = StateFailed
	default:
		st.State = StateFailed
		return st, fmt.Errorf("systemctl is-active answered %q (exit %d): %s", word, exitCode, stderr)
	}
	return st, nil
}
