// Package diskhb is a heartbeat path over a shared disk: every interval
// each node writes a new sequence number into its own heartbeat slot of the
// device's lease area (package disk) and reads all nodes' slots; a peer's
// slot changing is a heartbeat received. It needs no network at all.
//
// Per interval a node does one 4 KiB write and one read of n*4 KiB (n =
// number of nodes), both O_DIRECT|O_DSYNC: 2/interval I/O operations.
package diskhb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/harules/harules/builtins/disk"
)

// Config configures a disk heartbeat.
type Config struct {
	Area     *disk.Area // an open lease area (disk.OpenArea)
	Node     string
	Nodes    []string // all policy nodes; slots follow disk.SlotFor
	Interval time.Duration
	// Misses intervals without an advance mark a peer down in Peers.
	Misses      int
	Incarnation uint64
	// OnBeat is called for every observed advance of a peer's slot, e.g.
	// to feed engine.View.Heartbeat(peer, path, at, nil).
	OnBeat func(peer string, at time.Time)
	Now    func() time.Time
	Log    *slog.Logger
}

// PeerStatus is what the heartbeat knows about one peer.
type PeerStatus struct {
	Node     string
	Seq      uint64
	LastBeat time.Time // zero until the first advance
	Up       bool      // advanced within Misses*Interval
}

type peer struct {
	slot     disk.Slot
	seen     bool
	lastBeat time.Time
}

// Heartbeat writes this node's heartbeats and watches the peers'.
type Heartbeat struct {
	cfg   Config
	slot  int
	n     int
	seq   uint64
	mu    sync.Mutex
	peers map[int]*peer
	start time.Time
	names map[int]string
}

// New checks cfg and returns a heartbeat; call Run.
func New(cfg Config) (*Heartbeat, error) {
	if cfg.Area == nil {
		return nil, errors.New("diskhb: an open lease area is required")
	}
	if cfg.Interval <= 0 || cfg.Misses < 1 {
		return nil, fmt.Errorf("diskhb: interval %s and misses %d must be positive", cfg.Interval, cfg.Misses)
	}
	slot, err := disk.SlotFor(cfg.Node, cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("diskhb: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(time.Now().UnixNano())
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(cfg.Nodes)))
	names := map[int]string{}
	for i, n := range sorted {
		names[i+1] = n
	}
	return &Heartbeat{cfg: cfg, slot: slot, n: len(sorted), peers: map[int]*peer{}, names: names}, nil
}

// Run beats every interval until ctx ends. I/O errors are logged and
// retried next interval; peers simply stop advancing meanwhile.
func (h *Heartbeat) Run(ctx context.Context) {
	h.mu.Lock()
	h.start = h.cfg.Now()
	h.mu.Unlock()
	tick := time.NewTicker(h.cfg.Interval)
	defer tick.Stop()
	for {
		if err := h.Beat(ctx); err != nil && ctx.Err() == nil {
			h.cfg.Log.Warn("disk heartbeat I/O failed", "device", h.cfg.Area.Device, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Beat writes one heartbeat and reads the peers once, each bounded by the
// interval.
func (h *Heartbeat) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Interval)
	defer cancel()
	h.seq++
	werr := h.cfg.Area.WriteSlot(ctx, disk.RegionHeartbeat, disk.Slot{Index: h.slot, Node: h.cfg.Node,
		Incarnation: h.cfg.Incarnation, Seq: h.seq, WallTime: time.Now()})
	slots, err := h.cfg.Area.ReadSlots(ctx, disk.RegionHeartbeat, 1, h.n)
	if err != nil {
		return errors.Join(werr, err)
	}
	now := h.cfg.Now()
	var beats []string
	h.mu.Lock()
	for _, s := range slots {
		if s.Index == h.slot || s.Empty() {
			continue
		}
		if s.Node != h.names[s.Index] {
			h.cfg.Log.Warn("disk heartbeat slot names another node; node lists differ between nodes?", "slot", s.Index, "want", h.names[s.Index], "got", s.Node)
			continue
		}
		p := h.peers[s.Index]
		if p == nil {
			// The first value read may be years old: it is not a heartbeat.
			h.peers[s.Index] = &peer{slot: s, seen: true}
			continue
		}
		if s.Seq != p.slot.Seq || s.Incarnation != p.slot.Incarnation {
			p.slot, p.lastBeat = s, now
			beats = append(beats, s.Node)
		}
	}
	h.mu.Unlock()
	if h.cfg.OnBeat != nil {
		for _, b := range beats {
			h.cfg.OnBeat(b, now)
		}
	}
	return werr
}

// Peers returns every peer's state, sorted by name.
func (h *Heartbeat) Peers() []PeerStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	detect := time.Duration(h.cfg.Misses) * h.cfg.Interval
	var out []PeerStatus
	for i := 1; i <= h.n; i++ {
		if i == h.slot {
			continue
		}
		ps := PeerStatus{Node: h.names[i]}
		if p := h.peers[i]; p != nil {
			ps.Seq, ps.LastBeat = p.slot.Seq, p.lastBeat
			ps.Up = !p.lastBeat.IsZero() && now.Sub(p.lastBeat) < detect
		}
		out = append(out, ps)
	}
	return out
}

// IOPerSecond is the area's completed reads+writes per second since Run
// started (the area's counters include any other user of the same Area).
func (h *Heartbeat) IOPerSecond() float64 {
	h.mu.Lock()
	start := h.start
	h.mu.Unlock()
	el := h.cfg.Now().Sub(start).Seconds()
	if start.IsZero() || el <= 0 {
		return 0
	}
	st := h.cfg.Area.Stats()
	return float64(st.Reads+st.Writes) / el
}
