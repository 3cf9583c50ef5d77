package heartbeat

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Received is a heartbeat that passed every check.
type Received struct {
	Message Message
	Path    string         // the endpoint's path (equal to Message.Path)
	From    netip.AddrPort // UDP source address
	At      time.Time      // receiver's clock when the datagram was read
}

// Verifier applies every receive check of one path to a datagram: codec,
// path, known peer, source address, optional clock skew and replay. It
// holds no socket, so other transports and tests can use it directly. It
// is safe for concurrent use.
type Verifier struct {
	path    string
	codec   *Codec
	guard   *ReplayGuard
	maxSkew time.Duration
	peers   atomic.Pointer[map[string]netip.AddrPort]
}

// NewVerifier returns a verifier for path. peers maps node name to that
// node's address on this path; a zero port accepts any source port. guard
// may be shared between paths; nil creates a private one. maxSkew > 0
// rejects messages whose send time is further than that from the receive
// time (requires synchronised clocks; bounds replays after a restart).
func NewVerifier(path string, codec *Codec, guard *ReplayGuard, peers map[string]netip.AddrPort, maxSkew time.Duration) (*Verifier, error) {
	if err := checkName("path", path); err != nil {
		return nil, fmt.Errorf("heartbeat: verifier: %w", err)
	}
	if codec == nil {
		return nil, errors.New("heartbeat: verifier: nil codec")
	}
	if guard == nil {
		guard = NewReplayGuard()
	}
	v := &Verifier{path: path, codec: codec, guard: guard, maxSkew: maxSkew}
	if err := v.SetPeers(peers); err != nil {
		return nil, err
	}
	return v, nil
}

// SetPeers replaces the peer table (for clusters whose membership changes).
func (v *Verifier) SetPeers(peers map[string]netip.AddrPort) error {
	table := make(map[string]netip.AddrPort, len(peers))
	for name, addr := range peers {
		if err := checkName("peer", name); err != nil {
			return fmt.Errorf("heartbeat: path %s: %w", v.path, err)
		}
		if !addr.Addr().IsValid() {
			return fmt.Errorf("heartbeat: path %s: peer %s has no address", v.path, name)
		}
		table[name] = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	v.peers.Store(&table)
	return nil
}

// Peers returns a copy of the peer table.
func (v *Verifier) Peers() map[string]netip.AddrPort { return maps.Clone(*v.peers.Load()) }

// Path returns the verifier's path name.
func (v *Verifier) Path() string { return v.path }

// Guard returns the replay guard in use.
func (v *Verifier) Guard() *ReplayGuard { return v.guard }

// Verify checks one datagram that arrived from src at time at. Errors are
// *RejectError; the replay state changes only when Verify succeeds.
func (v *Verifier) Verify(data []byte, src netip.AddrPort, at time.Time) (Received, error) {
	m, err := v.codec.Open(data)
	if err != nil {
		return Received{}, err
	}
	if m.Path != v.path {
		return Received{}, reject(ReasonWrongPath, "message for path "+strconv.Quote(m.Path)+" arrived on "+strconv.Quote(v.path))
	}
	want, ok := (*v.peers.Load())[m.From]
	if !ok {
		return Received{}, reject(ReasonUnknownNode, "node "+strconv.Quote(m.From)+" is not a peer on path "+v.path)
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if src.Addr() != want.Addr() || (want.Port() != 0 && src.Port() != want.Port()) {
		return Received{}, reject(ReasonSpoofedSource, "node "+strconv.Quote(m.From)+" sent from "+src.String()+", expected "+want.String())
	}
	if v.maxSkew > 0 {
		skew := at.Sub(time.Unix(0, m.SentUnixNano))
		if skew > v.maxSkew || skew < -v.maxSkew {
			return Received{}, reject(ReasonStale, "sent "+skew.String()+" before receipt, limit "+v.maxSkew.String())
		}
	}
	if err := v.guard.Check(m.From, m.Path, m.Incarnation, m.Seq); err != nil {
		return Received{}, err
	}
	return Received{Message: m, Path: v.path, From: src, At: at}, nil
}
