package service

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// PID 1 is not systemd on the build machine, so the live path (a real
// systemctl talking to a real systemd) is untested here. These tests cover the
// refusal when systemd is absent, the command lines, the mapping of
// is-active's answers, and timeouts, with a stand-in systemctl script.

func TestSystemdRefusedWithoutSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("this machine runs systemd; the refusal path does not apply")
	}
	_, err := New(Spec{Name: "web", Kind: KindSystemd, Unit: "nginx.service"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "needs systemd as PID 1") || !strings.Contains(err.Error(), `use kind "process"`) {
		t.Fatalf("New systemd service without systemd = %v; want a clear refusal", err)
	}
}

func TestSystemdSpecValidation(t *testing.T) {
	for unit, want := range map[string]string{
		"":                "needs Unit",
		"--now":           "is not a unit name",
		"a b.service":     "is not a unit name",
		"../../x.service": "is not a unit name",
	} {
		_, err := New(Spec{Name: "web", Kind: KindSystemd, Unit: unit}, Options{SystemdDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Unit %q: %v, want %q", unit, err, want)
		}
	}
}

func TestSystemctlCommandLines(t *testing.T) {
	for verb, want := range map[string][]string{
		"start":     {"/bin/systemctl", "start", "nginx.service"},
		"stop":      {"/bin/systemctl", "stop", "nginx.service"},
		"is-active": {"/bin/systemctl", "is-active", "nginx.service"},
	} {
		if got := systemctlArgv("/bin/systemctl", verb, "nginx.service"); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", verb, got, want)
		}
	}
}

// fakeSystemctl writes a stand-in systemctl that logs its arguments and
// answers is-active with the word in $dir/state.
func fakeSystemctl(t *testing.T) (path, dir string) {
	dir = t.TempDir()
	path = writeScript(t, filepath.Join(dir, "systemctl"), `
D=`+dir+`
echo "$*" >> "$D/calls"
case "$1" in
is-active)
	s=$(cat "$D/state" 2>/dev/null || echo inactive)
	echo "$s"
	[ "$s" = active ] && exit 0
	exit 3 ;;
start) [ -e "$D/hang" ] && exec sleep 1000; echo active > "$D/state" ;;
stop) echo inactive > "$D/state" ;;
esac
`)
	return path, dir
}

func TestSystemdRunnerWithStandInSystemctl(t *testing.T) {
	ctx := testCtx(t)
	systemctl, dir := fakeSystemctl(t)
	r, err := New(Spec{Name: "web", Kind: KindSystemd, Unit: "nginx.service", StartTimeout: 2 * time.Second},
		Options{SystemdDir: t.TempDir(), Systemctl: systemctl, Logger: testOptions(t).Logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mustStatus(t, r, StateStopped)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := mustStatus(t, r, StateRunning)
	if st.Message != "active" || st.ExitCode != 0 {
		t.Fatalf("status %v", st)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "calls"))
	want := "is-active nginx.service\nstart nginx.service\nis-active nginx.service\nstop nginx.service\n"
	if string(data) != want {
		t.Fatalf("systemctl calls:\n%s\nwant:\n%s", data, want)
	}

	for word, want := range map[string]State{"failed": StateFailed, "activating": StateRunning, "deactivating": StateRunning, "reloading": StateRunning} {
		if err := os.WriteFile(filepath.Join(dir, "state"), []byte(word+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustStatus(t, r, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte("bewildered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Monitor(ctx); err == nil || st.State != StateFailed {
		t.Fatalf("unknown is-active answer: %v, %v; want failed with an error", st, err)
	}

	if err := os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("hanging systemctl start = %v, want ErrTimeout", err)
	}
}
