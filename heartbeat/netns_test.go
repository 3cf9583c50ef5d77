package heartbeat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/internal/netnstest"
)

// Two namespaces, each a node, joined by two veth pairs: path "lan" on
// 198.51.100.0/24 and path "backnet" on 203.0.113.0/24.
var (
	nsLanA  = ap("198.51.100.1:7946")
	nsLanB  = ap("198.51.100.2:7946")
	nsBackA = ap("203.0.113.1:7946")
	nsBackB = ap("203.0.113.2:7946")
)

// helperConfig is what the node-b helper process gets in HARULES_HB_HELPER.
type helperConfig struct {
	Node       string
	SecretFile string
	Interval   time.Duration
	Listen     map[string]netip.AddrPort            // path -> bind address
	Peers      map[string]map[string]netip.AddrPort // path -> node -> address
}

// helperEvent is one line the helper prints per accepted heartbeat.
type helperEvent struct {
	Path, From, Src string
	Seq             uint64
	Payload         string
}

// TestHelperNodeProcess is not a test: it is the body of node b when the
// test binary is started again inside b's namespace with `ip netns exec`,
// the way the agent runs in production (whole process in the namespace).
func TestHelperNodeProcess(t *testing.T) {
	raw := os.Getenv("HARULES_HB_HELPER")
	if raw == "" {
		return
	}
	if err := runHelperNode(raw); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runHelperNode(raw string) error {
	var cfg helperConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return err
	}
	secret, err := LoadSecret(cfg.SecretFile)
	if err != nil {
		return err
	}
	codec, err := NewCodec("prod", secret)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	guard := NewReplayGuard()
	var eps []*Endpoint
	for path, addr := range cfg.Listen {
		ep, err := Listen(ctx, EndpointConfig{
			Path: path, Listen: addr, Peers: cfg.Peers[path], Codec: codec, Guard: guard,
			Deliver: func(r Received) {
				mu.Lock()
				defer mu.Unlock()
				out.Encode(helperEvent{Path: r.Path, From: r.Message.From, Src: r.From.String(), Seq: r.Message.Seq, Payload: string(r.Message.Payload)})
			},
		})
		if err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	sender, err := NewSender(SenderConfig{
		Node: cfg.Node, Interval: cfg.Interval, Endpoints: eps,
		Payload: func() []byte { return []byte(`{"pid":` + strconv.Itoa(os.Getpid()) + `}`) },
	})
	if err != nil {
		return err
	}
	go sender.Run(ctx)
	// Run until the test closes stdin (or kills the process group).
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// TestNamespacesTwoPaths runs node a in this process (sockets bound inside
// namespace a) and node b as a separate process inside namespace b, over
// two veth pairs. It checks heartbeats flow both ways on both paths, that
// cutting one path stops only that path and that it recovers, and that a
// third address in b's namespace cannot pass as b even with the right key.
func TestNamespacesTwoPaths(t *testing.T) {
	lab := netnstest.New(t)
	lab.Host("hba")
	lab.Host("hbb")
	nsA, nsB := lab.NS("hba"), lab.NS("hbb")
	ipCmd := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	// Each veth pair is created inside a and its peer pushed straight into
	// b; nothing touches the root namespace. Deleting the namespaces at
	// cleanup deletes the pairs.
	for _, l := range []struct{ a, b, cidrA, cidrB string }{
		{"lana", "lanb", "198.51.100.1/24", "198.51.100.2/24"},
		{"bka", "bkb", "203.0.113.1/24", "203.0.113.2/24"},
	} {
		ipCmd("-n", nsA, "link", "add", l.a, "type", "veth", "peer", "name", l.b, "netns", nsB)
		ipCmd("-n", nsA, "addr", "add", l.cidrA, "dev", l.a)
		ipCmd("-n", nsB, "addr", "add", l.cidrB, "dev", l.b)
		ipCmd("-n", nsA, "link", "set", l.a, "up")
		ipCmd("-n", nsB, "link", "set", l.b, "up")
	}

	secretFile := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(secretFile, append(testSecret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	codec := mustCodec(t, "prod", testSecret)
	const interval = 200 * time.Millisecond

	// Node b: the helper process inside namespace b.
	cfg, _ := json.Marshal(helperConfig{
		Node: "b", SecretFile: secretFile, Interval: interval,
		Listen: map[string]netip.AddrPort{"lan": nsLanB, "backnet": nsBackB},
		Peers: map[string]map[string]netip.AddrPort{
			"lan": {"a": nsLanA}, "backnet": {"a": nsBackA},
		},
	})
	helper := lab.Command("hbb", os.Args[0], "-test.run=^TestHelperNodeProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), "HARULES_HB_HELPER="+string(cfg))
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatalf("start node b in its namespace: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); helper.Wait() })
	bSaw := make(chan helperEvent, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev helperEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				select {
				case bSaw <- ev:
				default: // the test only needs the first few
				}
			}
		}
	}()

	// Node a: endpoints bound inside namespace a from this process.
	var (
		mu      sync.Mutex
		highest = map[string]uint64{} // path -> highest seq from b
		srcs    = map[string]string{}
		pids    = map[string]string{}
	)
	deliver := func(r Received) {
		mu.Lock()
		defer mu.Unlock()
		highest[r.Path] = max(highest[r.Path], r.Message.Seq)
		srcs[r.Path] = r.From.String()
		pids[r.Path] = string(r.Message.Payload)
	}
	seqOn := func(path string) uint64 {
		mu.Lock()
		defer mu.Unlock()
		return highest[path]
	}
	var lanA, backA *Endpoint
	err = lab.Do("hba", func() error {
		var err error
		guard := NewReplayGuard()
		lanA, err = Listen(t.Context(), EndpointConfig{Path: "lan", Listen: nsLanA, Peers: map[string]netip.AddrPort{"b": nsLanB}, Codec: codec, Guard: guard, Deliver: deliver})
		if err != nil {
			return err
		}
		backA, err = Listen(t.Context(), EndpointConfig{Path: "backnet", Listen: nsBackA, Peers: map[string]netip.AddrPort{"b": nsBackB}, Codec: codec, Guard: guard, Deliver: deliver})
		return err
	})
	if lanA != nil {
		t.Cleanup(func() { lanA.Close() })
	}
	if backA != nil {
		t.Cleanup(func() { backA.Close() })
	}
	if err != nil {
		t.Fatalf("bind node a inside %s: %v", nsA, err)
	}
	sender, err := NewSender(SenderConfig{Node: "a", Interval: interval, Endpoints: []*Endpoint{lanA, backA}})
	if err != nil {
		t.Fatal(err)
	}
	go sender.Run(t.Context())

	// Both directions, both paths.
	waitFor(t, "a to hear b on lan and backnet", func() bool { return seqOn("lan") > 0 && seqOn("backnet") > 0 })
	mu.Lock()
	if srcs["lan"] != nsLanB.String() || srcs["backnet"] != nsBackB.String() {
		t.Errorf("b's heartbeats came from %v", srcs)
	}
	if pids["lan"] == "" || pids["lan"] == fmt.Sprintf(`{"pid":%d}`, os.Getpid()) {
		t.Errorf("b's payload %q should name the helper process, not this one", pids["lan"])
	}
	mu.Unlock()
	heard := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for !heard["lan"] || !heard["backnet"] {
		select {
		case ev := <-bSaw:
			if ev.From != "a" {
				t.Fatalf("b accepted a heartbeat from %q", ev.From)
			}
			heard[ev.Path] = true
		case <-deadline:
			t.Fatalf("b did not hear a on both paths, heard %v", heard)
		}
	}

	// Cut backnet at b. b sends one seq per round on both paths, so once lan
	// is several rounds past the cut, backnet must have stopped: anything
	// newer than two rounds past the lan seq at the cut was sent after it.
	lab.SetLink("hbb", "bkb", false)
	atCut := seqOn("lan")
	waitFor(t, "lan to go on while backnet is cut", func() bool { return seqOn("lan") >= atCut+5 })
	if got := seqOn("backnet"); got > atCut+2 {
		t.Fatalf("backnet delivered seq %d with its link down (lan was at %d when cut)", got, atCut)
	}
	lab.SetLink("hbb", "bkb", true)
	resumed := seqOn("lan")
	waitFor(t, "backnet to recover", func() bool { return seqOn("backnet") > resumed })

	// An intruder on b's lan segment with the right key claims to be b.
	ipCmd("-n", nsB, "addr", "add", "198.51.100.3/24", "dev", "lanb")
	var intruder *net.UDPConn
	if err := lab.Do("hbb", func() error {
		var err error
		intruder, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("198.51.100.3:7946")))
		return err
	}); err != nil {
		t.Fatalf("intruder socket: %v", err)
	}
	defer intruder.Close()
	fake := mustSeal(t, codec, Message{From: "b", Path: "lan", Incarnation: ^uint64(0), Seq: 1})
	if _, err := intruder.WriteToUDPAddrPort(fake, nsLanA); err != nil {
		t.Fatal(err)
	}
	if _, err := intruder.WriteToUDPAddrPort([]byte("not a heartbeat"), nsLanA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "intruder datagrams to be rejected", func() bool {
		s := lanA.Stats().Rejected
		return s["spoofed_source"] == 1 && s["malformed"] == 1
	})
	// The fake's huge incarnation must not have moved the replay state:
	// the real b is still accepted.
	after := lanA.Stats().Accepted
	waitFor(t, "b still accepted after the intruder", func() bool { return lanA.Stats().Accepted > after+1 })
	if s := lanA.Stats().Rejected; s["old_incarnation"] != 0 || s["bad_mac"] != 0 {
		t.Fatalf("lan rejections %v", s)
	}
}
