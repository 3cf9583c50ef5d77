package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/internal/clustertest"
	"github.com/harules/harules/internal/netnstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// TestRunWithWebConsole runs a real two-node cluster in network namespaces;
// node1's `harules run --web-listen` serves the console on its lan address.
// From the client namespace the test reads status and metrics and moves the
// group to node2 through the API, and the real agents carry the move out.
func TestRunWithWebConsole(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 2})
	tokens := filepath.Join(c.Dir, "web-tokens")
	if err := os.WriteFile(tokens, []byte("operator:"+operatorToken+"\nread:"+readToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.StateDir("node1"), 0o700); err != nil {
		t.Fatal(err)
	}
	listen := net.JoinHostPort(clustertest.LanAddr(1), "9443")
	c.StartDaemon("node1", "node1-agent", nil, c.Bin, "run", "--policy", c.PolicyPath, "--node", "node1",
		"--state-dir", c.StateDir("node1"), "--control", c.ControlSocket("node1"),
		"--web-listen", listen, "--web-tokens", tokens, "--web-metrics-public")
	c.WaitFor(30*time.Second, "node1's agent answers", func() bool { _, err := c.Status("node1"); return err == nil })
	c.Start("node2")

	// An HTTP client whose connections are opened in the client namespace.
	clientNS := c.NS("client")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netnstest.DoIn(clientNS, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}}}
	b := &browser{t: t, base: "http://" + listen, c: hc}
	// status tolerates a console that is not listening yet.
	status := func() *agent.Status {
		req, _ := http.NewRequest("GET", b.base+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := hc.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var st agent.Status
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
			return nil
		}
		return &st
	}
	owner := func() string {
		st := status()
		if st == nil || len(st.Groups) != 1 {
			return ""
		}
		return strings.Join(st.Groups[0].Holders, ",")
	}
	c.WaitFor(30*time.Second, "node1 holds web, seen through the console", func() bool { return owner() == "node1" })
	c.WaitFor(30*time.Second, "node1 sees node2 alive", func() bool {
		st := status()
		return st != nil && len(st.Nodes) == 2 && st.Nodes[1].State == "alive"
	})
	checkRTTMeasured(t, b, "", "node2", "lan")

	if resp, _ := b.call("GET", "/api/v1/status", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status without a token from the client: want 401, got %s", resp.Status)
	}
	got := scrape(t, b, "")
	for k, v := range map[string]float64{
		"harules_node_up{node=node2}":                  1,
		"harules_path_up{path=lan,peer=node2}":         1,
		"harules_path_up{path=backnet,peer=node2}":     1,
		"harules_group_owner{group=web,node=node1}":    1,
		"harules_group_owner{group=web,node=node2}":    0,
		"harules_group_owner_changes_total{group=web}": 0,
	} {
		if got[k] != v {
			t.Errorf("before the move: %s = %v, want %v", k, got[k], v)
		}
	}

	start := time.Now()
	if resp, body := b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"web","node":"node2"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("move: %s %s", resp.Status, body)
	}
	c.WaitOwner("node2", clustertest.Group, "node2", 30*time.Second)
	c.WaitFor(30*time.Second, "node1's console shows node2 holding web", func() bool { return owner() == "node2" })
	t.Logf("API move -> console shows node2 holding web: %v", time.Since(start).Round(time.Millisecond))
	got = scrape(t, b, "")
	if got["harules_group_owner{group=web,node=node2}"] != 1 || got["harules_group_owner_changes_total{group=web}"] != 1 {
		t.Errorf("after the move: owner{node2}=%v changes=%v", got["harules_group_owner{group=web,node=node2}"], got["harules_group_owner_changes_total{group=web}"])
	}
	resp, body := b.call("GET", "/api/v1/records?kind=event&group=web", readToken, "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "operator: move web to node2") {
		t.Errorf("records: %s %s", resp.Status, body)
	}
}
