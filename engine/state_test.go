package engine

import (
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestOperatorMergeNewestWins merges the same requests in every order of a
// random sample: the result is the newest request of each key whatever the
// order, and Merge reports a change exactly when it took something.
func TestOperatorMergeNewestWins(t *testing.T) {
	ts := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	updates := []Operator{
		{Moves: map[string]OperatorMove{"web": {Node: "n1", At: ts(1)}}},
		{Moves: map[string]OperatorMove{"web": {Node: "n2", At: ts(5)}, "db": {Node: "n2", At: ts(2)}}},
		{Moves: map[string]OperatorMove{"web": {Node: "", At: ts(3)}}}, // an older clear loses
		{Standby: map[string]OperatorFlag{"n1": {On: true, At: ts(4)}}},
		{Standby: map[string]OperatorFlag{"n1": {On: false, At: ts(6)}, "n2": {On: true, At: ts(1)}}},
		{Moves: map[string]OperatorMove{"db": {Node: "", At: ts(7)}}}, // a newer clear wins
		{},
	}
	want := Operator{
		Moves:   map[string]OperatorMove{"web": {Node: "n2", At: ts(5)}, "db": {Node: "", At: ts(7)}},
		Standby: map[string]OperatorFlag{"n1": {On: false, At: ts(6)}, "n2": {On: true, At: ts(1)}},
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		order := rng.Perm(len(updates))
		var o Operator // zero value: Merge must allocate the maps
		for _, j := range order {
			before := o.Clone()
			changed := o.Merge(updates[j])
			if changed == reflect.DeepEqual(normalize(before), normalize(o)) {
				t.Fatalf("order %v, update %d: Merge reported changed=%t but before %+v after %+v", order, j, changed, before, o)
			}
		}
		if !reflect.DeepEqual(o, want) {
			t.Fatalf("order %v: merged %+v, want %+v", order, o, want)
		}
		// Merging everything again changes nothing.
		for _, u := range updates {
			if o.Merge(u) {
				t.Fatalf("re-merging %+v reported a change", u)
			}
		}
	}
}

// normalize maps nil maps to empty ones so that "allocated but empty" and
// "nil" compare equal.
func normalize(o Operator) Operator {
	if o.Moves == nil {
		o.Moves = map[string]OperatorMove{}
	}
	if o.Standby == nil {
		o.Standby = map[string]OperatorFlag{}
	}
	return o
}

func TestOperatorMergeEqualTimeKeepsCurrent(t *testing.T) {
	o := Operator{Moves: map[string]OperatorMove{"web": {Node: "n1", At: t0}}}
	if o.Merge(Operator{Moves: map[string]OperatorMove{"web": {Node: "n2", At: t0}}}) {
		t.Error("a request with the same time replaced the current one")
	}
	if o.Moves["web"].Node != "n1" {
		t.Errorf("web moved to %s", o.Moves["web"].Node)
	}
}

func TestOperatorClone(t *testing.T) {
	o := Operator{Moves: map[string]OperatorMove{"web": {Node: "n1", At: t0}}, Standby: map[string]OperatorFlag{}}
	c := o.Clone()
	c.Moves["web"] = OperatorMove{Node: "n2", At: t0}
	if o.Moves["web"].Node != "n1" {
		t.Error("Clone shares the moves map")
	}
}

// TestViewMergesOperatorGossip checks that operator requests reach a node
// through a peer's report and that the newest wins.
func TestViewMergesOperatorGossip(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	c := newCluster(t, p, "n1")
	c.state.Operator.Moves["manual"] = OperatorMove{Node: "n1", At: t0}
	c.up("n2")
	r := *c.reports["n2"]
	r.Operator = Operator{Moves: map[string]OperatorMove{"manual": {Node: "n2", At: t0.Add(time.Second)}}}
	c.reports["n2"] = &r
	c.run(time.Second)
	if !c.view.Merge(c.state) {
		t.Fatal("Merge of a newer operator move reported no change")
	}
	if gp := placement(t, c.decide(), "manual"); gp.Node != "n2" {
		t.Errorf("manual placed on %s, want n2 (the newest operator move): %s", gp.Node, gp.Reason)
	}
}
