package backup

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPeerCopyParams(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		p := map[string]string{"target": "/var/backups/h", "source": "/srv"}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	all, err := PeerCopyFromParams("j", base(map[string]string{"peer_copy": "true"}))
	if err != nil || !all.All || all.Port != DefaultPeerPort || all.Target != "/var/backups/h" {
		t.Fatalf("peer_copy=True: %+v, %v", all, err)
	}
	if got := all.Peers("node1", []string{"node1", "node2", "node3"}); !slices.Equal(got, []string{"node2", "node3"}) {
		t.Fatalf("peers of node1 with peer_copy=True: %v", got)
	}
	// A list from the policy arrives NUL-joined.
	some, err := PeerCopyFromParams("j", base(map[string]string{"peer_copy": "node2\x00node3", "peer_port": "7999", "peer_target": "/srv/dr"}))
	if err != nil || some.All || !slices.Equal(some.Nodes, []string{"node2", "node3"}) || some.Port != 7999 || some.Target != "/srv/dr" {
		t.Fatalf("peer_copy list: %+v, %v", some, err)
	}
	if got := some.Peers("node3", []string{"node1", "node2", "node3"}); !slices.Equal(got, []string{"node2"}) {
		t.Fatalf("peers of node3: %v", got)
	}
	if !some.Includes("node2") || some.Includes("node1") {
		t.Fatal("Includes is wrong")
	}
	if off, err := PeerCopyFromParams("j", base(map[string]string{"peer_copy": "false"})); err != nil || off.Enabled() {
		t.Fatalf("peer_copy=False: %+v, %v", off, err)
	}
	for params, want := range map[string]string{
		"peer_copy=node/2":         "not a node name",
		"peer_port=0":              "TCP port",
		"peer_port=http":           "TCP port",
		"peer_target=relative":     "absolute",
		"peer_port=7000 (no copy)": "need peer_copy",
	} {
		kv := strings.Fields(params)[0]
		k, v, _ := strings.Cut(kv, "=")
		extra := map[string]string{k: v}
		if k != "peer_copy" && !strings.Contains(params, "no copy") {
			extra["peer_copy"] = "true"
		}
		_, _, _, err := JobFromParams("j", "files", base(extra), time.UTC)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: JobFromParams error %v, want %q", params, err, want)
		}
	}
}
