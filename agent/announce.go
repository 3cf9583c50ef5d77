package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/policy"
)

// announceCopies is how many heartbeats the announcement sends per path
// (a few ms apart): one lost datagram must not cost the peers a whole
// detection time.
const announceCopies = 3

// AnnounceConfig configures AnnounceReleased.
type AnnounceConfig struct {
	Policy *policy.Policy
	// PolicyPath locates a relative cluster(secret_file=...).
	PolicyPath string
	Node       string
	// StateDir holds the dead agent's incarnation and saved state.
	StateDir string
	Logger   *slog.Logger
	// Now is the clock (sequence numbers and send times); nil: time.Now.
	Now func() time.Time
}

// AnnounceReleased tells every peer, on every UDP heartbeat path, that this
// node holds nothing and is leaving, as the agent's last heartbeats do in a
// planned handover: the peers take the node's groups over at once instead
// of after the detection time. The supervisor calls it after the agent died
// and the release completed; it must never be called while an agent runs
// or before everything is released.
//
// The heartbeats are authenticated with the cluster secret and carry the
// dead agent's incarnation (the incarnation file in the state directory)
// and a sequence number from the clock in nanoseconds: far above any the
// agent's counter reached (it counts rounds from 1), so the peers' replay
// guard accepts them as the newest of that incarnation.
func AnnounceReleased(ctx context.Context, cfg AnnounceConfig) error {
	p := cfg.Policy
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(p.Nodes) < 2 {
		return nil
	}
	self := p.Node(cfg.Node)
	if self == nil {
		return fmt.Errorf("announce: node %q is not in the policy", cfg.Node)
	}
	incarnation, err := readIncarnation(filepath.Join(cfg.StateDir, "incarnation"))
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	payload, err := releasedReport(p, cfg.Node, cfg.StateDir, incarnation, cfg.Now())
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	secretFile := p.Cluster.SecretFile
	if secretFile != "" && !filepath.IsAbs(secretFile) {
		secretFile = filepath.Join(filepath.Dir(cfg.PolicyPath), secretFile)
	}
	secret, err := heartbeat.LoadSecret(secretFile)
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	codec, err := heartbeat.NewCodec(p.Cluster.Name, secret)
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	// Peers accept heartbeats only from a node's address and port on each
	// path: the announcement is sent from the agent's own (free now).
	var eps []*heartbeat.Endpoint
	var errs []error
	defer func() {
		for _, ep := range eps {
			_ = ep.Close()
		}
	}()
	for _, h := range p.Paths {
		if h.Kind == "disk" {
			continue // the shared-disk slot simply stops beating
		}
		peers := map[string]netip.AddrPort{}
		for _, n := range p.Nodes {
			if n.Name != self.Name {
				peers[n.Name] = netip.AddrPortFrom(n.AddressOn(h.Name), uint16(h.Port))
			}
		}
		ep, err := heartbeat.Listen(ctx, heartbeat.EndpointConfig{Path: h.Name, Listen: netip.AddrPortFrom(self.AddressOn(h.Name), uint16(h.Port)),
			Peers: peers, Codec: codec, Self: self.Name, Now: cfg.Now, Logger: cfg.Logger, Deliver: func(heartbeat.Received) {}})
		if err != nil {
			errs = append(errs, fmt.Errorf("path %s: %w", h.Name, err))
			continue
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return fmt.Errorf("announce: no path to send on: %w", errors.Join(errs...))
	}
	seq := uint64(cfg.Now().UnixNano())
	sent := 0
	for i := range announceCopies {
		if i > 0 {
			time.Sleep(2 * time.Millisecond)
		}
		m := heartbeat.Message{From: self.Name, Incarnation: incarnation, Seq: seq + uint64(i), SentUnixNano: cfg.Now().UnixNano(), Payload: payload}
		for _, ep := range eps {
			m.Path = ep.Path()
			if err := ep.Broadcast(ctx, m); err != nil {
				if i == 0 {
					errs = append(errs, err)
				}
				continue
			}
			sent++
		}
	}
	if sent == 0 {
		return fmt.Errorf("announce: nothing sent: %w", errors.Join(errs...))
	}
	cfg.Logger.Info("announced to the peers that this node released everything", "incarnation", incarnation, "seq", seq, "paths", len(eps), "errors", fmt.Sprint(errors.Join(errs...)))
	return nil
}

// readIncarnation reads the incarnation file NextIncarnation keeps.
func readIncarnation(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read incarnation: %w", err)
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("incarnation file %s: %w", path, err)
	}
	return n, nil
}

// releasedReport is the report of a node that holds nothing and is leaving.
// The gossiped bookkeeping (operator requests, recent failures, backups)
// comes from the saved state, so the peers lose none of it. Hears is left
// out (null): the supervisor does not know whom the agent heard, and a
// report without it counts as hearing every node (the quorum rule then
// never reads it as agreeing that a peer is dead).
func releasedReport(p *policy.Policy, node, stateDir string, incarnation uint64, now time.Time) ([]byte, error) {
	r := engine.Report{Node: node, Incarnation: incarnation, PolicyHash: p.Hash, Holds: []string{}, Standby: true}
	st, err := readSavedState(stateDir)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if st.Maintenance {
			return nil, errors.New("the node is in maintenance: nothing was released, nothing to announce")
		}
		r.Operator, r.BackupLast, r.BackupOK = st.Operator, st.BackupLast, st.BackupOK
		r.Failed = map[string]time.Time{}
		for g, t := range st.Failed {
			if p.Cluster.FailureTimeout == 0 || now.Sub(t) < p.Cluster.FailureTimeout {
				r.Failed[g] = t
			}
		}
	}
	return json.Marshal(r)
}
