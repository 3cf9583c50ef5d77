package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Resource is a database server this node can make primary or stop being
// primary on.
type Resource interface {
	// Start makes this node's server the writable primary.
	Start(ctx context.Context) error
	// Stop makes sure this node's server takes no more writes; a server that
	// is not primary is left as it is.
	Stop(ctx context.Context) error
	// Monitor returns an error unless the server is reachable and primary.
	Monitor(ctx context.Context) error
}

var (
	_ Resource = (*Postgres)(nil)
	_ Resource = (*MySQL)(nil)

	_ TakeoverStarter = (*MySQL)(nil)
	_ TakeoverStarter = (*Postgres)(nil)
)

// StartInfo says how the engine came to start a resource
// (engine.Action.Takeover and From).
type StartInfo struct {
	// Takeover: the start proceeds without the previous holders, which
	// were declared dead over every heartbeat path.
	Takeover bool
	// From names those peers.
	From []string
	// Peers are the positions other nodes last reported for this
	// database (node name -> position). Start refuses with ErrBehindPeer
	// when this node's server is behind one of them, unless force is set.
	Peers map[string]Position
}

// TakeoverStarter is a Resource whose Start uses StartInfo: the peers'
// positions, and whether this is a takeover from a dead holder (MySQL then
// does not wait for the dead source).
type TakeoverStarter interface {
	StartWith(ctx context.Context, info StartInfo) error
}

// StartWith starts r, passing info to resources that use it.
func StartWith(ctx context.Context, r Resource, info StartInfo) error {
	if s, ok := r.(TakeoverStarter); ok {
		return s.StartWith(ctx, info)
	}
	return r.Start(ctx)
}

// Engines a database resource names.
const (
	EnginePostgres = "postgres"
	EngineMySQL    = "mysql"
)

// ErrLagTooHigh is returned by Start when the standby (replica) has more
// WAL (binlog) received but not applied than max_lag_bytes allows.
var ErrLagTooHigh = errors.New("replay lag above max_lag_bytes")

// ErrNotPrimary is returned by Monitor when the server is not the primary.
var ErrNotPrimary = errors.New("server is not the primary")

// New builds the resource named name from a policy declaration's params
// (policy.Resource.Params); params["engine"] picks PostgreSQL or MySQL.
func New(name string, params map[string]string, log *slog.Logger) (Resource, error) {
	switch engine := params["engine"]; engine {
	case EnginePostgres, "":
		cfg, err := PostgresConfigFromParams(name, params)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log
		return NewPostgres(cfg)
	case EngineMySQL:
		cfg, err := MySQLConfigFromParams(name, params)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log
		return NewMySQL(cfg)
	default:
		return nil, fmt.Errorf("database %s: engine must be %q or %q, got %q", name, EnginePostgres, EngineMySQL, engine)
	}
}

// params reads typed values out of a declaration's string params, keeping
// the first error.
type params struct {
	name string
	m    map[string]string
	err  error
}

func (p *params) str(key, def string) string {
	if v, ok := p.m[key]; ok && v != "" {
		return v
	}
	return def
}

func (p *params) bool(key string) bool {
	v := p.m[key]
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("database %s: %s=%q is not a boolean", p.name, key, v)
	}
	return b
}

// int64 returns def when the key is absent.
func (p *params) int64(key string, def int64) int64 {
	v := p.m[key]
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("database %s: %s=%q is not an integer", p.name, key, v)
	}
	return n
}

func (p *params) duration(key string, def time.Duration) time.Duration {
	v := p.m[key]
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number means seconds.
		if n, nerr := strconv.ParseFloat(v, 64); nerr == nil {
			return time.Duration(n * float64(time.Second))
		}
		if p.err == nil {
			p.err = fmt.Errorf("database %s: %s=%q is not a duration", p.name, key, v)
		}
	}
	return d
}

func (p *params) oneOf(key, def string, allowed ...string) string {
	v := p.str(key, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	if p.err == nil {
		p.err = fmt.Errorf("database %s: %s must be one of %s, got %q", p.name, key, strings.Join(allowed, ", "), v)
	}
	return def
}
