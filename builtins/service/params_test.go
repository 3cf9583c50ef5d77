package service

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSpecFromParams(t *testing.T) {
	spec, err := SpecFromParams("web", map[string]string{
		"kind": "process", "command": "/usr/sbin/nginx\x00-g\x00daemon off;", "monitor": "curl -fsS http://127.0.0.1/",
		"start_timeout": "30s", "stop_timeout": "5s", "env.LANG": "C", "dir": "/srv", "kill_with_agent": "false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(spec.Argv, []string{"/usr/sbin/nginx", "-g", "daemon off;"}) ||
		!slices.Equal(spec.Monitor, []string{"curl", "-fsS", "http://127.0.0.1/"}) ||
		spec.StartTimeout != 30*time.Second || spec.StopTimeout != 5*time.Second ||
		spec.Env["LANG"] != "C" || spec.Dir != "/srv" || spec.KillWithAgent == nil || *spec.KillWithAgent {
		t.Fatalf("spec = %+v", spec)
	}

	spec, err = SpecFromParams("fs", map[string]string{"kind": "ocf", "ocf_provider": "heartbeat", "ocf_agent": "Filesystem",
		"param.device": "/dev/sdb1", "param.directory": "/data", "start_timeout": "20s", "stop_timeout": "20s"})
	if err != nil || spec.Agent != "Filesystem" || spec.Provider != "heartbeat" || spec.Params["directory"] != "/data" || len(spec.Params) != 2 {
		t.Fatalf("ocf spec = %+v, %v", spec, err)
	}

	spec, err = SpecFromParams("job", map[string]string{"kind": "commands", "start": "cd /x && ./run start", "stop": "./run stop", "monitor": ""})
	if err != nil || !slices.Equal(spec.Start, []string{"/bin/sh", "-c", "cd /x && ./run start"}) || spec.Monitor != nil {
		t.Fatalf("commands spec = %+v, %v", spec, err)
	}
	if _, err := New(spec, Options{}); err == nil || !strings.Contains(err.Error(), "Monitor is empty") {
		t.Fatalf("New with an empty monitor = %v", err)
	}

	if _, err := SpecFromParams("x", map[string]string{"kind": "process", "command": "a", "start_timout": "1s", "stop_timeout": "soon"}); err == nil ||
		!strings.Contains(err.Error(), `unknown parameter "start_timout"`) || !strings.Contains(err.Error(), `stop_timeout "soon" is not a duration`) {
		t.Fatalf("bad params: %v", err)
	}
}

// TestSpecFromParamsRuns runs a declared shell command line end to end.
func TestSpecFromParamsRuns(t *testing.T) {
	ctx := testCtx(t)
	spec, err := SpecFromParams("looper", map[string]string{"kind": "process", "command": "while :; do sleep 1; done"})
	if err != nil {
		t.Fatal(err)
	}
	r := newProcessRunner(t, spec)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustStatus(t, r, StateRunning)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	mustStatus(t, r, StateStopped)
}

// TestCommandStringsRunThroughTheShell: a command string means what it
// means to /bin/sh. "exec prog start" used to run a program named "exec";
// plain words naming a program still run directly (what the shell does).
func TestCommandStringsRunThroughTheShell(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		want []string
	}{
		{"/usr/bin/nginx -g off", []string{"/usr/bin/nginx", "-g", "off"}},
		{"exec /usr/bin/nginx start", []string{"/bin/sh", "-c", "exec /usr/bin/nginx start"}},
		{"cd /srv", []string{"/bin/sh", "-c", "cd /srv"}},
		{"LANG=C prog", []string{"/bin/sh", "-c", "LANG=C prog"}},
		{"test -f /x", []string{"/bin/sh", "-c", "test -f /x"}},
		{"a | b", []string{"/bin/sh", "-c", "a | b"}},
	} {
		if got := commandArgv(c.cmd); !slices.Equal(got, c.want) {
			t.Errorf("commandArgv(%q) = %q, want %q", c.cmd, got, c.want)
		}
	}
	// End to end: start/stop/monitor strings starting with exec and an
	// assignment really run.
	ctx := testCtx(t)
	dir := t.TempDir()
	script := writeScript(t, dir+"/svc", `case "$1" in
start) touch "$STATE";; stop) rm -f "$STATE";; status) test -f "$STATE" || exit 3;; esac`)
	state := dir + "/running"
	spec, err := SpecFromParams("svc", map[string]string{"kind": "commands",
		"start": "exec " + script + " start", "stop": "STATE=" + state + " " + script + " stop", "monitor": "exec " + script + " status",
		"env.STATE": state})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(spec, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start with %q: %v", spec.Start, err)
	}
	mustStatus(t, r, StateRunning)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop with %q: %v", spec.Stop, err)
	}
	mustStatus(t, r, StateStopped)
}
