// Package e2epkg tests the Debian package the way README.md's Install section
// tells a user to use it: scripts/package.sh, apt-get install ./dist/*.deb,
// then harules --version, man harules, the unit, removal and purge. It
// installs the package on this machine, so it needs root, fails loudly
// without it (HARULES_SKIP_ROOT_TESTS=1 skips it), refuses to run where
// harules is already installed, and purges the package even when it fails.
package e2epkg

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	repoRoot    = "../.."
	unitPath    = "/lib/systemd/system/harules.service"
	confDir     = "/etc/harules"
	exampleConf = "/etc/harules/policy.star.example"
	secretPath  = "/etc/harules/secret"
	wantsLink   = "/etc/systemd/system/multi-user.target.wants/harules.service"
	aptLock     = "DPkg::Lock::Timeout=300" // other jobs on the machine may hold the dpkg lock
	// marker exists while this test has the package installed: a run killed
	// before its cleanup (go test -timeout) is cleaned up by the next one.
	marker = "/run/lock/harules-e2epkg.installed"
)

func TestDebianPackage(t *testing.T) {
	requireRoot(t)
	lockMachine(t)
	preflight(t)

	// What the test creates outside the package is removed at the end, the
	// package purged, whatever happened in between.
	var debPath string
	t.Cleanup(func() {
		restore(t)
		if debPath != "" {
			os.Remove(debPath)
		}
	})

	// Build, as README.md says.
	out := cmd(t, repoRoot, "scripts/package.sh").must()
	debPath = lastLine(out)
	info, err := os.Stat(debPath)
	if err != nil || !strings.HasSuffix(debPath, ".deb") {
		t.Fatalf("scripts/package.sh printed %q last, want the .deb's path (%v)", debPath, err)
	}
	version := strings.TrimSpace(cmd(t, "", "dpkg-deb", "-f", debPath, "Version").must())

	// Install (README: apt-get install ./dist/harules_*.deb) and time it up to the first check.
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd(t, repoRoot, "sh", "-c", "apt-get -o "+aptLock+" install -y -q ./dist/harules_*.deb").must()
	installed := time.Since(start)
	if st := status(t); st != "ii " {
		t.Fatalf("after install dpkg status is %q, want \"ii \"", st)
	}

	// Installing starts and enables nothing and writes no secret.
	if _, err := os.Lstat(wantsLink); err == nil {
		t.Errorf("install enabled the service (%s exists)", wantsLink)
	}
	if _, err := os.Stat(secretPath); err == nil {
		t.Errorf("install created %s; the operator creates it once for the whole cluster", secretPath)
	}
	if fi, err := os.Stat(confDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, mode %v; want a 0700 directory", confDir, err, fi.Mode())
	}

	// The first steps of README.Debian: a secret, then check.
	cmd(t, "", "harules", "secret", "new").must()
	if fi, err := os.Stat(secretPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("harules secret new: %v, mode %v; want %s with mode 0600", err, fi.Mode(), secretPath)
	}
	if res := cmd(t, "", "harules", "secret", "new").run(); res.code != 1 {
		t.Errorf("a second harules secret new = exit %d (%s), want 1: it must not replace the cluster's secret", res.code, res.out)
	}
	cmd(t, "", "harules", "check", exampleConf).must()
	firstCheck := time.Since(start)
	t.Logf("package %s: %d bytes (%.1f MB); apt-get install %v; install -> first successful `harules check` %v",
		filepath.Base(debPath), info.Size(), float64(info.Size())/1e6, installed.Round(time.Millisecond), firstCheck.Round(time.Millisecond))

	if v := cmd(t, "", "harules", "--version").must(); !strings.Contains(v, version) {
		t.Errorf("harules --version = %q, want it to name the package version %s", v, version)
	}

	// man harules finds the installed page.
	if where := strings.TrimSpace(cmd(t, "", "man", "-w", "harules").must()); where != "/usr/share/man/man1/harules.1.gz" {
		t.Errorf("man -w harules = %q", where)
	}
	page := cmd(t, "", "env", "MANWIDTH=100", "MANPAGER=cat", "man", "harules").must()
	for _, w := range []string{"harules - high availability whose failover policy is code", "secret new", "completion", "FILES", "/etc/harules/secret"} {
		if !strings.Contains(page, w) {
			t.Errorf("man harules lacks %q", w)
		}
	}

	// The unit: /usr/bin paths, waits for a policy, and systemd accepts it.
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ExecStart=/usr/bin/harules run", "ExecStopPost=/usr/bin/harules release", "ConditionPathExists=/etc/harules/policy.star"} {
		if !bytes.Contains(unit, []byte(w)) {
			t.Errorf("%s lacks %q", unitPath, w)
		}
	}
	if bytes.Contains(unit, []byte("/usr/local/")) {
		t.Errorf("%s still names /usr/local", unitPath)
	}
	// systemd is not PID 1 on the test machines; verify works on a unit file regardless.
	if res := cmd(t, "", "systemd-analyze", "verify", unitPath).run(); res.code != 0 || strings.TrimSpace(res.out) != "" {
		t.Errorf("systemd-analyze verify %s = exit %d:\n%s", unitPath, res.code, res.out)
	}

	conffiles := cmd(t, "", "dpkg-query", "-W", "-f=${Conffiles}", "harules").must()
	if !strings.Contains(conffiles, exampleConf+" ") {
		t.Errorf("conffiles = %q, want %s", conffiles, exampleConf)
	}

	checkCompletion(t)

	// A conffile the operator changed survives a reinstall (dpkg keeps it).
	edited := []byte("# edited by the operator\n")
	if err := os.WriteFile(exampleConf, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd(t, repoRoot, "sh", "-c", "apt-get -o "+aptLock+" install -y -q --reinstall ./dist/harules_*.deb").must()
	if got, _ := os.ReadFile(exampleConf); !bytes.Equal(got, edited) {
		t.Errorf("reinstall replaced the edited conffile %s: %q", exampleConf, got)
	}

	// Remove: only the conffiles stay.
	owned := strings.Fields(cmd(t, "", "dpkg-query", "-L", "harules").must())
	wasDir := map[string]bool{}
	for _, p := range owned {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() { // Stat: /lib is a link to /usr/lib
			wasDir[p] = true
		}
	}
	cmd(t, "", "apt-get", "-o", aptLock, "remove", "-y", "-q", "harules").must()
	if st := status(t); st != "rc " {
		t.Fatalf("after remove dpkg status is %q, want \"rc \" (config files only)", st)
	}
	for _, p := range owned {
		_, err := os.Lstat(p)
		switch {
		case p == exampleConf || p == confDir:
			if err != nil {
				t.Errorf("remove deleted %s, a conffile (or its directory): %v", p, err)
			}
		case wasDir[p] && p != "/usr/share/doc/harules":
			// shared directories (/usr/share/man, ...) belong to others too
		case err == nil:
			t.Errorf("remove left %s behind", p)
		}
	}

	// Purge: the conffiles go; the operator's secret stays (README.Debian says so).
	cmd(t, "", "apt-get", "-o", aptLock, "purge", "-y", "-q", "harules").must()
	if st := status(t); st != "" {
		t.Errorf("after purge dpkg status is %q, want the package unknown", st)
	}
	if _, err := os.Stat(exampleConf); err == nil {
		t.Errorf("purge left the conffile %s", exampleConf)
	}
	if _, err := os.Stat(secretPath); err != nil {
		t.Errorf("purge removed the operator's secret: %v", err)
	}
}

