// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// twoNodes is a two-node policy whose cluster() is on line 2, column 1
// (the Pos of a cluster declaration is its opening parenthesis: col 8).
func writePolicy(t *testing.T, dir, cluster, rest string) string {
	t.Helper()
	p := filepath.Join(dir, "policy.star")
	src := "load(\"@stdlib//placement.star\", \"active_standby\")\n" + cluster + `
node("n1", address = "127.0.0.1")
node("n2", address = "127.0.0.2")
heartbeat("lan", interval = "100ms", misses = 3, port = 17999)
` + rest
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeSecret(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestCheckSecret: check refuses what run refuses about the secret (before,
// all of these were "ok"), each at the cluster() declaration, and a
// relative secret_file is relative to the policy's directory, not to the
// working directory.
func TestCheckSecret(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("k", 32) + "\n"
	for _, c := range []struct {
		name, cluster, secret string
		mode                  os.FileMode
		want                  string // "" = ok
	}{
		{"no secret_file", `cluster(name = "c")`, "", 0, `:2:8: cluster(secret_file=...) is required to run with 2 or more nodes`},
		{"missing file", `cluster(name = "c", secret_file = "nosuch")`, "", 0, `:2:8: secret_file ` + filepath.Join(dir, "nosuch") + ` does not exist`},
		{"mode 0644", `cluster(name = "c", secret_file = "secret")`, good, 0o644, `:2:8: secret_file ` + filepath.Join(dir, "secret") + `: mode 0644 lets group/other access`},
		{"too short", `cluster(name = "c", secret_file = "secret")`, "short\n", 0o600, `:2:8: secret_file ` + filepath.Join(dir, "secret") + `: secret is 5 bytes, need at least 16`},
		{"a directory", `cluster(name = "c", secret_file = "/")`, "", 0, `:2:8: secret_file /: not a regular file`},
		{"good, relative", `cluster(name = "c", secret_file = "secret")`, good, 0o600, ""},
		{"good, 0400", `cluster(name = "c", secret_file = "secret")`, good, 0o400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "secret"))
			if c.secret != "" {
				writeSecret(t, filepath.Join(dir, "secret"), c.secret, c.mode)
			}
			pol := writePolicy(t, dir, c.cluster, "")
			t.Chdir(t.TempDir()) // relative to the policy, not to here
			code, out, errOut := harules(t, "check", pol)
			if c.want == "" {
				if code != exitOK || !strings.Contains(out, ": ok: ") {
					t.Fatalf("exit %d, want ok:\n%s%s", code, out, errOut)
				}
				return
			}
			if code != exitFailed || !strings.Contains(errOut, pol+c.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", code, out, errOut, pol+c.want)
			}
			// --policy-only checks the policy alone.
			if code, _, errOut := harules(t, "check", "--policy-only", pol); code != exitOK {
				t.Fatalf("--policy-only: exit %d: %s", code, errOut)
			}
		})
	}
	// A single node sends no heartbeats: no secret needed.
	single := filepath.Join(dir, "single.star")
	if err := os.WriteFile(single, []byte("cluster(name = \"s\")\nnode(\"n1\", address = \"127.0.0.1\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := harules(t, "check", single); code != exitOK {
		t.Fatalf("single node without a secret: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCheckNode: with --node, every missing node-local fact is reported in
// one run, each at its declaration; groups and backups the node may not
// run are not checked.
func TestCheckNode(t *testing.T) {
	dir := t.TempDir()
	writeSecret(t, filepath.Join(dir, "secret"), strings.Repeat("k", 32), 0o600)
	aFile := filepath.Join(dir, "afile")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pol := writePolicy(t, dir, `cluster(name = "c", secret_file = "secret")`, `group("g", resources = [
    vip("198.51.100.7/24", interface = "nosuch0"),
    service("prog", command = "/nonexistent/bin/prog --flag"),
    service("ocf1", ocf = "heartbeat:NoSuchAgentXyz"),
    service("scripts", start = "no-such-program-xyz start", stop = "exec /bin/true", monitor = "cd / && true"),
    disk("/dev/nonexistent-harules", "/mnt/x", name = "data"),
  ], placement = active_standby(["n1", "n2"]))
group("only2", resources = [vip("198.51.100.8/24", interface = "other0")], placement = active_standby(["n2"]))
backup("b", schedule = "0 3 * * *", group = "g", kind = "files", params = {"target": "`+aFile+`/store", "source": "/etc"})
backup("b2", schedule = "0 3 * * *", group = "only2", kind = "files", params = {"target": "`+aFile+`/other", "source": "/etc"})
`)
	code, out, errOut := harules(t, "check", pol, "--node", "n1", "--state-dir", filepath.Join(dir, "state"))
	if code != exitFailed || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		pol + `:7:8: vip 198.51.100.7: interface "nosuch0" does not exist on this node`,
		pol + `:8:12: service prog: command: program /nonexistent/bin/prog does not exist`,
		pol + `:9:12: service ocf1: OCF agent ocf:heartbeat:NoSuchAgentXyz not found at /usr/lib/ocf/resource.d/heartbeat/NoSuchAgentXyz`,
		pol + `:10:12: service scripts: start: program "no-such-program-xyz" is not in $PATH`,
		pol + `:11:9: disk data: device /dev/nonexistent-harules: no such file or directory`,
		pol + `:14:7: backup b target ` + aFile + `/store: ` + aFile + ` is not a directory`,
	} {
		if !strings.Contains(errOut, want+"") {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, notWant := range []string{"other0", "/other", "stop:", "monitor:"} {
		if strings.Contains(errOut, notWant) {
			t.Errorf("stderr reports %q (not n1's, or a shell command line):\n%s", notWant, errOut)
		}
	}
	// JSON: the same errors, ok false.
	code, out, _ = harules(t, "check", "--json", "--node", "n1", "--state-dir", filepath.Join(dir, "state"), pol)
	var res []struct {
		OK     bool     `json:"ok"`
		Errors []string `json:"errors"`
	}
	if code != exitFailed || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].OK || len(res[0].Errors) != 6 {
		t.Fatalf("--json: exit %d:\n%s", code, out)
	}
	// A state directory that is a file.
	code, _, errOut = harules(t, "check", "--node", "n2", "--state-dir", aFile, pol)
	if code != exitFailed || !strings.Contains(errOut, "--state-dir: state directory "+aFile+": "+aFile+" is not a directory") ||
		!strings.Contains(errOut, `interface "other0" does not exist`) {
		t.Fatalf("n2 with a file as state dir: exit %d:\n%s", code, errOut)
	}
	if code, _, errOut := harules(t, "check", "--node", "n9", pol); code != exitFailed || !strings.Contains(errOut, `node "n9" is not declared`) {
		t.Fatalf("unknown node: exit %d: %s", code, errOut)
	}
	if code, _, _ := harules(t, "check", "--node", "n1", "--policy-only", pol); code != exitUsage {
		t.Fatalf("--node with --policy-only: exit %d, want 2", code)
	}
}

// TestCheckNodeGood: a node that has what the policy needs passes.
func TestCheckNodeGood(t *testing.T) {
	dir := t.TempDir()
	writeSecret(t, filepath.Join(dir, "secret"), strings.Repeat("k", 32), 0o600)
	pol := writePolicy(t, dir, `cluster(name = "c", secret_file = "secret")`, `group("g", resources = [
    vip("198.51.100.7/24", interface = "lo"),
    service("prog", command = "sleep 1000"),
    service("scripts", start = "exec /bin/true", stop = "/bin/true", monitor = "true"),
  ], placement = active_standby(["n1", "n2"]))
# The program lives on the shared disk, mounted only on the holder: not
# looked for (the device is, and exists here).
group("shared", resources = [
    disk("/dev/null", "/srv/harules-test-shared"),
    service("app", command = "/srv/harules-test-shared/bin/app --serve"),
  ], placement = active_standby(["n1", "n2"]))
backup("b", schedule = "0 3 * * *", group = "g", kind = "files", params = {"target": "`+dir+`/store/x", "source": "/etc"})
`)
	code, out, errOut := harules(t, "check", "--node", "n1", "--state-dir", filepath.Join(dir, "state"), pol)
	if code != exitOK || !strings.Contains(out, ": ok: ") || errOut != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// TestRunRefusesBeforeTouchingAnything: harules run with a policy that
// fails the checks exits 78 (with and without the supervisor) before it
// creates its state directory, writes an incarnation or starts an agent;
// check reports the same errors.
func TestRunRefusesBeforeTouchingAnything(t *testing.T) {
	dir := t.TempDir()
	writeSecret(t, filepath.Join(dir, "secret"), strings.Repeat("k", 32), 0o644)
	pol := writePolicy(t, dir, `cluster(name = "c", secret_file = "secret")`, "")
	state := filepath.Join(dir, "state")
	for _, extra := range [][]string{{"--no-supervisor"}, nil} {
		args := append([]string{"run", "--policy", pol, "--node", "n1", "--state-dir", state, "--control", filepath.Join(dir, "c.sock")}, extra...)
		code, _, errOut := harules(t, args...)
		if code != exitConfig || !strings.Contains(errOut, pol+":2:8: secret_file "+filepath.Join(dir, "secret")+": mode 0644") {
			t.Fatalf("harules %v: exit %d, want %d:\n%s", args, code, exitConfig, errOut)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("harules %v created its state directory (%v): it touched something", args, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "harules.pid")); !os.IsNotExist(err) {
			t.Fatalf("harules %v left a pid file", args)
		}
	}
}

// TestReleaseAfterARefusedRun: systemd runs ExecStopPost=harules release
// after every stop; after run exited 78 it releases nothing (the policy
// need not even load).
func TestReleaseAfterARefusedRun(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.star")
	t.Setenv("SERVICE_RESULT", "exit-code")
	t.Setenv("EXIT_STATUS", "78")
	code, _, errOut := harules(t, "release", "--policy", missing, "--node", "n1", "--state-dir", t.TempDir())
	if code != exitOK || !strings.Contains(errOut, "nothing to release") {
		t.Fatalf("release after exit 78: exit %d: %s", code, errOut)
	}
	t.Setenv("EXIT_STATUS", "1")
	if code, _, errOut := harules(t, "release", "--policy", missing, "--node", "n1", "--state-dir", t.TempDir()); code != exitFailed {
		t.Fatalf("release after exit 1 must try (and here fail on the missing policy): exit %d: %s", code, errOut)
	}
}

// TestPidFile: the pid file holds this process's pid while it runs and is
// removed at the end, unless another process has written its own there.
func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "harules.pid")
	log, _ := newLogger(&strings.Builder{}, "info")
	remove := writePidFile(log, path)
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file %q, %v; want %d", b, err, os.Getpid())
	}
	remove()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("pid file not removed: %v", err)
	}
	remove = writePidFile(log, path)
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil { // another run took the file over
		t.Fatal(err)
	}
	remove()
	if b, _ := os.ReadFile(path); string(b) != "1\n" {
		t.Fatalf("another process's pid file was removed or changed: %q", b)
	}
}
