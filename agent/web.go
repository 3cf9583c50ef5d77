package agent

import (
	"context"
	"errors"
)

// PolicyPath is the running policy's main file (the web console shows it
// and simulates against it).
func (a *Agent) PolicyPath() string { return a.cfg.PolicyPath }

// startWeb starts the web console when Config.WebListen is set. The
// console lives in package web, which imports this one, so the command
// passes its starter in Config.WebStart.
func (a *Agent) startWeb(ctx context.Context) (stop func(), err error) {
	if a.cfg.WebListen == "" {
		return func() {}, nil
	}
	if a.cfg.WebStart == nil {
		return nil, errors.New("web console: WebListen is set but no WebStart hook was given")
	}
	return a.cfg.WebStart(ctx, a.cfg.WebListen, a)
}