// checkCompletion runs the installed completion scripts in their shells.
func checkCompletion(t *testing.T) {
	t.Helper()
	const bashScript = "/usr/share/bash-completion/completions/harules"
	complete := func(words ...string) string {
		script := `source ` + bashScript + `; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _harules; echo "${COMPREPLY[*]}"`
		return strings.TrimSpace(cmd(t, "", "bash", append([]string{"-c", script, "bash"}, words...)...).must())
	}
	if got := complete("harules", "sec"); got != "secret" {
		t.Errorf("bash: harules sec<TAB> = %q, want secret", got)
	}
	if got := complete("harules", "secret", "new", "--f"); got != "--file --force" {
		t.Errorf("bash: harules secret new --f<TAB> = %q, want --file --force", got)
	}
	// After a command with no sub-commands: nothing, so bash falls back to file names.
	if got := complete("harules", "check", ""); got != "" {
		t.Errorf("bash: harules check <TAB> = %q, want nothing (file names)", got)
	}
	// Completing must never run the command it completes.
	if res := cmd(t, "", "harules", "check", "/nonexistent.star", "--generate-bash-completion").run(); res.code != 0 || strings.Contains(res.out, "nonexistent") {
		t.Errorf("completing `harules check /nonexistent.star` ran the check: exit %d, %s", res.code, res.out)
	}
	cmd(t, "", "zsh", "-n", "/usr/share/zsh/vendor-completions/_harules").must()
	// zsh: the script registers itself when sourced after compinit.
	zsh := `autoload -U compinit && compinit -u -D && source /usr/share/zsh/vendor-completions/_harules && print -r -- ${_comps[harules]}`
	if got := strings.TrimSpace(cmd(t, "", "zsh", "-f", "-c", zsh).must()); got != "_harules" {
		t.Errorf("zsh: _comps[harules] = %q, want _harules", got)
	}
	cmd(t, "", "fish", "--no-execute", "/usr/share/fish/vendor_completions.d/harules.fish").must()
	fish := `source /usr/share/fish/vendor_completions.d/harules.fish; complete -C 'harules sec'`
	if got := cmd(t, "", "fish", "--no-config", "-c", fish).must(); !strings.HasPrefix(got, "secret") {
		t.Errorf("fish: harules sec<TAB> = %q, want secret", got)
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		return
	}
	msg := "e2epkg: THIS TEST NEEDS ROOT (it installs the .deb with apt-get); run `go test` as root, or set HARULES_SKIP_ROOT_TESTS=1 to skip it"
	if os.Getenv("HARULES_SKIP_ROOT_TESTS") == "1" {
		t.Skip("SKIPPED: " + msg)
	}
	t.Fatal(msg)
}

