package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// runningChannel is a started connector and the channel it serves.
type runningChannel struct {
	ch     store.Channel
	conn   connectors.Connector
	routes map[string]connectors.Route // by path
}

// StartChannels starts every enabled channel of every instance. A channel
// whose connector fails to build or start is logged and skipped: one
// broken channel never keeps the others down.
func (h *Hub) StartChannels(ctx context.Context) error {
	chs, err := h.store.Channels(ctx, "")
	if err != nil {
		return fmt.Errorf("load channels: %w", err)
	}
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	for _, ch := range chs {
		if !ch.Enabled {
			continue
		}
		h.startTracked(ctx, ch)
	}
	return nil
}

// StartChannel builds and starts one channel's connector, replacing a
// running one. A channel already running with the same configuration is
// left as it is (its sockets stay); only the replies waiting for it are
// woken.
func (h *Hub) StartChannel(ctx context.Context, ch store.Channel) error {
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	return h.startLocked(ctx, ch)
}

// startLocked is StartChannel under h.lifecycle, which makes starts and
// stops of channels one at a time: two restarts of one channel at once
// would each build a connector, and one would run on unseen.
func (h *Hub) startLocked(ctx context.Context, ch store.Channel) error {
	if rc := h.channel(ch.ID); rc != nil && sameChannelConfig(rc.ch, ch) {
		h.wakeWaiting(ctx, ch.InstanceID)
		return nil
	}
	err := h.startChannel(ctx, ch)
	// The channel sync retries a configuration that failed, and reports
	// it again only when its error changes.
	h.failedMu.Lock()
	if err != nil {
		h.failed[ch.ID] = failedChannel{ch: ch, err: err.Error()}
	} else {
		delete(h.failed, ch.ID)
	}
	h.failedMu.Unlock()
	return err
}

func (h *Hub) startChannel(ctx context.Context, ch store.Channel) error {
	h.stopLocked(ctx, ch.ID)
	conn, err := h.registry.Build(connectors.Kind(ch.Kind), connectors.Config{
		InstanceID: ch.InstanceID,
		ChannelID:  ch.ID,
		Settings:   json.RawMessage(ch.Settings),
		Secrets:    ch.SecretMap(),
		Logger:     h.log.With("component", "connector", "kind", ch.Kind, "channel", ch.ID),
		PubSub:     h.bus,
		Now:        h.store.Now,
	})
	if err != nil {
		return fmt.Errorf("build %s connector: %w", ch.Kind, err)
	}
	rc := &runningChannel{ch: ch, conn: conn, routes: map[string]connectors.Route{}}
	if hr, ok := conn.(connectors.HTTPRoutes); ok {
		for _, r := range hr.Routes() {
			rc.routes[strings.Trim(r.Path, "/")] = r
		}
	}
	if err := conn.Start(ctx, &channelHost{h: h, ch: ch}); err != nil {
		_ = conn.Stop(ctx)
		return fmt.Errorf("start %s connector: %w", ch.Kind, err)
	}
	h.mu.Lock()
	h.channels[ch.ID] = rc
	h.mu.Unlock()
	h.log.Info("channel started", "channel", ch.ID, "kind", ch.Kind, "instance", ch.InstanceID)
	h.wakeWaiting(ctx, ch.InstanceID)
	return nil
}

// wakeWaiting sends the instance's replies waiting for a channel like one
// just started now, not at their next retry.
func (h *Hub) wakeWaiting(ctx context.Context, instanceID string) {
	if err := h.store.WakeWaiting(ctx, instanceID); err != nil {
		h.log.Warn("wake waiting replies", "instance", instanceID, "err", err)
	}
	h.wakeOutbox()
}

// StopChannel stops a running channel, if any.
func (h *Hub) StopChannel(ctx context.Context, id string) {
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.stopLocked(ctx, id)
}

func (h *Hub) stopLocked(ctx context.Context, id string) {
	h.failedMu.Lock()
	delete(h.failed, id)
	h.failedMu.Unlock()
	h.mu.Lock()
	rc := h.channels[id]
	delete(h.channels, id)
	h.mu.Unlock()
	if rc != nil {
		if err := rc.conn.Stop(ctx); err != nil {
			h.log.Warn("channel stop", "channel", id, "err", err)
		}
	}
}

// StopChannels stops every channel.
func (h *Hub) StopChannels(ctx context.Context) {
	h.mu.RLock()
	ids := make([]string, 0, len(h.channels))
	for id := range h.channels {
		ids = append(ids, id)
	}
	h.mu.RUnlock()
	for _, id := range ids {
		h.StopChannel(ctx, id)
	}
}

func (h *Hub) channel(id string) *runningChannel {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.channels[id]
}

// channelOfKind returns a running channel of the given kind in an
// instance (for replies that leave through another channel): one that can
// send if there is one (connectors.SendCapable), the first by id among
// equals, so the choice is stable.
func (h *Hub) channelOfKind(instanceID string, kind connectors.Kind) *runningChannel {
	h.mu.RLock()
	defer h.mu.RUnlock()
	canSend := func(rc *runningChannel) bool {
		sc, ok := rc.conn.(connectors.SendCapable)
		return !ok || sc.CanSend()
	}
	var best *runningChannel
	for _, rc := range h.channels {
		if rc.ch.InstanceID != instanceID || connectors.Kind(rc.ch.Kind) != kind {
			continue
		}
		switch {
		case best == nil:
			best = rc
		case canSend(rc) != canSend(best):
			if canSend(rc) {
				best = rc
			}
		case rc.ch.ID < best.ch.ID:
			best = rc
		}
	}
	return best
}

