package hub

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Update types sent to agents.
const (
	UpdateTicket       = "ticket.updated"
	UpdateMessage      = "message.new"
	UpdateDelivery     = "message.state"
	UpdateOffer        = "ticket.offered"
	UpdateOfferRevoked = "ticket.offer_revoked"
	UpdateTyping       = "typing"
)

// Update is one notification for the agents of an instance. It travels
// over the bus to every node; the gateway forwards it to the sockets it
// concerns. Updates with a Cursor are also in the change feed, so a
// client that missed one gets it on resume.
type Update struct {
	Type       string         `json:"type"`
	InstanceID string         `json:"instance_id"`
	Cursor     int64          `json:"cursor,omitempty"`
	AgentID    int64          `json:"agent_id,omitempty"` // only this agent, when set
	TicketID   int64          `json:"ticket_id"`
	Ticket     *store.Ticket  `json:"ticket,omitempty"`
	Message    *store.Message `json:"message,omitempty"`
	ExpiresAt  *time.Time     `json:"expires_at,omitempty"`
	// Signal carries typing indicators: "typing" or "typing_stop", From
	// names who types.
	Signal string `json:"signal,omitempty"`
	From   string `json:"from,omitempty"`
	// FromAgentID is set when an agent types, so their own tabs can tell
	// their typing from a colleague's or the customer's.
	FromAgentID int64 `json:"from_agent_id,omitempty"`
}

// InstanceTopic is the bus topic of an instance's updates.
func InstanceTopic(instanceID string) string { return "hub:" + instanceID }

// publish sends an update to every node. Loss is tolerated: the database
// is the record and clients resume from their cursor.
func (h *Hub) publish(ctx context.Context, u Update) {
	b, err := json.Marshal(u)
	if err != nil {
		h.log.Error("encode update", "err", err)
		return
	}
	if err := h.bus.Publish(ctx, InstanceTopic(u.InstanceID), b); err != nil {
		h.log.Warn("publish update", "type", u.Type, "ticket", u.TicketID, "err", err)
	}
}

func (h *Hub) publishTicket(ctx context.Context, t *store.Ticket) {
	h.publish(ctx, Update{Type: UpdateTicket, InstanceID: t.InstanceID, Cursor: t.ChangeID, TicketID: t.ID, Ticket: t})
}

func (h *Hub) publishMessage(ctx context.Context, t *store.Ticket, m *store.Message) {
	h.publish(ctx, Update{Type: UpdateMessage, InstanceID: m.InstanceID, Cursor: m.ChangeID, TicketID: m.TicketID, Ticket: t, Message: m})
}

// SubscribeInstance calls fn with every update of an instance until
// cancel is called.
func (h *Hub) SubscribeInstance(ctx context.Context, instanceID string, fn func(Update)) (cancel func(), err error) {
	return h.bus.Subscribe(ctx, InstanceTopic(instanceID), func(b []byte) {
		var u Update
		if err := json.Unmarshal(b, &u); err != nil {
			h.log.Warn("undecodable update on bus", "err", err)
			return
		}
		fn(u)
	})
}

// SubscribeInstanceRelay is SubscribeInstance for a relay to agents'
// sockets: fn gets the update as published and, decoded, what a relay
// routes by. Decoding a message and a ticket is most of the work of an
// update and a relay does not look at them, so u has neither (Message and
// Ticket are nil). Published updates are frames agents can read as
// they are: the fields they add to a frame (the instance, the agent an
// offer is for, the agent who types) are ones clients ignore
// (docs/agent-protocol.md).
func (h *Hub) SubscribeInstanceRelay(ctx context.Context, instanceID string, fn func(u Update, raw []byte)) (cancel func(), err error) {
	return h.bus.Subscribe(ctx, InstanceTopic(instanceID), func(b []byte) {
		var u struct {
			Update
			// These shadow Update's fields: kept raw, not decoded.
			Ticket  json.RawMessage `json:"ticket"`
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(b, &u); err != nil {
			h.log.Warn("undecodable update on bus", "err", err)
			return
		}
		fn(u.Update, b)
	})
}

// Feed returns the updates an agent missed after cursor, from the
// database (resume).
func (h *Hub) Feed(ctx context.Context, a *store.Agent, after int64, limit int) ([]Update, error) {
	return h.feed(ctx, a.InstanceID, after, limit)
}

// feed is Feed for an instance, for agents and API clients.
func (h *Hub) feed(ctx context.Context, instanceID string, after int64, limit int) ([]Update, error) {
	es, err := h.store.Feed(ctx, instanceID, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Update, 0, len(es))
	for _, e := range es {
		u := Update{InstanceID: instanceID, Cursor: e.Change.Seq, TicketID: e.Change.TicketID, Ticket: e.Ticket, Message: e.Message}
		switch {
		case e.Change.Kind == store.ChangeMessage && e.Message != nil:
			if e.Message.Direction == store.DirNote || e.Message.Direction == store.DirOut || e.Message.Direction == store.DirIn {
				u.Type = UpdateMessage
			}
		case e.Change.Kind == store.ChangeState:
			u.Type = UpdateDelivery
		default:
			u.Type = UpdateTicket
		}
		out = append(out, u)
	}
	return out, nil
}
