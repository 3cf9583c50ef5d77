package builtins

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/harules/harules/builtins/disk"
	"github.com/harules/harules/policy"
)

func newResource(kind, name string, params map[string]string, pos policy.Pos) starlark.Value {
	r := &policy.Resource{Kind: kind, Name: name, Params: params, Pos: pos}
	return newObject(kind, fmt.Sprintf("%s(%q)", kind, name), r, starlark.StringDict{
		"kind": starlark.String(kind), "name": starlark.String(name)})
}

func declVIP(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var address, iface, name string
	arpCount := 3
	arpInterval := duration(200 * time.Millisecond)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "address", &address, "interface?", &iface, "name?", &name,
		"arp_count?", &arpCount, "arp_interval?", &arpInterval); err != nil {
		return nil, err
	}
	pfx, err := netip.ParsePrefix(address)
	if err != nil {
		if a, err2 := netip.ParseAddr(address); err2 == nil {
			return nil, fmt.Errorf("vip: address %q needs a prefix length, e.g. \"%s/24\"", address, a)
		}
		return nil, fmt.Errorf("vip: address %q is not an address with prefix length like \"198.51.100.10/24\"", address)
	}
	if a := pfx.Addr(); a.Is4In6() || a.Zone() != "" {
		return nil, fmt.Errorf("vip: address %s must be a plain IPv4 or IPv6 address (no IPv4-mapped form, no zone)", pfx)
	} else if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || (a.Is6() && a.IsLinkLocalUnicast()) {
		return nil, fmt.Errorf("vip: address %s cannot be a virtual address (unspecified, multicast, loopback or IPv6 link-local)", pfx)
	}
	if len(iface) > 15 {
		return nil, fmt.Errorf("vip: interface name %q is longer than 15 characters", iface)
	}
	if arpCount < 0 {
		return nil, fmt.Errorf("vip: arp_count must be >= 0")
	}
	if name == "" {
		name = pfx.Addr().String()
	}
	return newResource(policy.KindVIP, name, map[string]string{"address": pfx.String(), "interface": iface,
		"arp_count": strconv.Itoa(arpCount), "arp_interval": time.Duration(arpInterval).String()}, callerPos(thread)), nil
}

func declDisk(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var device, mountpoint, options, name, leaseDevice string
	fstype := "ext4"
	fsck, killHolders := false, true
	// -1: not given (the disk package's defaults apply).
	lease, renew, margin, ioTimeout, stopGrace := duration(-1), duration(-1), duration(-1), duration(-1), duration(-1)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "device", &device, "mountpoint", &mountpoint, "fstype?", &fstype,
		"options?", &options, "name?", &name, "fsck?", &fsck, "lease_device?", &leaseDevice,
		"lease?", &lease, "renew?", &renew, "margin?", &margin, "io_timeout?", &ioTimeout,
		"kill_holders?", &killHolders, "stop_grace?", &stopGrace); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(device, "/") && !strings.HasPrefix(device, "UUID=") && !strings.HasPrefix(device, "LABEL=") {
		return nil, fmt.Errorf("disk: device %q must be a path (/dev/...), UUID=... or LABEL=...", device)
	}
	if leaseDevice != "" && !strings.HasPrefix(leaseDevice, "/") && !strings.HasPrefix(leaseDevice, "UUID=") && !strings.HasPrefix(leaseDevice, "LABEL=") {
		return nil, fmt.Errorf("disk: lease_device %q must be a path (/dev/...), UUID=... or LABEL=...", leaseDevice)
	}
	if !strings.HasPrefix(mountpoint, "/") {
		return nil, fmt.Errorf("disk: mountpoint %q must be an absolute path", mountpoint)
	}
	if name == "" {
		name = mountpoint
	}
	p := map[string]string{"device": device, "mountpoint": mountpoint, "fstype": fstype, "options": options,
		"fsck": strconv.FormatBool(fsck), "kill_holders": strconv.FormatBool(killHolders)}
	if leaseDevice != "" {
		p["lease_device"] = leaseDevice
	}
	for key, d := range map[string]duration{"lease": lease, "renew": renew, "margin": margin, "io_timeout": ioTimeout, "stop_grace": stopGrace} {
		if d >= 0 {
			p[key] = time.Duration(d).String()
		}
	}
	// The agent builds the resource from these params with the same
	// function: a policy that passes check has disks that mount.
	if _, err := disk.SpecFromParams(p); err != nil {
		return nil, fmt.Errorf("disk %q: %w", name, err)
	}
	return newResource(policy.KindDisk, name, p, callerPos(thread)), nil
}

