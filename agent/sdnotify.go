package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// systemd's notify protocol (sd_notify(3)): datagrams such as "READY=1" or
// "WATCHDOG=1" to the unix socket named by $NOTIFY_SOCKET. The shipped unit
// is Type=notify with NotifyAccess=all, because the agent is a child of the
// supervisor, the unit's main process.

// Environment variables of the protocol; TakeSystemdEnv removes them so
// the services the agent starts do not inherit them (a service speaking
// sd_notify would otherwise report READY or STOPPING for harules' unit).
const (
	envNotifySocket = "NOTIFY_SOCKET"
	envWatchdogUSec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
)

// SystemdEnv is what systemd told this process about notifications.
type SystemdEnv struct {
	// NotifySocket is the socket path ("" when not run by systemd with
	// Type=notify); a leading "@" names an abstract socket.
	NotifySocket string
	// Watchdog is WatchdogSec= (0: off). The agent pets at a quarter of it.
	Watchdog time.Duration
}

// TakeSystemdEnv reads the notify variables and removes them from the
// process environment. The watchdog applies when WATCHDOG_PID names this
// process or the supervisor that started it (the unit's main process).
func TakeSystemdEnv() SystemdEnv {
	env := SystemdEnv{NotifySocket: os.Getenv(envNotifySocket)}
	if usec, err := strconv.ParseUint(os.Getenv(envWatchdogUSec), 10, 63); err == nil && usec > 0 {
		pid := os.Getenv(envWatchdogPID)
		if pid == "" || pid == strconv.Itoa(os.Getpid()) || pid == strconv.Itoa(os.Getppid()) {
			env.Watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	for _, k := range []string{envNotifySocket, envWatchdogUSec, envWatchdogPID} {
		_ = os.Unsetenv(k)
	}
	return env
}

// Environ returns env as environment entries for a child process (the
// supervisor hands them to the agent).
func (e SystemdEnv) Environ() []string {
	var out []string
	if e.NotifySocket != "" {
		out = append(out, envNotifySocket+"="+e.NotifySocket)
	}
	if e.Watchdog > 0 {
		out = append(out, envWatchdogUSec+"="+strconv.FormatInt(e.Watchdog.Microseconds(), 10))
	}
	return out
}

// sdNotifier sends notify datagrams.
type sdNotifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

func newSDNotifier(env SystemdEnv) *sdNotifier {
	if env.NotifySocket == "" {
		return nil
	}
	// Go maps a leading "@" to the abstract namespace itself.
	return &sdNotifier{addr: &net.UnixAddr{Name: env.NotifySocket, Net: "unixgram"}, watchdog: env.Watchdog}
}

// send sends one notification (e.g. "READY=1").
func (n *sdNotifier) send(state string) error {
	if n == nil {
		return errors.New("no notify socket")
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}
