package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/microcosm-cc/bluemonday"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Config holds the hub's tunables; zero values take the defaults noted.
type Config struct {
	// MaxTextBytes caps a stored message text (default 256 KiB); longer
	// text is cut and the message flagged, never dropped.
	MaxTextBytes int
	// MaxAttachmentBytes caps one attachment (default 25 MiB).
	MaxAttachmentBytes int64
	// OutboxInterval is how often the dispatcher looks for due items when
	// nothing wakes it (default 1s).
	OutboxInterval time.Duration
	// OutboxMaxAttempts is how many retryable failures a message gets
	// before the dead letter (default 10).
	OutboxMaxAttempts int
	// SweepInterval is how often routing expiries are processed
	// (default 1s).
	SweepInterval time.Duration
	// ChannelSyncInterval is how often a node compares the channels it
	// runs with the stored ones (default 30s), for changes it was not
	// told about: made with the command line, or while the bus was down.
	// Changes made through any node's admin API reach the others at once.
	ChannelSyncInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = 256 << 10
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = 25 << 20
	}
	if c.OutboxInterval <= 0 {
		c.OutboxInterval = time.Second
	}
	if c.OutboxMaxAttempts <= 0 {
		c.OutboxMaxAttempts = 10
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.ChannelSyncInterval <= 0 {
		c.ChannelSyncInterval = 30 * time.Second
	}
	return c
}

// Deps are the hub's collaborators.
type Deps struct {
	Store      *store.Store
	Router     routing.Router
	Bus        routing.Bus
	Blobs      blob.Store
	Connectors *connectors.Registry
	Logger     *slog.Logger
	// Metrics registers the hub's metrics; nil registers nowhere.
	Metrics prometheus.Registerer
}

// Hub is one node of the messaging gateway.
type Hub struct {
	cfg      Config
	store    *store.Store
	router   routing.Router
	bus      routing.Bus
	blobs    blob.Store
	registry *connectors.Registry
	log      *slog.Logger
	html     *bluemonday.Policy
	metrics  *metrics

	mu       sync.RWMutex
	channels map[string]*runningChannel

	kick chan struct{} // wakes the outbox dispatcher
	// syncKick wakes the channel sync (another node changed a channel);
	// failed holds each channel's configuration that last failed to
	// start, so the sync does not retry it until it changes.
	syncKick chan struct{}
	// lifecycle makes channel starts and stops one at a time.
	lifecycle sync.Mutex
	failedMu  sync.Mutex
	failed    map[string]failedChannel
	wg        sync.WaitGroup
	batch     *batcher // group commit of inbound messages, while started
}

// New builds a hub; it does no I/O.
func New(d Deps, cfg Config) (*Hub, error) {
	if d.Store == nil || d.Router == nil || d.Bus == nil || d.Blobs == nil || d.Connectors == nil {
		return nil, errors.New("hub: Store, Router, Bus, Blobs and Connectors are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		cfg:      cfg.withDefaults(),
		store:    d.Store,
		router:   d.Router,
		bus:      d.Bus,
		blobs:    d.Blobs,
		registry: d.Connectors,
		log:      d.Logger.With("component", "hub"),
		html:     newHTMLPolicy(),
		metrics:  newMetrics(d.Metrics),
		channels: map[string]*runningChannel{},
		kick:     make(chan struct{}, 1),
		syncKick: make(chan struct{}, 1),
		failed:   map[string]failedChannel{},
	}, nil
}

// Store exposes the hub's store to the packages built on the hub (gateway,
// admin).
func (h *Hub) Store() *store.Store { return h.store }

// Bus exposes the notification bus.
func (h *Hub) Bus() routing.Bus { return h.bus }

// Start starts every enabled channel, reconciles routing with the
// database, and runs the background loops (routing sweep, outbox) until
// ctx ends. Call Wait after cancelling ctx.
func (h *Hub) Start(ctx context.Context) error {
	workers := 1
	if h.store.Dialect() == "postgres" {
		workers = 2
	}
	h.batch = newBatcher(h.store, workers, h.metrics.batchSize)
	if err := h.StartChannels(ctx); err != nil {
		return err
	}
	if err := h.reconcile(ctx); err != nil {
		h.log.Warn("routing reconciliation incomplete", "err", err)
	}
	h.goLoop(ctx, "routing-sweep", h.cfg.SweepInterval, nil, h.sweep)
	h.goLoop(ctx, "outbox", h.cfg.OutboxInterval, h.kick, h.dispatch)
	if _, err := h.bus.Subscribe(ctx, channelsTopic, func([]byte) { h.wakeChannelSync() }); err != nil {
		// The periodic sync still brings other nodes' changes, later.
		h.log.Warn("subscribe to channel changes", "err", err)
	}
	h.goLoop(ctx, "channel-sync", h.cfg.ChannelSyncInterval, h.syncKick, h.syncChannels)
	return nil
}

// Wait waits for the background loops to end and stops the channels. The
// outbox loop finishes the batch it is sending before it returns (drain).
func (h *Hub) Wait(ctx context.Context) {
	h.wg.Wait()
	h.StopChannels(ctx)
	if h.batch != nil {
		h.batch.close()
	}
}

// goLoop runs fn every interval (or when wake fires) until ctx ends,
// recovering and logging panics so one bad item never kills the node.
func (h *Hub) goLoop(ctx context.Context, name string, every time.Duration, wake <-chan struct{}, fn func(context.Context)) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			h.safely(name, func() { fn(context.WithoutCancel(ctx)) })
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-wake:
			}
		}
	}()
}

func (h *Hub) safely(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic recovered", "loop", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// wakeOutbox asks the dispatcher to look now.
func (h *Hub) wakeOutbox() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}
