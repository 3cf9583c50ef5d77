package backup

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPeerPort is the TCP port a node receives peer copies on when the
// job's params do not set peer_port.
const DefaultPeerPort = 7470

// PeerCopy is the disaster-recovery copy of a job's backups to other nodes
// of the cluster (package builtins/backup/peer moves them):
//
//	params = {"peer_copy": True,            # every other node of the cluster
//	          "peer_copy": "node2,node3",   # or these nodes (the node running the job is skipped)
//	          "peer_port": "7470",          # where the peers listen (default DefaultPeerPort)
//	          "peer_target": "/srv/dr"}     # the store on the peer (default: the job's target)
//
// A backup with a peer copy is safe only when the copy on every peer
// verified.
type PeerCopy struct {
	// All means every other node; otherwise Nodes lists the peers.
	All   bool
	Nodes []string
	Port  int
	// Target is the store directory on the receiving node.
	Target string
}

// Enabled reports whether the job copies its backups to peers.
func (p PeerCopy) Enabled() bool { return p.All || len(p.Nodes) > 0 }

// Peers returns the nodes (of all, the cluster's nodes) that receive the
// copies of a backup made on self.
func (p PeerCopy) Peers(self string, all []string) []string {
	var out []string
	for _, n := range all {
		if n != self && (p.All || containsString(p.Nodes, n)) {
			out = append(out, n)
		}
	}
	return out
}

// Includes reports whether node receives this job's copies from some other node.
func (p PeerCopy) Includes(node string) bool { return p.All || containsString(p.Nodes, node) }

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

var nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// PeerCopyFromParams reads the peer_* params of a backup(...) declaration;
// JobFromParams calls it, so `harules check` rejects bad values. Whether the
// named nodes exist is checked where the whole policy is known (the agent).
func PeerCopyFromParams(name string, p map[string]string) (PeerCopy, error) {
	pc := PeerCopy{Port: DefaultPeerPort, Target: p["target"]}
	switch v := strings.TrimSpace(p["peer_copy"]); strings.ToLower(v) {
	case "", "false", "no", "none":
	case "true", "yes":
		pc.All = true
	default:
		for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == 0 }) {
			if !nodeNamePattern.MatchString(n) {
				return pc, fmt.Errorf("backup %s: peer_copy=%q: %q is not a node name (want True or node names, e.g. \"node2\" or [\"node2\", \"node3\"])", name, v, n)
			}
			pc.Nodes = append(pc.Nodes, n)
		}
	}
	if s := p["peer_port"]; s != "" {
		port, err := strconv.Atoi(s)
		if err != nil || port < 1 || port > 65535 {
			return pc, fmt.Errorf("backup %s: peer_port=%q must be a TCP port from 1 to 65535", name, s)
		}
		pc.Port = port
	}
	if s := p["peer_target"]; s != "" {
		if !strings.HasPrefix(s, "/") {
			return pc, fmt.Errorf("backup %s: peer_target=%q must be an absolute directory", name, s)
		}
		pc.Target = s
	}
	if !pc.Enabled() && (p["peer_port"] != "" || p["peer_target"] != "") {
		return pc, fmt.Errorf("backup %s: peer_port and peer_target need peer_copy (True or node names)", name)
	}
	return pc, nil
}
