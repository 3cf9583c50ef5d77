package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/internal/clustertest"
)

// sendSpoofed sends payload from the client namespace with the source
// address src (IP_TRANSPARENT lets the socket use an address that is not
// the client's), as an attacker on the lan can.
func sendSpoofed(c *clustertest.Cluster, src, dst netip.AddrPort, payload []byte, times int) error {
	return c.Lab.Do("client", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
			return fmt.Errorf("IP_TRANSPARENT: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(src.Port()), Addr: src.Addr().As4()}); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		to := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
		for i := 0; i < times; i++ {
			if err := unix.Sendto(fd, payload, 0, to); err != nil {
				return fmt.Errorf("sendto %s: %w", dst, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})
}

// captureHeartbeat reads, inside node's namespace, one real heartbeat
// datagram arriving on eth0 from src to dst (a packet socket sees it even
// though the agent's UDP socket consumes it).
func captureHeartbeat(c *clustertest.Cluster, node string, src, dst netip.AddrPort) ([]byte, error) {
	var got []byte
	err := c.Lab.Do(node, func() error {
		proto := int(htons(unix.ETH_P_IP))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket: %w", err)
		}
		tv := unix.Timeval{Usec: 200000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 65536)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if p := udpPayload(buf[:n], src, dst); p != nil {
				got = append([]byte(nil), p...)
				return nil
			}
		}
		return fmt.Errorf("no heartbeat from %s to %s seen on %s's eth0 within 10s", src, dst, node)
	})
	return got, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpPayload returns the UDP payload of an IPv4 packet from src to dst.
func udpPayload(b []byte, src, dst netip.AddrPort) []byte {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_UDP {
		return nil
	}
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+8 {
		return nil
	}
	s, _ := netip.AddrFromSlice(b[12:16])
	d, _ := netip.AddrFromSlice(b[16:20])
	sport := binary.BigEndian.Uint16(b[ihl:])
	dport := binary.BigEndian.Uint16(b[ihl+2:])
	if s != src.Addr() || d != dst.Addr() || sport != src.Port() || dport != dst.Port() {
		return nil
	}
	return b[ihl+8:]
}

// TestForgedAndReplayedHeartbeats: heartbeats that claim to come from
// node2 but are sealed with the wrong key, for another cluster, replayed
// from a capture, or sent from the wrong address all reach node1's agent
// and are all rejected: counters in the status show each reason, and
// nothing changes (node1 still holds the group, node2 is still alive with
// the same state since, no conflict).
func TestForgedAndReplayedHeartbeats(t *testing.T) {
	c := startCluster(t, clustertest.Options{})
	o := observe(t, c, "node1")
	before := c.MustStatus("node1")
	peerBefore := peer(before, "node2")

	node1Lan := netip.MustParseAddrPort(clustertest.LanAddr(1) + ":" + fmt.Sprint(clustertest.LanPort))
	node2Lan := netip.MustParseAddrPort(clustertest.LanAddr(2) + ":" + fmt.Sprint(clustertest.LanPort))
	clientSrc := netip.MustParseAddrPort(clustertest.ClientAddr + ":" + fmt.Sprint(clustertest.LanPort))

	secret, err := heartbeat.LoadSecret(filepath.Join(c.Dir, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	// The forged payload claims node2 holds the group: accepted, it would
	// make node1 see a conflict.
	claim, err := json.Marshal(engine.Report{Node: "node2", Incarnation: uint64(time.Now().UnixNano()), PolicyHash: before.PolicyHash, Holds: []string{clustertest.Group}})
	if err != nil {
		t.Fatal(err)
	}
	seal := func(cluster string, key []byte) []byte {
		t.Helper()
		codec, err := heartbeat.NewCodec(cluster, key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := codec.Seal(heartbeat.Message{From: "node2", Path: "lan", Incarnation: uint64(time.Now().UnixNano()), Seq: 1,
			SentUnixNano: time.Now().UnixNano(), Payload: claim})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const n = 20
	wrongKey := seal("e2e", []byte("not-the-cluster-secret-at-all!!"))
	wrongCluster := seal("other-cluster", secret)
	rightKey := seal("e2e", secret)
	replay, err := captureHeartbeat(c, "node1", node2Lan, node1Lan)
	if err != nil {
		t.Fatalf("capture a real heartbeat: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // node1 has accepted the captured one by now

	for what, send := range map[string]func() error{
		"wrong key":      func() error { return sendSpoofed(c, node2Lan, node1Lan, wrongKey, n) },
		"wrong cluster":  func() error { return sendSpoofed(c, node2Lan, node1Lan, wrongCluster, n) },
		"replay":         func() error { return sendSpoofed(c, node2Lan, node1Lan, replay, n) },
		"wrong source":   func() error { return sendSpoofed(c, clientSrc, node1Lan, rightKey, n) },
		"garbage":        func() error { return sendSpoofed(c, node2Lan, node1Lan, []byte("HB\x01not a heartbeat"), n) },
		"empty datagram": func() error { return sendSpoofed(c, node2Lan, node1Lan, nil, n) },
	} {
		if err := send(); err != nil {
			t.Fatalf("send %s heartbeats: %v", what, err)
		}
	}

	var st *agent.Status
	counted := func() bool {
		st = c.MustStatus("node1")
		return rejected(st, "lan", "bad_mac") >= n && rejected(st, "lan", "wrong_cluster") >= n &&
			rejected(st, "lan", "replay", "too_old") >= n && rejected(st, "lan", "spoofed_source") >= n &&
			rejected(st, "lan", "malformed", "too_large") >= 2*n
	}
	for end := time.Now().Add(10 * time.Second); !counted() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if !counted() {
		t.Fatalf("node1 did not count every kind of rejection (%d of each sent, %d garbage): %+v", n, 2*n, st.Heartbeats)
	}
	for _, h := range st.Heartbeats {
		t.Logf("node1 heartbeat path %s: accepted %d, rejected %v", h.Path, h.Accepted, h.Rejected)
	}
	if accepted(st, "lan") <= accepted(before, "lan") {
		t.Errorf("real heartbeats stopped being accepted on lan: %d then %d", accepted(before, "lan"), accepted(st, "lan"))
	}
	// Also through the CLI, as an operator would look.
	if cli := statusJSON(t, c, "node1"); rejected(cli, "lan", "bad_mac") < n {
		t.Errorf("harules status --json shows %d bad_mac rejections, want >= %d", rejected(cli, "lan", "bad_mac"), n)
	}

	holdsFor(t, c, time.Second, "node1", "node1", "node2")
	after := c.MustStatus("node1")
	p := peer(after, "node2")
	if p.State != "alive" || !p.Since.Equal(peerBefore.Since) || len(p.Holds) != 0 {
		t.Errorf("node1's view of node2 changed: before %+v, after %+v", peerBefore, p)
	}
	for _, a := range after.Alerts {
		t.Errorf("unexpected alert on node1 after forged heartbeats: %+v", a)
	}
	ob := o.stop()
	if a := clustertest.Answerers(ob.samples, time.Time{}); a["node2"] > 0 {
		t.Errorf("node2 answered on the VIP: %v", a)
	}
	assertNeverDual(t, ob)
}
