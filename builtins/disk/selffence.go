package disk

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// SelfFence resets this machine at once, without sync or unmount: the last
// resort of a node that lost its disk lease and cannot stop writing. Each
// way is tried in order; a way that returns at all has failed (a working
// reset does not return), so Fence returns only with an error, never as if
// the node were fenced. The ways are fields so that tests can check the
// order and the failure path without resetting the machine.
type SelfFence struct {
	// Sysrq resets through /proc/sysrq-trigger (default SysrqTrigger).
	Sysrq func() error
	// Reboot resets through reboot(2) (default RebootSyscall).
	Reboot func() error
	Log    *slog.Logger
}

// DefaultSelfFence tries sysrq, then reboot(2).
var DefaultSelfFence = SelfFence{Sysrq: SysrqTrigger, Reboot: RebootSyscall}

// Fence tries every way to reset the machine; it returns only when all of
// them failed, with their errors joined.
func (f SelfFence) Fence(reason error) error {
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	ways := []struct {
		name  string
		reset func() error
	}{{"sysrq", f.Sysrq}, {"reboot(2)", f.Reboot}}
	var errs []error
	for _, w := range ways {
		if w.reset == nil {
			continue
		}
		log.Error("self-fence: resetting this machine", "way", w.name, "reason", reason)
		err := w.reset()
		if err == nil {
			// A reset that worked would not have returned.
			err = errors.New("returned without resetting the machine")
		}
		err = fmt.Errorf("self-fence through %s: %w", w.name, err)
		log.Error("self-fence failed, trying the next way", "err", err)
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return errors.New("self-fence: no way to reset the machine configured")
	}
	return fmt.Errorf("UNSAFE: could not fence this node (%v): %w", reason, errors.Join(errs...))
}

// SysrqReboot is DefaultSelfFence.Fence: a ManagerConfig.Fence.
func SysrqReboot(reason error) error { return DefaultSelfFence.Fence(reason) }

// SysrqTrigger writes "b" to /proc/sysrq-trigger: an immediate reset
// (writes through the trigger file are allowed whatever kernel.sysrq
// says, but the file may be missing or read-only, e.g. in a container).
func SysrqTrigger() error {
	f, err := os.OpenFile("/proc/sysrq-trigger", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("b"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RebootSyscall resets through reboot(2) with LINUX_REBOOT_CMD_RESTART
// (needs CAP_SYS_BOOT; no sync, the point is to stop writing now).
func RebootSyscall() error {
	return syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
}
