package hub

import (
	"context"
	"sync"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// maxBatch bounds one group commit.
const maxBatch = 128

// batcher is the application-level group commit: concurrent inbound
// messages that arrive while a transaction is committing are stored
// together in the next one. Under load this turns N commits into one;
// alone, a message waits for nobody (a batch is whatever is queued).
type batcher struct {
	st   *store.Store
	reqs chan *ingestReq
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
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
func newBatcher(st *store.Store, workers int) *batcher {
	b := &batcher{st: st, reqs: make(chan *ingestReq), stop: make(chan struct{})}
	for range workers {
		b.wg.Add(1)
		go b.work()
	}
	return b
}

func (b *batcher) ingest(ctx context.Context, rec *store.InboundRecord) (*store.IngestResult, error) {
	r := &ingestReq{ctx: ctx, rec: rec, done: make(chan struct{})}
	select {
	case b.reqs <- r:
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

func (b *batcher) work() {
	defer b.wg.Done()
	for {
		var first *ingestReq
		select {
		case first = <-b.reqs:
		case <-b.stop:
			return
		}
		batch := []*ingestReq{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
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
