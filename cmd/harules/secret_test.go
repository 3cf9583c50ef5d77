package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harules/harules/heartbeat"
)

func TestSecretNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "secret") // the directory is created too
	code, stdout, stderr := harules(t, "secret", "new", "--file", path)
	if code != exitOK || !strings.Contains(stdout, "wrote a new cluster secret to "+path) {
		t.Fatalf("secret new = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %04o, want 0600", perm)
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %04o, want 0700", dir.Mode().Perm())
	}
	first, err := heartbeat.LoadSecret(path)
	if err != nil {
		t.Fatalf("the agent refuses the new secret: %v", err)
	}
	if len(first) != 44 { // 32 bytes in base64
		t.Fatalf("secret is %d characters, want 44 (32 bytes, base64)", len(first))
	}

	// A second run must not replace it: the other nodes hold a copy.
	code, _, stderr = harules(t, "secret", "new", "--file", path)
	if code != exitFailed || !strings.Contains(stderr, "already exists; left unchanged") {
		t.Fatalf("second secret new = %d, stderr %q; want exit 1 and a refusal", code, stderr)
	}
	if again, _ := heartbeat.LoadSecret(path); string(again) != string(first) {
		t.Fatal("secret new without --force changed an existing secret")
	}

	code, _, stderr = harules(t, "secret", "new", "--file", path, "--force")
	if code != exitOK {
		t.Fatalf("secret new --force = %d, stderr %q", code, stderr)
	}
	replaced, err := heartbeat.LoadSecret(path)
	if err != nil || string(replaced) == string(first) {
		t.Fatalf("--force: secret %q (err %v), want a new one", replaced, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("--force: mode %04o, want 0600", info.Mode().Perm())
	}
}

func TestSecretNewUsage(t *testing.T) {
	code, _, stderr := harules(t, "secret", "new", "/tmp/x")
	if code != exitUsage || !strings.Contains(stderr, "--file PATH") {
		t.Fatalf("secret new with an argument = %d, stderr %q; want exit 2 pointing at --file", code, stderr)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string][]string{
		"bash": {"_harules()", "--generate-bash-completion", "complete -o bashdefault -o default -F _harules harules"},
		"zsh":  {"#compdef harules", "compdef _harules harules", "--generate-bash-completion"},
		"fish": {"complete -c harules", "secret", "completion"},
	} {
		code, stdout, stderr := harules(t, "completion", shell)
		if code != exitOK {
			t.Fatalf("completion %s = %d, stderr %q", shell, code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("completion %s lacks %q", shell, w)
			}
		}
	}
	if code, _, _ := harules(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh = %d, want %d", code, exitUsage)
	}
}

// Completion runs the command line with --generate-bash-completion last; it
// must only list candidates, never run the command (here a move, which would
// otherwise try the control socket and fail).
func TestCompletionDoesNotRunTheCommand(t *testing.T) {
	t.Setenv("HARULES_CONTROL", filepath.Join(t.TempDir(), "no-agent.sock"))
	code, _, stderr := harules(t, "move", "web", "node2", "--generate-bash-completion")
	if code != exitOK || stderr != "" {
		t.Fatalf("completing `harules move web node2` = exit %d, stderr %q; want exit 0 and candidates only", code, stderr)
	}
}

func TestManPage(t *testing.T) {
	code, stdout, stderr := harules(t, "man")
	if code != exitOK {
		t.Fatalf("man = %d, stderr %q", code, stderr)
	}
	for _, w := range []string{".TH harules 1", "harules \\- high availability", "secret", "completion", ".SH FILES", "/etc/harules/policy.star"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("manual page lacks %q", w)
		}
	}
	// The "Start here" examples stay one per line (a code block), not a paragraph.
	if !strings.Contains(stdout, ".EX\nharules demo") {
		t.Errorf("manual page: the description's examples are not a code block")
	}
	// `man` itself is hidden from --help and from the page.
	_, help, _ := harules(t, "--help")
	if strings.Contains(help, "  man ") || strings.Contains(stdout, "\nman\n") {
		t.Error("the hidden man command shows in --help or the manual page")
	}
}
