package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	inbound    *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	outbound   *prometheus.CounterVec
	ingestSecs prometheus.Histogram
	batchSize  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_inbound_messages_total", Help: "Inbound messages stored, by channel kind.",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_inbound_duplicates_total", Help: "Inbound redeliveries absorbed by deduplication.",
		}, []string{"kind"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_outbound_attempts_total", Help: "Outbound send attempts by channel kind and outcome.",
		}, []string{"kind", "outcome"}),
		ingestSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchboard_ingest_seconds", Help: "Time to store one inbound message (commit included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchboard_ingest_batch_messages", Help: "Inbound messages stored per transaction (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.inbound, m.duplicates, m.outbound, m.ingestSecs, m.batchSize)
	}
	return m
}
