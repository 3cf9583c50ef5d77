package service

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireResourceAgents fails the test loudly when Debian's resource-agents
// package (the heartbeat OCF agents) is not installed.
func requireResourceAgents(t *testing.T, agents ...string) {
	t.Helper()
	for _, a := range append([]string{"Dummy"}, agents...) {
		path := filepath.Join(DefaultOCFRoot, "resource.d", "heartbeat", a)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("OCF agent ocf:heartbeat:%s is missing (%v): apt-get install resource-agents", a, err)
		}
	}
}

func newOCFRunner(t *testing.T, spec Spec) *OCFRunner {
	t.Helper()
	spec.Kind = KindOCF
	r, err := New(spec, testOptions(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r.(*OCFRunner)
}

func TestOCFDummyCycle(t *testing.T) {
	requireResourceAgents(t)
	ctx := testCtx(t)
	state := filepath.Join(t.TempDir(), "dummy.state")
	r := newOCFRunner(t, Spec{Name: "dummy1", Agent: "Dummy", Params: map[string]string{"state": state}})
	t.Cleanup(func() { _ = r.Stop(testCtx(t)) })

	st := mustStatus(t, r, StateStopped)
	if st.ExitCode != int(OCFNotRunning) {
		t.Fatalf("monitor of a stopped Dummy: exit %d, want %d (OCF_NOT_RUNNING)", st.ExitCode, OCFNotRunning)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop of a stopped Dummy: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("Dummy did not create its state file %s (was the state parameter passed?): %v", state, err)
	}
	st = mustStatus(t, r, StateRunning)
	if st.ExitCode != 0 {
		t.Fatalf("monitor exit %d, want 0", st.ExitCode)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := r.Validate(ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file still there after Stop: %v", err)
	}
	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestOCFMetaDataOfInstalledAgents(t *testing.T) {
	requireResourceAgents(t, "Filesystem")
	ctx := testCtx(t)

	dummy, err := ReadMetaData(ctx, "", "heartbeat", "Dummy")
	if err != nil {
		t.Fatalf("ReadMetaData Dummy: %v", err)
	}
	if dummy.Name != "Dummy" || dummy.ShortDesc == "" {
		t.Fatalf("Dummy meta-data: name %q shortdesc %q", dummy.Name, dummy.ShortDesc)
	}
	state, ok := dummy.Parameter("state")
	if !ok || !state.Unique || state.Required || state.Type != "string" || !strings.Contains(state.Default, "Dummy-") || state.ShortDesc != "State file" {
		t.Fatalf("Dummy parameter state = %+v", state)
	}
	if start, ok := dummy.Action("start"); !ok || start.Timeout != 20*time.Second {
		t.Fatalf("Dummy start action = %+v", start)
	}
	if md, ok := dummy.Action("meta-data"); !ok || md.Timeout != 5*time.Second {
		t.Fatalf("Dummy meta-data action = %+v", md)
	}
	if !dummy.Supports("validate-all") || dummy.Supports("promote") {
		t.Fatalf("Dummy supports validate-all %v, promote %v; want true, false", dummy.Supports("validate-all"), dummy.Supports("promote"))
	}

	fs, err := ReadMetaData(ctx, "", "heartbeat", "Filesystem")
	if err != nil {
		t.Fatalf("ReadMetaData Filesystem: %v", err)
	}
	var required []string
	for _, p := range fs.Parameters {
		if p.Required {
			required = append(required, p.Name)
		}
	}
	if strings.Join(required, ",") != "device,directory,fstype" {
		t.Fatalf("Filesystem required parameters = %v, want device, directory, fstype", required)
	}
	if mon, ok := fs.Action("monitor"); !ok || mon.Timeout != 40*time.Second || mon.Interval != 20*time.Second {
		t.Fatalf("Filesystem monitor action = %+v", mon)
	}
	if fast, ok := fs.Parameter("fast_stop"); !ok || fast.Type != "boolean" {
		t.Fatalf("Filesystem fast_stop = %+v", fast)
	}

	// New takes the agent's advised timeouts when the spec has none.
	r := newOCFRunner(t, Spec{Name: "fs-timeouts", Agent: "Filesystem",
		Params: map[string]string{"device": "/dev/null", "directory": "/mnt", "fstype": "ext4"}})
	if r.spec.StartTimeout != 60*time.Second || r.spec.MonitorTimeout != 40*time.Second || r.spec.MonitorInterval != 20*time.Second {
		t.Fatalf("timeouts from meta-data: start %s monitor %s interval %s", r.spec.StartTimeout, r.spec.MonitorTimeout, r.spec.MonitorInterval)
	}
}

func TestOCFNewRejectsBadParameters(t *testing.T) {
	requireResourceAgents(t, "Filesystem")
	for _, tc := range []struct {
		name string
		spec Spec
		want []string
	}{
		{"missing required", Spec{Agent: "Filesystem", Params: map[string]string{"device": "/dev/loop9", "fstype": "ext4"}},
			[]string{`missing required parameter "directory"`, "device, directory, fstype"}},
		{"unknown", Spec{Agent: "Dummy", Params: map[string]string{"stat": "/tmp/x"}},
			[]string{`unknown parameter "stat"`, "state, fake"}},
		{"missing agent", Spec{Agent: "NoSuchAgent"}, []string{"ocf:heartbeat:NoSuchAgent not found", "apt-get install resource-agents"}},
		{"bad agent name", Spec{Agent: "../Dummy"}, []string{`Agent "../Dummy" is not a valid name`}},
		{"no agent", Spec{}, []string{`Agent "" is not a valid name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name, tc.spec.Kind = "bad", KindOCF
			_, err := New(tc.spec, Options{})
			if err == nil {
				t.Fatalf("New accepted %+v", tc.spec)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// fakeAgentRoot installs a small OCF agent under a temporary OCF root. Its
// actions exit with the code written in $dir/<action>.rc (default 0), it
// records its environment in $dir/<action>.env, and it hangs when
// $dir/<action>.hang exists.
func fakeAgentRoot(t *testing.T, withValidate bool) (root, dir string) {
	root, dir = t.TempDir(), t.TempDir()
	validate := ""
	if withValidate {
		validate = `<action name="validate-all" timeout="7s" />`
	}
	writeScript(t, filepath.Join(root, "resource.d", "harulestest", "Fake"), `
D=`+dir+`
if [ "$1" = meta-data ]; then
	echo "warning on stderr must not spoil the XML" >&2
	cat <<'END'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Fake" version="1.1">
<version>1.1</version>
<shortdesc lang="en">Test agent</shortdesc>
<parameters>
<parameter name="color" required="1" unique="0"><shortdesc lang="en">A color</shortdesc>
<content type="select" default="red"><option value="red"/><option value="blue"/></content></parameter>
<parameter name="old"><deprecated/><content type="integer"/></parameter>
</parameters>
<actions>
<action name="start" timeout="2min" />
<action name="stop" timeout="90" />
<action name="monitor" timeout="PT15S" interval="30s" depth="0" />
<action name="monitor" timeout="99s" interval="31s" role="Promoted" />
`+validate+`
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
END
	exit 0
fi
env > "$D/$1.env"
if [ -e "$D/$1.hang" ]; then sleep 1000 & echo $! > "$D/$1.child"; wait; fi
if [ -e "$D/$1.reason" ]; then echo "ocf-exit-reason:$(cat "$D/$1.reason")" >&2; fi
exit "$(cat "$D/$1.rc" 2>/dev/null || echo 0)"
`)
	return root, dir
}

func TestOCFEnvironmentAndMetaDataTimeouts(t *testing.T) {
	ctx := testCtx(t)
	root, dir := fakeAgentRoot(t, false)
	r := newOCFRunner(t, Spec{Name: "fake1", OCFRoot: root, Provider: "harulestest", Agent: "Fake",
		Params: map[string]string{"color": "blue"}})
	if r.spec.StartTimeout != 2*time.Minute || r.spec.StopTimeout != 90*time.Second || r.spec.MonitorTimeout != 15*time.Second {
		t.Fatalf("timeouts from meta-data: %s %s %s", r.spec.StartTimeout, r.spec.StopTimeout, r.spec.MonitorTimeout)
	}
	meta, err := r.MetaData(ctx)
	if err != nil {
		t.Fatalf("MetaData: %v", err)
	}
	color, _ := meta.Parameter("color")
	old, _ := meta.Parameter("old")
	if !color.Required || color.Type != "select" || strings.Join(color.Options, "|") != "red|blue" || !old.Deprecated || old.Required {
		t.Fatalf("parameters: color %+v old %+v", color, old)
	}

	t.Setenv("OCF_RESKEY_color", "leaked-from-agent-env") // must not reach the agent
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	env := readEnv(t, filepath.Join(dir, "start.env"))
	for k, v := range map[string]string{
		"OCF_ROOT": root, "OCF_RESOURCE_INSTANCE": "fake1", "OCF_RESOURCE_TYPE": "Fake",
		"OCF_RESOURCE_PROVIDER": "harulestest", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
		"OCF_RESKEY_color": "blue", "OCF_RESKEY_CRM_meta_timeout": "120000",
	} {
		if env[k] != v {
			t.Errorf("start env %s = %q, want %q", k, env[k], v)
		}
	}
	mon := readEnv(t, filepath.Join(dir, "monitor.env"))
	if mon["OCF_RESKEY_CRM_meta_interval"] != "30000" || mon["OCF_RESKEY_CRM_meta_timeout"] != "15000" {
		t.Errorf("monitor env interval %q timeout %q, want 30000 and 15000", mon["OCF_RESKEY_CRM_meta_interval"], mon["OCF_RESKEY_CRM_meta_timeout"])
	}

	if err := r.Validate(ctx); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Validate on an agent without validate-all = %v, want ErrUnsupported", err)
	}
	if _, err := New(Spec{Name: "fake2", Kind: KindOCF, OCFRoot: root, Provider: "harulestest", Agent: "Fake"}, Options{}); err == nil ||
		!strings.Contains(err.Error(), `missing required parameter "color" (A color)`) {
		t.Fatalf("New without the required color = %v", err)
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the agent did not record its environment: %v", err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestOCFExitCodes(t *testing.T) {
	ctx := testCtx(t)
	root, dir := fakeAgentRoot(t, true)
	r := newOCFRunner(t, Spec{Name: "fake1", OCFRoot: root, Provider: "harulestest", Agent: "Fake",
		Params: map[string]string{"color": "red"}})
	setRC := func(action string, code int) {
		if err := os.WriteFile(filepath.Join(dir, action+".rc"), []byte(strconv.Itoa(code)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		code     OCFCode
		want     State
		wantErr  bool
		wantName string
	}{
		{OCFSuccess, StateRunning, false, "OCF_SUCCESS"},
		{OCFErrGeneric, StateFailed, false, "OCF_ERR_GENERIC"},
		{OCFErrArgs, StateFailed, true, "OCF_ERR_ARGS"},
		{OCFErrUnimplemented, StateFailed, true, "OCF_ERR_UNIMPLEMENTED"},
		{OCFErrPerm, StateFailed, true, "OCF_ERR_PERM"},
		{OCFErrInstalled, StateFailed, true, "OCF_ERR_INSTALLED"},
		{OCFErrConfigured, StateFailed, true, "OCF_ERR_CONFIGURED"},
		{OCFNotRunning, StateStopped, false, "OCF_NOT_RUNNING"},
		{OCFRunningMaster, StatePromoted, false, "OCF_RUNNING_MASTER"},
		{OCFFailedMaster, StateFailedPromoted, false, "OCF_FAILED_MASTER"},
		{42, StateFailed, true, "OCF_UNKNOWN_42"},
	} {
		setRC("monitor", int(tc.code))
		st, err := r.Monitor(ctx)
		if st.State != tc.want || st.ExitCode != int(tc.code) || (err != nil) != tc.wantErr {
			t.Errorf("monitor exit %d: got %v, err %v; want %v, error %v", tc.code, st, err, tc.want, tc.wantErr)
		}
		if tc.code.Hard() != tc.wantErr { // exactly the hard codes make the check itself fail
			t.Errorf("OCFCode(%d).Hard() = %v", int(tc.code), tc.code.Hard())
		}
		if tc.code.String() != tc.wantName {
			t.Errorf("OCFCode(%d) = %s, want %s", int(tc.code), tc.code, tc.wantName)
		}
		if err != nil && !strings.Contains(err.Error(), tc.wantName) {
			t.Errorf("monitor error %q does not name %s", err, tc.wantName)
		}
	}

	// A failing start carries the code's name and the agent's exit reason.
	setRC("start", int(OCFErrConfigured))
	if err := os.WriteFile(filepath.Join(dir, "start.reason"), []byte("color blue needs paint"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := r.Start(ctx)
	var ae *ActionError
	if !errors.As(err, &ae) || ae.ExitCode != int(OCFErrConfigured) || ae.Reason != "color blue needs paint" ||
		!strings.Contains(err.Error(), "OCF_ERR_CONFIGURED") || !strings.Contains(err.Error(), "color blue needs paint") {
		t.Fatalf("failing start = %v (%#v)", err, ae)
	}
	// Stop reporting OCF_NOT_RUNNING is a successful stop; OCF_ERR_GENERIC is not.
	setRC("stop", int(OCFNotRunning))
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop answered OCF_NOT_RUNNING: %v", err)
	}
	setRC("stop", int(OCFErrGeneric))
	if err := r.Stop(ctx); err == nil {
		t.Fatalf("Stop answered OCF_ERR_GENERIC but succeeded")
	}
	setRC("validate-all", int(OCFErrConfigured))
	if err := r.Validate(ctx); err == nil || !strings.Contains(err.Error(), "OCF_ERR_CONFIGURED") {
		t.Fatalf("Validate = %v, want OCF_ERR_CONFIGURED", err)
	}
	setRC("validate-all", 0)
	if err := r.Validate(ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestOCFHangingMonitorIsKilled(t *testing.T) {
	ctx := testCtx(t)
	root, dir := fakeAgentRoot(t, false)
	r := newOCFRunner(t, Spec{Name: "fake1", OCFRoot: root, Provider: "harulestest", Agent: "Fake",
		Params: map[string]string{"color": "red"}, MonitorTimeout: 2 * time.Second})
	if err := os.WriteFile(filepath.Join(dir, "monitor.hang"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := r.Monitor(ctx)
	if !errors.Is(err, ErrTimeout) || st.State != StateFailed {
		t.Fatalf("hanging monitor: %v, %v; want failed with ErrTimeout", st, err)
	}
	child := readPIDs(t, filepath.Join(dir, "monitor.child"))[0]
	killOnCleanup(t, func() []int { return []int{child} })
	waitFor(t, "the hanging agent's child to be killed", func() bool { return !alive(child) })
}

func TestParseOCFDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "20": 20 * time.Second, "20s": 20 * time.Second, "100ms": 100 * time.Millisecond,
		"2min": 2 * time.Minute, "1m": time.Minute, "1h": time.Hour, "PT1M30S": 90 * time.Second, " 15 ": 15 * time.Second,
	} {
		got, err := ParseOCFDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseOCFDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "20 parsecs", "-5s", "PTxS"} {
		if _, err := ParseOCFDuration(bad); err == nil {
			t.Errorf("ParseOCFDuration(%q) accepted", bad)
		}
	}
}

// TestOCFFilesystemMountsLoopDevice runs ocf:heartbeat:Filesystem against a
// real ext4 loop device.
func TestOCFFilesystemMountsLoopDevice(t *testing.T) {
	requireRoot(t, "mounting a loop device with ocf:heartbeat:Filesystem")
	requireResourceAgents(t, "Filesystem")
	for _, tool := range []string{"losetup", "mkfs.ext4", "modprobe", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install util-linux e2fsprogs kmod): %v", tool, err)
		}
	}
	ctx := testCtx(t)
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	loop := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		// Unmount whatever the test left (lazily if busy), then free the loop device.
		if isMounted(mnt) {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Logf("umount %s: %v: %s; trying lazy unmount", mnt, err, out)
				_ = exec.Command("umount", "-l", mnt).Run()
			}
		}
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", loop, err, out)
		}
	})
	run("mkfs.ext4", "-q", "-F", loop)

	r := newOCFRunner(t, Spec{Name: "fs1", Agent: "Filesystem",
		Params: map[string]string{"device": loop, "directory": mnt, "fstype": "ext4"}})
	t.Cleanup(func() { _ = r.Stop(testCtx(t)) })

	if err := r.Validate(ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	mustStatus(t, r, StateStopped)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !isMounted(mnt) {
		t.Fatalf("%s is not mounted after Start", mnt)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("from harules"), 0o644); err != nil {
		t.Fatalf("write on the mounted filesystem: %v", err)
	}
	mustStatus(t, r, StateRunning)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if isMounted(mnt) {
		t.Fatalf("%s still mounted after Stop", mnt)
	}
	if _, err := os.Stat(filepath.Join(mnt, "hello")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file is visible after unmount: %v", err)
	}
	mustStatus(t, r, StateStopped)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// The data survived the unmount: mount again and read it back.
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(data) != "from harules" {
		t.Fatalf("read back: %q, %v", data, err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("final Stop: %v", err)
	}
}

// isMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func isMounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
