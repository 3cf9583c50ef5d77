package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// backups runs scheduled backup jobs off the decision loop: a backup can
// take hours, failover must not wait for it.
type backups struct {
	mu      sync.Mutex
	stores  map[string]*backup.Store
	running map[string]bool
}

// JobFromPolicy builds a backup job from a backup(...) declaration:
//
//	params = {"target": "/var/backups/harules",   # required: the store directory
//	          "source": "/srv/data",              # kind files: the tree to archive
//	          "dsn": "host=/run/postgresql",      # kind postgres: pg_dump -Fc
//	          "args": "--all-databases",          # kind mysql: mariadb-dump arguments
//	          "command": "/usr/local/bin/dump",   # kind exec: writes the stream to stdout
//	          "keep_last": "7", "keep_daily": "7", "keep_weekly": "4", "min_keep": "2",
//	          "headroom_percent": "30",           # free space kept on the target (default 30)
//	          "copy_to": "/mnt/dr/harules"}       # a second store every backup is copied to
func JobFromPolicy(b *policy.Backup) (backup.Job, string, string, error) {
	p := b.Params
	job := backup.Job{Name: b.Name, Retention: backup.Retention{Location: b.Location}}
	target := p["target"]
	if target == "" {
		return job, "", "", fmt.Errorf("backup %s: params need \"target\", the directory backups are stored in", b.Name)
	}
	switch b.Kind {
	case "files":
		if p["source"] == "" {
			return job, "", "", fmt.Errorf("backup %s: kind files needs params \"source\", the directory to back up", b.Name)
		}
		job.Source = &backup.Files{Root: p["source"]}
	case "postgres":
		job.Source = backup.PostgresDump(p["dsn"], strings.Fields(p["args"])...)
	case "mysql":
		job.Source = backup.MySQLDump(strings.Fields(p["args"])...)
	case "exec":
		args := argv(p["command"])
		if p["command"] == "" {
			return job, "", "", fmt.Errorf("backup %s: kind exec needs params \"command\"", b.Name)
		}
		job.Source = &backup.Exec{Command: backup.Command{Path: args[0], Args: args[1:]}}
	default:
		return job, "", "", fmt.Errorf("backup %s: unknown kind %q", b.Name, b.Kind)
	}
	ints := map[string]*int{"keep_last": &job.Retention.KeepLast, "keep_daily": &job.Retention.KeepDaily,
		"keep_weekly": &job.Retention.KeepWeekly, "min_keep": &job.Retention.MinKeep}
	for key, dst := range ints {
		if s := p[key]; s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				return job, "", "", fmt.Errorf("backup %s: %s=%q must be a whole number >= 0", b.Name, key, s)
			}
			*dst = v
		}
	}
	if s := p["headroom_percent"]; s != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || v < 0 || v >= 100 {
			return job, "", "", fmt.Errorf("backup %s: headroom_percent=%q must be a number from 0 to 99", b.Name, s)
		}
		job.Headroom = v / 100
		if v == 0 {
			job.Headroom = -1
		}
	}
	return job, target, p["copy_to"], nil
}

func (e *Executor) store(dir string) (*backup.Store, error) {
	e.bk.mu.Lock()
	defer e.bk.mu.Unlock()
	if s := e.bk.stores[dir]; s != nil {
		return s, nil
	}
	s, rep, err := backup.Open(dir, backup.WithLogger(e.log))
	if err != nil {
		return nil, err
	}
	if rep != nil {
		e.log.Info("backup store opened", "dir", dir, "recovery", fmt.Sprintf("%+v", *rep))
	}
	e.bk.stores[dir] = s
	return s, nil
}

// Backup starts a backup job in the background and returns at once; the
// outcome is logged and kept in the store's history.
func (e *Executor) Backup(_ context.Context, run engine.BackupRun) error {
	b := e.policyBackup(run.Job)
	if b == nil {
		return fmt.Errorf("backup %s: not in the running policy", run.Job)
	}
	job, target, copyTo, err := JobFromPolicy(b)
	if err != nil {
		return err
	}
	st, err := e.store(target)
	if err != nil {
		return fmt.Errorf("backup %s: open store %s: %w", run.Job, target, err)
	}
	if copyTo != "" {
		cs, err := e.store(copyTo)
		if err != nil {
			return fmt.Errorf("backup %s: open copy store %s: %w", run.Job, copyTo, err)
		}
		job.Replicas = append(job.Replicas, backup.NewDirReplica("copy", cs))
	}
	e.bk.mu.Lock()
	if e.bk.running[run.Job] {
		e.bk.mu.Unlock()
		return fmt.Errorf("backup %s: the previous run is still going; this one is skipped", run.Job)
	}
	e.bk.running[run.Job] = true
	e.bk.mu.Unlock()
	go func() {
		defer func() {
			e.bk.mu.Lock()
			delete(e.bk.running, run.Job)
			e.bk.mu.Unlock()
		}()
		r := &backup.Runner{Store: st, Node: e.node, Log: e.log}
		start := time.Now()
		rec, err := r.Run(context.Background(), job)
		switch {
		case errors.Is(err, backup.ErrInsufficientHeadroom):
			e.log.Error("backup refused: not enough free space for the headroom", "job", run.Job, "error", err.Error())
		case err != nil:
			e.log.Error("backup failed", "job", run.Job, "id", rec.ID, "error", err.Error())
		default:
			e.log.Info("backup done", "job", run.Job, "id", rec.ID, "bytes", rec.Bytes, "sha256", rec.SHA256, "safe", rec.Safe(), "took", time.Since(start).String())
		}
	}()
	return nil
}
