package memroute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/internal/fanout"
)

// ErrBusClosed is returned by Publish and Subscribe after Close.
var ErrBusClosed = errors.New("memroute: bus closed")

// Bus is the in-process routing.Bus: with a single node, publisher and
// socket holder are the same process. Each subscriber has its own bounded
// queue, so delivery order per publisher holds and a slow handler delays
// only itself; when a queue is full the message is dropped, as the Bus
// contract (at most once) allows.
type Bus struct {
	log    *slog.Logger
	mu     sync.Mutex
	closed bool
	topics map[string]map[*fanout.Sub]struct{}
}

// NewBus returns an empty Bus. Handler panics are logged to slog.Default.
func NewBus() *Bus {
	return &Bus{
		log:    slog.Default().With("component", "memroute.bus"),
		topics: make(map[string]map[*fanout.Sub]struct{}),
	}
}

// Publish implements routing.Bus.
func (b *Bus) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %q: %w", topic, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("publish %q: %w", topic, ErrBusClosed)
	}
	// Delivering under the lock keeps concurrent publishers from
	// interleaving one publisher's messages out of order; Deliver never
	// blocks.
	for s := range b.topics[topic] {
		s.Deliver(payload)
	}
	return nil
}

// Subscribe implements routing.Bus. Messages published after it returns
// are delivered.
func (b *Bus) Subscribe(ctx context.Context, topic string, fn func(payload []byte)) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", topic, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("subscribe %q: %w", topic, ErrBusClosed)
	}
	s := fanout.Start(ctx, topic, fn, b.log)
	subs := b.topics[topic]
	if subs == nil {
		subs = make(map[*fanout.Sub]struct{})
		b.topics[topic] = subs
	}
	subs[s] = struct{}{}

	var once sync.Once
	cancel := func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.topics[topic], s)
			if len(b.topics[topic]) == 0 {
				delete(b.topics, topic)
			}
			b.mu.Unlock()
			s.Stop()
		})
	}
	// context.AfterFunc ends the subscription with ctx without a goroutine
	// per subscription parked on ctx.Done.
	stop := context.AfterFunc(ctx, cancel)
	return func() { stop(); cancel() }, nil
}

// Close implements routing.Bus: every subscription ends.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, subs := range b.topics {
		for s := range subs {
			s.Stop()
		}
	}
	b.topics = nil
	return nil
}

var _ routing.Bus = (*Bus)(nil)
