package agent

import (
	"context"

	"github.com/harules/harules/builtins/database"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// executeDatabase makes this node's server the writable primary (start) or
// stops it being one (stop). Stop runs on the old owner before start runs on
// the new one, so no write lands on two servers; a start that takes over
// from holders declared dead says so (a MySQL replica then does not wait
// for its dead source), and a start refuses a server behind a position a
// peer last reported (PeerPositions). The resource keeps no state, so it is
// built from the declaration on every call.
func (e *Executor) executeDatabase(ctx context.Context, r *policy.Resource, a engine.Action) error {
	info := database.StartInfo{Takeover: a.Takeover, From: a.From}
	if a.Op == engine.OpStart && e.PeerPositions != nil {
		info.Peers = map[string]database.Position{}
		for peer, pos := range e.PeerPositions(r.Name) {
			info.Peers[peer] = database.Position(pos)
		}
	}
	db, err := database.New(r.Name, r.Params, e.log)
	if err != nil {
		return err
	}
	if a.Op == engine.OpStart {
		return database.StartWith(ctx, db, info)
	}
	return db.Stop(ctx)
}

// monitorDatabase checks the server is reachable and the primary.
func (e *Executor) monitorDatabase(ctx context.Context, r *policy.Resource) error {
	db, err := database.New(r.Name, r.Params, e.log)
	if err != nil {
		return err
	}
	return db.Monitor(ctx)
}
