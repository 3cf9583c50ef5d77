// Package netnstest builds small throw-away networks of Linux network
// namespaces for tests that need several "hosts" on one machine.
//
// A Lab owns every namespace it creates. Names carry a random suffix so two
// test runs never collide, interfaces are created directly inside the test
// namespaces (the root namespace's interfaces are never touched), and a
// t.Cleanup kills the processes started through the lab and deletes every
// namespace even when the test fails.
//
// Typical use:
//
//	lab := netnstest.New(t)
//	lab.Bridge("sw")
//	lab.Host("a")
//	lab.Host("b")
//	lab.Connect("a", "sw", "eth0", "198.51.100.1/24")
//	lab.Connect("b", "sw", "eth0", "198.51.100.2/24")
//	out, err := lab.Exec("a", "ping", "-c1", "198.51.100.2")
//
// Only addresses in 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32
// (documentation ranges) are accepted, so a test can never send traffic
// anywhere real. IPv6 duplicate address detection is off in every lab
// namespace (accept_dad=0), so IPv6 addresses are usable as soon as they
// are added instead of a second later, and IPv6 addresses survive a link
// going down (keep_addr_on_down=1), as IPv4 ones do.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// SkipEnv is the environment variable that turns the root requirement into a
// loud skip instead of a failure.
const SkipEnv = "HARULES_SKIP_ROOT_TESTS"

// MaxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxIfName = 15

// commandTimeout bounds every `ip` invocation the lab makes itself.
const commandTimeout = 20 * time.Second

// allowedNets are the only networks a lab hands out addresses in.
var allowedNets = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)

// Lab is a set of network namespaces owned by one test.
type Lab struct {
	t      testing.TB
	suffix string

	mu         sync.Mutex
	namespaces map[string]string // logical name -> namespace name
	order      []string          // namespace names in creation order
	bridges    map[string]string // logical bridge name -> bridge device name (inside its namespace)
	peers      int               // counter for bridge-side veth names
	cmds       []*exec.Cmd
}

// RequireRoot fails the test loudly when it cannot create network
// namespaces, or skips it loudly when HARULES_SKIP_ROOT_TESTS=1.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Fatalf("netnstest: the `ip` command is missing (%v): install the Debian package iproute2 (apt-get install -y iproute2)", err)
		}
		return
	}
	msg := fmt.Sprintf("netnstest: THIS TEST NEEDS ROOT (network namespaces, veth, bridges); "+
		"running as uid %d. Run `go test` as root, or set %s=1 to skip it.", os.Geteuid(), SkipEnv)
	if os.Getenv(SkipEnv) == "1" {
		t.Skip("SKIPPED: " + msg)
	}
	t.Fatal(msg)
}

// New creates an empty lab whose namespaces are deleted when the test ends.
func New(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("netnstest: random suffix: %v", err)
	}
	l := &Lab{
		t:          t,
		suffix:     hex.EncodeToString(b),
		namespaces: map[string]string{},
		bridges:    map[string]string{},
	}
	t.Cleanup(l.cleanup)
	return l
}

// Suffix is the random suffix shared by every namespace of this lab.
func (l *Lab) Suffix() string { return l.suffix }

// Host creates a namespace with loopback up and returns its full name.
func (l *Lab) Host(name string) string {
	l.t.Helper()
	return l.addNamespace(name)
}

// Bridge creates a namespace holding one bridge device and returns the
// namespace's full name. Hosts join it with Connect.
func (l *Lab) Bridge(name string) string {
	l.t.Helper()
	ns := l.addNamespace(name)
	dev := "br0"
	l.mustIP("-n", ns, "link", "add", dev, "type", "bridge")
	l.mustIP("-n", ns, "link", "set", dev, "up")
	l.mu.Lock()
	l.bridges[name] = dev
	l.mu.Unlock()
	return ns
}

// NS returns the full namespace name of a host or bridge created by this lab.
func (l *Lab) NS(name string) string {
	l.t.Helper()
	l.mu.Lock()
	ns, ok := l.namespaces[name]
	l.mu.Unlock()
	if !ok {
		l.t.Fatalf("netnstest: no host or bridge named %q in this lab", name)
	}
	return ns
}

// Connect links host to bridge with a veth pair: the host end is called
// ifname and gets cidr (e.g. "198.51.100.1/24"); the other end is enslaved
// to the bridge. An empty cidr leaves the host end without an address.
func (l *Lab) Connect(host, bridge, ifname, cidr string) {
	l.t.Helper()
	hostNS := l.NS(host)
	bridgeNS := l.NS(bridge)
	l.mu.Lock()
	brDev, ok := l.bridges[bridge]
	l.peers++
	peer := "p" + strconv.Itoa(l.peers) + "-" + truncate(host, MaxIfName-2-len(strconv.Itoa(l.peers)))
	l.mu.Unlock()
	if !ok {
		l.t.Fatalf("netnstest: %q is not a bridge of this lab", bridge)
	}
	if len(ifname) == 0 || len(ifname) > MaxIfName {
		l.t.Fatalf("netnstest: interface name %q must be 1..%d characters", ifname, MaxIfName)
	}
	if cidr != "" {
		if err := checkCIDR(cidr); err != nil {
			l.t.Fatalf("netnstest: %v", err)
		}
	}
	// Create the pair inside the host namespace and push the peer straight
	// into the bridge namespace: nothing ever appears in the root namespace.
	l.mustIP("-n", hostNS, "link", "add", ifname, "type", "veth", "peer", "name", peer, "netns", bridgeNS)
	l.mustIP("-n", bridgeNS, "link", "set", peer, "master", brDev)
	l.mustIP("-n", bridgeNS, "link", "set", peer, "up")
	if cidr != "" {
		l.mustIP("-n", hostNS, "addr", "add", cidr, "dev", ifname)
	}
	l.mustIP("-n", hostNS, "link", "set", ifname, "up")
}

