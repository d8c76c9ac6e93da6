package redisroute

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipe sends the commands of concurrent callers to Redis together: the
// commands queued while a round trip is under way go in the next
// pipeline, in one write and one read. Alone, a command goes at once;
// under load, a thousand callers cost a few round trips instead of a
// thousand (the same idea as the store's group commit). Commands of one
// caller keep their order, since each call waits for its reply.
type pipe struct {
	client redis.UniversalClient
	// calls groups the commands into pipelines, one under way at a time
	// and at most maxPipeline commands each, so one large batch does not
	// hold up everything behind it.
	calls coalescer[*pipeCall]
}

type pipeCall struct {
	cmd  redis.Cmder
	done chan struct{}
}

// maxPipeline bounds the commands of one round trip.
const maxPipeline = 512

// pipeTimeout bounds one round trip when the client sets no timeouts of
// its own: a caller's context is not the batch's, which serves many.
const pipeTimeout = 30 * time.Second

func newPipe(client redis.UniversalClient) *pipe {
	p := &pipe{client: client}
	p.calls = coalescer[*pipeCall]{max: maxPipeline, inFlight: 1, run: p.exec}
	return p
}

// do runs cmd in the next pipeline and returns its error once its reply
// is in. A call whose context ends first returns at once; its command may
// still run, and cmd then stays the pipe's: read it only after a nil
// error.
func (p *pipe) do(ctx context.Context, cmd redis.Cmder) error {
	c := &pipeCall{cmd: cmd, done: make(chan struct{})}
	p.calls.add(c)
	select {
	case <-c.done:
		return cmd.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipe) exec(batch []*pipeCall) {
	ctx, cancel := context.WithTimeout(context.Background(), pipeTimeout)
	defer cancel()
	if len(batch) == 1 {
		_ = p.client.Process(ctx, batch[0].cmd)
	} else {
		pl := p.client.Pipeline()
		for _, c := range batch {
			_ = pl.Process(ctx, c.cmd)
		}
		// Each command carries its own error; Exec's is the first of them.
		_, _ = pl.Exec(ctx)
	}
	for _, c := range batch {
		close(c.done)
	}
}