// lockMachine keeps two runs of this test (two checkouts on one machine)
// from installing and purging under each other.
func lockMachine(t *testing.T) {
	f, err := os.OpenFile("/run/lock/harules-e2epkg.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// restore purges the package and removes what the test created (the
// secret; /etc/harules only if nothing else is left in it).
func restore(t *testing.T) {
	if status(t) != "" {
		if res := cmd(t, "", "apt-get", "-o", aptLock, "purge", "-y", "-q", "harules").run(); res.code != 0 {
			t.Errorf("cleanup: apt-get purge harules: exit %d\n%s", res.code, res.out)
			return
		}
	}
	os.Remove(secretPath)
	os.Remove(confDir) // only if empty: never someone else's files
	os.Remove(marker)
}

// preflight refuses a machine where harules is already installed or
// configured: the test would change, then purge, someone's installation.
// What an earlier run of this test left (it was killed) is removed.
func preflight(t *testing.T) {
	if _, err := os.Stat(marker); err == nil {
		t.Logf("an earlier run left the package installed (%s exists): purging it", marker)
		restore(t)
	}
	if st := status(t); st != "" {
		t.Fatalf("the harules package is already on this machine (dpkg status %q); this test installs and purges it: run `apt-get purge harules` first", st)
	}
	for _, p := range []string{confDir, "/usr/bin/harules"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists; this test installs the harules package and would change it: move it away first", p)
		}
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "man", "systemd-analyze", "zsh", "fish", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install the Debian packages of scripts/deps.d/package.txt (%v)", tool, err)
		}
	}
}

// status is dpkg's abbreviated status of harules ("ii ", "rc ", ...), or ""
// when dpkg does not know it.
func status(t *testing.T) string {
	res := cmd(t, "", "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "harules").run()
	if res.code != 0 {
		return ""
	}
	return res.out
}

type command struct {
	t   *testing.T
	cmd *exec.Cmd
}

type result struct {
	code int
	out  string // stdout and stderr together
}

func cmd(t *testing.T, dir, name string, args ...string) command {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return command{t: t, cmd: c}
}

func (c command) run() result {
	var out bytes.Buffer
	c.cmd.Stdout, c.cmd.Stderr = &out, &out
	err := c.cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return result{code: code, out: out.String()}
}

// must runs the command and fails the test unless it exits 0; it returns
// stdout only (stderr is shown on failure).
func (c command) must() string {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	c.cmd.Stdout, c.cmd.Stderr = &stdout, &stderr
	if err := c.cmd.Run(); err != nil {
		c.t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(c.cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestGoInstallFromCheckout is README.md's other install line, from a
// checkout (the module is not on a proxy the test machine reaches).
func TestGoInstallFromCheckout(t *testing.T) {
	bin := t.TempDir()
	c := cmd(t, repoRoot, "go", "install", "./cmd/harules")
	c.cmd.Env = append(c.cmd.Env, "GOBIN="+bin)
	c.must()
	if v := cmd(t, "", filepath.Join(bin, "harules"), "--version").must(); strings.TrimSpace(v) == "" {
		t.Errorf("harules --version = %q", v)
	}
}
