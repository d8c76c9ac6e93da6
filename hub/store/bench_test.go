package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/loadtest"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// BenchmarkIngestBatchPostgres measures the store alone on the message
// path's write: live-chat messages to 1,000 open conversations, stored by
// two workers in group commits of 128 (as the hub's batcher does under
// load), with no sockets, routing or notifications. It is the ceiling the
// end-to-end figure (cmd/switchboard, BenchmarkVisitorToAgent) can
// approach; beside it, the raw pgx single-row INSERT commits/s of the same
// run.
//
//	go test -run '^$' -bench IngestBatchPostgres -benchtime 1x ./hub/store/
func BenchmarkIngestBatchPostgres(b *testing.B) {
	const conversations, batch, workers = 1000, 128, 2
	for range b.N {
		ctx := context.Background()
		dsn := testenv.Postgres(b)
		limit, err := loadtest.PgxInsertCommits(ctx, dsn, 16, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		s, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.CreateInstance(ctx, &store.Instance{ID: "bench", Name: "Bench", TimeZone: "UTC"}); err != nil {
			b.Fatal(err)
		}
		if err := s.CreateChannel(ctx, &store.Channel{ID: "bench-chat", InstanceID: "bench", Kind: "livechat", Name: "Chat", Enabled: true}); err != nil {
			b.Fatal(err)
		}
		record := func(conv int, convID int64, seq int64) *store.InboundRecord {
			visitor := fmt.Sprintf("v%04d", conv)
			return &store.InboundRecord{
				InstanceID: "bench", ChannelID: "bench-chat", ThreadKey: visitor, ConversationID: convID,
				ExternalID: fmt.Sprintf("lc:%s:%d", visitor, seq), Contact: store.ContactInput{ExternalID: visitor},
				Text: fmt.Sprintf("%s-%d a visitor message of ordinary length", visitor, seq),
			}
		}
		ids := make([]int64, conversations)
		for i := range conversations {
			t, _, err := s.OpenThread(ctx, record(i, 0, 0))
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = t.ID
		}
		// Warm up (every conversation gets its first message), then give
		// the planner statistics, as a database in service has.
		var seq atomic.Int64
		run := func(d time.Duration, each int) int64 {
			var n atomic.Int64
			deadline := time.Now().Add(d)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for k := 0; time.Now().Before(deadline); k++ {
						recs := make([]*store.InboundRecord, 0, batch)
						for j := range batch {
							// Each worker has its own conversations, as
							// the batcher's shards do.
							c := (w + workers*(k*batch+j)) % conversations
							recs = append(recs, record(c, ids[c], seq.Add(1)))
						}
						for _, res := range s.IngestBatch(ctx, recs) {
							if res.Err != nil {
								b.Error(res.Err)
								return
							}
						}
						n.Add(batch)
						if each > 0 && k+1 >= each {
							return
						}
					}
				})
			}
			wg.Wait()
			return n.Load()
		}
		run(time.Minute, conversations/batch/workers+1)
		if _, err := s.DB.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
		self0, pg0 := loadtest.ProcessCPU("self"), loadtest.ProcessCPU("postgres")
		start := time.Now()
		n := run(5*time.Second, 0)
		rate := float64(n) / time.Since(start).Seconds()
		selfUs := float64((loadtest.ProcessCPU("self") - self0).Microseconds()) / float64(n)
		pgUs := float64((loadtest.ProcessCPU("postgres") - pg0).Microseconds()) / float64(n)
		b.ReportMetric(rate, "msgs/s")
		b.ReportMetric(limit, "pgx-commits/s")
		b.ReportMetric(rate/limit, "ratio")
		b.ReportMetric(selfUs, "go-cpu-µs/msg")
		b.ReportMetric(pgUs, "postgres-cpu-µs/msg")
		b.Logf("store alone: %.0f msgs/s in batches of %d from %d workers (%.2f× the %.0f raw pgx commits/s limit); CPU per message: %.0f µs in Go (bun, pgx), %.0f µs in Postgres",
			rate, batch, workers, rate/limit, limit, selfUs, pgUs)
	}
}
