package statesvg

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/internal/clustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// TestStatusSVGFromARealCluster runs two real agents in network
// namespaces and draws node1's view with `harules status --svg`: both
// boxes, both heartbeat paths up with the RTT node1 measured, web inside
// node1's box; after node2's backnet link is cut, the backnet line is red.
func TestStatusSVGFromARealCluster(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 2})
	c.StartAll()
	c.WaitOwner("node1", clustertest.Group, "node1", 30*time.Second)
	c.WaitFor(30*time.Second, "node1 hears node2 on both paths with an RTT", func() bool {
		st, err := c.Status("node1")
		if err != nil || len(st.Nodes) != 2 || st.Nodes[1].State != "alive" {
			return false
		}
		rtts := 0
		for _, hs := range st.Heartbeats {
			rtts += len(hs.RTT)
		}
		return rtts == 2
	})
	harules := func(args ...string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out, errOut bytes.Buffer
		cmd := exec.CommandContext(ctx, c.Bin, append([]string{"status", "--control", c.ControlSocket("node1")}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("harules status %v: %v\n%s", args, err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	file := filepath.Join(t.TempDir(), "state.svg")
	out, _ := harules("--svg", file)
	if !strings.Contains(out, "NODE") || !strings.Contains(out, "node2") {
		t.Errorf("--svg FILE should still print the text status, got %q", out)
	}
	svg, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the picture was not written: %v", err)
	}
	root := parse(t, svg)
	if n := len(root.all("st-node")); n != 2 {
		t.Fatalf("%d node boxes for a two-node cluster", n)
	}
	if gs := nodeByName(t, root, "node1").all("st-group"); len(gs) != 1 || gs[0].attr("data-group") != clustertest.Group || !gs[0].hasClass("st-held") {
		t.Errorf("node1's box should hold %s alone: %+v", clustertest.Group, gs)
	}
	lines := root.all("st-path")
	if len(lines) != 2 {
		t.Fatalf("%d path lines, want lan and backnet", len(lines))
	}
	for _, l := range lines {
		if !l.hasClass("st-up") || l.attr("stroke") != colUp {
			t.Errorf("path %s is %q %s, want up and green", l.attr("data-path"), l.attr("class"), l.attr("stroke"))
		}
	}
	for _, lb := range root.all("st-path-label") {
		if txt := lb.text(); !strings.Contains(txt, "µs") && !strings.Contains(txt, " ms") {
			t.Errorf("label %q carries no measured RTT", txt)
		}
	}

	// The backnet of node2 goes down: node1's picture turns that line red.
	c.SetLink("node2", "eth1", false)
	c.WaitFor(30*time.Second, "node1 sees node2's backnet down", func() bool {
		st, err := c.Status("node1")
		if err != nil || len(st.Nodes) != 2 {
			return false
		}
		for _, p := range st.Nodes[1].Paths {
			if p.Name == "backnet" && !p.Up {
				return true
			}
		}
		return false
	})
	out, _ = harules("--svg", "-")
	root = parse(t, []byte(out)) // nothing but the picture on stdout
	states := map[string]string{}
	for _, l := range root.all("st-path") {
		states[l.attr("data-path")] = l.attr("class") + " " + l.attr("stroke")
	}
	if states["backnet"] != "st-path st-down "+colDown || states["lan"] != "st-path st-up "+colUp {
		t.Errorf("after cutting backnet: %v", states)
	}
	quiet, _ := harules("--svg", file, "--quiet")
	if quiet != "" {
		t.Errorf("--quiet printed %q", quiet)
	}
	if svg, err := os.ReadFile(file); err != nil || !bytes.Contains(svg, []byte("backnet: DOWN")) {
		t.Errorf("the picture rewritten with --quiet lacks the down path (%v)", err)
	}
}
