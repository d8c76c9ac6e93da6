package hub

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// API clients (integrations, scripts; package hub/api) act for an
// instance as a whole, not as one of its agents: they authenticate with an
// API key, and every method below takes the key's instance id and nothing
// else. Each one runs the same code path as its agent counterpart, so a
// ticket of another instance is store.ErrNotFound here too (tenant
// isolation), and a client's reply is checked, stored, queued and
// announced exactly like an agent's (M1).

// byline is who writes a reply or note.
type byline struct {
	instanceID string
	// agentID is the writing agent; 0 for an API client, which is nobody
	// in particular.
	agentID int64
	// name is what the message shows as its author: the agent's name or
	// the API key's.
	name string
}

func agentByline(a *store.Agent) byline {
	return byline{instanceID: a.InstanceID, agentID: a.ID, name: a.Name}
}

// clientKeyPrefix sets API clients' idempotency keys apart from agents':
// the store scopes keys to the ticket only, and a client's key must never
// match (and so silently return) an agent's reply.
const clientKeyPrefix = "client:"

// ClientTickets lists tickets of an instance, newest activity first.
func (h *Hub) ClientTickets(ctx context.Context, instanceID string, f store.TicketFilter) ([]store.Ticket, error) {
	return h.store.Tickets(ctx, instanceID, f)
}

// ClientTicket returns a ticket of the instance with its contact, its
// messages (internal notes included: the client acts as the instance) and
// its channel's policy.
func (h *Hub) ClientTicket(ctx context.Context, instanceID string, ticketID int64) (*TicketView, error) {
	return h.ticketView(ctx, instanceID, ticketID)
}

// ClientReply stores an API client's reply and queues it for sending
// through the ticket's channel, after the channel's policy check, as
// Reply does for an agent. author is the name the message shows (the API
// key's name). Text longer than the hub's limit is refused rather than
// cut: unlike a person at a console, a program can act on the error.
func (h *Hub) ClientReply(ctx context.Context, instanceID string, ticketID int64, author string, c Compose) (*store.Message, error) {
	return h.clientCompose(ctx, instanceID, ticketID, author, c, false)
}

// ClientNote stores an API client's internal note; end users never see
// notes.
func (h *Hub) ClientNote(ctx context.Context, instanceID string, ticketID int64, author string, c Compose) (*store.Message, error) {
	return h.clientCompose(ctx, instanceID, ticketID, author, c, true)
}

func (h *Hub) clientCompose(ctx context.Context, instanceID string, ticketID int64, author string, c Compose, note bool) (*store.Message, error) {
	author = strings.TrimSpace(author)
	if author == "" {
		return nil, fmt.Errorf("%w: an API client's message needs an author name", ErrInvalid)
	}
	if len(c.Text) > h.cfg.MaxTextBytes {
		return nil, fmt.Errorf("%w: the text is longer than %d bytes", ErrInvalid, h.cfg.MaxTextBytes)
	}
	if c.IdempotencyKey != "" {
		c.IdempotencyKey = clientKeyPrefix + c.IdempotencyKey
	}
	return h.compose(ctx, byline{instanceID: instanceID, name: author}, ticketID, c, note)
}

// ClientSetStatus moves a ticket of the instance through its lifecycle,
// as SetStatus does for an agent (routing follows: solving or closing
// frees the assignee's capacity, reopening routes the ticket again).
func (h *Hub) ClientSetStatus(ctx context.Context, instanceID string, ticketID int64, status string) (*store.Ticket, error) {
	return h.setStatus(ctx, instanceID, ticketID, status)
}

// ClientFeed returns the instance's change feed after a cursor, oldest
// first: the record an integration follows, the same one agents resume
// from.
func (h *Hub) ClientFeed(ctx context.Context, instanceID string, after int64, limit int) ([]Update, error) {
	return h.feed(ctx, instanceID, after, limit)
}
