package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultOCFRoot is where Debian's resource-agents package installs agents.
const DefaultOCFRoot = "/usr/lib/ocf"

// OCFCode is an OCF resource agent exit code.
type OCFCode int

// The OCF exit codes (OCF resource agent API 1.1).
const (
	OCFSuccess          OCFCode = 0
	OCFErrGeneric       OCFCode = 1
	OCFErrArgs          OCFCode = 2
	OCFErrUnimplemented OCFCode = 3
	OCFErrPerm          OCFCode = 4
	OCFErrInstalled     OCFCode = 5
	OCFErrConfigured    OCFCode = 6
	OCFNotRunning       OCFCode = 7
	OCFRunningMaster    OCFCode = 8
	OCFFailedMaster     OCFCode = 9
)

var ocfCodeNames = [...]string{
	"OCF_SUCCESS", "OCF_ERR_GENERIC", "OCF_ERR_ARGS", "OCF_ERR_UNIMPLEMENTED", "OCF_ERR_PERM",
	"OCF_ERR_INSTALLED", "OCF_ERR_CONFIGURED", "OCF_NOT_RUNNING", "OCF_RUNNING_MASTER", "OCF_FAILED_MASTER",
}

// String returns the standard name, e.g. "OCF_ERR_CONFIGURED".
func (c OCFCode) String() string {
	if c >= 0 && int(c) < len(ocfCodeNames) {
		return ocfCodeNames[c]
	}
	return "OCF_UNKNOWN_" + strconv.Itoa(int(c))
}

// Hard reports whether c says the agent cannot work here at all (bad
// arguments, unimplemented, no permission, not installed, not configured, or
// a code outside the standard), so retrying on this node is pointless;
// Pacemaker bans the resource from the node (or, for OCF_ERR_CONFIGURED,
// from the cluster).
func (c OCFCode) Hard() bool {
	return c < OCFSuccess || (c >= OCFErrArgs && c <= OCFErrConfigured) || c > OCFFailedMaster
}

// state maps a monitor's exit code to a State; hard codes mean the check
// itself failed, not merely the service.
func (c OCFCode) state() (s State, hard bool) {
	switch c {
	case OCFSuccess:
		return StateRunning, false
	case OCFNotRunning:
		return StateStopped, false
	case OCFRunningMaster:
		return StatePromoted, false
	case OCFFailedMaster:
		return StateFailedPromoted, false
	}
	return StateFailed, c.Hard()
}

// OCFRunner runs an OCF resource agent (kind "ocf") the way Pacemaker does:
// $OCF_ROOT/resource.d/PROVIDER/AGENT ACTION, parameters as OCF_RESKEY_*.
// Agents are idempotent by contract; a stop that reports OCF_NOT_RUNNING is
// taken as success too.
type OCFRunner struct {
	spec  Spec
	opts  Options
	log   *slog.Logger
	path  string
	meta  *MetaData
	slots chan struct{}
}

var (
	_ Runner    = (*OCFRunner)(nil)
	_ Validator = (*OCFRunner)(nil)
)