func declService(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, ocf, systemd string
	var command, start, stop, monitor, params starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None, starlark.None
	startTimeout, stopTimeout := duration(20*time.Second), duration(20*time.Second)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "command?", &command, "start?", &start,
		"stop?", &stop, "monitor?", &monitor, "ocf?", &ocf, "params?", &params, "systemd?", &systemd,
		"start_timeout?", &startTimeout, "stop_timeout?", &stopTimeout); err != nil {
		return nil, err
	}
	if err := checkName("service", name); err != nil {
		return nil, err
	}
	p := map[string]string{"start_timeout": time.Duration(startTimeout).String(), "stop_timeout": time.Duration(stopTimeout).String()}
	kinds := 0
	argv := func(key string, v starlark.Value) error {
		switch x := v.(type) {
		case starlark.NoneType:
			return nil
		case starlark.String:
			if strings.TrimSpace(string(x)) == "" {
				return fmt.Errorf("service %q: %s is empty", name, key)
			}
			p[key] = string(x)
		case *starlark.List, starlark.Tuple:
			parts, err := stringList(v, "argument")
			if err != nil {
				return fmt.Errorf("service %q: %s: %w", name, key, err)
			}
			if len(parts) == 0 {
				return fmt.Errorf("service %q: %s is an empty list; give the program and its arguments", name, key)
			}
			p[key] = strings.Join(parts, "\x00")
		default:
			return fmt.Errorf("service %q: %s: want a command string or a list of arguments, got %s", name, key, v.Type())
		}
		return nil
	}
	for _, kv := range []struct {
		key string
		v   starlark.Value
	}{{"command", command}, {"start", start}, {"stop", stop}, {"monitor", monitor}} {
		if err := argv(kv.key, kv.v); err != nil {
			return nil, err
		}
	}
	if _, ok := p["command"]; ok {
		kinds++
		p["kind"] = "process"
	}
	if _, ok := p["start"]; ok {
		kinds++
		p["kind"] = "commands"
		if _, ok := p["stop"]; !ok {
			return nil, fmt.Errorf("service %q: start= needs stop= too", name)
		}
		if _, ok := p["monitor"]; !ok {
			return nil, fmt.Errorf("service %q: start=/stop= scripts need monitor= too (exit 0 running, 3 or 7 stopped), or harules cannot tell whether the service runs", name)
		}
	}
	if ocf != "" {
		kinds++
		p["kind"] = "ocf"
		prov, agent, ok := strings.Cut(ocf, ":")
		if !ok {
			prov, agent = "heartbeat", ocf
		}
		p["ocf_provider"], p["ocf_agent"] = prov, agent
	}
	if systemd != "" {
		kinds++
		p["kind"] = "systemd"
		p["unit"] = systemd
	}
	if kinds != 1 {
		return nil, fmt.Errorf("service %q: give exactly one of command= (a foreground process), start=/stop= (scripts), ocf=\"provider:agent\" or systemd=\"unit\"", name)
	}
	extra, err := stringMap(params, "service "+name+": params")
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		p["param."+k] = v
	}
	return newResource(policy.KindService, name, p, callerPos(thread)), nil
}

func declDatabase(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, dsn, dataDir, syncNames, configDir, binDir, options, logFile string
	engine, onPromoteSync := "postgres", "keep"
	maxLag := -1
	synchronous, force := false, false
	timeout := duration(60 * time.Second)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "engine?", &engine, "dsn?", &dsn,
		"data_dir?", &dataDir, "max_lag_bytes?", &maxLag, "synchronous?", &synchronous,
		"on_promote_sync?", &onPromoteSync, "sync_standby_names?", &syncNames, "force?", &force,
		"config_dir?", &configDir, "bin_dir?", &binDir, "options?", &options, "log_file?", &logFile,
		"timeout?", &timeout); err != nil {
		return nil, err
	}
	if err := checkName("database", name); err != nil {
		return nil, err
	}
	switch {
	case engine != "postgres" && engine != "mysql":
		return nil, fmt.Errorf("database %q: engine must be \"postgres\" or \"mysql\", got %q", name, engine)
	case onPromoteSync != "keep" && onPromoteSync != "clear":
		return nil, fmt.Errorf("database %q: on_promote_sync must be \"keep\" (no acknowledged write is lost; writes wait for a standby) or \"clear\" (writes go on without a standby), got %q", name, onPromoteSync)
	case dsn == "":
		return nil, fmt.Errorf("database %q: dsn is required (how harules connects to this node's server)", name)
	case engine == "postgres" && dataDir == "":
		return nil, fmt.Errorf("database %q: data_dir is required for PostgreSQL (promotion may have to start the server with pg_ctl)", name)
	case timeout <= 0:
		return nil, fmt.Errorf("database %q: timeout must be positive", name)
	}
	p := map[string]string{"engine": engine, "dsn": dsn, "data_dir": dataDir, "synchronous": strconv.FormatBool(synchronous),
		"on_promote_sync": onPromoteSync, "force": strconv.FormatBool(force), "timeout": time.Duration(timeout).String()}
	if maxLag >= 0 {
		p["max_lag_bytes"] = strconv.Itoa(maxLag)
	}
	for k, v := range map[string]string{"sync_standby_names": syncNames, "config_dir": configDir, "bin_dir": binDir, "options": options, "log_file": logFile} {
		if v != "" {
			p[k] = v
		}
	}
	return newResource(policy.KindDatabase, name, p, callerPos(thread)), nil
}

