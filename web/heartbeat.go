package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/heartbeat"
)

// heartbeatSource is implemented by backends that can report their
// heartbeat endpoints' counters and measured round-trip times
// (*agent.Agent does; the status polled for the pages does not carry them,
// as they change with every heartbeat).
type heartbeatSource interface {
	HeartbeatStats() []agent.HeartbeatStats
}

var _ heartbeatSource = (*agent.Agent)(nil)

var (
	descRTT         = prometheus.NewDesc("harules_heartbeat_rtt_seconds", "Round-trip time of heartbeats to the peer on the path, measured from the peer's echoes.", []string{"peer", "path"}, nil)
	descRTTSmoothed = prometheus.NewDesc("harules_heartbeat_rtt_smoothed_seconds", "Smoothed round-trip time to the peer on the path (moving average, weight 1/8 per heartbeat).", []string{"peer", "path"}, nil)
	descHBAccepted  = prometheus.NewDesc("harules_heartbeats_received_total", "Heartbeats accepted on the path (authenticated, not replayed).", []string{"path"}, nil)
	descHBRejected  = prometheus.NewDesc("harules_heartbeats_rejected_total", "Heartbeat datagrams dropped on the path, by reason (bad_mac, replay, spoofed_source, ...).", []string{"path", "reason"}, nil)
	descHBSendErr   = prometheus.NewDesc("harules_heartbeat_send_errors_total", "Heartbeats that could not be sent on the path.", []string{"path"}, nil)
)

// heartbeatCollector exports the endpoints' counters and RTT histograms
// at scrape time.
type heartbeatCollector struct{ src heartbeatSource }

func (heartbeatCollector) Describe(chan<- *prometheus.Desc) {}

func (c heartbeatCollector) Collect(ch chan<- prometheus.Metric) {
	for _, hs := range c.src.HeartbeatStats() {
		ch <- prometheus.MustNewConstMetric(descHBAccepted, prometheus.CounterValue, float64(hs.Accepted), hs.Path)
		ch <- prometheus.MustNewConstMetric(descHBSendErr, prometheus.CounterValue, float64(hs.SendErrors), hs.Path)
		for reason, n := range hs.Rejected {
			ch <- prometheus.MustNewConstMetric(descHBRejected, prometheus.CounterValue, float64(n), hs.Path, reason)
		}
		for _, r := range hs.RTT {
			buckets := make(map[float64]uint64, len(heartbeat.RTTBuckets))
			for i, le := range heartbeat.RTTBuckets {
				if i < len(r.Buckets) {
					buckets[le] = r.Buckets[i]
				}
			}
			ch <- prometheus.MustNewConstHistogram(descRTT, r.Count, r.SumSeconds, buckets, r.Peer, hs.Path)
			ch <- prometheus.MustNewConstMetric(descRTTSmoothed, prometheus.GaugeValue, r.SmoothedSeconds, r.Peer, hs.Path)
		}
	}
}

// overview builds the overview of st and adds the measured RTT of each
// path when the backend reports it.
func (s *Server) overview(st *agent.Status, canOperate bool) overview {
	v := newOverview(st, canOperate)
	src, ok := s.b.(heartbeatSource)
	if !ok {
		v.withPicture(st, nil)
		return v
	}
	heartbeats := src.HeartbeatStats()
	v.withPicture(st, heartbeats)
	rtt := map[string]float64{}
	for _, hs := range heartbeats {
		for _, r := range hs.RTT {
			rtt[r.Peer+"/"+hs.Path] = r.SmoothedSeconds
		}
	}
	for i := range v.Paths {
		if secs, ok := rtt[v.Paths[i].Peer+"/"+v.Paths[i].Path]; ok {
			v.Paths[i].RTT = agent.FormatRTT(secs)
		}
	}
	return v
}
