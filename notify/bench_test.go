package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/harules/harules/engine"
)

// BenchmarkRecord is what the agent loop pays per record: translation and
// queueing for two notifiers whose receiver hangs (so every event is
// queued and the queue keeps dropping its oldest).
func BenchmarkRecord(b *testing.B) {
	release := make(chan struct{})
	rc := newReceiver(b, func(_ int, _ http.ResponseWriter, _ *http.Request) bool { <-release; return true })
	defer close(release)
	p := loadPolicy(b, fmt.Sprintf("notify(\"a\", webhook = %q, timeout = \"1m\")\nnotify(\"b\", webhook = %q, events = [\"path\"], timeout = \"1m\")\n", rc.srv.URL, rc.srv.URL))
	d := New(Config{Policy: p, Node: "node2", Logger: slog.New(slog.DiscardHandler)})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = d.Close(ctx) // the hanging receiver leaves events undelivered
	}()
	recs := []engine.Record{
		{Node: "node2", Kind: engine.RecPath, Text: "path lan to node1 down"},
		{Node: "node2", Kind: engine.RecPolicy, Group: "web", Text: "web should run on node2"},
		{Node: "node2", Kind: engine.RecPeer, Text: "node1 is dead"},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		d.Record(recs[i%len(recs)])
	}
	b.StopTimer()
	b.ReportMetric(float64(d.Stats()[0].Dropped), "dropped")
}
