// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/builtins/service"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/policy"
	"github.com/harules/harules/rules"
)

// Preflight is what `harules run` needs beyond a policy that loads: the
// checks `harules check` runs (the secret always, the node-local facts with
// --node) and the agent runs before it touches anything, so a policy that
// cannot run is refused at once instead of after releasing the node's
// resources (and restarted in a loop by systemd).
type Preflight struct {
	// Errors make run refuse the policy; each names the declaration's
	// file:line:col.
	Errors rules.Errors
	// Warnings are what could not be checked by this user (not root): the
	// agent runs as root and may well succeed.
	Warnings rules.Errors
}

// Err is the errors as one error (nil when there are none).
func (pf *Preflight) Err() error {
	if len(pf.Errors) == 0 {
		return nil
	}
	return &PreflightError{Errors: pf.Errors}
}

// PreflightError is a policy run refuses before touching anything.
type PreflightError struct{ Errors rules.Errors }

func (e *PreflightError) Error() string {
	return fmt.Sprintf("the policy cannot run on this node (nothing was touched):\n%v", e.Errors)
}

func (pf *Preflight) errorf(pos policy.Pos, format string, args ...any) {
	pf.Errors = append(pf.Errors, rules.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (pf *Preflight) warnf(pos policy.Pos, format string, args ...any) {
	pf.Warnings = append(pf.Warnings, rules.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// SecretPath is where the agent reads the cluster secret: secret_file,
// relative to the policy file's directory unless absolute ("" if unset).
func SecretPath(p *policy.Policy, policyPath string) string {
	f := p.Cluster.SecretFile
	if f == "" || filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(filepath.Dir(policyPath), f)
}

// CheckSecret checks the cluster secret as the agent will load it: a
// cluster of two or more nodes needs cluster(secret_file=...), a regular
// file of mode 0600 or stricter holding at least heartbeat.MinSecretSize
// bytes. A user who may not read it (the agent runs as root) gets the
// checks stat can do and a warning.
func (pf *Preflight) CheckSecret(p *policy.Policy, policyPath string) {
	if len(p.Nodes) < 2 {
		return // a single node sends no heartbeats
	}
	pos := p.Cluster.Pos
	path := SecretPath(p, policyPath)
	if path == "" {
		pf.errorf(pos, "cluster(secret_file=...) is required to run with 2 or more nodes: heartbeats are authenticated with it "+
			"(a file of at least %d bytes, mode 0600, the same on every node; a relative path is relative to the policy's directory)", heartbeat.MinSecretSize)
		return
	}
	_, err := heartbeat.LoadSecret(path)
	switch {
	case err == nil:
		return
	case errors.Is(err, fs.ErrNotExist):
		pf.errorf(pos, "secret_file %s does not exist; create the same secret on every node, e.g. "+
			"(umask 077; head -c 32 /dev/urandom | base64 > %s)", path, path)
		return
	case !errors.Is(err, fs.ErrPermission):
		msg := strings.TrimPrefix(err.Error(), "heartbeat: load secret "+path+": ")
		pf.errorf(pos, "secret_file %s: %s", path, strings.TrimPrefix(msg, "heartbeat: "))
		return
	}
	// Not readable by this user: check what stat can see.
	fi, serr := os.Stat(path)
	switch {
	case serr != nil:
		pf.warnf(pos, "secret_file %s: cannot read it as uid %d (%v); check as root to verify it", path, os.Geteuid(), serr)
	case !fi.Mode().IsRegular():
		pf.errorf(pos, "secret_file %s: not a regular file (%s)", path, fi.Mode().Type())
	case fi.Mode().Perm()&0o077 != 0:
		pf.errorf(pos, "secret_file %s: mode %04o lets group/other access the cluster secret; fix with: chmod 600 %s", path, fi.Mode().Perm(), path)
	case fi.Size() < heartbeat.MinSecretSize:
		pf.errorf(pos, "secret_file %s: secret is %d bytes, need at least %d", path, fi.Size(), heartbeat.MinSecretSize)
	default:
		pf.warnf(pos, "secret_file %s: mode and size fine, but uid %d may not read it (the agent runs as root); check as root to read it", path, os.Geteuid())
	}
}

// CheckNode checks the facts of node that the real executor relies on:
// interfaces named in vip() exist (or one has an address in the VIP's
// subnet), service programs and OCF agents exist and are executable, disk
// devices exist, and the state directory and backup stores are writable.
// Only the groups node may run count, and the backups it may run.
func (pf *Preflight) CheckNode(p *policy.Policy, node, stateDir string) {
	n := p.Node(node)
	if n == nil {
		pf.errorf(policy.Pos{File: "--node"}, "node %q is not declared (nodes: %v)", node, p.NodeNames())
		return
	}
	mayRun := map[string]bool{}
	for _, g := range p.Groups {
		if len(g.Placement.Nodes) > 0 && !slices.Contains(g.Placement.Nodes, node) {
			continue
		}
		mayRun[g.Name] = true
		// What lives on the group's shared disks is there only once they
		// are mounted (on the holder): a program or directory under a
		// mountpoint is not looked for.
		var mounts []string
		for _, r := range g.Resources {
			if m := r.Params["mountpoint"]; r.Kind == policy.KindDisk && filepath.IsAbs(m) {
				mounts = append(mounts, filepath.Clean(m))
			}
		}
		for _, r := range g.Resources {
			pf.checkResource(r, mounts)
		}
	}
	for _, h := range p.Paths {
		if h.Kind == "disk" {
			pf.checkDevice(h.Pos, "heartbeat "+h.Name, h.Device)
		}
	}
	if stateDir != "" {
		pf.checkWritableDir(policy.Pos{File: "--state-dir"}, "state directory", stateDir)
	}
	for _, b := range p.Backups {
		if b.Group != "" && !mayRun[b.Group] {
			continue
		}
		if t := b.Params["target"]; filepath.IsAbs(t) {
			pf.checkWritableDir(b.Pos, "backup "+b.Name+" target", t)
		}
		if c := b.Params["copy_to"]; filepath.IsAbs(c) {
			pf.checkWritableDir(b.Pos, "backup "+b.Name+" copy_to", c)
		}
	}
}

func (pf *Preflight) checkResource(r *policy.Resource, mounts []string) {
	switch r.Kind {
	case policy.KindVIP:
		if pfx, err := netip.ParsePrefix(r.Params["address"]); err == nil && pfx.Addr().Is6() {
			if rel, err := kernelRelease(); err == nil && !kernelAtLeast(rel, 6, 1) {
				pf.errorf(r.Pos, "vip %s: IPv6 VIPs need Linux 6.1 or later (the kernel records which addresses harules added, IFA_PROTO); this node runs %s", r.Name, rel)
			}
		}
		iface := r.Params["interface"]
		if iface == "" {
			pfx, err := netip.ParsePrefix(r.Params["address"])
			if err != nil {
				return // the policy check reports it
			}
			if _, err := interfaceFor(pfx); err != nil {
				pf.errorf(r.Pos, "vip %s: %v", r.Name, err)
			}
			return
		}
		if _, err := net.InterfaceByName(iface); err != nil {
			pf.errorf(r.Pos, "vip %s: interface %q does not exist on this node", r.Name, iface)
		}
	case policy.KindService:
		spec, err := service.SpecFromParams(r.Name, r.Params)
		if err != nil {
			return
		}
		if underAny(spec.Dir, mounts) || underAny(firstWord(spec.Argv), mounts) || underAny(firstWord(spec.Start), mounts) {
			return
		}
		for _, err := range service.CheckInstalled(spec) {
			pf.errorf(r.Pos, "service %s: %v", r.Name, err)
		}
	case policy.KindDisk:
		pf.checkDevice(r.Pos, "disk "+r.Name, r.Params["device"])
		if d := r.Params["lease_device"]; d != "" {
			pf.checkDevice(r.Pos, "disk "+r.Name+" lease_device", d)
		}
	}
}

// underAny reports whether path is one of dirs or inside one.
func underAny(path string, dirs []string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	path = filepath.Clean(path)
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

func firstWord(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}

func (pf *Preflight) checkDevice(pos policy.Pos, what, dev string) {
	if dev == "" {
		return
	}
	if _, err := os.Stat(dev); err != nil {
		pf.errorf(pos, "%s: device %s: %v", what, dev, errors.Unwrap(err))
	}
}

// checkWritableDir checks dir is a writable directory, or that its nearest
// existing parent is (the agent creates it).
func (pf *Preflight) checkWritableDir(pos policy.Pos, what, dir string) {
	d := dir
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				pf.errorf(pos, "%s %s: %s is not a directory", what, dir, d)
				return
			}
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
		if os.Geteuid() != 0 {
			pf.warnf(pos, "%s %s: %s is not writable by uid %d (the agent runs as root); check as root to verify it", what, dir, d, os.Geteuid())
			return
		}
		pf.errorf(pos, "%s %s: %s is not writable: %v", what, dir, d, err)
	}
}

// preflight refuses, before Run touches anything, a policy that cannot run
// here: the secret always (heartbeats need it), the node-local facts when
// the agent acts for real (no Executor given: tests that give one act on
// nothing real).
func (a *Agent) preflight() error {
	var pf Preflight
	pf.CheckSecret(a.policy, a.cfg.PolicyPath)
	if a.cfg.Executor == nil {
		pf.CheckNode(a.policy, a.cfg.Node, a.cfg.StateDir)
	}
	for _, w := range pf.Warnings {
		a.log.Warn("preflight: " + w.Error())
	}
	return pf.Err()
}

// kernelRelease returns the running kernel's release (uname -r); a
// variable so tests can pretend another kernel.
var kernelRelease = func() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", err
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b), nil
}

// kernelAtLeast reports whether a release like "6.18.44-fc" is major.minor
// or later; a release it cannot read counts as recent enough (the start
// itself refuses an IPv6 VIP the kernel cannot mark).
func kernelAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(release, "%d.%d", &ma, &mi); n != 2 {
		return true
	}
	return ma > major || ma == major && mi >= minor
}
