package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/builtins/backup/peer"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/policy"
)

// This file wires the disaster-recovery copy of backups to peer nodes
// (params peer_copy, see backup.PeerCopy): the sending replicas of a run and
// the receiver every node runs while some job copies to it.

// ClusterSecret loads the policy's cluster secret (secret_file, relative to
// the policy file's directory).
func ClusterSecret(p *policy.Policy, policyPath string) ([]byte, error) {
	file := p.Cluster.SecretFile
	if file == "" {
		return nil, errors.New("cluster(secret_file=...) is required: peer copies are authenticated with it")
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(policyPath), file)
	}
	return heartbeat.LoadSecret(file)
}

// PeerCredentials derives the peer-copy TLS identity from the policy's
// cluster name and secret.
func PeerCredentials(p *policy.Policy, policyPath string) (*peer.Credentials, error) {
	secret, err := ClusterSecret(p, policyPath)
	if err != nil {
		return nil, err
	}
	return peer.NewCredentials(p.Cluster.Name, secret)
}

// PeerReplicas returns the replicas a run of b on node self copies to. A
// job that wants a peer copy but has no peer here (peer_copy names only
// self) gets a replica that always fails: its backups are stored but never
// counted safe, and the run raises the unsafe alert.
func PeerReplicas(p *policy.Policy, b *policy.Backup, self string, creds *peer.Credentials) ([]backup.Replica, error) {
	pc, err := backup.PeerCopyFromParams(b.Name, b.Params)
	if err != nil || !pc.Enabled() {
		return nil, err
	}
	var reps []backup.Replica
	for _, name := range pc.Nodes {
		if p.Node(name) == nil {
			return nil, fmt.Errorf("backup %s: peer_copy names node %q, which the policy does not declare (nodes: %s)",
				b.Name, name, strings.Join(p.NodeNames(), ", "))
		}
	}
	peers := pc.Peers(self, p.NodeNames())
	if len(peers) == 0 {
		return []backup.Replica{noPeer{job: b.Name, self: self}}, nil
	}
	if creds == nil {
		return nil, fmt.Errorf("backup %s: peer copies need the cluster secret, which is not loaded", b.Name)
	}
	for _, name := range peers {
		reps = append(reps, peerReplica(p, pc, name, self, creds))
	}
	return reps, nil
}

// PeerReplicasForRecord returns the replicas of the peer copies rec wants,
// so the copies of a backup can be verified from any node (`harules backup
// verify`). Copies received from another node want none.
func PeerReplicasForRecord(p *policy.Policy, policyPath string, b *policy.Backup, rec backup.Record) ([]backup.Replica, error) {
	pc, err := backup.PeerCopyFromParams(b.Name, b.Params)
	if err != nil {
		return nil, err
	}
	var creds *peer.Credentials
	var reps []backup.Replica
	for _, want := range rec.Want {
		name, ok := strings.CutPrefix(want, peer.ReplicaName(""))
		if !ok {
			continue
		}
		if want == noPeerName {
			reps = append(reps, noPeer{job: b.Name, self: rec.Node})
			continue
		}
		if p.Node(name) == nil {
			return nil, fmt.Errorf("backup %s/%s has a copy on node %q, which the policy no longer declares", b.Name, rec.ID, name)
		}
		if creds == nil {
			if creds, err = PeerCredentials(p, policyPath); err != nil {
				return nil, err
			}
		}
		reps = append(reps, peerReplica(p, pc, name, rec.Node, creds))
	}
	return reps, nil
}

func peerReplica(p *policy.Policy, pc backup.PeerCopy, node, self string, creds *peer.Credentials) *peer.Replica {
	addr := net.JoinHostPort(p.Node(node).Address.String(), strconv.Itoa(pc.Port))
	return peer.NewReplica(node, addr, self, node+":"+pc.Target, creds)
}

// noPeerName is not a valid node name, so it names no real peer.
var noPeerName = peer.ReplicaName("(none)")

// noPeer stands for a peer copy that cannot be made from this node.
type noPeer struct{ job, self string }

var _ backup.Replica = noPeer{}

