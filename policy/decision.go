package policy

import (
	"fmt"
	"time"
)

// DecisionKind says what a rule asks for.
type DecisionKind string

// The decisions a rule can return. They are requests to the engine, never
// side effects: the engine weighs them with placement and facts.
const (
	// Move asks for a group to run on a node (To), or away from one (AwayFrom).
	Move DecisionKind = "move"
	// Ban forbids a node from running a group ("*" = every group).
	Ban DecisionKind = "ban"
	// Prefer adds Score to a node for a group.
	Prefer DecisionKind = "prefer"
	// NoTakeover forbids the evaluating node from starting a group that a peer
	// may still hold (a node declared dead): the split-brain guard.
	NoTakeover DecisionKind = "no_takeover"
	// Stop takes a group down everywhere.
	Stop DecisionKind = "stop"
	// Standby makes a node give away its groups and take none.
	Standby DecisionKind = "standby"
	// Alert raises a named alert visible in status, simulate and the console.
	Alert DecisionKind = "alert"
)

// Decision is one request from a rule.
type Decision struct {
	Kind     DecisionKind `json:"kind"`
	Group    string       `json:"group,omitempty"`
	Node     string       `json:"node,omitempty"`
	AwayFrom string       `json:"away_from,omitempty"`
	Score    int          `json:"score,omitempty"`
	Name     string       `json:"name,omitempty"`
	Severity string       `json:"severity,omitempty"`
	Message  string       `json:"message,omitempty"`
	// Rule is the rule that returned the decision.
	Rule string `json:"rule,omitempty"`
	// Since is when the rule's condition started to hold.
	Since time.Time `json:"-"`
}

// AllGroups is the group wildcard in ban and no_takeover.
const AllGroups = "*"

func (d Decision) String() string {
	switch d.Kind {
	case Move:
		if d.AwayFrom != "" {
			return fmt.Sprintf("move %s away from %s", d.Group, d.AwayFrom)
		}
		return fmt.Sprintf("move %s to %s", d.Group, d.Node)
	case Ban:
		return fmt.Sprintf("ban %s from %s", d.Group, d.Node)
	case Prefer:
		return fmt.Sprintf("prefer %s on %s (%+d)", d.Group, d.Node, d.Score)
	case NoTakeover:
		return fmt.Sprintf("no takeover of %s", d.Group)
	case Stop:
		return fmt.Sprintf("stop %s", d.Group)
	case Standby:
		return fmt.Sprintf("standby %s", d.Node)
	case Alert:
		return fmt.Sprintf("alert %s", d.Name)
	}
	return string(d.Kind)
}

// AppliesTo reports whether a decision that names a group (or "*") covers g.
func (d Decision) AppliesTo(group string) bool {
	return d.Group == AllGroups || d.Group == group || d.Group == ""
}