// ocfAgentPath returns the agent's executable, or an error that says how to
// install it.
func ocfAgentPath(root, provider, agent string) (string, error) {
	for _, part := range []struct{ what, v string }{{"Provider", provider}, {"Agent", agent}} {
		if part.v == "" || part.v == "." || part.v == ".." || strings.ContainsAny(part.v, "/\x00") {
			return "", fmt.Errorf("%s %q is not a valid name (e.g. Provider \"heartbeat\", Agent \"Filesystem\")", part.what, part.v)
		}
	}
	path := filepath.Join(root, "resource.d", provider, agent)
	fi, err := os.Stat(path)
	if err != nil {
		hint := ""
		if provider == "heartbeat" {
			hint = " (heartbeat agents come with the resource-agents package: apt-get install resource-agents)"
		}
		return "", fmt.Errorf("OCF agent ocf:%s:%s not found at %s%s: %w", provider, agent, path, hint, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("OCF agent %s is not an executable file", path)
	}
	return path, nil
}

func newOCF(spec Spec, opts Options) (*OCFRunner, error) {
	if spec.Provider == "" {
		spec.Provider = "heartbeat"
	}
	if spec.OCFRoot == "" {
		spec.OCFRoot = DefaultOCFRoot
	}
	if !filepath.IsAbs(spec.OCFRoot) {
		return nil, fmt.Errorf("service %q: OCFRoot %q must be an absolute path", spec.Name, spec.OCFRoot)
	}
	path, err := ocfAgentPath(spec.OCFRoot, spec.Provider, spec.Agent)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", spec.Name, err)
	}
	r := &OCFRunner{
		spec:  spec,
		opts:  opts,
		log:   opts.Logger.With("service", spec.Name, "kind", KindOCF, "agent", spec.Provider+":"+spec.Agent),
		path:  path,
		slots: make(chan struct{}, 1),
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.MetaDataTimeout)
	defer cancel()
	meta, err := r.MetaData(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkParams(meta, spec); err != nil {
		return nil, err
	}
	r.meta = meta
	advised := func(action string) time.Duration {
		a, _ := meta.Action(action)
		return a.Timeout
	}
	r.spec.StartTimeout = orDefault(spec.StartTimeout, orDefault(advised("start"), DefaultTimeout))
	r.spec.StopTimeout = orDefault(spec.StopTimeout, orDefault(advised("stop"), DefaultTimeout))
	r.spec.MonitorTimeout = orDefault(spec.MonitorTimeout, orDefault(advised("monitor"), DefaultTimeout))
	mon, _ := meta.Action("monitor")
	r.spec.MonitorInterval = orDefault(spec.MonitorInterval, orDefault(mon.Interval, DefaultMonitorInterval))
	return r, nil
}

// checkParams rejects unknown parameters and missing required ones, listing
// what the agent accepts.
func checkParams(meta *MetaData, spec Spec) error {
	var problems []string
	for _, k := range sortedKeys(spec.Params) {
		if _, ok := meta.Parameter(k); !ok {
			problems = append(problems, fmt.Sprintf("unknown parameter %q", k))
		}
	}
	for _, p := range meta.Parameters {
		if _, ok := spec.Params[p.Name]; p.Required && !ok {
			desc := ""
			if p.ShortDesc != "" {
				desc = " (" + p.ShortDesc + ")"
			}
			problems = append(problems, fmt.Sprintf("missing required parameter %q%s", p.Name, desc))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("service %q: ocf:%s:%s: %s; the agent's parameters are: %s",
		spec.Name, spec.Provider, spec.Agent, strings.Join(problems, "; "), strings.Join(meta.ParameterNames(), ", "))
}

// ReadMetaData runs the meta-data action of ocf:provider:agent under root
// (DefaultOCFRoot when empty) and parses it.
func ReadMetaData(ctx context.Context, root, provider, agent string) (*MetaData, error) {
	if root == "" {
		root = DefaultOCFRoot
	}
	spec := Spec{Name: agent, Kind: KindOCF, OCFRoot: root, Provider: provider, Agent: agent}
	path, err := ocfAgentPath(root, provider, agent)
	if err != nil {
		return nil, err
	}
	r := &OCFRunner{spec: spec, opts: Options{}.withDefaults(), path: path}
	return r.MetaData(ctx)
}

// MetaData runs the agent's meta-data action and parses the XML.
func (r *OCFRunner) MetaData(ctx context.Context) (*MetaData, error) {
	timeout := r.opts.MetaDataTimeout
	res := runCommand(ctx, []string{r.path, "meta-data"}, r.env("meta-data", timeout), "", timeout, true)
	if err := r.resultError("meta-data", res); err != nil {
		return nil, err
	}
	meta, err := ParseMetaData([]byte(res.stdout))
	if err != nil {
		return nil, fmt.Errorf("service %q: ocf:%s:%s: %w", r.spec.Name, r.spec.Provider, r.spec.Agent, err)
	}
	return meta, nil
}

// Start runs the agent's start action.
func (r *OCFRunner) Start(ctx context.Context) error {
	return r.act(ctx, "start", r.spec.StartTimeout, func(c OCFCode) bool { return c == OCFSuccess })
}

// Stop runs the agent's stop action; OCF_NOT_RUNNING counts as success.
func (r *OCFRunner) Stop(ctx context.Context) error {
	return r.act(ctx, "stop", r.spec.StopTimeout, func(c OCFCode) bool { return c == OCFSuccess || c == OCFNotRunning })
}

// Validate runs validate-all. It returns an error wrapping
// errors.ErrUnsupported when the agent does not list that action.
func (r *OCFRunner) Validate(ctx context.Context) error {
	if r.meta != nil && !r.meta.Supports("validate-all") {
		return fmt.Errorf("service %q: ocf:%s:%s has no validate-all action: %w", r.spec.Name, r.spec.Provider, r.spec.Agent, errors.ErrUnsupported)
	}
	return r.act(ctx, "validate-all", r.actionTimeout("validate-all"), func(c OCFCode) bool { return c == OCFSuccess })
}

// Promote and Demote run the agent's promote and demote actions (promotable
// agents only).
func (r *OCFRunner) Promote(ctx context.Context) error {
	return r.act(ctx, "promote", r.actionTimeout("promote"), func(c OCFCode) bool { return c == OCFSuccess })
}

// Demote runs the agent's demote action.
func (r *OCFRunner) Demote(ctx context.Context) error {
	return r.act(ctx, "demote", r.actionTimeout("demote"), func(c OCFCode) bool { return c == OCFSuccess })
}

func (r *OCFRunner) actionTimeout(action string) time.Duration {
	if r.meta == nil {
		return DefaultTimeout
	}
	if a, ok := r.meta.Action(action); ok && a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultTimeout
}

// Monitor runs the agent's monitor action and maps the OCF code to a State.
func (r *OCFRunner) Monitor(ctx context.Context) (Status, error) {
	if err := r.acquire(ctx, "monitor"); err != nil {
		return Status{State: StateFailed, ExitCode: -1}, err
	}
	defer r.release()
	res := runCommand(ctx, []string{r.path, "monitor"}, r.env("monitor", r.spec.MonitorTimeout), "", r.spec.MonitorTimeout, false)
	reason, output := exitReason(res.output)
	msg := reason
	if msg == "" {
		msg = messageTail(output)
	}
	if res.err != nil {
		return Status{State: StateFailed, ExitCode: -1, Message: msg}, r.resultError("monitor", res)
	}
	code := OCFCode(res.exitCode)
	state, hard := code.state()
	st := Status{State: state, ExitCode: res.exitCode, Message: msg}
	if hard {
		return st, r.resultError("monitor", res)
	}
	return st, nil
}

func (r *OCFRunner) acquire(ctx context.Context, action string) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service %q: %s: waiting for the previous action: %w", r.spec.Name, action, ctx.Err())
	}
}

func (r *OCFRunner) release() { <-r.slots }

func (r *OCFRunner) act(ctx context.Context, action string, timeout time.Duration, ok func(OCFCode) bool) error {
	if err := r.acquire(ctx, action); err != nil {
		return err
	}
	defer r.release()
	began := r.opts.Now()
	res := runCommand(ctx, []string{r.path, action}, r.env(action, timeout), "", timeout, false)
	if res.err == nil && ok(OCFCode(res.exitCode)) {
		r.log.Info("service action done", "action", action, "took", r.opts.Now().Sub(began))
		return nil
	}
	err := r.resultError(action, res) // not nil: every ok accepts OCF_SUCCESS
	r.log.Warn("service action failed", "action", action, "err", err)
	return err
}

// resultError returns nil for exit 0 and an *ActionError otherwise.
func (r *OCFRunner) resultError(action string, res commandResult) error {
	if res.err == nil && res.exitCode == 0 {
		return nil
	}
	reason, output := exitReason(res.output)
	return &ActionError{
		Service:  r.spec.Name,
		Action:   fmt.Sprintf("ocf:%s:%s %s", r.spec.Provider, r.spec.Agent, action),
		ExitCode: res.exitCode,
		OCF:      true,
		TimedOut: res.timedOut,
		Reason:   reason,
		Output:   output,
		Err:      res.err,
	}
}

// env builds the agent's environment: the agent's own minus any OCF_*
// variables, then the OCF ones.
func (r *OCFRunner) env(action string, timeout time.Duration) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCF_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"OCF_ROOT="+r.spec.OCFRoot,
		"OCF_RA_VERSION_MAJOR=1",
		"OCF_RA_VERSION_MINOR=1",
		"OCF_RESOURCE_INSTANCE="+r.spec.Name,
		"OCF_RESOURCE_TYPE="+r.spec.Agent,
		"OCF_RESOURCE_PROVIDER="+r.spec.Provider,
		"OCF_RESKEY_CRM_meta_timeout="+strconv.FormatInt(timeout.Milliseconds(), 10),
	)
	if action == "monitor" {
		// Never 0: agents treat a monitor with interval 0 as a probe.
		env = append(env, "OCF_RESKEY_CRM_meta_interval="+strconv.FormatInt(r.spec.MonitorInterval.Milliseconds(), 10))
	}
	for _, k := range sortedKeys(r.spec.Params) {
		env = append(env, "OCF_RESKEY_"+k+"="+r.spec.Params[k])
	}
	return env
}

// exitReason splits the "ocf-exit-reason:" lines agents print (the reason
// Pacemaker shows) from the rest of the output.
func exitReason(output string) (reason, rest string) {
	var lines []string
	for _, l := range strings.Split(output, "\n") {
		if before, r, ok := strings.Cut(l, "ocf-exit-reason:"); ok {
			reason = strings.TrimSpace(r)
			l = before
		}
		lines = append(lines, l)
	}
	return reason, strings.TrimSpace(strings.Join(lines, "\n"))
}
