package redisroute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/internal/fanout"
)

// ErrBusClosed is returned by Publish and Subscribe after Close.
var ErrBusClosed = errors.New("redisroute: bus closed")

// BusConfig configures a Bus.
type BusConfig struct {
	// Prefix namespaces channels: a topic is published on Prefix + "bus:"
	// + topic. Default DefaultPrefix.
	Prefix string
	// Logger receives connection trouble and dropped messages. Default
	// slog.Default().
	Logger *slog.Logger
}

// Bus is the routing.Bus on Redis pub/sub: a node publishes, every node
// subscribed to the topic delivers (issue 2: "a Redis pub/sub
// notification reaches whichever node holds the agent's websocket").
//
// All subscriptions of a Bus share one pub/sub connection, so a node with
// thousands of agent topics holds one connection, not thousands. Redis
// pub/sub is at most once, as the Bus contract allows: a message
// published while the connection is being re-established is lost, and
// clients fill the gap from the database.
type Bus struct {
	client redis.UniversalClient
	pipe   *pipe
	prefix string
	log    *slog.Logger
	ps     *redis.PubSub
	ctx    context.Context // lives until Close
	stop   context.CancelFunc
	reader chan struct{} // closed when the receive loop exits

	mu       sync.Mutex
	closed   bool
	topics   map[string]map[*fanout.Sub]struct{} // by channel
	barriers map[string]chan struct{}            // by ping payload
	nextID   uint64
}

// NewBus returns a Bus on client and starts its receive loop. The client
// stays the caller's to close, after the Bus.
func NewBus(client redis.UniversalClient, cfg BusConfig) *Bus {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Bus{
		client:   client,
		pipe:     newPipe(client),
		prefix:   cfg.Prefix + "bus:",
		log:      cfg.Logger.With("component", "redisroute.bus"),
		ps:       client.Subscribe(ctx),
		ctx:      ctx,
		stop:     stop,
		reader:   make(chan struct{}),
		topics:   make(map[string]map[*fanout.Sub]struct{}),
		barriers: make(map[string]chan struct{}),
	}
	go b.receive()
	return b
}

// Publish implements routing.Bus.
func (b *Bus) Publish(ctx context.Context, topic string, payload []byte) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("publish %q: %w", topic, ErrBusClosed)
	}
	if err := b.pipe.do(ctx, redis.NewIntCmd(ctx, "publish", b.prefix+topic, payload)); err != nil {
		return fmt.Errorf("redisroute: publish %q: %w", topic, err)
	}
	return nil
}

// Subscribe implements routing.Bus. It returns once Redis has confirmed
// the subscription, so a message published after it returns is delivered.
func (b *Bus) Subscribe(ctx context.Context, topic string, fn func(payload []byte)) (func(), error) {
	channel := b.prefix + topic
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("subscribe %q: %w", topic, ErrBusClosed)
	}
	s := fanout.Start(ctx, topic, fn, b.log)
	subs := b.topics[channel]
	if subs == nil {
		// Commands go out under the lock, so SUBSCRIBE and UNSUBSCRIBE of
		// one channel reach Redis in the order the map changed.
		if err := b.ps.Subscribe(ctx, channel); err != nil {
			b.mu.Unlock()
			s.Stop()
			return nil, fmt.Errorf("redisroute: subscribe %q: %w", topic, err)
		}
		subs = make(map[*fanout.Sub]struct{})
		b.topics[channel] = subs
	}
	subs[s] = struct{}{}
	b.mu.Unlock()

	var once sync.Once
	cancel := func() { once.Do(func() { b.unsubscribe(channel, s) }) }
	if err := b.barrier(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("redisroute: subscribe %q: %w", topic, err)
	}
	stop := context.AfterFunc(ctx, cancel)
	return func() { stop(); cancel() }, nil
}

// barrier waits until Redis has processed every command sent on the
// pub/sub connection so far. Redis answers a connection's commands in
// order, so the PONG to a PING sent now comes after the confirmation of
// any SUBSCRIBE sent before. A reconnect in between re-subscribes first,
// so the ping is re-sent if its answer is lost.
func (b *Bus) barrier(ctx context.Context) error {
	b.mu.Lock()
	b.nextID++
	token := "sb-barrier-" + strconv.FormatUint(b.nextID, 10)
	done := make(chan struct{})
	b.barriers[token] = done
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.barriers, token)
		b.mu.Unlock()
	}()

	const resend = time.Second
	timer := time.NewTimer(0) // first ping at once
	defer timer.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return ErrBusClosed
		case <-timer.C:
			if err := b.ps.Ping(ctx, token); err != nil {
				b.log.Warn("pub/sub ping failed, retrying", "err", err)
			}
			timer.Reset(resend)
		}
	}
}

func (b *Bus) unsubscribe(channel string, s *fanout.Sub) {
	s.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := b.topics[channel]
	if _, ok := subs[s]; !ok {
		return
	}
	delete(subs, s)
	if len(subs) > 0 {
		return
	}
	delete(b.topics, channel)
	if b.closed {
		return
	}
	if err := b.ps.Unsubscribe(b.ctx, channel); err != nil {
		// The subscription lingers on the connection; its messages find no
		// subscriber and are dropped. A reconnect clears it.
		b.log.Warn("pub/sub unsubscribe failed", "channel", channel, "err", err)
	}
}

// receive is the one reader of the pub/sub connection.
func (b *Bus) receive() {
	defer close(b.reader)
	// Reading with a timeout lets the loop ping an idle connection, which
	// surfaces a silently dead one and makes go-redis reconnect it.
	const idle = 30 * time.Second
	backoff := 50 * time.Millisecond
	for {
		msg, err := b.ps.ReceiveTimeout(b.ctx, idle)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if err := b.ps.Ping(b.ctx); err != nil {
					b.log.Warn("pub/sub ping failed", "err", err)
				}
				continue
			}
			b.log.Warn("pub/sub receive failed, reconnecting", "err", err, "backoff", backoff)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(m.Channel, []byte(m.Payload))
		case *redis.Pong:
			b.mu.Lock()
			if done, ok := b.barriers[m.Payload]; ok {
				close(done)
				delete(b.barriers, m.Payload)
			}
			b.mu.Unlock()
		}
	}
}

func (b *Bus) deliver(channel string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.topics[channel] {
		s.Deliver(payload)
	}
}

// Close implements routing.Bus: every subscription ends and the pub/sub
// connection is closed. The client is left open.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, subs := range b.topics {
		for s := range subs {
			s.Stop()
		}
	}
	b.topics = nil
	b.mu.Unlock()

	b.stop()
	err := b.ps.Close()
	<-b.reader
	if err != nil {
		return fmt.Errorf("redisroute: close bus: %w", err)
	}
	return nil
}

var _ routing.Bus = (*Bus)(nil)
