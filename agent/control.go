package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/internal/version"
	"github.com/harules/harules/notify"
)

// Status is what `harules status` shows: this node's view of the cluster.
type Status struct {
	Node       string `json:"node"`
	Cluster    string `json:"cluster"`
	PolicyHash string `json:"policy_hash"`
	// Version is the agent's build (internal/version), as harules version
	// prints it first.
	Version     string          `json:"version"`
	Incarnation uint64          `json:"incarnation"`
	Now         time.Time       `json:"now"`
	Maintenance bool            `json:"maintenance"`
	Nodes       []NodeStatus    `json:"nodes"`
	Groups      []GroupStatus   `json:"groups"`
	Alerts      []engine.Alert  `json:"alerts"`
	Plan        engine.Plan     `json:"plan"`
	Recent      []engine.Record `json:"recent"`
	// Backups are the backup jobs run on this node since the agent started.
	Backups []BackupState `json:"backups,omitempty"`
	// Heartbeats are the counters of this node's heartbeat endpoints, read
	// when the status is requested.
	Heartbeats []HeartbeatStats `json:"heartbeats"`
	// Notifications count each notify() notifier's deliveries.
	Notifications []notify.Stats `json:"notifications,omitempty"`
}

// NodeStatus is one node as this node sees it.
type NodeStatus struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Since   time.Time `json:"since"`
	Standby bool      `json:"standby"`
	// Maintenance: the node decides but acts on nothing, and its groups
	// are not taken over while it is unreachable.
	Maintenance bool     `json:"maintenance,omitempty"`
	Holds       []string `json:"holds"`
	// Starting lists the groups whose start is still running on the node.
	Starting   []string     `json:"starting,omitempty"`
	PolicyHash string       `json:"policy_hash,omitempty"`
	Paths      []PathStatus `json:"paths,omitempty"`
}

// PathStatus is one heartbeat path to a peer.
type PathStatus struct {
	Name     string    `json:"name"`
	Up       bool      `json:"up"`
	Missed   int       `json:"missed"`
	LastSeen time.Time `json:"last_seen"`
	// Loss is the share of heartbeats lost over the last minute (0..1).
	Loss float64 `json:"loss"`
}

// GroupStatus is one group: where it should run and who holds it.
type GroupStatus struct {
	Name    string   `json:"name"`
	Target  string   `json:"target"`
	Reason  string   `json:"reason"`
	Holders []string `json:"holders"`
	// Starting lists the nodes whose start of the group is still running:
	// they count as holding it for safety (no other node starts it) but
	// are not in Holders until the start finished.
	Starting []string `json:"starting,omitempty"`
	Wait     string   `json:"wait,omitempty"`
}

// settled returns holds without the entries still starting.
func settled(holds, starting []string) []string {
	if len(starting) == 0 {
		return holds
	}
	out := []string{}
	for _, h := range holds {
		if !slices.Contains(starting, h) {
			out = append(out, h)
		}
	}
	return out
}

func (a *Agent) publishStatus(now time.Time, d *engine.Decision) {
	f := a.node.View.Facts(now, a.node.State)
	st := &Status{Node: a.cfg.Node, Cluster: a.policy.Cluster.Name, PolicyHash: a.policy.Hash, Version: version.Get().Version,
		Incarnation: a.node.State.Incarnation, Now: now, Maintenance: a.node.State.Maintenance,
		Alerts: d.Alerts, Plan: d.Plan, Recent: a.records.snapshot()}
	for _, n := range f.Nodes {
		ns := NodeStatus{Name: n.Name, State: n.State, Since: n.Since, Standby: n.Standby, Maintenance: n.Maintenance, Holds: settled(n.Holds, n.Starting),
			Starting: n.Starting, PolicyHash: n.PolicyHash}
		for _, p := range n.Paths {
			ps := PathStatus{Name: p.Name, Up: p.Up, Missed: p.Missed, LastSeen: p.LastSeen}
			if m := a.loss[n.Name+"/"+p.Name]; m != nil {
				ps.Loss = m.loss(now)
			}
			ns.Paths = append(ns.Paths, ps)
		}
		st.Nodes = append(st.Nodes, ns)
	}
	var retryWaits map[string]string // starts refused for now by the executor
	if w, ok := a.exec.(RetryWaiter); ok {
		retryWaits = w.StartWaits(now)
	}
	for i, gp := range d.Placement {
		gs := GroupStatus{Name: gp.Group, Target: gp.Node, Reason: gp.Reason, Holders: settled(f.Groups[i].Holders, f.Groups[i].Starting),
			Starting: f.Groups[i].Starting}
		for _, act := range d.Plan {
			if act.Group == gp.Group && act.Wait != "" {
				gs.Wait = act.Wait
			}
			if act.Group == gp.Group && act.Node == a.cfg.Node && act.Op == engine.OpStart && act.Ready && gs.Wait == "" {
				gs.Wait = retryWaits[gp.Group]
			}
		}
		st.Groups = append(st.Groups, gs)
	}
	if c, ok := a.exec.(interface{ ClearBackupAlerts(map[string]time.Time) }); ok {
		c.ClearBackupAlerts(a.node.State.BackupOK)
	}
	if br, ok := a.exec.(BackupReporter); ok {
		st.Backups = br.BackupStates()
		st.Alerts = append(st.Alerts, br.BackupAlerts()...)
	}
	if st.Alerts == nil {
		st.Alerts = []engine.Alert{}
	}
	st.Notifications = a.notifyStats()
	a.status.Store(st)
	a.statusSignal.notify()
}

