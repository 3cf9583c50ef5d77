package policy

import (
	"strings"
	"time"
)

// Notification events, derived by package notify from the records a node
// agent produces.
const (
	EventPathDown            = "path-down"             // a heartbeat path to a peer went down
	EventPathUp              = "path-up"               // a heartbeat path to a peer came back
	EventPeerDead            = "peer-dead"             // a peer was declared dead on all paths
	EventPeerAlive           = "peer-alive"            // a peer is heard again
	EventFailoverStarted     = "failover-started"      // this node begins taking over a group from a dead peer
	EventFailoverFinished    = "failover-finished"     // the group taken over runs on this node
	EventFailoverFailed      = "failover-failed"       // a takeover start failed (it is rolled back)
	EventFenceFailed         = "fence-failed"          // the fence command before a takeover failed
	EventGroupStarted        = "group-started"         // a group started here (not a takeover)
	EventGroupStopped        = "group-stopped"         // a group stopped here
	EventResourceFailed      = "resource-failed"       // a held resource failed its monitor
	EventProbeFailed         = "probe-failed"          // a probe turned failing
	EventProbeRecovered      = "probe-recovered"       // a failing probe is ok again
	EventAlertRaised         = "alert-raised"          // an alert was raised
	EventAlertCleared        = "alert-cleared"         // an alert cleared
	EventBackupFailed        = "backup-failed"         // a backup run failed
	EventBackupRefused       = "backup-refused"        // a backup run was refused (headroom)
	EventBackupUnsafe        = "backup-unsafe"         // a backup was stored but its copy did not verify
	EventPolicyReloaded      = "policy-reloaded"       // the agent reloaded its policy
	EventPolicyReloadRefused = "policy-reload-refused" // a reload was refused; the old policy runs on
)

// NotifyEvents lists every notification event in a stable order.
var NotifyEvents = []string{
	EventPathDown, EventPathUp, EventPeerDead, EventPeerAlive,
	EventFailoverStarted, EventFailoverFinished, EventFailoverFailed, EventFenceFailed,
	EventGroupStarted, EventGroupStopped, EventResourceFailed,
	EventProbeFailed, EventProbeRecovered, EventAlertRaised, EventAlertCleared,
	EventBackupFailed, EventBackupRefused, EventBackupUnsafe,
	EventPolicyReloaded, EventPolicyReloadRefused,
}

// EventCategory is the part of an event name before its first '-'
// ("failover" for "failover-started"); notify(events=...) accepts a category
// for all of its events.
func EventCategory(event string) string {
	cat, _, _ := strings.Cut(event, "-")
	return cat
}

// Notifier sends notification events to a webhook or a command.
type Notifier struct {
	Name string
	// Webhook is an http(s) URL that receives each event as a JSON POST.
	Webhook string
	// Headers are extra HTTP headers of the webhook (e.g. Authorization).
	Headers map[string]string
	// Command is an argv run once per event, with the event as JSON on
	// stdin and HARULES_EVENT_* in the environment.
	Command []string
	// Events are the event names or categories sent; empty means all.
	Events []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Retries is how many times a failed delivery is tried again.
	Retries int
	// Backoff is the delay before the first retry; it doubles each retry.
	Backoff time.Duration
	// Queue bounds the events waiting for delivery; when full the oldest
	// is dropped.
	Queue int
	Pos   Pos
}

// Wants reports whether the notifier sends event.
func (n *Notifier) Wants(event string) bool {
	if len(n.Events) == 0 {
		return true
	}
	for _, e := range n.Events {
		if e == event || e == EventCategory(event) {
			return true
		}
	}
	return false
}
