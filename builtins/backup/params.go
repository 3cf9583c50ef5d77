package backup

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JobFromParams builds a job from the params of a backup(...) declaration
// (kind is files, postgres, mysql or exec; loc sets day boundaries):
//
//	params = {"target": "/var/backups/harules",   # required: the store directory
//	          "source": "/srv/data",              # kind files: the tree to archive
//	          "dsn": "host=/run/postgresql",      # kind postgres: pg_dump -Fc
//	          "args": "--all-databases",          # kind mysql: mariadb-dump arguments
//	          "command": "/usr/local/bin/dump",   # kind exec: writes the stream to stdout
//	          "keep_last": "7", "keep_daily": "7", "keep_weekly": "4", "min_keep": "2",
//	          "keep_within": "36h",               # also "7d"; "keep" is short for keep_last
//	          "headroom_percent": "30",           # free space kept on the target (default 30)
//	          "copy_to": "/mnt/dr/harules",       # a second store every backup is copied to
//	          "verify": "after",                  # re-read the stored backup after each run (default "none")
//	          "peer_copy": True, "peer_port": "7470", "peer_target": "/srv/dr"}  # see PeerCopy
//
// Unknown keys are errors: a misspelt retention key must not silently keep
// every backup forever.
func JobFromParams(name, kind string, params map[string]string, loc *time.Location) (job Job, target, copyTo string, err error) {
	p := params
	job = Job{Name: name, Retention: Retention{Location: loc}}
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if !slices.Contains(backupParams, k) {
			return job, "", "", fmt.Errorf("backup %s: unknown params key %q (known: %s)", name, k, strings.Join(backupParams, ", "))
		}
	}
	if p["keep"] != "" {
		if p["keep_last"] != "" {
			return job, "", "", fmt.Errorf("backup %s: give keep or keep_last, not both (keep is short for keep_last)", name)
		}
		p = maps.Clone(p)
		p["keep_last"] = p["keep"]
	}
	if s := p["keep_within"]; s != "" {
		d, err := parseDays(s)
		if err != nil || d < 0 {
			return job, "", "", fmt.Errorf("backup %s: keep_within=%q must be a duration such as \"36h\" or \"7d\"", name, s)
		}
		job.Retention.KeepWithin = d
	}
	target = p["target"]
	if target == "" {
		return job, "", "", fmt.Errorf("backup %s: params need \"target\", the directory backups are stored in", name)
	}
	switch kind {
	case "files":
		if p["source"] == "" {
			return job, "", "", fmt.Errorf("backup %s: kind files needs params \"source\", the directory to back up", name)
		}
		job.Source = &Files{Root: p["source"]}
	case "postgres":
		switch p["method"] {
		case "", "dump":
			job.Source = PostgresDump(p["dsn"], strings.Fields(p["args"])...)
		case "basebackup":
			job.Source = PostgresBasebackup(p["dsn"], strings.Fields(p["args"])...)
		default:
			return job, "", "", fmt.Errorf("backup %s: method=%q: want \"dump\" (pg_dump -Fc of one database) or \"basebackup\" (pg_basebackup of the whole cluster)", name, p["method"])
		}
	case "mysql":
		job.Source = MySQLDump(strings.Fields(p["args"])...)
	case "exec":
		args := commandArgv(p["command"])
		if p["command"] == "" {
			return job, "", "", fmt.Errorf("backup %s: kind exec needs params \"command\"", name)
		}
		job.Source = &Exec{Command: Command{Path: args[0], Args: args[1:]}}
	default:
		return job, "", "", fmt.Errorf("backup %s: unknown kind %q", name, kind)
	}
	ints := map[string]*int{"keep_last": &job.Retention.KeepLast, "keep_daily": &job.Retention.KeepDaily,
		"keep_weekly": &job.Retention.KeepWeekly, "min_keep": &job.Retention.MinKeep}
	for key, dst := range ints {
		if s := p[key]; s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				return job, "", "", fmt.Errorf("backup %s: %s=%q must be a whole number >= 0", name, key, s)
			}
			*dst = v
		}
	}
	if s := p["headroom_percent"]; s != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || v < 0 || v >= 100 {
			return job, "", "", fmt.Errorf("backup %s: headroom_percent=%q must be a number from 0 to 99", name, s)
		}
		job.Headroom = v / 100
		if v == 0 {
			job.Headroom = -1
		}
	}
	switch p["verify"] {
	case "", "none", "after":
	default:
		return job, "", "", fmt.Errorf("backup %s: verify=%q: want \"after\" (re-read every new backup from the target and check its checksums) or \"none\"", name, p["verify"])
	}
	if _, err := PeerCopyFromParams(name, p); err != nil {
		return job, "", "", err
	}
	return job, target, p["copy_to"], nil
}

// backupParams are the params keys JobFromPolicy reads.
var backupParams = []string{"args", "command", "copy_to", "dsn", "headroom_percent", "keep", "keep_daily", "keep_last",
	"keep_weekly", "keep_within", "method", "min_keep", "peer_copy", "peer_port", "peer_target", "source", "target", "verify"}

// parseDays parses a Go duration or a whole number of days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// commandArgv splits a command param: a list (joined with NUL bytes by the
// policy loader) is used as is; a string runs under /bin/sh -c.
func commandArgv(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return []string{"/bin/sh", "-c", s}
}
