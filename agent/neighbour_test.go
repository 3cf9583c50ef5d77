package agent

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/netnstest"
)

// TestDropUnresolvedLetsTheNextPacketThrough: while b was cut off, a kept
// sending to it, so a's neighbour entry for b is INCOMPLETE; with a long
// ARP retry interval (60 s here, up to 1 s by default) a packet sent after
// the heal waits for the next retry. dropUnresolved deletes that entry,
// so the next packet resolves b at once and arrives.
func TestDropUnresolvedLetsTheNextPacketThrough(t *testing.T) {
	lab := netnstest.New(t)
	lab.Bridge("sw")
	lab.Host("a")
	lab.Host("b")
	lab.Connect("a", "sw", "eth0", "198.51.100.1/24")
	lab.Connect("b", "sw", "eth0", "198.51.100.2/24")
	lab.MustExec("a", "sysctl", "-qw", "net.ipv4.neigh.eth0.retrans_time_ms=60000")
	port := ""
	for _, line := range strings.Split(lab.MustExec("sw", "ip", "-o", "link", "show", "master", "br0"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0], "-b") {
			port = strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		}
	}
	if port == "" {
		t.Fatal("no bridge port of b")
	}

	var rx net.PacketConn
	if err := lab.Do("b", func() (err error) { rx, err = net.ListenPacket("udp4", "198.51.100.2:7001"); return err }); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	var tx net.Conn
	if err := lab.Do("a", func() (err error) { tx, err = net.Dial("udp4", "198.51.100.2:7001"); return err }); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	lab.MustExec("sw", "ip", "link", "set", port, "nomaster") // b cut off, carriers up
	if _, err := tx.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if out := lab.MustExec("a", "ip", "neigh", "show", "198.51.100.2"); !strings.Contains(out, "INCOMPLETE") {
		t.Fatalf("a's neighbour entry for b is %q, want INCOMPLETE", out)
	}
	lab.MustExec("sw", "ip", "link", "set", port, "master", "br0") // heal

	if err := lab.Do("a", func() error { return dropUnresolved(netip.MustParseAddr("198.51.100.2")) }); err != nil {
		t.Fatalf("dropUnresolved: %v", err)
	}
	if _, err := tx.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	for {
		n, _, err := rx.ReadFrom(buf)
		if err != nil {
			t.Fatalf("b got nothing after the heal (the packet waits for a's next ARP retry, 60 s away): %v", err)
		}
		if string(buf[:n]) == "after" {
			return
		}
	}
}
