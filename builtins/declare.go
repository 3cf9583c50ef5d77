package builtins

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/policy"
)

// Collector gathers the declarations made while a policy executes.
type Collector struct {
	Cluster    *policy.Cluster
	Nodes      []*policy.Node
	Paths      []*policy.HeartbeatPath
	Probes     []*policy.Probe
	Groups     []*policy.Group
	Rules      []*policy.Rule
	Backups    []*policy.Backup
	Notifiers  []*policy.Notifier
	declaredAt map[string]policy.Pos
}

const collectorKey = "harules.collector"

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	return &Collector{declaredAt: map[string]policy.Pos{}}
}

// Attach makes declarations on thread record into c.
func (c *Collector) Attach(thread *starlark.Thread) { thread.SetLocal(collectorKey, c) }

func collector(thread *starlark.Thread, fn string) (*Collector, error) {
	c, _ := thread.Local(collectorKey).(*Collector)
	if c == nil {
		return nil, fmt.Errorf("%s() declares part of the policy and may only be called while the policy file loads, not inside a rule", fn)
	}
	return c, nil
}

// unique rejects a second declaration of the same kind and name.
func (c *Collector) unique(kind, name string, pos policy.Pos) error {
	key := kind + "\x00" + name
	if prev, ok := c.declaredAt[key]; ok {
		return fmt.Errorf("%s %q is already declared at %s", kind, name, prev)
	}
	c.declaredAt[key] = pos
	return nil
}

// Declarations returns the policy-declaring built-ins.
func Declarations() starlark.StringDict {
	return starlark.StringDict{
		"cluster":   starlark.NewBuiltin("cluster", declCluster),
		"node":      starlark.NewBuiltin("node", declNode),
		"heartbeat": starlark.NewBuiltin("heartbeat", declHeartbeat),
		"probe":     starlark.NewBuiltin("probe", declProbe),
		"check":     checkModule,
		"group":     starlark.NewBuiltin("group", declGroup),
		"vip":       starlark.NewBuiltin("vip", declVIP),
		"disk":      starlark.NewBuiltin("disk", declDisk),
		"service":   starlark.NewBuiltin("service", declService),
		"database":  starlark.NewBuiltin("database", declDatabase),
		"placement": starlark.NewBuiltin("placement", declPlacement),
		"rule":      starlark.NewBuiltin("rule", declRule),
		"backup":    starlark.NewBuiltin("backup", declBackup),
		"notify":    starlark.NewBuiltin("notify", declNotify),
	}
}

func declCluster(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name, secret string
	reeval, grace, failTimeout := duration(time.Second), duration(0), duration(time.Minute)
	fenceTimeout := duration(time.Minute)
	var fence starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "secret_file?", &secret,
		"reevaluate?", &reeval, "startup_grace?", &grace, "failure_timeout?", &failTimeout,
		"fence?", &fence, "fence_timeout?", &fenceTimeout); err != nil {
		return nil, err
	}
	var fenceArgv []string
	switch x := fence.(type) {
	case starlark.NoneType:
	case starlark.String:
		if strings.TrimSpace(string(x)) == "" {
			return nil, fmt.Errorf("cluster: fence is empty; give a command such as [\"/usr/sbin/fence_ipmilan\", ...] or leave it out")
		}
		fenceArgv = []string{"/bin/sh", "-c", string(x) + ` "$@"`, "fence"}
	default:
		list, err := stringList(fence, "argument")
		if err != nil || len(list) == 0 {
			return nil, fmt.Errorf("cluster: fence must be a command string or a non-empty list of arguments")
		}
		fenceArgv = list
	}
	if fenceTimeout <= 0 {
		return nil, fmt.Errorf("cluster: fence_timeout must be positive")
	}
	pos := callerPos(thread)
	if c.Cluster != nil {
		return nil, fmt.Errorf("cluster() is already declared at %s; a policy declares one cluster", c.Cluster.Pos)
	}
	if name == "" {
		return nil, fmt.Errorf("cluster: name is empty")
	}
	if reeval <= 0 {
		return nil, fmt.Errorf("cluster: reevaluate must be positive, e.g. \"1s\"")
	}
	c.Cluster = &policy.Cluster{Name: name, SecretFile: secret, Reevaluate: time.Duration(reeval),
		StartupGrace: time.Duration(grace), FailureTimeout: time.Duration(failTimeout),
		Fence: fenceArgv, FenceTimeout: time.Duration(fenceTimeout), Pos: pos}
	return starlark.None, nil
}

