package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/harules/harules/policy"
	"github.com/harules/harules/probes"
)

// buildCheck turns a policy check declaration into a live probe check.
func buildCheck(c policy.Check) (probes.Check, error) {
	p := c.Params
	num := func(key string) (float64, error) {
		if p[key] == "" {
			return 0, nil
		}
		v, err := strconv.ParseFloat(p[key], 64)
		if err != nil {
			return 0, fmt.Errorf("check.%s: %s=%q is not a number", c.Kind, key, p[key])
		}
		return v, nil
	}
	switch c.Kind {
	case "tcp":
		return probes.NewTCP(p["address"])
	case "http":
		status := 0
		if p["status"] != "" {
			s, err := strconv.Atoi(p["status"])
			if err != nil {
				return nil, fmt.Errorf("check.http: status=%q is not a number", p["status"])
			}
			status = s
		}
		return probes.NewHTTP(probes.HTTPConfig{URL: p["url"], ExpectStatus: status, BodyContains: p["body"], InsecureSkipVerify: p["insecure"] == "true"})
	case "exec":
		return probes.NewExec(probes.ExecConfig{Argv: argv(p["command"])})
	case "process":
		if p["pidfile"] != "" {
			return probes.NewProcessByPidfile(p["pidfile"])
		}
		return probes.NewProcessByName(p["name"])
	case "gateway":
		if p["method"] == "arp" {
			return probes.NewARP(probes.ARPConfig{Target: p["address"]})
		}
		return probes.NewICMP(probes.ICMPConfig{Target: p["address"]})
	case "disk_free":
		minPct, err := num("min_percent")
		if err != nil {
			return nil, err
		}
		minInodes, err := num("min_inodes_percent")
		if err != nil {
			return nil, err
		}
		return probes.NewDiskSpace(probes.DiskSpaceConfig{Path: p["path"], MinFreePercent: minPct, MinFreeInodesPercent: minInodes})
	case "fs_writable":
		return probes.NewWritable(p["path"])
	case "load":
		v, err := num("max_per_cpu")
		if err != nil {
			return nil, err
		}
		return probes.NewLoad(probes.LoadConfig{MaxPerCPU: v})
	case "memory":
		v, err := num("min_available_percent")
		if err != nil {
			return nil, err
		}
		return probes.NewMemory(probes.MemoryConfig{MinAvailablePercent: v})
	case "postgres":
		lag, err := num("max_lag_bytes")
		if err != nil {
			return nil, err
		}
		cfg := probes.PostgresConfig{DSN: p["dsn"], Query: p["query"], MaxLagBytes: lag}
		if p["require_primary"] == "true" {
			cfg.Role = probes.RolePrimary
		}
		return probes.NewPostgres(cfg)
	case "mysql":
		lag, err := num("max_lag_seconds")
		if err != nil {
			return nil, err
		}
		return probes.NewMySQL(probes.MySQLConfig{DSN: p["dsn"], Query: p["query"], MaxSecondsBehind: lag})
	}
	return nil, fmt.Errorf("check kind %q has no live implementation", c.Kind)
}

// argv splits a command parameter: a list (joined with NUL by the policy
// loader) is used as is, a string runs through /bin/sh -c.
func argv(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return []string{"/bin/sh", "-c", s}
}
