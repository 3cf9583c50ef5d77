package agent

import (
	"context"

	"github.com/harules/harules/builtins/database"
	"github.com/harules/harules/policy"
)

// executeDatabase makes this node's server the writable primary (start) or
// stops it being one (stop). Stop runs on the old owner before start runs on
// the new one, so no write lands on two servers. The resource keeps no
// state, so it is built from the declaration on every call.
func (e *Executor) executeDatabase(ctx context.Context, r *policy.Resource, start bool) error {
	db, err := database.New(r.Name, r.Params, e.log)
	if err != nil {
		return err
	}
	if start {
		return db.Start(ctx)
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