func declNode(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name, address string
	var addresses starlark.Value = starlark.None
	capacity := 0
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "address?", &address,
		"addresses?", &addresses, "capacity?", &capacity); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("node", name); err != nil {
		return nil, err
	}
	n := &policy.Node{Name: name, Capacity: capacity, Pos: pos}
	if address != "" {
		a, err := netip.ParseAddr(address)
		if err != nil {
			return nil, fmt.Errorf("node %q: address %q is not an IP address", name, address)
		}
		if err := checkNodeAddress(a); err != nil {
			return nil, fmt.Errorf("node %q: address %q %w", name, address, err)
		}
		n.Address = a
	}
	extra, err := stringMap(addresses, "node "+name+": addresses")
	if err != nil {
		return nil, err
	}
	for path, s := range extra {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("node %q: addresses[%q] = %q is not an IP address", name, path, s)
		}
		if err := checkNodeAddress(a); err != nil {
			return nil, fmt.Errorf("node %q: addresses[%q] = %q %w", name, path, s, err)
		}
		if n.Addresses == nil {
			n.Addresses = map[string]netip.Addr{}
		}
		n.Addresses[path] = a
	}
	if capacity < 0 {
		return nil, fmt.Errorf("node %q: capacity must be >= 0 (0 means unlimited)", name)
	}
	if err := c.unique("node", name, pos); err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, n)
	return starlarkstruct.FromStringDict(starlark.String("node"), starlark.StringDict{"name": starlark.String(name)}), nil
}

func declHeartbeat(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name, device string
	kind := "udp"
	interval, jitter := duration(time.Second), duration(0)
	misses, port := 3, 694
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "interval?", &interval,
		"misses?", &misses, "kind?", &kind, "port?", &port, "jitter?", &jitter, "device?", &device); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("heartbeat", name); err != nil {
		return nil, err
	}
	switch {
	case interval < duration(time.Millisecond):
		return nil, fmt.Errorf("heartbeat %q: interval must be at least 1ms, got %s", name, time.Duration(interval))
	case misses < 1:
		return nil, fmt.Errorf("heartbeat %q: misses must be at least 1, got %d", name, misses)
	case kind != "udp" && kind != "disk":
		return nil, fmt.Errorf("heartbeat %q: kind must be \"udp\" or \"disk\", got %q", name, kind)
	case kind == "disk" && device == "":
		return nil, fmt.Errorf("heartbeat %q: a disk heartbeat needs device=\"/dev/...\"", name)
	case port < 1 || port > 65535:
		return nil, fmt.Errorf("heartbeat %q: port %d is out of range 1..65535", name, port)
	case jitter >= interval:
		return nil, fmt.Errorf("heartbeat %q: jitter %s must be smaller than the interval %s", name, time.Duration(jitter), time.Duration(interval))
	case float64(interval)*float64(misses) > float64(maxDetection):
		// Also keeps interval x misses from overflowing time.Duration.
		return nil, fmt.Errorf("heartbeat %q: interval %s x misses %d exceeds %s; a dead peer would never be noticed", name, time.Duration(interval), misses, maxDetection)
	}
	if err := c.unique("heartbeat", name, pos); err != nil {
		return nil, err
	}
	c.Paths = append(c.Paths, &policy.HeartbeatPath{Name: name, Kind: kind, Interval: time.Duration(interval),
		Misses: misses, Jitter: time.Duration(jitter), Port: port, Device: device, Pos: pos})
	return starlarkstruct.FromStringDict(starlark.String("heartbeat"), starlark.StringDict{"name": starlark.String(name)}), nil
}

