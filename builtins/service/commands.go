package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// CommandsRunner runs LSB-like start, stop and monitor commands (kind
// "commands"). Monitor exit 0 means running, 3 (LSB "not running") or 7
// (OCF_NOT_RUNNING) stopped, anything else failed.
//
// Scripts are often not idempotent, so Start and Stop ask Monitor first and
// do nothing when the service is already in the wanted state.
type CommandsRunner struct {
	spec  Spec
	opts  Options
	log   *slog.Logger
	slots chan struct{}
}

var _ Runner = (*CommandsRunner)(nil)

func newCommands(spec Spec, opts Options) (*CommandsRunner, error) {
	var problems []error
	for _, c := range []struct {
		field string
		argv  []string
	}{{"Start", spec.Start}, {"Stop", spec.Stop}, {"Monitor", spec.Monitor}} {
		if err := checkArgv(c.field, c.argv); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("service %q (kind commands needs Start, Stop and Monitor): %w", spec.Name, errors.Join(problems...))
	}
	spec.StartTimeout = orDefault(spec.StartTimeout, DefaultTimeout)
	spec.StopTimeout = orDefault(spec.StopTimeout, DefaultTimeout)
	spec.MonitorTimeout = orDefault(spec.MonitorTimeout, DefaultTimeout)
	return &CommandsRunner{
		spec:  spec,
		opts:  opts,
		log:   opts.Logger.With("service", spec.Name, "kind", KindCommands),
		slots: make(chan struct{}, 1),
	}, nil
}

func (r *CommandsRunner) acquire(ctx context.Context, action string) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service %q: %s: waiting for the previous action: %w", r.spec.Name, action, ctx.Err())
	}
}

func (r *CommandsRunner) release() { <-r.slots }

// Start runs the start command unless Monitor says the service runs.
func (r *CommandsRunner) Start(ctx context.Context) error {
	if err := r.acquire(ctx, "start"); err != nil {
		return err
	}
	defer r.release()
	if st, err := r.monitor(ctx); err == nil && st.State == StateRunning {
		return nil
	}
	return r.run(ctx, "start", r.spec.Start, r.spec.StartTimeout)
}

// Stop runs the stop command unless Monitor says the service is stopped.
func (r *CommandsRunner) Stop(ctx context.Context) error {
	if err := r.acquire(ctx, "stop"); err != nil {
		return err
	}
	defer r.release()
	if st, err := r.monitor(ctx); err == nil && st.State == StateStopped {
		return nil
	}
	return r.run(ctx, "stop", r.spec.Stop, r.spec.StopTimeout)
}

// Monitor runs the monitor command.
func (r *CommandsRunner) Monitor(ctx context.Context) (Status, error) {
	if err := r.acquire(ctx, "monitor"); err != nil {
		return Status{State: StateFailed, ExitCode: -1}, err
	}
	defer r.release()
	return r.monitor(ctx)
}

func (r *CommandsRunner) monitor(ctx context.Context) (Status, error) {
	res := runCommand(ctx, r.spec.Monitor, environ(r.spec.Env), r.spec.Dir, r.spec.MonitorTimeout, false)
	if res.err != nil {
		return Status{State: StateFailed, ExitCode: -1, Message: messageTail(res.output)},
			&ActionError{Service: r.spec.Name, Action: "monitor", ExitCode: -1, TimedOut: res.timedOut, Output: res.output, Err: res.err}
	}
	st := Status{ExitCode: res.exitCode, Message: messageTail(res.output)}
	switch res.exitCode {
	case 0:
		st.State = StateRunning
	case 3, 7:
		st.State = StateStopped
	default:
		st.State = StateFailed
	}
	return st, nil
}

func (r *CommandsRunner) run(ctx context.Context, action string, argv []string, timeout time.Duration) error {
	began := r.opts.Now()
	res := runCommand(ctx, argv, environ(r.spec.Env), r.spec.Dir, timeout, false)
	if res.err != nil || res.exitCode != 0 {
		err := &ActionError{Service: r.spec.Name, Action: action, ExitCode: res.exitCode, TimedOut: res.timedOut, Output: res.output, Err: res.err}
		r.log.Warn("service action failed", "action", action, "err", err)
		return err
	}
	r.log.Info("service action done", "action", action, "took", r.opts.Now().Sub(began))
	return nil
}
