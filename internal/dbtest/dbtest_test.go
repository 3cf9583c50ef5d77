package dbtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWritesAndNumbers(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var w Writes
	w.Add(Ack{N: 1, At: t0, Server: "node1"})
	w.Add(Ack{N: 2, At: t0.Add(time.Second), Server: "node2"})
	w.Fail(errors.New("connection refused"))
	if n, last := w.Failures(); n != 1 || last != "connection refused" {
		t.Errorf("failures %d %q", n, last)
	}
	if w.AcksFrom("node2", t0) != 1 || w.AcksFrom("node1", t0.Add(time.Millisecond)) != 0 {
		t.Errorf("AcksFrom counts wrong: %+v", w.Acks())
	}
	if got := w.FirstFrom("node2", t0); !got.Equal(t0.Add(time.Second)) || !w.FirstFrom("node3", t0).IsZero() {
		t.Errorf("FirstFrom = %v", got)
	}
	if got := Lost(w.Acks(), map[int64]bool{1: true}); !slices.Equal(got, []int64{2}) {
		t.Errorf("Lost = %v, want [2]", got)
	}
	if m := Median([]time.Duration{3, 1, 2}); m != 2 {
		t.Errorf("odd median %v", m)
	}
	if m := Median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("even median %v, want (2+3)/2 = 2", m)
	}
	if Median(nil) != 0 {
		t.Error("median of nothing")
	}
}

func TestRoleSamples(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	s := []RoleSample{
		{Round: 1, Node: "node1", Sent: t0, Reachable: true, Writable: true},
		{Round: 1, Node: "node2", Sent: t0, Reachable: true},
		{Round: 2, Node: "node1", Sent: t0.Add(time.Second), Reachable: true, Writable: true},
		{Round: 2, Node: "node2", Sent: t0.Add(time.Second), Reachable: true, Writable: true},
		{Round: 3, Node: "node1", Sent: t0.Add(2 * time.Second)},
	}
	if got := DualWritableRounds(s); !slices.Equal(got, []int{2}) {
		t.Errorf("DualWritableRounds = %v, want [2]", got)
	}
	if at, ok := FirstWritable(s, "node2", t0); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("FirstWritable(node2) = %v %v", at, ok)
	}
	tl := RoleTimeline(s, "standby", "PRIMARY")
	for _, want := range []string{"09:00:00.000 node1: PRIMARY", "09:00:00.000 node2: standby", "09:00:01.000 node2: PRIMARY", "09:00:02.000 node1: unreachable"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:%s", want, tl)
		}
	}
}

// TestRoleSampler: answers and failures of the ask function become samples,
// round by round, for every node.
func TestRoleSampler(t *testing.T) {
	r := StartRoleSampler(t, []string{"a", "b"}, time.Millisecond, func(_ context.Context, n string) (bool, error) {
		if n == "b" {
			return true, errors.New("down")
		}
		return true, nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.s)
		r.mu.Unlock()
		if n >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	samples := r.Stop()
	if len(samples) < 6 {
		t.Fatalf("%d samples after 10 s", len(samples))
	}
	for _, s := range samples {
		if want := s.Node == "a"; s.Writable != want || s.Reachable != want || s.Round < 1 || s.Got.Before(s.Sent) {
			t.Errorf("sample %+v", s)
		}
	}
	if again := r.Stop(); len(again) != len(samples) {
		t.Errorf("a second Stop returned %d samples, want %d", len(again), len(samples))
	}
}
