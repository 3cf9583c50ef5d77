package facts

import (
	"testing"
	"time"
)

func sample() *Facts {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &Facts{
		Self: "b", Now: now,
		Nodes: []*Node{
			{Name: "a", State: Dead, Holds: []string{"web"}},
			{Name: "b", Self: true, State: Alive, Holds: []string{"web", "db"}},
			{Name: "c", State: Unknown, Holds: []string{"db"}},
		},
		Groups: []*Group{
			{Name: "web", Holders: []string{"a", "b"}},
			{Name: "db", Holders: []string{"c", "b"}},
			{Name: "idle"},
			{Name: "ghost", Holders: []string{"a"}},
		},
		Probes: map[string]map[string]*Probe{"http": {"b": {Probe: "http", Node: "b", State: ProbeOK}}, "disk": {}},
	}
	f.Index()
	return f
}

func TestOwner(t *testing.T) {
	f := sample()
	cases := []struct{ group, want string }{
		{"web", "b"},   // a is dead: its last report does not make it the owner
		{"db", "c"},    // an unknown node that reports the group still owns it
		{"idle", ""},   // nobody holds it
		{"ghost", ""},  // only a dead node holds it
		{"nosuch", ""}, // not in the facts
	}
	for _, tc := range cases {
		if got := f.Owner(tc.group); got != tc.want {
			t.Errorf("Owner(%q) = %q, want %q", tc.group, got, tc.want)
		}
	}
}

func TestLookups(t *testing.T) {
	f := sample()
	if n := f.Node("b"); n == nil || !n.Self || !n.Alive() {
		t.Errorf("Node(b) = %+v", n)
	}
	if f.Node("a").Alive() || f.Node("c").Alive() {
		t.Error("dead or unknown node reported alive")
	}
	if f.Node("z") != nil || f.Group("z") != nil {
		t.Error("lookup of an unknown name returned something")
	}
	if g := f.Group("db"); g == nil || g.Name != "db" {
		t.Errorf("Group(db) = %+v", g)
	}
	if p := f.Probe("http", "b"); p == nil || p.State != ProbeOK {
		t.Errorf("Probe(http, b) = %+v", p)
	}
	for _, c := range [][2]string{{"http", "a"}, {"disk", "b"}, {"nosuch", "b"}} {
		if p := f.Probe(c[0], c[1]); p != nil {
			t.Errorf("Probe(%s, %s) = %+v, want nil", c[0], c[1], p)
		}
	}
}

func TestIndexFollowsReplacedSlices(t *testing.T) {
	f := sample()
	f.Nodes = append(f.Nodes, &Node{Name: "d", State: Alive})
	if f.Node("d") != nil {
		t.Fatal("node found before Index")
	}
	f.Index()
	if f.Node("d") == nil {
		t.Error("node not found after Index")
	}
}
