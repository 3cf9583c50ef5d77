// Package notify turns a node agent's records into notification events
// (failover started/finished, heartbeat path down, probe failed, backup
// failed or refused...) and delivers them, in order and without ever
// blocking the agent, to the webhooks and commands the policy declares with
// notify().
//
// Each notifier has its own bounded queue and delivery goroutine: a slow or
// dead receiver delays only its own events, and when its queue is full the
// oldest event is dropped and counted. A webhook gets each event as a JSON
// POST; a command gets it as JSON on stdin and as HARULES_EVENT_*
// environment variables, in its own process group. Failed deliveries are
// retried with a doubling backoff, each attempt bounded by the notifier's
// timeout.
package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Event is one notification, as sent (JSON) to webhooks and commands.
type Event struct {
	// Event is the event name, one of policy.NotifyEvents.
	Event   string `json:"event"`
	Cluster string `json:"cluster"`
	// Node is the node that saw the event and sends it.
	Node  string `json:"node"`
	Group string `json:"group,omitempty"`
	// Peer is the other node a path or peer event is about.
	Peer   string    `json:"peer,omitempty"`
	Text   string    `json:"text"`
	Reason string    `json:"reason,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
	// Incarnation is the sending agent's run; Seq increases by one with
	// every event the run produces (before per-notifier filtering), so a
	// receiver orders events of one node by (incarnation, seq).
	Incarnation uint64 `json:"incarnation"`
	Seq         uint64 `json:"seq"`
}

// Record texts the agent produces for probe state changes (ProbeRecord);
// the translator recognises them.
const (
	probePrefix     = "probe "
	probeFailing    = " failing"
	probeRecovered  = " ok again"
	reloadedPrefix  = "policy reloaded"
	reloadRefused   = "policy reload refused"
	takeoverMarker  = "; takeover from "
	rollbackPrefix  = "rolling back "
	maintenanceText = "maintenance: "
)

// ProbeRecord is the record the agent keeps when a probe turns failing
// (failing true) or recovers; it shows on the timeline and becomes a
// probe-failed or probe-recovered event.
func ProbeRecord(at time.Time, node, probe string, failing bool, detail string) engine.Record {
	text := probePrefix + probe + probeRecovered
	if failing {
		text = probePrefix + probe + probeFailing
	}
	return engine.Record{At: at, Node: node, Kind: engine.RecEvent, Text: text, Reason: detail}
}

// translator derives events from records. It keeps what a sequence of
// records means together: a takeover begins with its first start (or
// fence) and ends when the group's last resource started.
type translator struct {
	policy *policy.Policy
	// takeovers holds the groups whose takeover started and has not ended.
	takeovers map[string]bool
	// lastBackupErr is the error of the last failed run per job: the
	// executor and the engine both report a run that failed at once.
	lastBackupErr map[string]string
}

func newTranslator(p *policy.Policy) *translator {
	return &translator{policy: p, takeovers: map[string]bool{}, lastBackupErr: map[string]string{}}
}

// translate returns the events a record means (often none). Seq and
// Incarnation are left for the dispatcher.
func (t *translator) translate(r engine.Record) []Event {
	ev := func(name string) Event {
		return Event{Event: name, Cluster: t.policy.Cluster.Name, Node: r.Node, Group: r.Group,
			Text: r.Text, Reason: r.Reason, Error: r.Error, At: r.At}
	}
	switch r.Kind {
	case engine.RecPath:
		// Structured fields first; the text ("path lan to node1 down") for
		// records written without them.
		state, peer := r.State, r.Peer
		if state == "" {
			rest, _ := strings.CutPrefix(r.Text, "path ")
			if f := strings.Fields(rest); len(f) == 4 && f[1] == "to" {
				peer, state = f[2], f[3]
			}
		}
		var e Event
		switch state {
		case "down":
			e = ev(policy.EventPathDown)
		case "up":
			e = ev(policy.EventPathUp)
		default:
			return nil
		}
		e.Peer = peer
		return []Event{e}
	case engine.RecPeer:
		state, peer := r.State, r.Peer
		if state == "" {
			// "node1 is dead"
			peer, state, _ = strings.Cut(r.Text, " is ")
		}
		var e Event
		switch state {
		case "dead":
			e = ev(policy.EventPeerDead)
		case "alive":
			e = ev(policy.EventPeerAlive)
		default:
			return nil
		}
		e.Peer = peer
		return []Event{e}
	case engine.RecAlert:
		return []Event{ev(policy.EventAlertRaised)}
	case engine.RecClear:
		return []Event{ev(policy.EventAlertCleared)}
	case engine.RecPolicy:
		// A group placed elsewhere ends a takeover that never finished
		// here (its starts kept being refused), so the next one is
		// reported as a new failover.
		if !strings.HasSuffix(r.Text, " on "+r.Node) {
			delete(t.takeovers, r.Group)
		}
	case engine.RecAction:
		return t.action(r, ev)
	case engine.RecBackup:
		return t.backup(r, ev)
	case engine.RecEvent:
		switch {
		case r.Reason == "monitor" && r.Error != "":
			return []Event{ev(policy.EventResourceFailed)}
		case strings.HasPrefix(r.Text, probePrefix) && strings.HasSuffix(r.Text, probeFailing):
			return []Event{ev(policy.EventProbeFailed)}
		case strings.HasPrefix(r.Text, probePrefix) && strings.HasSuffix(r.Text, probeRecovered):
			return []Event{ev(policy.EventProbeRecovered)}
		case strings.HasPrefix(r.Text, reloadedPrefix):
			return []Event{ev(policy.EventPolicyReloaded)}
		case strings.HasPrefix(r.Text, reloadRefused):
			return []Event{ev(policy.EventPolicyReloadRefused)}
		}
	}
	return nil
}

// action follows starts, stops and fences: "start vip:web-ip: add ...".
func (t *translator) action(r engine.Record, ev func(string) Event) []Event {
	if r.DryRun || strings.HasPrefix(r.Text, maintenanceText) || r.Group == "" {
		return nil
	}
	op, resource, from := r.Op, r.Resource, r.TakeoverFrom
	if op == "" {
		// A record written without structured fields: "start vip:web-ip: ...".
		var rest string
		op, rest, _ = strings.Cut(r.Text, " ")
		resource, _, _ = strings.Cut(rest, ": ")
		if op == engine.OpFence {
			resource = "fence:" + resource
		}
		if peer, ok := takeoverFrom(r.Reason); ok {
			from = strings.Split(peer, ", ")
		}
	}
	g := t.policy.Group(r.Group)
	if g == nil || len(g.Resources) == 0 {
		return nil
	}
	var out []Event
	// Group events get a sentence of their own; the action is in the
	// record (and the console's timeline).
	group := func(name, text string) Event {
		e := ev(name)
		e.Text = text
		if len(from) > 0 {
			e.Peer = strings.Join(from, ",")
		}
		if r.Error != "" {
			e.Text += ": " + r.Text
		}
		return e
	}
	switch op {
	case engine.OpFence:
		if !t.takeovers[r.Group] {
			t.takeovers[r.Group] = true
			peer := strings.TrimPrefix(resource, "fence:")
			e := group(policy.EventFailoverStarted, fmt.Sprintf("%s takes over %s from %s: fencing it first", r.Node, r.Group, peer))
			e.Peer = peer
			out = append(out, e)
		}
		if r.Error != "" {
			e := ev(policy.EventFenceFailed)
			e.Peer = strings.TrimPrefix(resource, "fence:")
			out = append(out, e)
		}
	case engine.OpStart:
		takeover := len(from) > 0 || t.takeovers[r.Group]
		if takeover && !t.takeovers[r.Group] {
			t.takeovers[r.Group] = true
			out = append(out, group(policy.EventFailoverStarted, fmt.Sprintf("%s takes over %s", r.Node, r.Group)))
		}
		last := resource == g.Resources[len(g.Resources)-1].ID()
		switch {
		case r.Error != "" && takeover:
			if strings.Contains(r.Error, engine.ErrRetry.Error()) {
				break // tried again at the next decision; the takeover goes on
			}
			delete(t.takeovers, r.Group)
			out = append(out, group(policy.EventFailoverFailed, fmt.Sprintf("takeover of %s by %s failed", r.Group, r.Node)))
		case r.Error != "" || !last:
		case takeover:
			delete(t.takeovers, r.Group)
			out = append(out, group(policy.EventFailoverFinished, fmt.Sprintf("%s runs on %s after the takeover", r.Group, r.Node)))
		default:
			out = append(out, group(policy.EventGroupStarted, fmt.Sprintf("%s started on %s", r.Group, r.Node)))
		}
	case engine.OpStop:
		// Stops run in reverse order: the first resource stops last.
		if r.Error == "" && resource == g.Resources[0].ID() && !strings.HasPrefix(r.Reason, rollbackPrefix) {
			out = append(out, group(policy.EventGroupStopped, fmt.Sprintf("%s stopped on %s", r.Group, r.Node)))
		}
	}
	return out
}

// takeoverFrom finds the dead peers in a takeover start's reason
// ("...; takeover from node1: declared dead ...").
func takeoverFrom(reason string) (string, bool) {
	_, rest, ok := strings.Cut(reason, takeoverMarker)
	if !ok {
		return "", false
	}
	peer, _, _ := strings.Cut(rest, ":")
	return peer, peer != ""
}

// backup maps failed runs. The executor reports "backup J failed",
// "backup J refused: ..." and "backup J stored as ... but its copy did not
// verify"; the engine reports "run backup J" with an error when the run
// could not even start (sometimes repeating the executor's report).
func (t *translator) backup(r engine.Record, ev func(string) Event) []Event {
	if r.Error == "" {
		return nil
	}
	if job, ok := strings.CutPrefix(r.Text, "run backup "); ok {
		if t.lastBackupErr[job] == r.Error {
			delete(t.lastBackupErr, job)
			return nil
		}
		return []Event{ev(policy.EventBackupFailed)}
	}
	rest, ok := strings.CutPrefix(r.Text, "backup ")
	if !ok {
		return nil
	}
	job, outcome, _ := strings.Cut(rest, " ")
	t.lastBackupErr[job] = r.Error
	switch {
	case strings.HasPrefix(outcome, "refused"):
		return []Event{ev(policy.EventBackupRefused)}
	case strings.HasPrefix(outcome, "stored"):
		return []Event{ev(policy.EventBackupUnsafe)}
	default:
		return []Event{ev(policy.EventBackupFailed)}
	}
}
