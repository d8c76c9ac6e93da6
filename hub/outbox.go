package hub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// outboxLease is how long a node holds an item it is sending; a node that
// dies mid-send releases it by running out.
const outboxLease = 2 * time.Minute

// dispatch sends due outbox items until none is due.
func (h *Hub) dispatch(ctx context.Context) {
	for {
		items, err := h.store.ClaimOutbox(ctx, 32, outboxLease)
		if err != nil {
			h.log.Warn("claim outbox", "err", err)
			return
		}
		for _, it := range items {
			h.sendOne(ctx, it)
		}
		if len(items) < 32 {
			return
		}
	}
}

// DispatchNow runs one dispatcher pass (tests, and the shutdown drain).
func (h *Hub) DispatchNow(ctx context.Context) { h.dispatch(ctx) }

func (h *Hub) sendOne(ctx context.Context, it *store.OutboxItem) {
	res := h.attempt(ctx, it)
	m, err := h.store.FinishOutbox(ctx, it, res)
	if err != nil {
		// The lease runs out and another pass retries; the provider may
		// then see the message twice, which is why Outbound carries an
		// idempotency key.
		h.log.Error("record send outcome", "message", it.MessageID, "err", err)
		return
	}
	h.publish(ctx, Update{Type: UpdateDelivery, InstanceID: m.InstanceID, Cursor: m.ChangeID, TicketID: m.TicketID, Message: m})
}

// attempt sends one item and classifies the outcome.
func (h *Hub) attempt(ctx context.Context, it *store.OutboxItem) store.OutboxResult {
	m, err := h.store.Message(ctx, it.InstanceID, it.MessageID)
	if err != nil {
		return store.OutboxResult{Error: "message missing: " + err.Error()}
	}
	t, err := h.store.Ticket(ctx, it.InstanceID, m.TicketID)
	if err != nil {
		return store.OutboxResult{Error: "ticket missing: " + err.Error()}
	}
	rc := h.channel(it.ChannelID)
	if rc == nil {
		return store.OutboxResult{Waiting: true, RetryAt: h.store.Now().Add(time.Minute),
			Error: "waiting: channel " + it.ChannelID + " is not running on this node"}
	}
	sender := rc
	if via := rc.conn.Policy().ReplyVia; via != "" {
		sender = h.channelOfKind(it.InstanceID, via)
		if sender == nil {
			// Visibly queued, never dropped: the reply leaves once the
			// instance has a channel that can carry it.
			return store.OutboxResult{Waiting: true, RetryAt: h.store.Now().Add(time.Minute),
				Error: fmt.Sprintf("waiting: replies to %s tickets are sent by %s, and this instance has no %s channel yet", rc.ch.Kind, via, via)}
		}
	}
	if sc, ok := sender.conn.(connectors.SendCapable); ok && !sc.CanSend() {
		// A channel set up to receive only (an email channel without a
		// relay): the reply waits, visibly and without using attempts,
		// until the channel is given what it sends with (its restart wakes
		// the reply), rather than failing for good.
		return store.OutboxResult{Waiting: true, RetryAt: h.store.Now().Add(10 * time.Minute),
			Error: fmt.Sprintf("waiting: the %s channel %q receives only; the reply leaves once it is configured to send (for email, settings.smtp)", sender.ch.Kind, sender.ch.ID)}
	}
	ob, err := h.outbound(ctx, sender.ch, t, m)
	if err != nil {
		return store.OutboxResult{Error: err.Error()}
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sr, err := sender.conn.Send(sctx, ob)
	if err == nil {
		h.metrics.outbound.WithLabelValues(sender.ch.Kind, "sent").Inc()
		st := string(sr.State)
		if st == "" {
			st = string(connectors.DeliverySent)
		}
		res := store.OutboxResult{Sent: true, ExternalID: sr.ExternalID, State: st}
		if sender != rc {
			res.ViaChannelID = sender.ch.ID
		}
		return res
	}
	class := connectors.ClassOf(err)
	h.metrics.outbound.WithLabelValues(sender.ch.Kind, class.String()).Inc()
	msg := err.Error()
	var ce *connectors.Error
	if errors.As(err, &ce) {
		msg = ce.Msg
	}
	h.log.Warn("send failed", "message", it.MessageID, "channel", sender.ch.ID, "class", class, "attempt", it.Attempts+1, "err", err)
	if class == connectors.Retryable && it.Attempts+1 < h.cfg.OutboxMaxAttempts {
		return store.OutboxResult{Retry: true, RetryAt: h.store.Now().Add(backoff(it.Attempts)), Error: msg}
	}
	return store.OutboxResult{Error: msg}
}

// backoff is exponential from 2s, capped at 30 minutes, with ±20% jitter
// so that a provider outage does not end in a synchronized stampede.
func backoff(attempts int) time.Duration {
	d := 2 * time.Second << min(attempts, 10)
	if d > 30*time.Minute {
		d = 30 * time.Minute
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// outbound builds what a connector needs to send a message.
func (h *Hub) outbound(ctx context.Context, sender store.Channel, t *store.Ticket, m *store.Message) (connectors.Outbound, error) {
	ob := connectors.Outbound{
		InstanceID: t.InstanceID, ChannelID: sender.ID, MessageID: m.ID,
		IdempotencyKey: fmt.Sprintf("%s-%d", t.InstanceID, m.ID), ConversationID: t.ID,
		TicketNumber: t.Number, ThreadKey: t.ThreadKey, Subject: t.Subject,
		Text: m.Text, HTML: m.HTML, AuthorName: m.AuthorName, CreatedAt: m.CreatedAt,
	}
	// The recipient is the contact's identity on the sending channel, or
	// (for replies through another channel) any identity with an email.
	id, err := h.store.IdentityFor(ctx, t.InstanceID, t.ContactID, sender.ID)
	if err != nil {
		cv, cerr := h.store.Contact(ctx, t.InstanceID, t.ContactID)
		if cerr != nil {
			return ob, cerr
		}
		ob.To = connectors.Identity{ExternalID: cv.Email, DisplayName: cv.Name, Email: cv.Email}
		if cv.Email == "" {
			return ob, fmt.Errorf("the contact has no address on channel %s", sender.ID)
		}
	} else {
		ob.To = connectors.Identity{ExternalID: id.ExternalID, DisplayName: id.DisplayName, Handle: id.Handle, Email: id.Email, Fields: id.Fields}
	}
	prior, err := h.store.Messages(ctx, t.InstanceID, t.ID, 0, 1000, false)
	if err != nil {
		return ob, err
	}
	for _, pm := range prior {
		if pm.ID != m.ID && pm.ExternalID != "" && pm.ChannelID == sender.ID {
			ob.References = append(ob.References, pm.ExternalID)
		}
	}
	return ob, nil
}