// checkModule holds the probe check constructors: check.tcp(...), check.http(...), ...
var checkModule = &starlarkstruct.Module{Name: "check", Members: starlark.StringDict{
	"tcp":         checkBuiltin("tcp", "address", "address"),
	"http":        checkBuiltin("http", "url", "url", "status?", "body?", "insecure?"),
	"exec":        checkBuiltin("exec", "command", "command"),
	"process":     checkBuiltin("process", "", "name?", "pidfile?"),
	"gateway":     checkBuiltin("gateway", "address", "address", "method?"),
	"disk_free":   checkBuiltin("disk_free", "path", "path", "min_percent?", "min_inodes_percent?"),
	"fs_writable": checkBuiltin("fs_writable", "path", "path"),
	"load":        checkBuiltin("load", "", "max_per_cpu?"),
	"memory":      checkBuiltin("memory", "", "min_available_percent?"),
	"postgres":    checkBuiltin("postgres", "dsn", "dsn", "query?", "max_lag_bytes?", "require_primary?"),
	"mysql":       checkBuiltin("mysql", "dsn", "dsn", "query?", "max_lag_seconds?"),
}}

// checkBuiltin makes a check constructor taking the named parameters
// (a trailing "?" marks optional ones); required names its must-have field.
func checkBuiltin(kind, required string, names ...string) *starlark.Builtin {
	return starlark.NewBuiltin("check."+kind, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		vals := make([]starlark.Value, len(names))
		pairs := make([]any, 0, 2*len(names))
		for i, n := range names {
			pairs = append(pairs, n, &vals[i])
		}
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
			return nil, err
		}
		params := map[string]string{}
		for i, n := range names {
			if vals[i] == nil || vals[i] == starlark.None {
				continue
			}
			key := strings.TrimSuffix(n, "?")
			switch vals[i].(type) {
			case starlark.String, starlark.Int, starlark.Bool, starlark.Float, *starlark.List, starlark.Tuple:
			default:
				return nil, fmt.Errorf("%s: %s: want a string, number or list, got %s", b.Name(), key, vals[i].Type())
			}
			params[key] = scalarString(vals[i])
		}
		if required != "" && params[required] == "" {
			return nil, fmt.Errorf("%s: %s must not be empty", b.Name(), required)
		}
		if kind == "process" && params["name"] == "" && params["pidfile"] == "" {
			return nil, fmt.Errorf("check.process: give name= (process name) or pidfile=")
		}
		if kind == "tcp" && !strings.Contains(params["address"], ":") {
			return nil, fmt.Errorf("check.tcp: address %q needs a port, e.g. \"127.0.0.1:5432\"", params["address"])
		}
		if kind == "http" && !strings.HasPrefix(params["url"], "http://") && !strings.HasPrefix(params["url"], "https://") {
			return nil, fmt.Errorf("check.http: url %q must start with http:// or https://", params["url"])
		}
		if kind == "gateway" {
			if _, err := netip.ParseAddr(params["address"]); err != nil {
				return nil, fmt.Errorf("check.gateway: address %q is not an IP address", params["address"])
			}
		}
		c := policy.Check{Kind: kind, Params: params}
		return newObject("check", "check."+kind+"()", c, starlark.StringDict{"kind": starlark.String(kind)}), nil
	})
}