// ChannelHandler serves the connectors' HTTP routes at
// /channels/{channelID}/{path}.
func (h *Hub) ChannelHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, path := r.PathValue("channel"), strings.Trim(r.PathValue("path"), "/")
		rc := h.channel(id)
		if rc == nil {
			http.Error(w, "no such channel", http.StatusNotFound)
			return
		}
		route, ok := rc.routes[path]
		// A GET route answers HEAD too, as net/http's own mux does.
		allowed := route.Method == "" || route.Method == r.Method || (route.Method == http.MethodGet && r.Method == http.MethodHead)
		if !ok || !allowed {
			if ok {
				w.Header().Set("Allow", route.Method)
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		route.Handler.ServeHTTP(w, r)
	})
}

// channelHost is the connectors.Host one channel's connector talks to.
// It fixes the channel and instance, so a connector can never deliver into
// another tenant.
type channelHost struct {
	h  *Hub
	ch store.Channel
}

func (c *channelHost) Deliver(ctx context.Context, in connectors.Inbound) (connectors.Receipt, error) {
	in.ChannelID = c.ch.ID
	return c.h.deliver(ctx, c.ch, in)
}

func (c *channelHost) UpdateDelivery(ctx context.Context, u connectors.DeliveryUpdate) error {
	var (
		ms  []*store.Message
		err error
	)
	switch {
	case u.ExternalID != "":
		ms, err = c.h.store.SetDelivery(ctx, c.ch.InstanceID, c.ch.ID, 0, u.ExternalID, string(u.State), u.Reason)
	case u.Recipient != "" && !u.Watermark.IsZero():
		ms, err = c.h.store.SetDeliveryUpTo(ctx, c.ch.InstanceID, c.ch.ID, u.Recipient, u.Watermark, string(u.State))
	default:
		return errors.New("delivery update names neither a message nor a recipient watermark")
	}
	if err != nil {
		return fmt.Errorf("update delivery: %w", err)
	}
	for _, m := range ms {
		c.h.publish(ctx, Update{Type: UpdateDelivery, InstanceID: m.InstanceID, Cursor: m.ChangeID, TicketID: m.TicketID, Message: m})
	}
	return nil
}

func (c *channelHost) OpenThread(ctx context.Context, t connectors.ThreadOpen) (connectors.Thread, error) {
	if t.ThreadKey == "" {
		return connectors.Thread{}, errors.New("open thread: empty thread key")
	}
	rec := &store.InboundRecord{
		InstanceID: c.ch.InstanceID, ChannelID: c.ch.ID, ThreadKey: t.ThreadKey, TeamID: c.ch.TeamID,
		Contact: contactInput(t.Contact), Subject: t.Subject,
	}
	if rec.Contact.ExternalID == "" {
		rec.Contact.ExternalID = t.ThreadKey
	}
	tk, created, err := c.h.store.OpenThread(ctx, rec)
	if err != nil {
		return connectors.Thread{}, fmt.Errorf("open thread: %w", err)
	}
	// A ticket opened before its first message is announced by that
	// message (store.OpenThread), not now.
	return connectors.Thread{ConversationID: tk.ID, TicketNumber: tk.Number, Created: created}, nil
}

func (c *channelHost) History(ctx context.Context, channelID string, conversationID, after int64, limit int) ([]connectors.HistoryItem, error) {
	t, err := c.h.store.Ticket(ctx, c.ch.InstanceID, conversationID)
	if err != nil {
		return nil, err
	}
	if t.ChannelID != c.ch.ID {
		return nil, fmt.Errorf("conversation %d: %w", conversationID, store.ErrNotFound)
	}
	ms, err := c.h.store.Messages(ctx, c.ch.InstanceID, conversationID, after, limit, false)
	if err != nil {
		return nil, err
	}
	out := make([]connectors.HistoryItem, 0, len(ms))
	for _, m := range ms {
		out = append(out, connectors.HistoryItem{
			ID: m.ID, Direction: m.Direction, Text: m.Text, HTML: m.HTML, AuthorName: m.AuthorName,
			ExternalID: m.ExternalID, State: connectors.DeliveryState(m.State), CreatedAt: m.CreatedAt,
		})
	}
	return out, nil
}

func (c *channelHost) Signal(ctx context.Context, s connectors.Signal) error {
	if s.ConversationID == 0 {
		return nil
	}
	// A conversation whose end user has not written yet is no ticket for
	// agents (D14): a visitor typing their first message shows once it is
	// sent. A closed one is over: the visitor's next message opens another.
	t, err := c.h.store.Ticket(ctx, c.ch.InstanceID, s.ConversationID)
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	if t.LastInboundAt == nil || t.Status == store.StatusClosed {
		return nil
	}
	c.h.publish(ctx, Update{Type: UpdateTyping, InstanceID: c.ch.InstanceID, TicketID: s.ConversationID, Signal: s.Kind, From: s.From})
	return nil
}

func (c *channelHost) LoadState(ctx context.Context, key string) (string, error) {
	return c.h.store.ChannelStateValue(ctx, c.ch.ID, key)
}

func (c *channelHost) SaveState(ctx context.Context, key, value string) error {
	return c.h.store.SaveChannelState(ctx, c.ch.ID, key, value)
}

func contactInput(id connectors.Identity) store.ContactInput {
	return store.ContactInput{ExternalID: id.ExternalID, DisplayName: id.DisplayName, Handle: id.Handle, Email: id.Email, Fields: id.Fields}
}

var _ connectors.Host = (*channelHost)(nil)
