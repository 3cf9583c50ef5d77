package e2ebackup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/internal/clustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBuild()
	os.Exit(code)
}

// writeTree writes a few MiB of text and random files under dir.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 40 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%4))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for b.Len() < 64<<10+i*4096 {
			if i%3 == 0 {
				b.WriteByte(byte(rng.Uint32()))
			} else {
				fmt.Fprintf(&b, "record %d of file %d: %x\n", b.Len(), i, rng.Uint64())
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// verifyResult is the part of `harules backup verify --json` the test reads.
type verifyResult struct {
	ID      string `json:"id"`
	OK      bool   `json:"ok"`
	Corrupt bool   `json:"corrupt"`
	Error   string `json:"error"`
	Record  struct {
		Safe   bool          `json:"safe"`
		Copies []backup.Copy `json:"copies"`
	} `json:"record"`
}

// harules runs the CLI in node's namespace (it must reach the peer's
// address) and returns its output and exit code.
func harules(t *testing.T, c *clustertest.Cluster, node string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := c.Lab.CommandContext(ctx, node, append([]string{c.Bin}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("harules %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), code
}

func readHistory(t *testing.T, store, job string) []backup.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, job, "history.json"))
	if err != nil {
		t.Fatalf("history of %s in %s: %v", job, store, err)
	}
	var hist []backup.Record
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	return hist
}

// TestPeerCopyAcrossNodes: a files backup run on node1 is copied to node2
// over the cluster channel and verified on arrival; the record counts it
// safe; after the copy is corrupted on node2's disk, `harules backup
// verify` on node1 reports the copy bad and exits 1.
func TestPeerCopyAcrossNodes(t *testing.T) {
	base, err := os.MkdirTemp("", "hrb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	src, local, remote := filepath.Join(base, "src"), filepath.Join(base, "store-node1"), filepath.Join(base, "copies-node2")
	writeTree(t, src)
	// The nodes share this machine's filesystem, so the peer's store gets
	// its own directory (peer_target); on real nodes the default (the same
	// path as target) is the natural choice.
	extra := fmt.Sprintf(`backup("files", schedule = "0 3 1 1 *", kind = "files", catch_up = False,
    params = {"target": %q, "source": %q, "peer_copy": True, "peer_target": %q, "peer_port": "7471", "headroom_percent": "0"})`, local, src, remote)
	c := clustertest.New(t, clustertest.Options{Policy: clustertest.PolicyOptions{Extra: extra}})
	c.StartAll()

	out, code := harules(t, c, "node1", "backup", "run", "files", "--wait", "--json", "--control", c.ControlSocket("node1"))
	if code != 0 || !strings.Contains(out, `"outcome": "ok"`) {
		t.Fatalf("backup run on node1: exit %d\n%s", code, out)
	}
	hist := readHistory(t, local, "files")
	rec := hist[len(hist)-1]
	if !rec.Good() || !rec.Safe() || rec.Node != "node1" || len(rec.Copies) != 1 {
		t.Fatalf("node1's record: %+v", rec)
	}
	if cp := rec.Copies[0]; cp.Replica != "peer:node2" || !cp.Verified || cp.Location != "node2:"+remote {
		t.Fatalf("node1's record of the copy: %+v", cp)
	}
	// The copy is on node2: a complete backup its own store verifies, put
	// there by node2's agent.
	copied := readHistory(t, remote, "files")
	if got := copied[len(copied)-1]; got.ID != rec.ID || !got.Good() || got.SHA256 != rec.SHA256 {
		t.Fatalf("node2's record of the copy: %+v, want %s sha %s", got, rec.ID, rec.SHA256)
	}
	if log := c.Log("node2"); !strings.Contains(log, "peer copy: stored and verified") {
		t.Fatalf("node2's agent did not log receiving the copy:\n%s", log)
	}
	out, code = harules(t, c, "node1", "backup", "verify", "files", "latest", "--policy", c.PolicyPath, "--json")
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK || !res.Record.Safe {
		t.Fatalf("verify on node1 with an intact copy: exit %d, %v\n%s", code, err, out)
	}

	// Damage the copy on node2's disk: one byte in the middle of the archive.
	path := filepath.Join(remote, "files", rec.ID, rec.DataFile())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	out, code = harules(t, c, "node1", "backup", "verify", "files", rec.ID, "--policy", c.PolicyPath, "--json")
	res = verifyResult{}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &res); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	if code != 1 || res.OK || !res.Corrupt || res.Record.Safe || len(res.Record.Copies) != 1 ||
		res.Record.Copies[0].Verified || !strings.Contains(res.Record.Copies[0].Error, "node2") {
		t.Fatalf("verify on node1 with a corrupted copy on node2: exit %d, %+v\n%s", code, res, out)
	}
	// The catalogue on node1 now says the backup is not safe.
	if after := readHistory(t, local, "files"); after[len(after)-1].Safe() {
		t.Fatalf("node1's record after the failed verify still counts safe: %+v", after[len(after)-1])
	}
	t.Logf("verify with the corrupted copy reported: %s", res.Record.Copies[0].Error)

	// A new run copies again; the old copy stays reported bad until re-verified.
	out, code = harules(t, c, "node1", "backup", "run", "files", "--wait", "--json", "--control", c.ControlSocket("node1"))
	if code != 0 {
		t.Fatalf("second backup run: exit %d\n%s", code, out)
	}
	if latest := readHistory(t, local, "files"); !latest[len(latest)-1].Safe() || latest[len(latest)-1].ID == rec.ID {
		t.Fatalf("second run's record: %+v", latest[len(latest)-1])
	}
}