// SetLink brings an interface of a host (or bridge namespace) up or down,
// e.g. to cut a network path in the middle of a test.
func (l *Lab) SetLink(host, ifname string, up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	l.mustIP("-n", l.NS(host), "link", "set", ifname, state)
}

// MAC returns the hardware address of an interface inside a host.
func (l *Lab) MAC(host, ifname string) net.HardwareAddr {
	l.t.Helper()
	var mac net.HardwareAddr
	err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		l.t.Fatalf("netnstest: MAC of %s in %s: %v", ifname, host, err)
	}
	return mac
}

// Command returns a command that runs argv inside host (through
// `ip netns exec`). The lab kills its whole process group at cleanup if it
// is still running then.
func (l *Lab) Command(host string, argv ...string) *exec.Cmd {
	l.t.Helper()
	return l.CommandContext(context.Background(), host, argv...)
}

// CommandContext is Command with a context that kills the process.
func (l *Lab) CommandContext(ctx context.Context, host string, argv ...string) *exec.Cmd {
	l.t.Helper()
	if len(argv) == 0 {
		l.t.Fatalf("netnstest: Command needs a program to run")
	}
	args := append([]string{"netns", "exec", l.NS(host)}, argv...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd) }
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	return cmd
}

// Exec runs argv inside host and returns its combined output. It gives up
// after a generous timeout so a hung command cannot hang the test.
func (l *Lab) Exec(host string, argv ...string) (string, error) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := l.CommandContext(ctx, host, argv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), host, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (l *Lab) MustExec(host string, argv ...string) string {
	l.t.Helper()
	out, err := l.Exec(host, argv...)
	if err != nil {
		l.t.Fatalf("netnstest: %v", err)
	}
	return out
}

// Do runs fn on an OS thread switched into host's namespace and switches
// back afterwards. Only fn's own goroutine is in the namespace: goroutines
// it starts run elsewhere. Sockets opened inside fn stay in the namespace.
func (l *Lab) Do(host string, fn func() error) error {
	l.t.Helper()
	return DoIn(l.NS(host), fn)
}

// DoIn runs fn inside the named network namespace (see Lab.Do).
func DoIn(nsName string, fn func() error) error {
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", nsName, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", nsName, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine ends, instead of reusing a thread in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("return from namespace %s: %w", nsName, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

func (l *Lab) addNamespace(name string) string {
	l.t.Helper()
	if !validName.MatchString(name) {
		l.t.Fatalf("netnstest: name %q must match %s", name, validName)
	}
	ns := "hrt-" + name + "-" + l.suffix
	l.mu.Lock()
	if _, dup := l.namespaces[name]; dup {
		l.mu.Unlock()
		l.t.Fatalf("netnstest: %q already exists in this lab", name)
	}
	l.namespaces[name] = ns
	l.order = append(l.order, ns)
	l.mu.Unlock()
	l.mustIP("netns", "add", ns)
	// Interfaces created later inherit "default": no DAD, so an IPv6
	// address (and the link-local one) is not tentative for a second; and
	// IPv6 addresses stay on an interface that goes down, as IPv4 ones do
	// (Linux flushes them otherwise, where a real host's network
	// configuration adds them back when the link returns).
	for _, key := range []string{"all", "default"} {
		for setting, value := range map[string]string{"accept_dad": "0", "keep_addr_on_down": "1"} {
			path := "/proc/sys/net/ipv6/conf/" + key + "/" + setting
			if err := DoIn(ns, func() error { return os.WriteFile(path, []byte(value+"\n"), 0o644) }); err != nil {
				l.t.Fatalf("netnstest: set IPv6 %s in %s: %v", setting, ns, err)
			}
		}
	}
	l.mustIP("-n", ns, "link", "set", "lo", "up")
	return ns
}

func (l *Lab) mustIP(args ...string) {
	l.t.Helper()
	if out, err := runIP(args...); err != nil {
		l.t.Fatalf("netnstest: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func runIP(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// cleanup kills what the lab started and deletes its namespaces. It keeps
// going after errors so one failure does not leak the rest.
func (l *Lab) cleanup() {
	l.mu.Lock()
	cmds := l.cmds
	order := l.order
	l.cmds, l.order = nil, nil
	l.mu.Unlock()

	for _, cmd := range cmds {
		_ = killGroup(cmd)
	}
	for i := len(order) - 1; i >= 0; i-- {
		ns := order[i]
		// Processes started inside the namespace by other means (e.g. a
		// daemon forked by a command) would keep nothing alive, but kill
		// them anyway so they do not outlive the test.
		if out, err := runIP("netns", "pids", ns); err == nil {
			for _, f := range strings.Fields(out) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := runIP("netns", "delete", ns); err != nil {
			l.t.Errorf("netnstest: cleanup: ip netns delete %s: %v: %s", ns, err, out)
		}
	}
}

// killGroup kills a started command and its process group. Signalling the
// process first is safe against PID reuse (os.Process tracks it by pidfd):
// only while it is still ours is the whole group killed.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return nil
		}
		return err
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// checkCIDR accepts only addresses inside the documentation ranges.
func checkCIDR(cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("address %q: %w", cidr, err)
	}
	if !Allowed(p.Addr()) {
		return fmt.Errorf("address %s is outside the test ranges 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32", cidr)
	}
	return nil
}

// Allowed reports whether addr lies in a range labs may use.
func Allowed(addr netip.Addr) bool {
	for _, n := range allowedNets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if n < 1 {
		return ""
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}
