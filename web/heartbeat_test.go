package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/heartbeat"
)

// hbBackend is a fake backend that also reports heartbeat endpoint stats.
type hbBackend struct {
	*fakeBackend
	stats []agent.HeartbeatStats
}

func (h *hbBackend) HeartbeatStats() []agent.HeartbeatStats { return h.stats }

// families scrapes /metrics and parses it with the Prometheus text parser.
func families(t *testing.T, b *browser, bearer string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := b.call("GET", "/metrics", bearer, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return fams
}

// metricWith returns the family's metric carrying every label given as
// name=value pairs.
func metricWith(f *dto.MetricFamily, labels ...string) *dto.Metric {
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestHeartbeatMetricsAndOverviewRTT(t *testing.T) {
	fb := &hbBackend{fakeBackend: newFakeBackend(t)}
	buckets := make([]uint64, len(heartbeat.RTTBuckets))
	for i, le := range heartbeat.RTTBuckets {
		if le >= 0.0005 { // two samples: 0.3 ms and 0.4 ms
			buckets[i] = 2
		}
	}
	fb.stats = []agent.HeartbeatStats{
		{Path: "lan", Accepted: 1200, SendErrors: 1, Rejected: map[string]uint64{"bad_mac": 3, "replay": 0},
			RTT: []agent.PeerRTT{{Peer: "node2", LastSeconds: 0.0004, SmoothedSeconds: 0.00025, Count: 2, SumSeconds: 0.0007, Buckets: buckets}}},
		{Path: "backnet", Accepted: 5},
	}
	srv, err := New(fb, Options{TokenFile: writeTokenFile(t, 0o600), LoginFailDelay: time.Millisecond, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	b := newBrowser(t, ts.URL)

	fams := families(t, b, readToken)
	h := metricWith(fams["harules_heartbeat_rtt_seconds"], "peer", "node2", "path", "lan").GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 0.0007 {
		t.Fatalf("rtt histogram count %d sum %g, want 2 and 0.0007", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, bk := range h.GetBucket() {
		want := uint64(0)
		if bk.GetUpperBound() >= 0.0005 {
			want = 2
		}
		if bk.GetCumulativeCount() != want {
			t.Errorf("bucket le=%g: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
		}
	}
	for _, c := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"harules_heartbeat_rtt_smoothed_seconds", []string{"peer", "node2", "path", "lan"}, 0.00025},
		{"harules_heartbeats_received_total", []string{"path", "lan"}, 1200},
		{"harules_heartbeats_received_total", []string{"path", "backnet"}, 5},
		{"harules_heartbeats_rejected_total", []string{"path", "lan", "reason", "bad_mac"}, 3},
		{"harules_heartbeat_send_errors_total", []string{"path", "lan"}, 1},
	} {
		m := metricWith(fams[c.family], c.labels...)
		if m == nil {
			t.Errorf("%s%v missing", c.family, c.labels)
			continue
		}
		if got := m.GetGauge().GetValue() + m.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.family, c.labels, got, c.want)
		}
	}
	if metricWith(fams["harules_heartbeat_rtt_seconds"], "path", "backnet") != nil {
		t.Error("an RTT histogram for a path without samples")
	}

	b.login(readToken)
	_, body := b.get("/")
	if !strings.Contains(body, "<td>250 µs</td>") {
		t.Errorf("overview does not show lan's smoothed RTT (250 µs):\n%s", body)
	}
}

// checkRTTMeasured asserts that a real agent's console exports a measured
// RTT to peer on path: it proves the echoes cross the wire between agents.
func checkRTTMeasured(t *testing.T, b *browser, bearer, peer, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fams := families(t, b, bearer)
		h := metricWith(fams["harules_heartbeat_rtt_seconds"], "peer", peer, "path", path).GetHistogram()
		if n := h.GetSampleCount(); n > 0 {
			mean := h.GetSampleSum() / float64(n)
			if mean <= 0 || mean > 1 {
				t.Fatalf("mean heartbeat RTT to %s on %s is %gs over %d samples: not a plausible veth round trip", peer, path, mean, n)
			}
			t.Logf("heartbeat RTT to %s on %s: %d samples, mean %.0f µs", peer, path, n, mean*1e6)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat RTT measured to %s on %s after 20 s", peer, path)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
