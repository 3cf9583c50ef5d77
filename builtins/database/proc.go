package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// osUser is the account database programs run as (PostgreSQL refuses root).
type osUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
	home     string
}

var lookPath = exec.LookPath

// ownerOf returns the owner of path.
func ownerOf(path string) (osUser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return osUser{}, fmt.Errorf("data dir: %w", err)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return osUser{}, fmt.Errorf("data dir %s: no owner information", path)
	}
	u := osUser{uid: sys.Uid, gid: sys.Gid, name: strconv.Itoa(int(sys.Uid))}
	if lu, err := user.LookupId(strconv.Itoa(int(sys.Uid))); err == nil {
		u.name, u.home = lu.Username, lu.HomeDir
		if gids, err := lu.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					u.groups = append(u.groups, uint32(n))
				}
			}
		}
	}
	return u, nil
}

// run runs prog as the user and returns its combined output.
func (u osUser) run(ctx context.Context, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	attr := &syscall.SysProcAttr{Setpgid: true}
	if uint32(os.Geteuid()) != u.uid {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
	}
	cmd.SysProcAttr = attr
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if u.home != "" {
		cmd.Env = append(cmd.Env, "HOME="+u.home, "USER="+u.name)
	}
	// pg_ctl start leaves a daemon behind; never wait on inherited pipes.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", filepath.Base(prog), strings.Join(args, " "), err)
	}
	return out.String(), err
}

// writeFile writes a file owned by the user, mode 0600, atomically.
func (u osUser) writeFile(path string, data []byte) error {
	tmp := path + ".harules-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chown(tmp, int(u.uid), int(u.gid)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// processIs tells whether pid lives and its command name starts with one of
// names (a stale pid file may name a reused pid).
func processIs(pid int, names ...string) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	c := strings.TrimSpace(string(comm))
	for _, n := range names {
		if strings.HasPrefix(c, n) {
			// A zombie is dead for our purposes.
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err == nil {
				if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
					return false
				}
			}
			return true
		}
	}
	return false
}

// killGroup SIGKILLs pid's process group (pg_ctl makes the postmaster a
// session leader, so its backends share its group) and waits until pid is
// gone.
func killGroup(ctx context.Context, pid int) error {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	} else if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for processIs(pid, "postgres", "postmaster") {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(fi.Size()-n, 0)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return string(b[:k])
}

// waitPostmasterGone waits until a dead postmaster left by a crash is fully
// gone: its pid no longer exists (not even as a zombie not yet reaped) and
// no orphaned backend is still attached to its shared memory. PostgreSQL
// (pg_ctl start, pg_rewind's single-user recovery) refuses to start before.
func waitPostmasterGone(ctx context.Context, dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	lines := strings.Split(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	shmid := ""
	if len(lines) > 6 {
		if f := strings.Fields(lines[6]); len(f) == 2 {
			shmid = f[1]
		}
	}
	for {
		alive := pid > 0 && syscall.Kill(pid, 0) == nil && processIs(pid, "postgres", "postmaster")
		zombie := pid > 0 && !alive && syscall.Kill(pid, 0) == nil
		if alive {
			return fmt.Errorf("postmaster %d still runs", pid)
		}
		if !zombie && shmAttached(shmid) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the crashed postmaster %d (zombie %v) or its backends do not go away: %w", pid, zombie, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shmAttached returns how many processes attach the SysV segment shmid.
func shmAttached(shmid string) int {
	if shmid == "" {
		return 0
	}
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 6 && f[1] == shmid {
			n, _ := strconv.Atoi(f[6])
			return n
		}
	}
	return 0
}
