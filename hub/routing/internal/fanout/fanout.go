// Package fanout delivers bus messages to one subscriber from its own
// goroutine, so a slow handler delays only itself. Both Bus
// implementations use it, which keeps their delivery behaviour identical.
package fanout

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// QueueLen is how many messages may wait for a subscriber before new ones
// are dropped; the Bus promises at most once, and a bounded queue is what
// keeps one stuck handler from growing the node's memory without limit.
const QueueLen = 1024

// Sub is one subscriber's delivery queue.
//
// An idle subscriber costs a few words: the queue grows only while
// messages wait, and the delivery goroutine runs only while there is
// something to deliver. Live chat holds one subscription per open
// conversation, so this is what keeps an idle visitor socket small.
type Sub struct {
	ctx   context.Context
	fn    func([]byte)
	log   *slog.Logger
	topic string

	mu      sync.Mutex
	queue   [][]byte
	running bool // a goroutine is draining the queue
	stopped bool
}

// Start returns a subscriber that runs fn for each delivered payload
// until Stop or until ctx ends. Both are checked before every call, so
// once cancel or ctx's cancel has returned, fn sees no further message.
func Start(ctx context.Context, topic string, fn func([]byte), log *slog.Logger) *Sub {
	return &Sub{ctx: ctx, fn: fn, log: log, topic: topic}
}

// Deliver queues a copy of p without blocking, so neither the publisher
// nor another subscriber sees what a handler does to its payload. It
// reports false when p was dropped because the subscriber is stopped or
// too far behind.
func (s *Sub) Deliver(p []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.ctx.Err() != nil {
		return false
	}
	if len(s.queue) >= QueueLen {
		s.log.Warn("bus subscriber too slow, message dropped", "topic", s.topic)
		return false
	}
	s.queue = append(s.queue, bytes.Clone(p))
	if !s.running {
		// One drainer at a time keeps delivery in publish order.
		s.running = true
		go s.drain()
	}
	return true
}

// Stop ends delivery; queued messages are discarded. It does not wait for
// a running handler, so a handler may call its own cancel.
func (s *Sub) Stop() {
	s.mu.Lock()
	s.stopped, s.queue = true, nil
	s.mu.Unlock()
}

func (s *Sub) drain() {
	for {
		s.mu.Lock()
		// A stop that raced with a queued message wins: after cancel the
		// handler must not see new messages.
		if s.stopped || s.ctx.Err() != nil || len(s.queue) == 0 {
			s.running = false
			s.queue = nil // give the backing array back while idle
			s.mu.Unlock()
			return
		}
		p := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.call(p)
	}
}

// call shields the node from a panicking handler: the bus goroutine is
// ours, so the panic would otherwise take the whole hub down.
func (s *Sub) call(p []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("bus handler panicked", "topic", s.topic, "panic", r)
		}
	}()
	s.fn(p)
}
