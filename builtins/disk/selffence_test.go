package disk

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSelfFenceFallsBackToRebootAndNeverReturnsAsFenced(t *testing.T) {
	var calls []string
	f := SelfFence{Log: testLogger(io.Discard),
		Sysrq: func() error {
			calls = append(calls, "sysrq")
			return errors.New("open /proc/sysrq-trigger: read-only file system")
		},
		Reboot: func() error { calls = append(calls, "reboot"); return errors.New("operation not permitted") }}
	err := f.Fence(errors.New("lease lost"))
	if got := strings.Join(calls, ","); got != "sysrq,reboot" {
		t.Fatalf("ways tried: %q, want sysrq then reboot", got)
	}
	if err == nil {
		t.Fatal("every way failed but Fence returned nil (as if fenced)")
	}
	for _, want := range []string{"UNSAFE", "read-only file system", "operation not permitted", "lease lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// A way that returns without an error did not reset the machine
	// either: the next way is still tried and Fence still fails.
	calls = nil
	f.Sysrq = func() error { calls = append(calls, "sysrq"); return nil }
	if err := f.Fence(errors.New("lease lost")); err == nil || !strings.Contains(err.Error(), "returned without resetting") {
		t.Errorf("a sysrq write that returned nil: Fence = %v", err)
	}
	if got := strings.Join(calls, ","); got != "sysrq,reboot" {
		t.Errorf("ways tried: %q, want sysrq then reboot", got)
	}

	if err := (SelfFence{}).Fence(errors.New("x")); err == nil {
		t.Error("no way configured: Fence returned nil")
	}
}

// A lost lease whose mount cannot be unmounted and whose fence fails must
// not be left as if fenced: the unmount and the fence are tried again
// until the manager closes.
func TestEmergencyUnmountRetriesAFailedFence(t *testing.T) {
	var fences atomic.Int32
	m, err := NewManager(ManagerConfig{Node: "n1", Nodes: []string{"n1"}, Log: testLogger(io.Discard),
		Fence: func(error) error { fences.Add(1); return errors.New("sysrq and reboot(2) failed") }})
	if err != nil {
		t.Fatal(err)
	}
	timing := Timing{Lease: time.Second, Renew: 10 * time.Millisecond, Margin: 100 * time.Millisecond, IOTimeout: 10 * time.Millisecond}
	// Unmounting a path that does not exist fails, like a stuck mount.
	spec := Spec{Mountpoint: t.TempDir() + "/never-mounted", Timing: timing}
	done := make(chan struct{})
	go func() { m.emergencyUnmount(spec, errors.New("lease expired")); close(done) }()
	for fences.Load() < 3 {
		select {
		case <-done:
			t.Fatalf("emergencyUnmount returned after %d failed fence(s) with the disk still not unmounted", fences.Load())
		case <-time.After(time.Millisecond):
		}
	}
	m.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("emergencyUnmount kept retrying after Close")
	}
}
