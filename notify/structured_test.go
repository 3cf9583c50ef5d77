package notify

import (
	"testing"
	"time"

	"github.com/harules/harules/engine"
)

// TestStructuredRecordFieldsWinOverText: events come from the records'
// structured fields (Op, Resource, TakeoverFrom, Peer, State), so a change in
// the wording of Text cannot change what operators are notified of.
func TestStructuredRecordFieldsWinOverText(t *testing.T) {
	p := loadPolicy(t, "")
	tr := newTranslator(p)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []engine.Record{
		{At: at, Node: "node2", Kind: engine.RecPath, Text: "(reworded)", Peer: "node1", Path: "lan", State: "down"},
		{At: at, Node: "node2", Kind: engine.RecPeer, Text: "(reworded)", Peer: "node1", State: "dead"},
		{At: at, Node: "node2", Kind: engine.RecAction, Group: "web", Text: "(reworded)", Op: engine.OpStart,
			Resource: "vip:198.51.100.10", TakeoverFrom: []string{"node1"}},
		{At: at, Node: "node2", Kind: engine.RecAction, Group: "web", Text: "(reworded)", Op: engine.OpStart,
			Resource: "service:app", TakeoverFrom: []string{"node1"}},
	}
	var got []string
	for _, r := range recs {
		for _, e := range tr.translate(r) {
			got = append(got, e.Event+"/"+e.Peer)
		}
	}
	want := []string{"path-down/node1", "peer-dead/node1", "failover-started/node1", "failover-finished/node1"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}