func (n noPeer) Name() string { return noPeerName }
func (n noPeer) err() error {
	return fmt.Errorf("backup %s: peer_copy names no node other than %s, where the job ran: there is no peer to copy to", n.job, n.self)
}
func (n noPeer) Put(context.Context, backup.Record, func(string) (io.ReadCloser, error)) error {
	return n.err()
}
func (n noPeer) Verify(context.Context, string, string) error { return n.err() }
func (n noPeer) Delete(context.Context, string, string) error { return nil }

// peerReceiver receives the peer copies of other nodes' backups.
type peerReceiver struct {
	policy  atomic.Pointer[policy.Policy]
	mu      sync.Mutex
	servers []*peer.Server
}

// setPolicy makes a reloaded policy decide which jobs are received where
// (the listening ports stay those of the start). Nil-safe.
func (r *peerReceiver) setPolicy(p *policy.Policy) {
	if r != nil {
		r.policy.Store(p)
	}
}

func (r *peerReceiver) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.servers {
		s.Close()
	}
	r.servers = nil
}

// receiveTarget is where this node keeps the copies of job from its peers.
func receiveTarget(p *policy.Policy, job, self string) (string, error) {
	for _, b := range p.Backups {
		if b.Name != job {
			continue
		}
		pc, err := backup.PeerCopyFromParams(b.Name, b.Params)
		if err != nil {
			return "", err
		}
		if !pc.Includes(self) {
			return "", fmt.Errorf("node %s receives no peer copies of job %s (its peer_copy does not include this node)", self, job)
		}
		return pc.Target, nil
	}
	return "", fmt.Errorf("no backup job %q in the policy of %s", job, self)
}

// startBackupPeer loads the peer-copy credentials when some job copies to
// peers and starts a receiver on this node's address, on every peer_port
// of the jobs this node receives copies of. It returns the receiver to
// close (nil when none runs). Only a missing or unreadable cluster secret is
// an error; a port that cannot be bound is logged.
func (a *Agent) startBackupPeer() (*peerReceiver, error) {
	if a.real == nil {
		return nil, nil
	}
	ports := map[int]bool{}
	wanted := false
	for _, b := range a.policy.Backups {
		pc, err := backup.PeerCopyFromParams(b.Name, b.Params)
		if err != nil {
			return nil, err
		}
		if !pc.Enabled() {
			continue
		}
		wanted = true
		if pc.Includes(a.cfg.Node) && len(a.policy.Nodes) > 1 {
			ports[pc.Port] = true
		}
	}
	// A single node has no peer: its runs get the noPeer replica, which
	// needs no secret.
	if !wanted || len(a.policy.Nodes) < 2 {
		return nil, nil
	}
	creds, err := PeerCredentials(a.policy, a.cfg.PolicyPath)
	if err != nil {
		return nil, fmt.Errorf("backup peer copies: %w", err)
	}
	a.real.bk.mu.Lock()
	a.real.bk.peerCreds = creds
	a.real.bk.mu.Unlock()
	r := &peerReceiver{}
	r.policy.Store(a.policy)
	self := a.cfg.Node
	stores := func(ctx context.Context, job string) (*backup.Store, func(), error) {
		dir, err := receiveTarget(r.policy.Load(), job, self)
		if err != nil {
			return nil, nil, err
		}
		return a.real.acquire(ctx, dir)
	}
	addr := a.policy.Node(self).Address
	for port := range ports {
		listen := netip.AddrPortFrom(addr, uint16(port)).String()
		s, err := peer.Listen(listen, peer.ServerConfig{Credentials: creds, Stores: stores, Logger: a.log.With("component", "backup-peer")})
		if err != nil {
			// Failover matters more than copies: the agent runs on, and the
			// senders' runs stay unsafe (and alert) until this is fixed.
			a.log.Error("cannot receive backup peer copies; peers' backups will not be safe", "listen", listen, "error", err.Error())
			continue
		}
		a.log.Info("receiving backup peer copies", "listen", listen)
		r.servers = append(r.servers, s)
	}
	return r, nil
}

// peerReplicas returns the peer replicas of a run of b on this node.
func (e *Executor) peerReplicas(b *policy.Backup) ([]backup.Replica, error) {
	e.bk.mu.Lock()
	creds := e.bk.peerCreds
	e.bk.mu.Unlock()
	return PeerReplicas(e.Policy(), b, e.node, creds)
}