func declProbe(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name string
	var chkArg starlark.Value
	every, timeout := duration(time.Second), duration(0)
	rise, fall := 2, 3
	var nodes starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "check", &chkArg, "every?", &every,
		"timeout?", &timeout, "rise?", &rise, "fall?", &fall, "nodes?", &nodes); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("probe", name); err != nil {
		return nil, err
	}
	chk, ok := chkArg.(*object[policy.Check])
	if !ok {
		return nil, fmt.Errorf("probe %q: check must be a check.KIND(...) value such as check.tcp(\"127.0.0.1:80\"), got %s", name, chkArg.Type())
	}
	if timeout == 0 {
		timeout = min(every, duration(time.Second))
	}
	switch {
	case every <= 0:
		return nil, fmt.Errorf("probe %q: every must be positive", name)
	case timeout > every:
		return nil, fmt.Errorf("probe %q: timeout %s is longer than every %s; a probe must finish before the next one starts", name, time.Duration(timeout), time.Duration(every))
	case rise < 1 || fall < 1:
		return nil, fmt.Errorf("probe %q: rise and fall must be at least 1", name)
	}
	ns, err := stringList(nodes, "node")
	if err != nil {
		return nil, fmt.Errorf("probe %q: nodes: %w", name, err)
	}
	if err := c.unique("probe", name, pos); err != nil {
		return nil, err
	}
	c.Probes = append(c.Probes, &policy.Probe{Name: name, Check: chk.v, Every: time.Duration(every),
		Timeout: time.Duration(timeout), Rise: rise, Fall: fall, Nodes: ns, Pos: pos})
	return starlarkstruct.FromStringDict(starlark.String("probe"), starlark.StringDict{"name": starlark.String(name)}), nil
}

func declGroup(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name string
	var resources *starlark.List
	var placeArg starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "resources", &resources, "placement?", &placeArg); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("group", name); err != nil {
		return nil, err
	}
	place, ok := placeArg.(*object[policy.Placement])
	if !ok && placeArg != starlark.None {
		return nil, fmt.Errorf("group %q: placement must be a placement(...) value, e.g. active_standby([...]) from @stdlib//placement.star, got %s", name, placeArg.Type())
	}
	g := &policy.Group{Name: name, Pos: pos}
	seen := map[string]bool{}
	for i := 0; i < resources.Len(); i++ {
		r, ok := resources.Index(i).(*object[*policy.Resource])
		if !ok {
			return nil, fmt.Errorf("group %q: resources[%d] is a %s; want vip(...), disk(...), service(...) or database(...)", name, i, resources.Index(i).Type())
		}
		if seen[r.v.ID()] {
			return nil, fmt.Errorf("group %q: resource %s appears twice; give each resource its own name=", name, r.v.ID())
		}
		seen[r.v.ID()] = true
		g.Resources = append(g.Resources, r.v)
	}
	if place != nil {
		g.Placement = place.v
	} else {
		g.Placement = policy.Placement{Kind: "default", Failback: policy.FailbackManual, Stickiness: 100, Weight: 1, Pos: pos}
	}
	if err := c.unique("group", name, pos); err != nil {
		return nil, err
	}
	c.Groups = append(c.Groups, g)
	return starlarkstruct.FromStringDict(starlark.String("group"), starlark.StringDict{"name": starlark.String(name)}), nil
}

func declPlacement(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var nodes, scores starlark.Value = starlark.None, starlark.None
	kind, failback := "custom", policy.FailbackManual
	stickiness, priority, load := 0, 0, 1
	var delay duration
	var score starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "nodes?", &nodes, "scores?", &scores,
		"stickiness?", &stickiness, "failback?", &failback, "failback_delay?", &delay, "priority?", &priority,
		"weight?", &load, "score?", &score, "kind?", &kind); err != nil {
		return nil, err
	}
	p := policy.Placement{Kind: kind, Stickiness: stickiness, Failback: failback, FailbackDelay: time.Duration(delay),
		Priority: priority, Weight: load, Score: score, Pos: callerPos(thread)}
	var err error
	if p.Nodes, err = stringList(nodes, "node"); err != nil {
		return nil, fmt.Errorf("placement: nodes: %w", err)
	}
	if scores != starlark.None {
		d, ok := scores.(*starlark.Dict)
		if !ok {
			return nil, fmt.Errorf("placement: scores: want a dict of node -> int, got %s", scores.Type())
		}
		p.Scores = map[string]int{}
		for _, kv := range d.Items() {
			n, err := nameOf(kv[0], "node")
			if err != nil {
				return nil, fmt.Errorf("placement: scores: %w", err)
			}
			v, err := starlark.AsInt32(kv[1])
			if err != nil {
				return nil, fmt.Errorf("placement: scores[%q]: want a 32-bit int: %v", n, err)
			}
			p.Scores[n] = v
		}
	}
	if failback != policy.FailbackAuto && failback != policy.FailbackManual {
		return nil, fmt.Errorf("placement: failback must be \"auto\" or \"manual\", got %q (for a delay use failback=\"auto\", failback_delay=\"5m\")", failback)
	}
	if load < 0 {
		return nil, fmt.Errorf("placement: weight must be >= 0")
	}
	attrs := starlark.StringDict{"kind": starlark.String(kind), "failback": starlark.String(failback)}
	return newObject("placement", "placement("+kind+")", p, attrs), nil
}

