package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The Linux watchdog device (/dev/watchdog; the softdog module or a
// hardware timer), armed as SBD does: once opened, the machine reboots
// unless the device is written to within its timeout. The agent writes
// only while its decision loop makes progress, so a node whose agent is
// stuck and cannot even exit (a process in uninterruptible sleep), or
// does not come back after dying, reboots and so releases everything.
// A clean stop disarms it with the magic close ('V').

// DefaultWatchdogTimeout is the device timeout set when none is given.
const DefaultWatchdogTimeout = 60 * time.Second

// watchdogDevice is an armed watchdog device.
type watchdogDevice struct {
	f       *os.File
	timeout time.Duration
	log     *slog.Logger
	failing bool
}

// wdiocSetTimeout is WDIOC_SETTIMEOUT: _IOWR('W', 6, int).
const wdiocSetTimeout = 0xC0045706

// openWatchdog arms the device at path with timeout. A file that is not a
// watchdog (no WDIOC_SETTIMEOUT) is written to all the same: tests use a
// regular file, and a driver with a fixed timeout keeps its own.
func openWatchdog(path string, timeout time.Duration, log *slog.Logger) (*watchdogDevice, error) {
	if timeout <= 0 {
		timeout = DefaultWatchdogTimeout
	}
	if timeout < 2*time.Second {
		return nil, fmt.Errorf("watchdog timeout %s: want at least 2s (the device counts whole seconds)", timeout)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("arm the watchdog %s: %w", path, err)
	}
	secs := int(timeout / time.Second)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), wdiocSetTimeout, secs); err != nil {
		log.Warn("watchdog: cannot set its timeout; the device's own applies", "device", path, "timeout", timeout.String(), "error", err)
	}
	d := &watchdogDevice{f: f, timeout: timeout, log: log}
	d.pet()
	log.Info("watchdog armed: the machine reboots if the agent stops making progress for the timeout", "device", path, "timeout", timeout.String())
	return d, nil
}

// pet keeps the device from firing.
func (d *watchdogDevice) pet() {
	_, err := d.f.Write([]byte{0})
	switch {
	case err != nil && !d.failing:
		d.failing = true
		d.log.Error("watchdog: cannot write to the device; the machine may reboot", "error", err)
	case err == nil && d.failing:
		d.failing = false
		d.log.Info("watchdog: writes work again")
	}
}

// disarm stops the device with the magic close: a clean stop must not
// reboot the machine.
func (d *watchdogDevice) disarm() error {
	_, werr := d.f.Write([]byte{'V'})
	cerr := d.f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("disarm the watchdog: %w", err)
	}
	d.log.Info("watchdog disarmed")
	return nil
}
