// Package simulate replays a scenario against a policy. It runs one
// engine.Node per cluster node, exactly as the live agents do, each fed only
// the facts that node could see (heartbeats that reached it, its own
// probes), on a simulated clock, and records what each node decided and did.
// A network partition therefore gives each side its own view: split brain
// is simulated, not assumed away.
package simulate

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/engine/facts"
	"github.com/harules/harules/policy"
)

// Result is the outcome of one simulation.
type Result struct {
	Policy   string          `json:"policy"`
	Scenario string          `json:"scenario"`
	Name     string          `json:"name"`
	Start    time.Time       `json:"start"`
	Duration Dur             `json:"duration"`
	Records  []engine.Record `json:"records"`
	// FinalPlacement maps group -> nodes holding it at the end.
	FinalPlacement map[string][]string `json:"final_placement"`
	// Outages are the windows in which a group that had been running was
	// held by no node (what clients would notice).
	Outages []Window `json:"outages"`
	// DualOwners are windows in which a group was held by two nodes at once.
	DualOwners   []Window      `json:"dual_owners"`
	Expectations []ExpectCheck `json:"expectations"`
	OK           bool          `json:"ok"`
	// Stats count the work done (for benchmarks).
	Stats Stats `json:"stats"`
}

// Stats count what the simulation did.
type Stats struct {
	Heartbeats int `json:"heartbeats"`
	Decisions  int `json:"decisions"`
	Actions    int `json:"actions"`
}

// Window is a time interval of one group, relative to the scenario start.
type Window struct {
	Group string   `json:"group"`
	Start Dur      `json:"start"`
	End   Dur      `json:"end"`
	Nodes []string `json:"nodes,omitempty"`
}