func declRule(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name string
	var when starlark.Callable
	var then starlark.Value
	var forDur duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "when", &when, "then?", &then, "for_?", &forDur); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("rule", name); err != nil {
		return nil, err
	}
	if then != nil && then != starlark.None {
		if _, err := decisionsOf(then); err != nil {
			if _, ok := then.(starlark.Callable); !ok {
				return nil, fmt.Errorf("rule %q: then: %w", name, err)
			}
		}
	} else {
		then = nil
	}
	if err := c.unique("rule", name, pos); err != nil {
		return nil, err
	}
	c.Rules = append(c.Rules, &policy.Rule{Name: name, When: when, Then: then, For: time.Duration(forDur), Pos: pos})
	return starlark.None, nil
}

// maxDetection bounds a heartbeat path's detection time (interval x misses).
const maxDetection = 24 * time.Hour

// cronParser accepts standard 5-field lines and descriptors such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func declBackup(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name, schedule, tz string
	var group groupRef
	kind := "files"
	catchUp := true
	var params starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "schedule", &schedule, "group?", &group,
		"kind?", &kind, "catch_up?", &catchUp, "timezone?", &tz, "params?", &params); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("backup", name); err != nil {
		return nil, err
	}
	if every, ok := strings.CutPrefix(strings.TrimSpace(schedule), "@every "); ok {
		// cron silently turns "@every 0s" and "@every -5m" into every second.
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return nil, fmt.Errorf("backup %q: schedule %q: the @every interval must be at least 1s", name, schedule)
		}
	}
	sched, err := cronParser.Parse(schedule)
	if err != nil {
		return nil, fmt.Errorf("backup %q: schedule %q is not a cron line (want 5 fields \"min hour dom month dow\", e.g. \"30 2 * * *\", or @daily/@hourly/@every 1h): %v", name, schedule, err)
	}
	loc := time.UTC
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("backup %q: unknown timezone %q", name, tz)
		}
	}
	switch kind {
	case "files", "postgres", "mysql", "exec":
	default:
		return nil, fmt.Errorf("backup %q: kind must be one of files, postgres, mysql, exec; got %q", name, kind)
	}
	p, err := stringMap(params, "backup "+name+": params")
	if err != nil {
		return nil, err
	}
	// The agent builds the job with the same function, so a policy that
	// passes check has jobs that run.
	if _, _, _, err := backup.JobFromParams(name, kind, p, loc); err != nil {
		return nil, err
	}
	if err := c.unique("backup", name, pos); err != nil {
		return nil, err
	}
	c.Backups = append(c.Backups, &policy.Backup{Name: name, Schedule: schedule, Sched: sched, Location: loc,
		Group: string(group), Kind: kind, CatchUp: catchUp, Params: p, Pos: pos})
	return starlark.None, nil
}

// checkName keeps names usable in logs, metrics labels and file names.
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if len(name) > 63 {
		return fmt.Errorf("%s name %q is longer than 63 characters", kind, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r)) {
			return fmt.Errorf("%s name %q may only contain letters, digits, '-', '_' and '.'", kind, name)
		}
	}
	return nil
}

// checkNodeAddress refuses heartbeat addresses a socket cannot use as they
// are written: an IPv6 link-local address needs its interface (a zone) to
// be bound or reached, and policies name no interfaces for heartbeats.
func checkNodeAddress(a netip.Addr) error {
	switch {
	case a.Is6() && !a.Is4In6() && (a.IsLinkLocalUnicast() || a.Zone() != ""):
		return errors.New("is IPv6 link-local (or carries a zone): heartbeats need a global or unique local IPv6 address, or an IPv4 one")
	case a.IsUnspecified() || a.IsMulticast():
		return errors.New("cannot be a node's heartbeat address (unspecified or multicast)")
	}
	return nil
}
