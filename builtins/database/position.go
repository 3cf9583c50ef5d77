package database

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Position is how far a server's history has got: a PostgreSQL timeline
// and WAL position, or a MariaDB GTID position. Agents publish it in their
// heartbeat reports (engine.DBPosition has the same fields) so that a node
// about to become primary can tell whether it lacks what a peer has.
type Position struct {
	// Timeline and LSN ("0/5000100"): PostgreSQL.
	Timeline uint32 `json:"timeline,omitempty"`
	LSN      string `json:"lsn,omitempty"`
	// GTID is MariaDB's gtid_current_pos, e.g. "0-1-100,1-2-7".
	GTID string `json:"gtid,omitempty"`
}

// IsZero reports whether p says nothing.
func (p Position) IsZero() bool { return p == Position{} }

func (p Position) String() string {
	if p.GTID != "" || p.LSN == "" && p.Timeline == 0 {
		return "GTID position " + strconv.Quote(p.GTID)
	}
	return fmt.Sprintf("timeline %d LSN %s", p.Timeline, p.LSN)
}

// Positioner is a Resource that can tell its server's position.
type Positioner interface {
	Position(ctx context.Context) (Position, error)
}

var (
	_ Positioner = (*Postgres)(nil)
	_ Positioner = (*MySQL)(nil)
)

// ErrBehindPeer is returned by Start when this node's server lacks history
// a peer last reported for the same database: making it primary would lose
// (or fork away from) what the peer has.
var ErrBehindPeer = errors.New("behind a peer")

// behind reports whether local lacks history peer has. PostgreSQL: a lower
// timeline, or the same timeline and a lower LSN (a higher timeline is
// ahead whatever its LSN: it was promoted later). MariaDB: a lower sequence
// number in any replication domain the peer has. Positions of different
// engines, or ones that cannot be read, are not compared.
func behind(local, peer Position) bool {
	if peer.GTID != "" {
		if local.LSN != "" {
			return false
		}
		l, err1 := parseGTIDList(local.GTID)
		p, err2 := parseGTIDList(peer.GTID)
		if err1 != nil || err2 != nil {
			return false
		}
		have := map[uint32]uint64{}
		for _, g := range l {
			have[g.domain] = max(have[g.domain], g.seq)
		}
		for _, g := range p {
			if g.seq > have[g.domain] {
				return true
			}
		}
		return false
	}
	if peer.LSN == "" || local.GTID != "" {
		return false
	}
	pl, err := ParseLSN(peer.LSN)
	if err != nil {
		return false
	}
	ll, err := ParseLSN(local.LSN)
	if err != nil {
		ll = 0
	}
	if local.Timeline != peer.Timeline {
		return local.Timeline < peer.Timeline
	}
	return ll < pl
}

// checkPeers returns an ErrBehindPeer error naming the first peer (by
// name) whose last reported position local is behind, or nil. verb says
// what is refused ("promote", "start as primary"); engine and name prefix
// the message like the drivers' other errors.
func checkPeers(engine, name, verb string, local Position, peers map[string]Position) error {
	return refuseBehind(engine, name, verb, "local "+local.String(), func(peer Position) bool { return behind(local, peer) }, peers)
}

// refuseBehind is checkPeers with the local side given as a description
// and a test of whether it is behind a peer's position.
func refuseBehind(engine, name, verb, local string, isBehind func(Position) bool, peers map[string]Position) error {
	for _, node := range slices.Sorted(maps.Keys(peers)) {
		peer := peers[node]
		if !isBehind(peer) {
			continue
		}
		return fmt.Errorf("%s %s: refusing to %s: %w: %s is behind %s's last reported %s; "+
			"make this node a replica of the primary that has that history (harules database rejoin %s --primary ...) "+
			"or, if %s's data is lost for good and losing it is accepted, set force=true on the database(...) and reload",
			engine, name, verb, ErrBehindPeer, local, node, peer, name, node)
	}
	return nil
}

// ParseLSN parses a PostgreSQL LSN, "X/Y" in hexadecimal.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q: want X/Y", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return h<<32 | l, nil
}