// Status returns the latest status (nil before the first decision).
func (a *Agent) Status() *Status { return a.status.Load() }

// StatusChanged returns a channel closed at the next status the agent
// publishes, so the console updates its pages at once instead of polling.
func (a *Agent) StatusChanged() <-chan struct{} { return a.statusSignal.wait() }

// signal wakes every waiter at once: each wait gets the channel the next
// notify closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

type controlRequest struct {
	op    string // move, standby, online, maintenance, cleanup, backup
	job   string // backup
	group string
	node  string
	on    bool
	reply chan error
}

func (a *Agent) handleControl(req controlRequest) error {
	now := a.now()
	switch req.op {
	case "move":
		return a.node.Move(now, req.group, req.node)
	case "standby":
		return a.node.SetStandby(now, req.node, true)
	case "online":
		return a.node.SetStandby(now, req.node, false)
	case "maintenance":
		a.node.State.Maintenance = req.on
		return nil
	case "cleanup":
		return a.node.Cleanup(now, req.group)
	case "backup":
		return a.backupNow(now, req.job)
	}
	return fmt.Errorf("unknown operation %q", req.op)
}

// Do sends an operator request to the loop and waits for it to be applied.
func (a *Agent) Do(ctx context.Context, op, group, node string, on bool) error {
	req := controlRequest{op: op, group: group, node: node, on: on, reply: make(chan error, 1)}
	select {
	case a.control <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type monitorResult struct {
	group, resource string
	err             error
}

// monitorHeld checks the resources of held groups off the loop goroutine;
// results come back through a.monitors.
func (a *Agent) monitorHeld(ctx context.Context) {
	if a.real == nil {
		return
	}
	a.observeDatabases(ctx) // for the heartbeat reports, held or not
	for _, g := range a.node.State.HeldGroups() {
		grp := a.policy.Group(g)
		if grp == nil || a.node.Busy(g) {
			continue // a start or stop in flight: monitored once it is done
		}
		for _, r := range grp.Resources {
			r := r
			go func() {
				mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				err := a.real.Monitor(mctx, g, r)
				if err != nil {
					select {
					case a.monitors <- monitorResult{group: g, resource: r.ID(), err: err}:
					default:
					}
				}
			}()
		}
	}
}

// serveControl answers the local control API on a unix socket that only
// root can reach (mode 0600 in a 0700 directory).
func (a *Agent) serveControl() (*http.Server, error) {
	path := a.cfg.ControlSocket
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket dir: %w", err)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		if st == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the agent has not decided yet; try again in a second"})
			return
		}
		fresh := *st
		fresh.Heartbeats = a.HeartbeatStats()
		writeJSON(w, http.StatusOK, &fresh)
	})
	mux.HandleFunc("POST /v1/backup", a.serveBackupRequest)
	mux.HandleFunc("POST /v1/{op}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Group string `json:"group"`
			Node  string `json:"node"`
			On    bool   `json:"on"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON body: " + err.Error()})
			return
		}
		op := r.PathValue("op")
		switch op {
		case "move", "standby", "online", "maintenance", "cleanup":
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown operation " + op})
			return
		}
		if err := a.Do(r.Context(), op, body.Group, body.Node, body.On); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
	})
	// IdleTimeout: a client that keeps connections open (a monitoring
	// loop) must not leave a goroutine in the agent for ever.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("control API stopped", "error", err)
		}
	}()
	return srv, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// recordLog keeps the last records for status.
type recordLog struct {
	mu   sync.Mutex
	max  int
	recs []engine.Record
}

func newRecordLog(max int) *recordLog { return &recordLog{max: max} }

func (l *recordLog) add(r engine.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	if len(l.recs) > l.max {
		l.recs = append(l.recs[:0:0], l.recs[len(l.recs)-l.max:]...)
	}
}

func (l *recordLog) snapshot() []engine.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]engine.Record, len(l.recs))
	copy(out, l.recs)
	return out
}
