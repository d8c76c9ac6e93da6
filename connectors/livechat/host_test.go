package livechat

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// testHost is a faithful in-memory connectors.Host: OpenThread is
// race-safe (concurrent callers for one key meet on one conversation),
// Deliver deduplicates on (channel, external id) and threads by
// conversation id, then thread key, History pages by message id. Hooks let
// tests block Deliver or force OpenThread callers to overlap.
type testHost struct {
	mu       sync.Mutex
	nextConv int64
	nextMsg  int64
	convs    map[int64]*testConv
	open     map[string]int64 // channel/thread key -> open conversation
	msgs     []*testMsg       // in server receipt order
	byExt    map[string]*testMsg
	updates  []connectors.DeliveryUpdate
	returned map[string]bool // external ids whose Deliver has returned

	signals chan connectors.Signal // buffered; Signal never blocks on it

	// openBarrier, when set, holds each OpenThread caller until that many
	// callers are inside OpenThread at once.
	openBarrier *barrier
	// deliverEntered/deliverGate, when set, make Deliver announce itself
	// and wait for the test before committing.
	deliverEntered chan connectors.Inbound
	deliverGate    chan struct{}
	// deliverFail makes the next n Deliver calls fail without storing.
	deliverFail atomic.Int32
}

type testConv struct {
	id, number int64
	channelID  string
	key        string
	closed     bool
	contact    connectors.Identity
}

type testMsg struct {
	conv int64
	item connectors.HistoryItem
	in   connectors.Inbound
}

func newTestHost() *testHost {
	return &testHost{
		convs:    map[int64]*testConv{},
		open:     map[string]int64{},
		byExt:    map[string]*testMsg{},
		returned: map[string]bool{},
		signals:  make(chan connectors.Signal, 256),
	}
}

// barrier releases its callers once n of them are waiting.
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	release chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.release)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *testHost) OpenThread(ctx context.Context, t connectors.ThreadOpen) (connectors.Thread, error) {
	if h.openBarrier != nil {
		if err := h.openBarrier.wait(ctx); err != nil {
			return connectors.Thread{}, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, created := h.openLocked(t.ChannelID, t.ThreadKey, t.Contact)
	return connectors.Thread{ConversationID: c.id, TicketNumber: c.number, Created: created}, nil
}

func (h *testHost) openLocked(channelID, key string, contact connectors.Identity) (*testConv, bool) {
	if id, ok := h.open[channelID+"/"+key]; ok && !h.convs[id].closed {
		c := h.convs[id]
		if contact.DisplayName != "" {
			c.contact.DisplayName = contact.DisplayName
		}
		if contact.Email != "" {
			c.contact.Email = contact.Email
		}
		return c, false
	}
	h.nextConv++
	c := &testConv{id: h.nextConv, number: 1000 + h.nextConv, channelID: channelID, key: key, contact: contact}
	h.convs[c.id] = c
	h.open[channelID+"/"+key] = c.id
	return c, true
}

var errDeliverFailed = errors.New("testhost: injected commit failure")

func (h *testHost) Deliver(ctx context.Context, in connectors.Inbound) (connectors.Receipt, error) {
	if h.deliverEntered != nil {
		select {
		case h.deliverEntered <- in:
		case <-ctx.Done():
			return connectors.Receipt{}, ctx.Err()
		}
	}
	if h.deliverGate != nil {
		select {
		case <-h.deliverGate:
		case <-ctx.Done():
			return connectors.Receipt{}, ctx.Err()
		}
	}
	if h.deliverFail.Add(-1) >= 0 {
		return connectors.Receipt{}, errDeliverFailed
	}
	h.deliverFail.Store(0)
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() { h.returned[in.ExternalID] = true }()
	if m := h.byExt[in.ChannelID+"/"+in.ExternalID]; m != nil {
		c := h.convs[m.conv]
		return connectors.Receipt{ConversationID: c.id, TicketNumber: c.number, MessageID: m.item.ID, Duplicate: true}, nil
	}
	var c *testConv
	if cv := h.convs[in.ConversationID]; cv != nil && !cv.closed && cv.channelID == in.ChannelID {
		c = cv
	} else {
		c, _ = h.openLocked(in.ChannelID, in.ThreadKey, in.Sender)
	}
	h.nextMsg++
	m := &testMsg{conv: c.id, in: in, item: connectors.HistoryItem{
		ID: h.nextMsg, Direction: "in", Text: in.Text, ExternalID: in.ExternalID, CreatedAt: time.Now(),
	}}
	h.msgs = append(h.msgs, m)
	h.byExt[in.ChannelID+"/"+in.ExternalID] = m
	return connectors.Receipt{ConversationID: c.id, TicketNumber: c.number, MessageID: m.item.ID}, nil
}

// addReply stores an agent reply as the hub would before calling Send.
func (h *testHost) addReply(conv int64, text, author string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextMsg++
	h.msgs = append(h.msgs, &testMsg{conv: conv, item: connectors.HistoryItem{
		ID: h.nextMsg, Direction: "out", Text: text, AuthorName: author, State: connectors.DeliverySent, CreatedAt: time.Now(),
	}})
	return h.nextMsg
}

func (h *testHost) UpdateDelivery(ctx context.Context, u connectors.DeliveryUpdate) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, u)
	return nil
}

