package heartbeat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
			t.Fatal(err)
		}
		return p
	}
	const s = "0123456789abcdefXYZ"
	for _, tc := range []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{"plain", write("plain", s, 0o600), s, ""},
		{"trailing newline", write("nl", s+"\n", 0o600), s, ""},
		{"CRLF and blank lines", write("crlf", s+"\r\n\n", 0o400), s, ""},
		{"inner spaces kept", write("sp", " "+s+" ", 0o600), " " + s + " ", ""},
		{"world readable", write("world", s, 0o644), "", "chmod 600"},
		{"group readable", write("group", s, 0o640), "", "chmod 600"},
		{"other writable", write("ow", s, 0o602), "", "chmod 600"},
		{"too short", write("short", "0123456789abcde\n", 0o600), "", "need at least 16"},
		{"directory", dir, "", "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadSecret(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadSecret = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("LoadSecret = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestNextIncarnation(t *testing.T) {
	state := filepath.Join(t.TempDir(), "incarnation")
	clock := newFakeClock(time.Unix(1_800_000_000, 0))

	first, err := NextIncarnation(state, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if first != uint64(clock.Now().UnixNano()) {
		t.Fatalf("first incarnation %d, want the clock %d", first, clock.Now().UnixNano())
	}
	// Same clock reading (fast restart): still grows.
	second, err := NextIncarnation(state, clock.Now)
	if err != nil || second != first+1 {
		t.Fatalf("second = %d, %v; want %d", second, err, first+1)
	}
	// Clock stepped back an hour across a restart: still grows.
	clock.Advance(-time.Hour)
	third, err := NextIncarnation(state, clock.Now)
	if err != nil || third != second+1 {
		t.Fatalf("after clock step back = %d, %v; want %d", third, err, second+1)
	}
	// Clock far ahead: follows the clock.
	clock.Advance(2 * time.Hour)
	fourth, err := NextIncarnation(state, clock.Now)
	if err != nil || fourth != uint64(clock.Now().UnixNano()) {
		t.Fatalf("after clock ahead = %d, %v", fourth, err)
	}
	if err := os.WriteFile(state, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NextIncarnation(state, clock.Now); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt state file: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(state))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
