package hub

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// maxBatch bounds one group commit.
const maxBatch = 128

// batcher is the application-level group commit: concurrent inbound
// messages that arrive while a transaction is committing are stored
// together in the next one. Under load this turns N commits into one;
// alone, a message waits for nobody (a batch is whatever is queued).
//
// Workers are shards: every message of one conversation goes through the
// same worker, so messages of a conversation are stored (and numbered) in
// the order they were received (C23), while different conversations
// commit in parallel.
type batcher struct {
	st     *store.Store
	size   prometheus.Histogram
	shards []chan *ingestReq
	seed   maphash.Seed
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

type ingestReq struct {
	ctx  context.Context
	rec  *store.InboundRecord
	res  *store.IngestResult
	err  error
	done chan struct{}
}

// newBatcher starts workers: parallel transactions on Postgres, one on
// SQLite (which has one writer anyway).
func newBatcher(st *store.Store, workers int, size prometheus.Histogram) *batcher {
	b := &batcher{st: st, size: size, seed: maphash.MakeSeed(), stop: make(chan struct{})}
	for range workers {
		ch := make(chan *ingestReq)
		b.shards = append(b.shards, ch)
		b.wg.Add(1)
		go b.work(ch)
	}
	return b
}

// shard picks the worker of a record's conversation: its thread key or
// conversation id, else its sender (header-threaded channels).
func (b *batcher) shard(rec *store.InboundRecord) chan *ingestReq {
	key := rec.ChannelID + "\x00"
	switch {
	case rec.ThreadKey != "":
		key += rec.ThreadKey
	case rec.ConversationID != 0:
		key += strconv.FormatInt(rec.ConversationID, 10)
	default:
		key += rec.Contact.ExternalID
	}
	return b.shards[maphash.String(b.seed, key)%uint64(len(b.shards))]
}

func (b *batcher) ingest(ctx context.Context, rec *store.InboundRecord) (*store.IngestResult, error) {
	r := &ingestReq{ctx: ctx, rec: rec, done: make(chan struct{})}
	select {
	case b.shard(rec) <- r:
	case <-b.stop:
		return b.st.Ingest(ctx, rec)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once handed over, the request is stored or fails as a whole; waiting
	// for it (rather than for ctx) keeps "returned nil" equal to
	// "committed".
	<-r.done
	return r.res, r.err
}

func (b *batcher) work(reqs chan *ingestReq) {
	defer b.wg.Done()
	for {
		var first *ingestReq
		select {
		case first = <-reqs:
		case <-b.stop:
			return
		}
		batch := []*ingestReq{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.size.Observe(float64(len(batch)))
		recs := make([]*store.InboundRecord, len(batch))
		for i, r := range batch {
			recs[i] = r.rec
		}
		// The batch outlives any one caller's context: it commits for all.
		out := b.st.IngestBatch(context.WithoutCancel(first.ctx), recs)
		for i, r := range batch {
			r.res, r.err = out[i].Result, out[i].Err
			close(r.done)
		}
	}
}

func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}
