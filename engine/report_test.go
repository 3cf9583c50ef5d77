package engine

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/harules/harules/engine/facts"
)

// TestReportFieldsCompared guards reportCurrent: a field added to Report
// must be compared there too, or peers would miss changes of it.
func TestReportFieldsCompared(t *testing.T) {
	compared := []string{"Node", "Incarnation", "PolicyHash", "Holds", "Starting", "Hears", "Standby", "RuleStandby", "Maintenance", "Probes", "Failed", "Operator", "BackupLast", "BackupOK", "DB"}
	var fields []string
	rt := reflect.TypeOf(Report{})
	for i := 0; i < rt.NumField(); i++ {
		fields = append(fields, rt.Field(i).Name)
	}
	if !slices.Equal(fields, compared) {
		t.Fatalf("Report has fields %v; reportCurrent (engine/report.go) compares %v: update it and this list", fields, compared)
	}
}

// TestReportChangesOnlyWithContent mutates a node's state step by step and
// checks after each step that Report returns a new pointer exactly when the
// content changed, as a deep comparison of a freshly built report says.
func TestReportChangesOnlyWithContent(t *testing.T) {
	p := loadPolicy(t, "placement.star")
	n := NewNode(p, "n1", t0, NewState(1), &countingExec{}, nil)
	now := t0
	n.Step(context.Background(), now)
	steps := []struct {
		name   string
		mutate func()
		change bool
	}{
		{"nothing", func() {}, false},
		{"hold a group", func() { n.State.Holds["manual"] = now }, true},
		{"hold it again later", func() { n.State.Holds["manual"] = now.Add(time.Second) }, false},
		{"hold a second group", func() { n.State.Holds["auto"] = now }, true},
		{"drop one", func() { delete(n.State.Holds, "auto") }, true},
		{"swap groups", func() { delete(n.State.Holds, "manual"); n.State.Holds["auto"] = now }, true},
		{"first probe result", func() { n.View.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeOK, Since: now}) }, true},
		{"same probe state, new value", func() { n.View.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeOK, Since: now, Value: 3}) }, false},
		{"probe fails", func() { n.View.SetProbe(facts.Probe{Probe: "ban_flag", State: facts.ProbeFailing, Since: now}) }, true},
		{"failed start", func() { n.State.Failed["auto"] = now }, true},
		{"failure expires", func() {
			now = now.Add(31 * time.Second)
			n.Step(context.Background(), now)
		}, true},
		{"expired failure renewed", func() { n.State.Failed["auto"] = now }, true},
		{"maintenance", func() { n.State.Maintenance = true }, true},
		{"leaving", func() { n.State.Leaving = true }, true},
		{"operator move", func() { _ = n.Move(now, "manual", "n2") }, true},
		{"operator move repeated with an older time", func() {
			n.State.Operator.Merge(Operator{Moves: map[string]OperatorMove{"manual": {Node: "n1", At: t0}}})
		}, false},
		{"operator standby", func() { _ = n.SetStandby(now, "n2", true) }, true},
		{"backup recorded", func() { n.State.BackupLast["x"] = now }, true},
		{"same backup time", func() { n.State.BackupLast["x"] = now }, false},
		{"backup succeeded", func() { n.BackupSucceeded("x", now) }, true},
		{"an older success", func() { n.BackupSucceeded("x", now.Add(-time.Hour)) }, false},
		{"new incarnation", func() { n.State.Incarnation++ }, true},
		{"nil operator map", func() { n.State.Operator.Standby = nil }, true},
		{"a peer is heard", func() {
			for _, h := range p.Paths {
				n.View.Heartbeat("n2", h.Name, now, nil)
			}
		}, true},
		{"the same peer heard again", func() {
			for _, h := range p.Paths {
				n.View.Heartbeat("n2", h.Name, now.Add(time.Millisecond), nil)
			}
		}, false},
		{"the peer is declared dead", func() {
			now = now.Add(time.Minute)
			n.View.Update(now)
		}, true},
	}
	prev := n.Report()
	for _, st := range steps {
		st.mutate()
		saved := n.report
		current := n.reportCurrent(saved)
		n.report = nil
		fresh := n.Report()
		n.report = saved
		if same := reflect.DeepEqual(saved, fresh); current != same {
			t.Errorf("%s: reportCurrent=%t but deep comparison says %t", st.name, current, same)
		}
		got := n.Report()
		if changed := got != prev; changed != st.change {
			t.Errorf("%s: report pointer changed=%t, want %t", st.name, changed, st.change)
		}
		if !reflect.DeepEqual(got, fresh) {
			t.Errorf("%s: Report() = %+v, want %+v", st.name, got, fresh)
		}
		prev = got
	}
}

func BenchmarkReportUnchanged(b *testing.B) {
	p := loadSource(b, bigPolicy(100, 300))
	n := NewNode(p, "node1", t0, NewState(1), &countingExec{}, nil)
	for i, g := range p.Groups {
		if i%2 == 0 {
			n.State.Holds[g.Name] = t0
		}
	}
	for _, pr := range p.Probes {
		n.View.SetProbe(facts.Probe{Probe: pr.Name, State: facts.ProbeOK, Since: t0})
	}
	first := n.Report()
	b.ReportAllocs()
	for b.Loop() {
		if n.Report() != first {
			b.Fatal("report changed")
		}
	}
}