func (h *testHost) History(ctx context.Context, channelID string, conv int64, after int64, limit int) ([]connectors.HistoryItem, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []connectors.HistoryItem
	for _, m := range h.msgs {
		if m.conv == conv && m.item.ID > after {
			out = append(out, m.item)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (h *testHost) Signal(ctx context.Context, s connectors.Signal) error {
	select {
	case h.signals <- s:
	default:
	}
	return nil
}

func (h *testHost) closeConv(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.convs[id].closed = true
}

// texts returns the stored texts of a conversation in receipt order.
func (h *testHost) texts(conv int64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		if m.conv == conv {
			out = append(out, m.item.Text)
		}
	}
	return out
}

func (h *testHost) openConvs(key string) []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for _, c := range h.convs {
		if c.key == key && !c.closed {
			out = append(out, c.id)
		}
	}
	return out
}

func (h *testHost) hasReturned(ext string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.returned[ext]
}

func (h *testHost) LoadState(context.Context, string) (string, error) {
	return "", connectors.ErrUnsupported
}

func (h *testHost) SaveState(context.Context, string, string) error {
	return connectors.ErrUnsupported
}

var _ connectors.Host = (*testHost)(nil)

// memPubSub is an in-memory connectors.PubSub shaped like Redis pub/sub
// as go-redis offers it: one receiving goroutine delivers every message,
// in publish order, asynchronously to Publish, to the subscribers of its
// topic at delivery time.
type memPubSub struct {
	mu      sync.Mutex
	subs    map[string]map[*memSub]struct{}
	queue   []memMsg
	wake    chan struct{}
	started bool
	// failPublish makes Publish fail (a Redis outage).
	failPublish atomic.Bool
}

type memSub struct{ fn func([]byte) }

type memMsg struct {
	topic   string
	payload []byte
}

func newMemPubSub() *memPubSub {
	return &memPubSub{subs: map[string]map[*memSub]struct{}{}, wake: make(chan struct{}, 1)}
}

var errPubSubDown = errors.New("mempubsub: down")

func (p *memPubSub) Publish(ctx context.Context, topic string, payload []byte) error {
	if p.failPublish.Load() {
		return errPubSubDown
	}
	p.mu.Lock()
	p.queue = append(p.queue, memMsg{topic, append([]byte(nil), payload...)})
	if !p.started {
		// Lives as long as the test binary, like a Redis connection.
		p.started = true
		go p.deliver()
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

func (p *memPubSub) deliver() {
	for range p.wake {
		for {
			p.mu.Lock()
			if len(p.queue) == 0 {
				p.mu.Unlock()
				break
			}
			m := p.queue[0]
			p.queue = p.queue[1:]
			fns := make([]func([]byte), 0, len(p.subs[m.topic]))
			for s := range p.subs[m.topic] {
				fns = append(fns, s.fn)
			}
			p.mu.Unlock()
			for _, fn := range fns {
				fn(m.payload)
			}
		}
	}
}

func (p *memPubSub) Subscribe(ctx context.Context, topic string, fn func([]byte)) (func(), error) {
	s := &memSub{fn: fn}
	p.mu.Lock()
	if p.subs[topic] == nil {
		p.subs[topic] = map[*memSub]struct{}{}
	}
	p.subs[topic][s] = struct{}{}
	p.mu.Unlock()
	var (
		once   sync.Once
		stopMu sync.Mutex
		stop   func() bool
	)
	cancel := func() {
		once.Do(func() {
			p.mu.Lock()
			delete(p.subs[topic], s)
			if len(p.subs[topic]) == 0 {
				delete(p.subs, topic)
			}
			p.mu.Unlock()
		})
		stopMu.Lock()
		defer stopMu.Unlock()
		if stop != nil {
			stop() // release the AfterFunc of a long-lived ctx
		}
	}
	stopMu.Lock()
	stop = context.AfterFunc(ctx, cancel)
	stopMu.Unlock()
	return cancel, nil
}

func (p *memPubSub) subscribers(topic string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs[topic])
}

var _ connectors.PubSub = (*memPubSub)(nil)