// ExpectCheck is an expectation with its verdict.
type ExpectCheck struct {
	Expect string `json:"expect"`
	Pos    string `json:"pos"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Dur is a duration that marshals as seconds with a unit, e.g. "1.2s".
type Dur time.Duration

// MarshalText renders the duration in Go syntax.
func (d Dur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote, so Go clients can decode results.
func (d *Dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Dur(v)
	return nil
}

// Options tune a run.
type Options struct {
	// RecordHeartbeats adds every heartbeat to the records (very verbose).
	RecordHeartbeats bool
}

type simNode struct {
	name    string
	up      bool
	node    *engine.Node
	incarn  uint64
	links   map[string]bool // path -> interface up
	probes  map[string]*probeSim
	failing map[string]bool // group -> starts fail
	// stopsFail: group -> stops fail; slow: "group/op" -> how long each
	// action of that kind takes.
	stopsFail map[string]bool
	slow      map[string]time.Duration
	// fenceFails makes this node's fencing command fail.
	fenceFails bool
	phase      time.Duration
	// pausedUntil: the node is frozen (an overloaded host, a paused VM) and
	// runs nothing, sends nothing and loses what arrives until then.
	pausedUntil time.Time
	// detectAt is when the pending failure-detector check runs (zero:
	// none), like the agent's detection timer.
	detectAt time.Time
	// decided is the node's report as of its last decision: what its
	// heartbeats carry, as the agent's senders carry the payload its last
	// step built (nil before the first decision).
	decided *engine.Report
	// wakeAt is the instant the last decision asked to be made again
	// (Decision.WakeAt), as the agent's wake timer does.
	wakeAt time.Time
}

func (sn *simNode) paused(now time.Time) bool { return now.Before(sn.pausedUntil) }

type probeSim struct {
	raw      bool
	rawSince time.Time
	value    float64
	text     string
	gen      int
	// silent: failing checks get no answer and fail at their timeout.
	silent bool
	// phase offsets this node's check grid from its boot (seeded).
	phase time.Duration
}

type sim struct {
	ctx   context.Context
	p     *policy.Policy
	sc    *Scenario
	opts  Options
	now   time.Time
	queue eventQueue
	seq   int
	nodes map[string]*simNode
	order []*simNode
	rng   *rand.Rand
	res   *Result
	holds map[string][]string // group -> up nodes holding it
	// cut holds links cut between two nodes only: "a|b|path", a < b.
	cut        map[string]bool
	hadRun     map[string]bool
	openOutage map[string]time.Time
	openDual   map[string]time.Time
	dirty      map[string]bool
	ownerLog   map[string][]ownerChange
	ticks      []tickSpec
}

type tickSpec struct {
	interval time.Duration
	paths    []*policy.HeartbeatPath
}

type qitem struct {
	at  time.Time
	seq int
	fn  func()
}

type eventQueue []*qitem

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*qitem)) }
func (q *eventQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (s *sim) schedule(at time.Time, fn func()) {
	s.seq++
	heap.Push(&s.queue, &qitem{at: at, seq: s.seq, fn: fn})
}

// Run simulates sc against p.
func Run(ctx context.Context, p *policy.Policy, policyFile string, sc *Scenario, opts Options) (*Result, error) {
	s := &sim{ctx: ctx, p: p, sc: sc, opts: opts, now: sc.Start, nodes: map[string]*simNode{}, cut: map[string]bool{},
		rng: rand.New(rand.NewSource(sc.Seed)), holds: map[string][]string{}, hadRun: map[string]bool{},
		openOutage: map[string]time.Time{}, openDual: map[string]time.Time{}, dirty: map[string]bool{}, ownerLog: map[string][]ownerChange{}}
	s.res = &Result{Policy: policyFile, Scenario: sc.File, Name: sc.Name, Start: sc.Start, Duration: Dur(sc.Duration),
		Outages: []Window{}, DualOwners: []Window{}}
	byInterval := map[time.Duration][]*policy.HeartbeatPath{}
	for _, h := range p.Paths {
		byInterval[h.Interval] = append(byInterval[h.Interval], h)
	}
	for iv, paths := range byInterval {
		s.ticks = append(s.ticks, tickSpec{interval: iv, paths: paths})
	}
	sort.Slice(s.ticks, func(i, j int) bool { return s.ticks[i].interval < s.ticks[j].interval })
	for _, n := range p.Nodes {
		sn := &simNode{name: n.Name, links: map[string]bool{}, probes: map[string]*probeSim{}, failing: map[string]bool{},
			stopsFail: map[string]bool{}, slow: map[string]time.Duration{}}
		for _, h := range p.Paths {
			sn.links[h.Name] = true
		}
		// Nodes do not tick in lock step in real life; a seeded phase keeps
		// runs reproducible.
		if len(s.ticks) > 0 {
			sn.phase = time.Duration(s.rng.Int63n(int64(s.ticks[0].interval)))
		}
		s.nodes[n.Name] = sn
		s.order = append(s.order, sn)
	}
	boot := sc.Boot
	if boot == nil {
		for _, n := range p.Nodes {
			boot = append(boot, n.Name)
		}
	}
	for _, name := range boot {
		s.boot(s.nodes[name])
	}
	for _, e := range sc.Events {
		e := e
		s.schedule(sc.Start.Add(e.At), func() { s.apply(e) })
	}
	end := sc.Start.Add(sc.Duration)
	for s.queue.Len() > 0 {
		it := heap.Pop(&s.queue).(*qitem)
		if it.at.After(end) {
			break
		}
		if it.at.After(s.now) {
			s.flush()
			s.now = it.at
		}
		it.fn()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("simulation cancelled at %s: %w", s.now.Sub(sc.Start), err)
		}
	}
	s.flush()
	s.now = end
	s.observe()
	s.finish()
	return s.res, nil
}

func (s *sim) record(r engine.Record) { s.res.Records = append(s.res.Records, r) }

func (s *sim) boot(sn *simNode) {
	sn.up = true
	sn.incarn++
	sn.detectAt, sn.wakeAt, sn.decided = time.Time{}, time.Time{}, nil
	st := engine.NewState(sn.incarn)
	sn.node = engine.NewNode(s.p, sn.name, s.now, st, &recorder{s: s, sn: sn}, s.record)
	sn.node.Dispatch = s.dispatcher(sn, sn.incarn)
	for _, pr := range s.p.Probes {
		if len(pr.Nodes) > 0 && !slices.Contains(pr.Nodes, sn.name) {
			continue
		}
		ps := s.probeSim(sn, pr.Name)
		state := facts.ProbeFailing
		if ps.raw {
			state = facts.ProbeOK
		}
		sn.node.View.SetProbe(facts.Probe{Probe: pr.Name, State: state, Since: s.now, Value: ps.value, Text: ps.text})
	}
	for _, t := range s.ticks {
		t := t
		s.schedule(s.now.Add(sn.phase), func() { s.tick(sn, sn.incarn, t) })
	}
	s.scheduleReevaluate(sn, sn.incarn)
	s.dirty[sn.name] = true
}

// tick is one heartbeat interval of a node: send on each path, then let the
// failure detector look at what arrived.
func (s *sim) tick(sn *simNode, incarn uint64, t tickSpec) {
	if !sn.up || sn.incarn != incarn {
		return
	}
	if sn.paused(s.now) {
		s.schedule(sn.pausedUntil, func() { s.tick(sn, incarn, t) })
		return
	}
	s.send(sn, t.paths)
	if sn.node.View.Update(s.now) {
		s.dirty[sn.name] = true
	}
	s.armDetect(sn)
	next := t.interval
	if len(t.paths) > 0 && t.paths[0].Jitter > 0 {
		j := t.paths[0].Jitter
		next += time.Duration(s.rng.Int63n(int64(2*j))) - j
	}
	s.schedule(s.now.Add(next), func() { s.tick(sn, incarn, t) })
}

// send delivers one heartbeat from sn to every peer on each path (or
// schedules it when the scenario sets a latency).
func (s *sim) send(sn *simNode, paths []*policy.HeartbeatPath) {
	// A heartbeat carries what the node last decided with, not a view it
	// has not decided on yet: a report that hears a peer must mean the
	// node took that peer into account (self_fence relies on it).
	rep := sn.decided
	if rep == nil {
		rep = sn.node.Report()
	}
	for _, h := range paths {
		for _, peer := range s.order {
			if peer == sn {
				continue
			}
			s.res.Stats.Heartbeats++
			if !s.delivers(sn, peer, h.Name) {
				continue
			}
			peer, path := peer, h.Name
			deliver := func() {
				if !peer.up || !s.delivers(sn, peer, path) {
					return
				}
				if peer.node.View.Heartbeat(sn.name, path, s.now, rep) {
					s.dirty[peer.name] = true
				}
				s.armDetect(peer)
			}
			if s.sc.Latency > 0 {
				s.schedule(s.now.Add(s.sc.Latency), deliver)
			} else {
				deliver()
			}
		}
	}
}

func (s *sim) delivers(from, to *simNode, path string) bool {
	return from.up && to.up && !from.paused(s.now) && !to.paused(s.now) && from.links[path] && to.links[path] && !s.cut[pairKey(from.name, to.name, path)]
}

func pairKey(a, b, path string) string {
	if b < a {
		a, b = b, a
	}
	return a + "|" + b + "|" + path
}

func (s *sim) scheduleReevaluate(sn *simNode, incarn uint64) {
	s.schedule(s.now.Add(s.p.Cluster.Reevaluate), func() {
		if !sn.up || sn.incarn != incarn {
			return
		}
		s.dirty[sn.name] = true
		s.scheduleReevaluate(sn, incarn)
	})
}

// armDetect makes sure the failure detector of sn looks at its paths when
// the next one would go down, as the agent's detection timer does, not only
// at sn's next heartbeat tick. One check is pending at a time: one that
// finds the deadline moved (a heartbeat came) arms itself again.
func (s *sim) armDetect(sn *simNode) {
	at := sn.node.View.NextDeadline()
	if at.IsZero() || !at.After(s.now) || !sn.detectAt.IsZero() && !at.Before(sn.detectAt) {
		return
	}
	sn.detectAt = at
	incarn := sn.incarn
	s.schedule(at, func() {
		if !sn.up || sn.incarn != incarn || !sn.detectAt.Equal(at) {
			return
		}
		sn.detectAt = time.Time{}
		if sn.paused(s.now) {
			return // the tick after the pause judges
		}
		if sn.node.View.Update(s.now) {
			s.dirty[sn.name] = true
		}
		s.armDetect(sn)
	})
}

// scheduleWake decides again at the instant a time-dependent condition of
// the last decision changes (a threshold of down_for, a for_ timer, ...).
// Only the latest request counts, like the agent's single timer.
func (s *sim) scheduleWake(sn *simNode, at time.Time) {
	if at.IsZero() || at.Equal(sn.wakeAt) {
		return
	}
	sn.wakeAt = at
	incarn := sn.incarn
	s.schedule(at, func() {
		if !sn.up || sn.incarn != incarn || !sn.wakeAt.Equal(at) {
			return
		}
		sn.wakeAt = time.Time{}
		s.dirty[sn.name] = true
	})
}

// flush runs the decision of every node whose facts changed at this instant.
func (s *sim) flush() {
	for i := 0; i < 4 && len(s.dirty) > 0; i++ {
		for _, sn := range s.order {
			if !s.dirty[sn.name] {
				continue
			}
			delete(s.dirty, sn.name)
			if !sn.up || sn.paused(s.now) {
				continue
			}
			before := sn.node.Report()
			d := sn.node.Step(s.ctx, s.now)
			s.res.Stats.Decisions++
			s.scheduleWake(sn, d.WakeAt)
			sn.decided = sn.node.Report()
			if sn.decided != before {
				// The node changed what it holds or reports: like the agent
				// (which kicks its heartbeat senders), it tells its peers at
				// once instead of at the next interval.
				s.observe()
				s.send(sn, s.p.Paths)
			}
		}
	}
	s.observe()
}

// observe tracks who holds each group to find outages and dual owners.
func (s *sim) observe() {
	for _, g := range s.p.Groups {
		var holders []string
		for _, sn := range s.order {
			if sn.up && sn.node != nil {
				if _, ok := sn.node.State.Holds[g.Name]; ok {
					holders = append(holders, sn.name)
				}
			}
		}
		if !slices.Equal(holders, s.holds[g.Name]) {
			s.ownerLog[g.Name] = append(s.ownerLog[g.Name], ownerChange{at: s.now.Sub(s.sc.Start), holders: holders})
			s.record(engine.Record{At: s.now, Node: "cluster", Kind: RecOwner, Group: g.Name, Text: fmt.Sprintf("%s held by %s", g.Name, orNobody(holders))})
		}
		s.holds[g.Name] = holders
		if len(holders) > 0 {
			s.hadRun[g.Name] = true
		}
		// Outage bookkeeping.
		if len(holders) == 0 && s.hadRun[g.Name] {
			if _, open := s.openOutage[g.Name]; !open {
				s.openOutage[g.Name] = s.now
			}
		} else if start, open := s.openOutage[g.Name]; open {
			s.res.Outages = append(s.res.Outages, Window{Group: g.Name, Start: Dur(start.Sub(s.sc.Start)), End: Dur(s.now.Sub(s.sc.Start))})
			delete(s.openOutage, g.Name)
		}
		if len(holders) > 1 {
			if _, open := s.openDual[g.Name]; !open {
				s.openDual[g.Name] = s.now
				s.res.DualOwners = append(s.res.DualOwners, Window{Group: g.Name, Start: Dur(s.now.Sub(s.sc.Start)), End: -1, Nodes: holders})
			}
		} else if start, open := s.openDual[g.Name]; open {
			for i := range s.res.DualOwners {
				w := &s.res.DualOwners[i]
				if w.Group == g.Name && w.End == -1 && w.Start == Dur(start.Sub(s.sc.Start)) {
					w.End = Dur(s.now.Sub(s.sc.Start))
				}
			}
			delete(s.openDual, g.Name)
		}
	}
}

func (s *sim) apply(e Event) {
	sn := s.nodes[e.Node]
	text := e.Kind
	switch e.Kind {
	case "crash":
		text = "crash: node stops; its resources vanish with it"
		if sn.up {
			sn.up = false
			s.dirty[sn.name] = false
			delete(s.dirty, sn.name)
		}
	case "pause":
		if !sn.up || sn.paused(s.now) {
			text = "pause ignored: node is down or already paused"
			break
		}
		text = fmt.Sprintf("paused for %s: runs nothing, sends nothing, loses what arrives", e.For)
		sn.pausedUntil = s.now.Add(e.For)
		incarn := sn.incarn
		s.schedule(sn.pausedUntil, func() {
			if !sn.up || sn.incarn != incarn {
				return
			}
			// What the agent's pause guard does when it wakes (agent/detect.go).
			hold := engine.PauseHold(s.p)
			sn.node.View.HoldUntil(s.now.Add(hold))
			s.record(engine.Record{At: s.now, Node: sn.name, Kind: engine.RecEvent,
				Text: fmt.Sprintf("resumed after a pause of %s: peers are judged again after %s of fresh heartbeats", e.For, hold)})
			s.dirty[sn.name] = true
		})
	case "boot":
		if sn.up {
			text = "boot ignored: node is already up"
		} else {
			text = "boot"
			s.record(engine.Record{At: s.now, Node: e.Node, Kind: engine.RecEvent, Text: text})
			s.boot(sn)
			s.observe()
			return
		}
	case "link_down", "link_up":
		up := e.Kind == "link_up"
		var targets []*simNode
		if e.Node != "" {
			targets = []*simNode{sn}
		} else {
			targets = s.order
		}
		for _, h := range s.p.Paths {
			if e.Path != "" && e.Path != h.Name {
				continue
			}
			if e.Peer != "" {
				s.cut[pairKey(e.Node, e.Peer, h.Name)] = !up
				continue
			}
			for _, t := range targets {
				t.links[h.Name] = up
			}
		}
		what := "all heartbeat paths"
		if e.Path != "" {
			what = "heartbeat path " + e.Path
		}
		where := "on every node"
		switch {
		case e.Peer != "":
			where = "between " + e.Node + " and " + e.Peer
		case e.Node != "":
			where = "on " + e.Node
		}
		state := "down"
		if up {
			state = "up"
		}
		text = fmt.Sprintf("%s %s %s", what, state, where)
	case "probe":
		ps := s.probeSim(sn, e.Probe)
		ps.raw, ps.rawSince, ps.value, ps.text, ps.silent = e.OK, s.now, e.Value, e.Text, e.Silent
		ps.gen++
		word := "fails"
		switch {
		case e.OK:
			word = "passes"
		case e.Silent:
			word = "fails (no answer: checks time out)"
		}
		text = fmt.Sprintf("probe %s %s on %s", e.Probe, word, e.Node)
		if sn.up {
			s.scheduleProbe(sn, e.Probe, ps)
		}
	case "operator_move":
		sn = s.firstUp()
		if sn != nil {
			_ = sn.node.Move(s.now, e.Group, e.Node)
			s.dirty[sn.name] = true
		}
		return
	case "operator_cleanup":
		sn = s.firstUp()
		if sn != nil {
			_ = sn.node.Cleanup(s.now, e.Group)
			s.dirty[sn.name] = true
		}
		return
	case "operator_standby", "operator_online":
		on := e.Kind == "operator_standby"
		sn = s.firstUp()
		if sn != nil {
			_ = sn.node.SetStandby(s.now, e.Node, on)
			s.dirty[sn.name] = true
		}
		return
	case "maintenance":
		if sn.up {
			sn.node.State.Maintenance = !sn.node.State.Maintenance
			text = fmt.Sprintf("maintenance mode %v on %s", sn.node.State.Maintenance, e.Node)
		}
	case "resource_fail":
		if sn.up {
			if _, held := sn.node.State.Holds[e.Group]; held {
				res := e.Text
				if res == "" {
					res = s.p.Group(e.Group).Resources[0].ID()
				}
				sn.node.ResourceFailed(s.now, e.Group, res, fmt.Errorf("monitor reported failure (scenario)"))
				s.dirty[sn.name] = true
				return
			}
			text = fmt.Sprintf("resource_fail ignored: %s does not hold %s", e.Node, e.Group)
		}
	case "fail_fence":
		sn.fenceFails = !e.OK
		text = fmt.Sprintf("fencing from %s will fail", e.Node)
		if e.OK {
			text = fmt.Sprintf("fencing from %s works again", e.Node)
		}
	case "fail_stops":
		sn.stopsFail[e.Group] = !e.OK
		text = fmt.Sprintf("stops of %s on %s will fail", e.Group, e.Node)
		if e.OK {
			text = fmt.Sprintf("stops of %s on %s work again", e.Group, e.Node)
		}
	case "slow_actions":
		ops := []string{e.Text}
		if e.Text == "" {
			ops = []string{engine.OpStart, engine.OpStop}
		}
		for _, op := range ops {
			sn.slow[e.Group+"/"+op] = e.For
		}
		text = fmt.Sprintf("each %s of a resource of %s on %s takes %s", strings.Join(ops, " and "), e.Group, e.Node, e.For)
	case "fail_starts":
		sn.failing[e.Group] = !e.OK
		text = fmt.Sprintf("starts of %s on %s will fail", e.Group, e.Node)
		if e.OK {
			text = fmt.Sprintf("starts of %s on %s work again", e.Group, e.Node)
		}
	}
	s.record(engine.Record{At: s.now, Node: e.Node, Kind: engine.RecEvent, Group: e.Group, Text: text})
	s.observe()
	if sn != nil && sn.up {
		s.dirty[sn.name] = true
	}
}

// probeSim returns the simulated state of a probe on a node, creating it
// (passing) with the node's seeded check phase.
func (s *sim) probeSim(sn *simNode, name string) *probeSim {
	ps := sn.probes[name]
	if ps == nil {
		ps = &probeSim{raw: true, rawSince: s.now, phase: ProbePhase(s.sc.Seed, sn.name, name, s.p.Probe(name).Every)}
		sn.probes[name] = ps
	}
	return ps
}

// ProbePhase is where a node's checks of a probe fall within `every`,
// seeded by the scenario's seed, the node and the probe. It comes from its
// own generator, so that heartbeat phases stay what they were.
func ProbePhase(seed int64, node, probe string, every time.Duration) time.Duration {
	if every <= 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s", seed, node, probe)
	return time.Duration(rand.New(rand.NewSource(int64(h.Sum64()))).Int63n(int64(every)))
}

// scheduleProbe applies the probe's rise/fall debounce: the fact changes
// after `fall` consecutive failed checks (or `rise` good ones), checks
// running every `every` from the node's boot plus its seeded phase. A
// silent failure (no answer) is seen only when the check times out.
func (s *sim) scheduleProbe(sn *simNode, name string, ps *probeSim) {
	pr := s.p.Probe(name)
	need := pr.Fall
	if ps.raw {
		need = pr.Rise
	}
	grid := sn.node.View.Boot().Add(ps.phase)
	elapsed := s.now.Sub(grid)
	first := grid.Add((elapsed + pr.Every - 1) / pr.Every * pr.Every)
	if elapsed < 0 {
		first = grid
	}
	at := first.Add(time.Duration(need-1) * pr.Every)
	if !ps.raw && ps.silent {
		timeout := pr.Timeout
		if timeout <= 0 {
			timeout = min(pr.Every, time.Second)
		}
		at = at.Add(timeout)
	}
	gen, incarn := ps.gen, sn.incarn
	s.schedule(at, func() {
		if !sn.up || sn.incarn != incarn || ps.gen != gen {
			return
		}
		state := facts.ProbeFailing
		if ps.raw {
			state = facts.ProbeOK
		}
		if sn.node.View.SetProbe(facts.Probe{Probe: name, State: state, Since: s.now, Value: ps.value, Text: ps.text}) {
			word := map[string]string{facts.ProbeOK: "ok", facts.ProbeFailing: "failing"}[state]
			s.record(engine.Record{At: s.now, Node: sn.name, Kind: engine.RecEvent,
				Text: fmt.Sprintf("probe %s is %s", name, word), Reason: fmt.Sprintf("%d consecutive checks every %s", need, pr.Every)})
			s.dirty[sn.name] = true
		}
	})
}

func (s *sim) firstUp() *simNode {
	for _, sn := range s.order {
		if sn.up {
			return sn
		}
	}
	return nil
}

// recorder is the simulator's executor: it succeeds unless the scenario
// made starts of a group fail on that node.
type recorder struct {
	s  *sim
	sn *simNode
}

var _ engine.Executor = (*recorder)(nil)

func (r *recorder) Execute(_ context.Context, a engine.Action) error {
	r.s.res.Stats.Actions++
	if a.Op == engine.OpFence && r.sn.fenceFails {
		return fmt.Errorf("fence %s failed (scenario fail_fence)", a.FencePeer())
	}
	if a.Op == engine.OpStart && r.sn.failing[a.Group] {
		return fmt.Errorf("%s failed to start (scenario fail_starts)", a.Resource)
	}
	if a.Op == engine.OpStop && r.sn.stopsFail[a.Group] {
		return fmt.Errorf("%s failed to stop (scenario fail_stops)", a.Resource)
	}
	return nil
}

func (r *recorder) Backup(context.Context, engine.BackupRun) error { return nil }

// dispatcher runs a node's jobs on the simulated clock: each action takes
// what slow_actions set for its group and op (nothing by default), and the
// job's result reaches the node when its last action is done, as a worker's
// would in the agent. Meanwhile the node goes on deciding, and a start in
// flight counts as held. A job of a node that crashed meanwhile is lost.
func (s *sim) dispatcher(sn *simNode, incarn uint64) engine.Dispatcher {
	return func(j *engine.Job) {
		clock := s.now
		exec := &timedRecorder{recorder: recorder{s: s, sn: sn}, clock: &clock}
		res := engine.RunJob(s.ctx, exec, j, func() time.Time { return clock })
		if !clock.After(s.now) {
			sn.node.Complete(res)
			return
		}
		s.schedule(clock, func() {
			if !sn.up || sn.incarn != incarn {
				return
			}
			sn.node.Complete(res)
			s.dirty[sn.name] = true
		})
	}
}

// timedRecorder advances a job's clock by each action's scenario duration.
type timedRecorder struct {
	recorder
	clock *time.Time
}

func (t *timedRecorder) Execute(ctx context.Context, a engine.Action) error {
	*t.clock = t.clock.Add(t.sn.slow[a.Group+"/"+a.Op])
	return t.recorder.Execute(ctx, a)
}

// finish closes open windows and checks the expectations.
func (s *sim) finish() {
	end := Dur(s.sc.Duration)
	for g, start := range s.openOutage {
		s.res.Outages = append(s.res.Outages, Window{Group: g, Start: Dur(start.Sub(s.sc.Start)), End: end})
	}
	for i := range s.res.DualOwners {
		if s.res.DualOwners[i].End == -1 {
			s.res.DualOwners[i].End = end
		}
	}
	// Outages still open come from a map: order ties by group so that runs
	// are byte-for-byte reproducible.
	sort.SliceStable(s.res.Outages, func(i, j int) bool {
		a, b := s.res.Outages[i], s.res.Outages[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.Group < b.Group
	})
	s.res.FinalPlacement = map[string][]string{}
	for _, g := range s.p.Groups {
		s.res.FinalPlacement[g.Name] = append([]string{}, s.holds[g.Name]...)
	}
	s.res.OK = true
	for _, x := range s.sc.Expect {
		c := s.check(x)
		if !c.OK {
			s.res.OK = false
		}
		s.res.Expectations = append(s.res.Expectations, c)
	}
}

func (s *sim) check(x Expectation) ExpectCheck {
	c := ExpectCheck{Pos: x.Pos.String()}
	switch x.Kind {
	case "expect_owner":
		want := x.Node
		if want == "" {
			want = "nobody"
		}
		c.Expect = fmt.Sprintf("%s is held by %s at %s", x.Group, want, x.At)
		got := s.ownersAt(x.Group, x.At)
		c.OK = x.Node == "" && len(got) == 0 || len(got) == 1 && got[0] == x.Node
		c.Detail = "held by " + orNobody(got)
	case "expect_single_owner":
		c.Expect = "no group is ever held by two nodes at once"
		if x.Group != "" {
			c.Expect = x.Group + " is never held by two nodes at once"
		}
		c.OK = true
		var bad []string
		for _, w := range s.res.DualOwners {
			if x.Group == "" || w.Group == x.Group {
				c.OK = false
				bad = append(bad, fmt.Sprintf("%s on %s from %s to %s", w.Group, strings.Join(w.Nodes, "+"), time.Duration(w.Start), time.Duration(w.End)))
			}
		}
		c.Detail = "never"
		if !c.OK {
			c.Detail = "dual owners: " + strings.Join(bad, "; ")
		}
	case "expect_no_actions":
		c.Expect = fmt.Sprintf("no action runs between %s and %s", x.At, x.End)
		if x.Node != "" {
			c.Expect = fmt.Sprintf("no action runs on %s between %s and %s", x.Node, x.At, x.End)
		}
		c.OK = true
		c.Detail = "none ran"
		for _, r := range s.res.Records {
			off := r.At.Sub(s.sc.Start)
			if r.Kind == engine.RecAction && off >= x.At && off <= x.End && (x.Node == "" || r.Node == x.Node) {
				c.OK = false
				c.Detail = fmt.Sprintf("%s at %s on %s", r.Text, off, r.Node)
				break
			}
		}
	case "expect_alert":
		c.Expect = fmt.Sprintf("alert %s is raised", x.Name)
		if x.Node != "" {
			c.Expect += " on " + x.Node
		}
		if x.At >= 0 {
			c.Expect += fmt.Sprintf(" and active at %s", x.At)
		}
		c.OK, c.Detail = alertCheck(s.res.Records, s.sc, x)
	case "expect_backup":
		c.Expect = fmt.Sprintf("backup %s runs", x.Name)
		if x.Node != "" {
			c.Expect += " on " + x.Node
		}
		if x.Count >= 0 {
			c.Expect += fmt.Sprintf(" %d time(s)", x.Count)
		}
		n := 0
		var where []string
		for _, r := range s.res.Records {
			if r.Kind == engine.RecBackup && r.Text == "run backup "+x.Name {
				where = append(where, fmt.Sprintf("%s at %s", r.Node, r.At.Sub(s.sc.Start)))
				if x.Node == "" || r.Node == x.Node {
					n++
				}
			}
		}
		c.OK = n > 0 && (x.Count < 0 || n == x.Count) || x.Count == 0 && n == 0
		c.Detail = fmt.Sprintf("ran %d time(s): %s", n, strings.Join(where, ", "))
	}
	return c
}

// RecOwner records are written by the simulator when the set of nodes
// holding a group changes.
const RecOwner = "owner"

type ownerChange struct {
	at      time.Duration
	holders []string
}

// ownersAt returns who held a group at an offset.
func (s *sim) ownersAt(group string, at time.Duration) []string {
	var held []string
	for _, c := range s.ownerLog[group] {
		if c.at > at {
			break
		}
		held = c.holders
	}
	return held
}

func alertCheck(recs []engine.Record, sc *Scenario, x Expectation) (bool, string) {
	// Active alerts are tracked per node and message: one node may raise
	// several alerts of the same name (one per path), and clearing one must
	// not hide the others.
	active := map[string]map[string]bool{}
	raised := false
	match := func(r engine.Record) bool {
		return (x.Node == "" || r.Node == x.Node) && strings.HasPrefix(r.Text, x.Name+" ")
	}
	for _, r := range recs {
		off := r.At.Sub(sc.Start)
		if x.At >= 0 && off > x.At {
			break
		}
		switch {
		case r.Kind == engine.RecAlert && match(r):
			raised = true
			_, msg, _ := strings.Cut(r.Text, "] ")
			if active[r.Node] == nil {
				active[r.Node] = map[string]bool{}
			}
			active[r.Node][msg] = true
		case r.Kind == engine.RecClear && match(r):
			_, msg, _ := strings.Cut(r.Text, " cleared: ")
			delete(active[r.Node], msg)
			if len(active[r.Node]) == 0 {
				delete(active, r.Node)
			}
		case r.Kind == engine.RecEvent && strings.HasPrefix(r.Text, "crash"):
			delete(active, r.Node)
		}
	}
	if x.At >= 0 {
		if len(active) > 0 {
			return true, "active"
		}
		if raised {
			return false, "raised but cleared before " + x.At.String()
		}
		return false, "never raised"
	}
	if raised {
		return true, "raised"
	}
	return false, "never raised"
}

func orNobody(nodes []string) string {
	if len(nodes) == 0 {
		return "nobody"
	}
	return strings.Join(nodes, "+")
}
