package engine

import (
	"maps"
	"slices"
	"time"

	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// Report is what a node tells its peers in every heartbeat: enough of its
// state for them to decide the same way it does.
type Report struct {
	Node        string   `json:"node"`
	Incarnation uint64   `json:"incarnation"`
	PolicyHash  string   `json:"policy_hash"`
	Holds       []string `json:"holds"`
	// Starting lists those of Holds whose start job is still running: held
	// (a peer must not start them beside it) but not yet up.
	Starting []string `json:"starting,omitempty"`
	// Hears is the sorted list of peers the node considers alive; never
	// nil in a report this version builds (an older agent's report lacks it).
	Hears   []string `json:"hears"`
	Standby bool     `json:"standby,omitempty"`
	// RuleStandby: a rule of the node puts it in standby now (it would
	// not start a group placed on it).
	RuleStandby bool                 `json:"rule_standby,omitempty"`
	Maintenance bool                 `json:"maintenance,omitempty"`
	Probes      []*facts.Probe       `json:"probes,omitempty"`
	Failed      map[string]time.Time `json:"failed,omitempty"`
	Operator    Operator             `json:"operator"`
	BackupLast  map[string]time.Time `json:"backup_last,omitempty"`
	BackupOK    map[string]time.Time `json:"backup_ok,omitempty"`
	// DB is how far this node's database servers have got, by database
	// name (the agent adds it; the engine neither fills nor reads it).
	DB map[string]DBPosition `json:"db,omitempty"`
}

// View turns heartbeats and probe results into Facts for one node. It
// implements the failure detector of the brief: a path is down after
// `misses` heartbeat intervals without a valid heartbeat; a peer is dead only
// when every path to it is down.
type View struct {
	policy *policy.Policy
	self   string
	boot   time.Time
	peers  map[string]*peerView
	probes map[string]*facts.Probe
	// hold: Update judges nothing before it (see HoldUntil).
	hold time.Time
	// The policy's timing, built once and shared by every Facts.
	hbSpecs    []facts.HeartbeatSpec
	probeSpecs map[string]facts.ProbeSpec
}

type peerView struct {
	paths  map[string]*pathView
	report *Report
	state  string
	since  time.Time
}

type pathView struct {
	known    bool
	lastSeen time.Time
	up       bool
	since    time.Time
}

// NewView starts a view for node self booted at boot.
func NewView(p *policy.Policy, self string, boot time.Time) *View {
	v := &View{policy: p, self: self, boot: boot, peers: map[string]*peerView{}, probes: map[string]*facts.Probe{},
		probeSpecs: make(map[string]facts.ProbeSpec, len(p.Probes))}
	for _, h := range p.Paths {
		v.hbSpecs = append(v.hbSpecs, facts.HeartbeatSpec{Name: h.Name, Interval: h.Interval, Misses: h.Misses})
	}
	for _, pr := range p.Probes {
		v.probeSpecs[pr.Name] = facts.ProbeSpec{Every: pr.Every, Timeout: pr.Timeout, Rise: pr.Rise, Fall: pr.Fall}
	}
	for _, n := range p.Nodes {
		if n.Name == self {
			continue
		}
		pv := &peerView{paths: map[string]*pathView{}, state: facts.Unknown, since: boot}
		for _, h := range p.Paths {
			pv.paths[h.Name] = &pathView{since: boot}
		}
		v.peers[n.Name] = pv
	}
	return v
}

// Hears returns the peers this node considers alive, sorted by name (never
// nil).
func (v *View) Hears() []string {
	out := []string{}
	for _, name := range slices.Sorted(maps.Keys(v.peers)) {
		if v.peers[name].state == facts.Alive {
			out = append(out, name)
		}
	}
	return out
}

// hearsSame reports whether list is what Hears would return, without
// allocating.
func (v *View) hearsSame(list []string) bool {
	if list == nil {
		return false
	}
	n := 0
	for name, pv := range v.peers {
		if pv.state == facts.Alive {
			n++
			if !slices.Contains(list, name) {
				return false
			}
		}
	}
	return n == len(list)
}

// PauseHold is how long a node that notices it was paused (not running)
// holds its view: two heartbeat intervals of the slowest path, time for a
// live peer's next heartbeat to arrive on every path.
func PauseHold(p *policy.Policy) time.Duration {
	var longest time.Duration
	for _, h := range p.Paths {
		longest = max(longest, h.Interval)
	}
	return 2 * longest
}

// HoldUntil keeps every path and peer as they are until t: Update declares
// nothing down before then. The agent calls it when it notices that it was
// not running itself (CPU starvation, a paused VM): its peers' silence over
// that time is its own, and their next heartbeats show whether they live.
// Heartbeats still mark paths up meanwhile.
func (v *View) HoldUntil(t time.Time) {
	if t.After(v.hold) {
		v.hold = t
	}
}

// Boot is when this node started.
func (v *View) Boot() time.Time { return v.boot }

// Heartbeat records a valid heartbeat from peer on path, received at.
// It returns true when it changed the peer's or the path's state, or the
// peer's report.
func (v *View) Heartbeat(peer, path string, at time.Time, r *Report) bool {
	pv := v.peers[peer]
	if pv == nil {
		return false
	}
	p := pv.paths[path]
	if p == nil {
		return false
	}
	changed := !p.up
	p.known, p.lastSeen = true, at
	if !p.up {
		p.up, p.since = true, at
	}
	if pv.state != facts.Alive {
		pv.state, pv.since = facts.Alive, at
		changed = true
	}
	if r != nil && r != pv.report {
		pv.report = r
		changed = true
	}
	return changed
}

// SetProbe records this node's debounced result of a probe; it reports
// whether the state changed.
func (v *View) SetProbe(p facts.Probe) bool {
	p.Node = v.self
	old := v.probes[p.Probe]
	if old != nil && old.State == p.State {
		old.Value, old.Text = p.Value, p.Text
		return false
	}
	v.probes[p.Probe] = &p
	return true
}

// Probes returns this node's probe results sorted by name.
func (v *View) Probes() []*facts.Probe {
	out := make([]*facts.Probe, 0, len(v.probes))
	for _, k := range slices.Sorted(maps.Keys(v.probes)) {
		out = append(out, v.probes[k])
	}
	return out
}

// NextDeadline is the earliest instant at which Update would declare a
// path down or a peer dead if no heartbeat arrives meanwhile (zero: none);
// never before a hold ends. The agent's detection timer and the simulator
// judge at that instant rather than at their next tick.
func (v *View) NextDeadline() time.Time {
	var next time.Time
	take := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, pv := range v.peers {
		if pv.state == facts.Unknown {
			take(v.boot.Add(v.policy.StartupGrace()))
		}
		for _, h := range v.policy.Paths {
			if p := pv.paths[h.Name]; p.known && p.up {
				take(p.lastSeen.Add(h.DetectionTime()))
			}
		}
	}
	if !next.IsZero() && next.Before(v.hold) {
		next = v.hold
	}
	return next
}

// Update advances the failure detector to now and reports whether any path
// or peer changed state.
func (v *View) Update(now time.Time) bool {
	if now.Before(v.hold) {
		return false
	}
	changed := false
	grace := v.policy.StartupGrace()
	for _, pv := range v.peers {
		anyUp := false
		for _, h := range v.policy.Paths {
			p := pv.paths[h.Name]
			if p.known && p.up && now.Sub(p.lastSeen) >= h.DetectionTime() {
				p.up, p.since = false, p.lastSeen.Add(h.DetectionTime())
				changed = true
			}
			anyUp = anyUp || p.up
		}
		switch {
		case anyUp:
			// Heartbeat already marked it alive.
		case pv.state == facts.Alive:
			pv.state, pv.since = facts.Dead, now
			changed = true
		case pv.state == facts.Unknown && now.Sub(v.boot) >= grace:
			pv.state, pv.since = facts.Dead, now
			changed = true
		}
	}
	return changed
}

// Merge folds gossip (operator requests, backup bookkeeping) from peers'
// reports into the node's state; it reports whether anything changed.
func (v *View) Merge(s *State) bool {
	changed := false
	for _, name := range v.peerNames() {
		r := v.peers[name].report
		if r == nil {
			continue
		}
		if s.Operator.Merge(r.Operator) {
			changed = true
		}
		for job, t := range r.BackupLast {
			if t.After(s.BackupLast[job]) {
				s.BackupLast[job] = t
				changed = true
			}
		}
		for job, t := range r.BackupOK {
			if t.After(s.BackupOK[job]) {
				if s.BackupOK == nil {
					s.BackupOK = map[string]time.Time{}
				}
				s.BackupOK[job] = t
				changed = true
			}
		}
	}
	return changed
}

func (v *View) peerNames() []string {
	var out []string
	for _, n := range v.policy.Nodes {
		if n.Name != v.self {
			out = append(out, n.Name)
		}
	}
	return out
}

// PeerReport returns the last report of a peer (nil if none).
func (v *View) PeerReport(peer string) *Report {
	if pv := v.peers[peer]; pv != nil {
		return pv.report
	}
	return nil
}

// Facts builds the facts of this node at now, with its own state s.
func (v *View) Facts(now time.Time, s *State) *facts.Facts {
	p := v.policy
	f := &facts.Facts{Self: v.self, Now: now, Boot: v.boot, Probes: make(map[string]map[string]*facts.Probe, len(p.Probes)),
		Heartbeats: v.hbSpecs, ProbeSpecs: v.probeSpecs}
	for _, pr := range p.Probes {
		f.Probes[pr.Name] = map[string]*facts.Probe{}
	}
	holders, starting := map[string][]string{}, map[string][]string{}
	failed := map[string]map[string]time.Time{}
	addFailed := func(node string, m map[string]time.Time) {
		for g, t := range m {
			if failed[g] == nil {
				failed[g] = map[string]time.Time{}
			}
			failed[g][node] = t
		}
	}
	for _, n := range p.Nodes {
		nf := &facts.Node{Name: n.Name}
		if n.Name == v.self {
			nf.Self, nf.State, nf.Since = true, facts.Alive, v.boot
			nf.Holds = s.HeldGroups()
			nf.Starting = slices.Sorted(maps.Keys(s.Starting))
			nf.Hears = v.Hears()
			nf.Maintenance = s.Maintenance
			nf.Standby = s.Leaving
			nf.Incarnation = s.Incarnation
			nf.PolicyHash = p.Hash
			for _, pr := range v.probes {
				if f.Probes[pr.Probe] != nil {
					f.Probes[pr.Probe][v.self] = pr
				}
			}
			addFailed(v.self, s.Failed)
		} else {
			pv := v.peers[n.Name]
			nf.State, nf.Since = pv.state, pv.since
			for _, h := range p.Paths {
				pp := pv.paths[h.Name]
				path := &facts.Path{Name: h.Name, Interval: h.Interval, Up: pp.up, Known: pp.known, LastSeen: pp.lastSeen, Since: pp.since}
				ref := v.boot
				if pp.known {
					ref = pp.lastSeen
				}
				path.Missed = int(now.Sub(ref) / h.Interval)
				nf.Paths = append(nf.Paths, path)
			}
			if r := pv.report; r != nil {
				nf.Holds, nf.Incarnation, nf.PolicyHash = r.Holds, r.Incarnation, r.PolicyHash
				nf.Starting = r.Starting
				nf.Hears = r.Hears
				nf.Maintenance = r.Maintenance
				nf.Standby = r.Standby
				nf.RuleStandby = r.RuleStandby
				for _, pr := range r.Probes {
					if f.Probes[pr.Probe] != nil {
						f.Probes[pr.Probe][n.Name] = pr
					}
				}
				addFailed(n.Name, r.Failed)
			}
		}
		if st, ok := s.Operator.Standby[n.Name]; ok && st.On {
			nf.Standby = true
		}
		for _, g := range nf.Holds {
			holders[g] = append(holders[g], n.Name)
		}
		for _, g := range nf.Starting {
			starting[g] = append(starting[g], n.Name)
		}
		f.Nodes = append(f.Nodes, nf)
	}
	for _, g := range p.Groups {
		gf := &facts.Group{Name: g.Name, Holders: holders[g.Name], Starting: starting[g.Name], FailedOn: failed[g.Name]}
		if t, ok := s.Holds[g.Name]; ok {
			gf.Since = t
		}
		f.Groups = append(f.Groups, gf)
	}
	f.Index()
	return f
}
