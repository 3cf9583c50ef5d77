package policy

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"node1", "node2", "database", "failover-started"}
	for _, c := range []struct{ in, want string }{
		{"nod1", "node1"},
		{"node3", "node1"}, // ties go to the first known name
		{"databse", "database"},
		{"failover-start", "failover-started"},
		{"gateway", ""}, // too far from anything: no guess
		{"", ""},
	} {
		if got := Closest(c.in, known); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPosString(t *testing.T) {
	if got := (Pos{File: "p.star", Line: 3, Col: 7}).String(); got != "p.star:3:7" {
		t.Errorf("got %q", got)
	}
	if got := (Pos{File: "p.star"}).String(); got != "p.star" {
		t.Errorf("a position without a line: got %q, want the file alone", got)
	}
	if got := (Pos{}).String(); got != "<builtin>" {
		t.Errorf("empty position: got %q", got)
	}
}
