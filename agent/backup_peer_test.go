package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/builtins/backup/peer"
	"github.com/harules/harules/rules"
)

func TestPeerReplicasFromPolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.star")
	text := `cluster(name = "c", secret_file = "secret")
node("n1", address = "198.51.100.1")
node("n2", address = "198.51.100.2")
node("n3", address = "198.51.100.3")
heartbeat("lan", interval = "100ms", misses = 5, port = 7001)
backup("all", schedule = "@daily", params = {"target": "/b", "source": "/s", "peer_copy": True, "peer_port": "7999"})
backup("to3", schedule = "@daily", params = {"target": "/b", "source": "/s", "peer_copy": "n3", "peer_target": "/dr"})
backup("ghost", schedule = "@daily", params = {"target": "/b", "source": "/s", "peer_copy": ["n2", "n9"]})
backup("none", schedule = "@daily", params = {"target": "/b", "source": "/s"})
`
	if err := os.WriteFile(pol, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := rules.Load(t.Context(), pol, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := PeerCredentials(p, pol)
	if err != nil {
		t.Fatal(err)
	}
	job := func(name string) int {
		for i, b := range p.Backups {
			if b.Name == name {
				return i
			}
		}
		t.Fatalf("no job %s", name)
		return -1
	}
	names := func(reps []backup.Replica) string {
		var out []string
		for _, r := range reps {
			loc := ""
			if l, ok := r.(backup.Locator); ok {
				loc = "@" + l.Location()
			}
			out = append(out, r.Name()+loc)
		}
		return strings.Join(out, " ")
	}
	reps, err := PeerReplicas(p, p.Backups[job("all")], "n1", creds)
	if err != nil || names(reps) != "peer:n2@n2:/b peer:n3@n3:/b" {
		t.Fatalf("peer_copy=True on n1: %s, %v", names(reps), err)
	}
	if reps, err := PeerReplicas(p, p.Backups[job("to3")], "n1", creds); err != nil || names(reps) != "peer:n3@n3:/dr" {
		t.Fatalf("peer_copy=n3 on n1: %s, %v", names(reps), err)
	}
	// On n3 itself there is no peer: the run's copy must fail, not vanish.
	reps, err = PeerReplicas(p, p.Backups[job("to3")], "n3", creds)
	if err != nil || len(reps) != 1 {
		t.Fatalf("peer_copy=n3 on n3: %s, %v", names(reps), err)
	}
	if err := reps[0].Put(context.Background(), backup.Record{}, nil); err == nil || !strings.Contains(err.Error(), "no peer") {
		t.Fatalf("copy without a peer: %v", err)
	}
	if _, err := PeerReplicas(p, p.Backups[job("ghost")], "n1", creds); err == nil || !strings.Contains(err.Error(), `"n9"`) {
		t.Fatalf("peer_copy naming an undeclared node: %v", err)
	}
	if reps, err := PeerReplicas(p, p.Backups[job("none")], "n1", creds); err != nil || len(reps) != 0 {
		t.Fatalf("job without peer copy: %s, %v", names(reps), err)
	}
	// verify on any node finds the copies a record wants, from the record's node.
	rec := backup.Record{ID: "x", Node: "n2", Want: []string{"copy", peer.ReplicaName("n3")}}
	if reps, err := PeerReplicasForRecord(p, pol, p.Backups[job("all")], rec); err != nil || names(reps) != "peer:n3@n3:/b" {
		t.Fatalf("replicas for a record: %s, %v", names(reps), err)
	}
	// Which store a node receives a job's copies into.
	if dir, err := receiveTarget(p, "to3", "n3"); err != nil || dir != "/dr" {
		t.Fatalf("n3 receives to3 into %q, %v", dir, err)
	}
	for _, c := range [][2]string{{"to3", "n2"}, {"none", "n2"}, {"nosuchjob", "n2"}} {
		if _, err := receiveTarget(p, c[0], c[1]); err == nil {
			t.Errorf("%s receives copies of %s", c[1], c[0])
		}
	}
	if _, err := PeerCredentials(p, filepath.Join(t.TempDir(), "policy.star")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials without the secret file: %v", err)
	}
}
