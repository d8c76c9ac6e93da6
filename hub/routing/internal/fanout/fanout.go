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
type Sub struct {
	ctx    context.Context
	fn     func([]byte)
	log    *slog.Logger
	topic  string
	queue  chan []byte
	done   chan struct{}
	once   sync.Once
	exited chan struct{}
}

// Start runs fn for each delivered payload until Stop or until ctx ends.
// Both are checked before every call, so once cancel or ctx's cancel has
// returned, fn sees no further message.
func Start(ctx context.Context, topic string, fn func([]byte), log *slog.Logger) *Sub {
	s := &Sub{
		ctx:    ctx,
		fn:     fn,
		log:    log,
		topic:  topic,
		queue:  make(chan []byte, QueueLen),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go s.run()
	return s
}

// Deliver queues a copy of p without blocking, so neither the publisher
// nor another subscriber sees what a handler does to its payload. It
// reports false when p was dropped because the subscriber is stopped or
// too far behind.
func (s *Sub) Deliver(p []byte) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.queue <- bytes.Clone(p):
		return true
	default:
		s.log.Warn("bus subscriber too slow, message dropped", "topic", s.topic)
		return false
	}
}

// Stop ends delivery; queued messages are discarded. It does not wait for
// a running handler, so a handler may call its own cancel.
func (s *Sub) Stop() {
	s.once.Do(func() { close(s.done) })
}

// Done is closed once the delivery goroutine has exited.
func (s *Sub) Done() <-chan struct{} { return s.exited }

func (s *Sub) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.done:
			return
		case <-s.ctx.Done():
			return
		case p := <-s.queue:
			// A stop that raced with a queued message wins: after cancel the
			// handler must not see new messages.
			select {
			case <-s.done:
				return
			default:
			}
			if s.ctx.Err() != nil {
				return
			}
			s.call(p)
		}
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
