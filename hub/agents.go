package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Errors of agent operations, matched with errors.Is.
var (
	ErrUnauthorized = errors.New("hub: invalid or expired credentials")
	ErrForbidden    = errors.New("hub: not allowed")
	ErrInvalid      = errors.New("hub: invalid request")
)

// NewToken returns a random secret token and the hash stored for it.
func NewToken(prefix string) (token, hash string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is how tokens are stored: SHA-256 hex (tokens are random, so a
// slow hash adds nothing).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AuthenticateAgent returns the agent a token belongs to.
func (h *Hub) AuthenticateAgent(ctx context.Context, token string) (*store.Agent, error) {
	if token == "" {
		return nil, ErrUnauthorized
	}
	a, err := h.store.AgentByTokenHash(ctx, HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthorized
	}
	return a, err
}

// Heartbeat records an agent's presence; offers that follow are published.
func (h *Hub) Heartbeat(ctx context.Context, a *store.Agent, status routing.Status) error {
	switch status {
	case routing.Available, routing.Away, routing.Offline:
	default:
		return fmt.Errorf("%w: status must be available, away or offline", ErrInvalid)
	}
	evs, err := h.router.Heartbeat(ctx, routeAgent(a, status))
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	h.applyEvents(ctx, evs)
	return nil
}

// SignOut marks the agent offline at once.
func (h *Hub) SignOut(ctx context.Context, a *store.Agent) error {
	evs, err := h.router.Leave(ctx, a.InstanceID, strconv.FormatInt(a.ID, 10))
	if err != nil {
		return err
	}
	h.applyEvents(ctx, evs)
	return nil
}

// ticketOf loads a ticket of the agent's instance; another instance's
// ticket is simply not found (tenant isolation).
func (h *Hub) ticketOf(ctx context.Context, a *store.Agent, ticketID int64) (*store.Ticket, error) {
	return h.ticket(ctx, a.InstanceID, ticketID)
}

// ticket returns a ticket of the instance as agents and API clients may
// see it: a conversation whose end user has not written yet is no ticket
// (D14), so it is not found, as it is not listed.
func (h *Hub) ticket(ctx context.Context, instanceID string, ticketID int64) (*store.Ticket, error) {
	t, err := h.store.Ticket(ctx, instanceID, ticketID)
	if err != nil {
		return nil, err
	}
	if t.LastInboundAt == nil {
		return nil, fmt.Errorf("ticket %d: %w", ticketID, store.ErrNotFound)
	}
	return t, nil
}

// Accept takes an offered ticket.
func (h *Hub) Accept(ctx context.Context, a *store.Agent, ticketID int64) error {
	if _, err := h.ticketOf(ctx, a, ticketID); err != nil {
		return err
	}
	evs, err := h.router.Accept(ctx, a.InstanceID, strconv.FormatInt(ticketID, 10), strconv.FormatInt(a.ID, 10))
	if err != nil {
		return err
	}
	h.applyEvents(ctx, evs)
	return nil
}

// Decline gives an offer back.
func (h *Hub) Decline(ctx context.Context, a *store.Agent, ticketID int64) error {
	if _, err := h.ticketOf(ctx, a, ticketID); err != nil {
		return err
	}
	evs, err := h.router.Decline(ctx, a.InstanceID, strconv.FormatInt(ticketID, 10), strconv.FormatInt(a.ID, 10))
	if err != nil {
		return err
	}
	h.applyEvents(ctx, evs)
	return nil
}

// Compose is an agent's reply or note.
type Compose struct {
	Text string
	// IdempotencyKey makes a resubmitted reply store once.
	IdempotencyKey string
}

// Reply stores an agent's reply and queues it for sending through the
// ticket's channel, after checking the channel's policy.
func (h *Hub) Reply(ctx context.Context, a *store.Agent, ticketID int64, c Compose) (*store.Message, error) {
	return h.compose(ctx, agentByline(a), ticketID, c, false)
}

// Note stores an internal note; end users never see notes.
func (h *Hub) Note(ctx context.Context, a *store.Agent, ticketID int64, c Compose) (*store.Message, error) {
	return h.compose(ctx, agentByline(a), ticketID, c, true)
}

// compose is the one path of every reply and note, whoever writes it (an
// agent or an API client, see byline): policy check, message and outbox
// row in one transaction, notification, routing's answered mark, outbox
// wake-up.
func (h *Hub) compose(ctx context.Context, by byline, ticketID int64, c Compose, note bool) (*store.Message, error) {
	t, err := h.ticket(ctx, by.instanceID, ticketID)
	if err != nil {
		return nil, err
	}
	text, _ := cleanText(strings.TrimSpace(c.Text), h.cfg.MaxTextBytes)
	if text == "" {
		return nil, fmt.Errorf("%w: the message is empty", ErrInvalid)
	}
	if !note {
		if err := h.checkPolicy(t, text); err != nil {
			return nil, err
		}
	}
	m, t, err := h.store.AddAgentMessage(ctx, store.AgentMessage{
		InstanceID: by.instanceID, TicketID: ticketID, AgentID: by.agentID, AuthorName: by.name,
		Note: note, Text: text, IdempotencyKey: c.IdempotencyKey,
	})
	if errors.Is(err, store.ErrDuplicate) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	h.publishMessage(ctx, t, m)
	if !note {
		if err := h.router.MarkAnswered(ctx, by.instanceID, strconv.FormatInt(ticketID, 10)); err != nil {
			h.log.Warn("mark answered", "ticket", ticketID, "err", err)
		}
		h.wakeOutbox()
	}
	return m, nil
}

// checkPolicy refuses replies the ticket's channel cannot carry.
func (h *Hub) checkPolicy(t *store.Ticket, text string) error {
	rc := h.channel(t.ChannelID)
	if rc == nil {
		return nil // queued; the dispatcher waits for the channel
	}
	p := rc.conn.Policy()
	if p.MaxTextLength > 0 && utf8.RuneCountInString(text) > p.MaxTextLength {
		return connectors.NewError(connectors.Refused, "too_long",
			fmt.Sprintf("this channel carries at most %d characters per message", p.MaxTextLength), nil)
	}
	if p.ReplyWindow > 0 && t.LastInboundAt != nil && h.store.Now().Sub(*t.LastInboundAt) > p.ReplyWindow {
		return connectors.NewError(connectors.Refused, "reply_window",
			fmt.Sprintf("this channel allows replies only within %s of the customer's last message", p.ReplyWindow), nil)
	}
	return nil
}

// Transfer hands a ticket to another agent or another team.
func (h *Hub) Transfer(ctx context.Context, a *store.Agent, ticketID int64, toAgent, toTeam *int64) error {
	t, err := h.ticketOf(ctx, a, ticketID)
	if err != nil {
		return err
	}
	switch {
	case toAgent != nil:
		if _, err := h.store.Agent(ctx, a.InstanceID, *toAgent); err != nil {
			return err
		}
		evs, err := h.router.Assign(ctx, routeTicket(t), strconv.FormatInt(*toAgent, 10))
		if err != nil {
			return err
		}
		h.applyEvents(ctx, evs)
		h.setAssignee(ctx, a.InstanceID, ticketID, toAgent)
		return nil
	case toTeam != nil:
		if _, err := h.store.Team(ctx, a.InstanceID, *toTeam); err != nil {
			return err
		}
		var none *int64
		t, err = h.store.UpdateTicket(ctx, a.InstanceID, ticketID, store.TicketUpdate{TeamID: &toTeam, AssigneeID: &none})
		if err != nil {
			return err
		}
		h.publishTicket(ctx, t)
		evs, err := h.router.Transfer(ctx, routeTicket(t))
		if err != nil {
			return err
		}
		h.applyEvents(ctx, evs)
		return nil
	}
	return fmt.Errorf("%w: name an agent or a team to transfer to", ErrInvalid)
}

// SetStatus moves a ticket through its lifecycle: solving or closing frees
// the agent's capacity; reopening routes it again.
func (h *Hub) SetStatus(ctx context.Context, a *store.Agent, ticketID int64, status string) (*store.Ticket, error) {
	return h.setStatus(ctx, a.InstanceID, ticketID, status)
}

// setStatus is SetStatus within an instance, for agents and API clients.
func (h *Hub) setStatus(ctx context.Context, instanceID string, ticketID int64, status string) (*store.Ticket, error) {
	if _, err := h.ticket(ctx, instanceID, ticketID); err != nil {
		return nil, err
	}
	switch status {
	case store.StatusOpen, store.StatusPending, store.StatusSolved, store.StatusClosed:
	default:
		return nil, fmt.Errorf("%w: status must be open, pending, solved or closed", ErrInvalid)
	}
	t, err := h.store.UpdateTicket(ctx, instanceID, ticketID, store.TicketUpdate{Status: &status})
	if err != nil {
		return nil, err
	}
	h.publishTicket(ctx, t)
	tid := strconv.FormatInt(ticketID, 10)
	var evs []routing.Event
	switch status {
	case store.StatusSolved, store.StatusClosed:
		evs, err = h.router.Release(ctx, instanceID, tid)
	case store.StatusOpen:
		if t.AssigneeID != nil {
			evs, err = h.router.Assign(ctx, routeTicket(t), strconv.FormatInt(*t.AssigneeID, 10))
		} else {
			evs, err = h.router.Enqueue(ctx, routeTicket(t))
		}
	}
	if err != nil {
		h.log.Warn("route status change", "ticket", ticketID, "err", err)
	}
	h.applyEvents(ctx, evs)
	return t, nil
}

// TicketView is a ticket with what an agent needs to work on it.
type TicketView struct {
	Ticket      *store.Ticket      `json:"ticket"`
	Contact     *store.ContactView `json:"contact"`
	ChannelKind string             `json:"channel_kind"`
	Messages    []*store.Message   `json:"messages"`
	Policy      *PolicyView        `json:"policy,omitempty"`
}

// PolicyView is a channel's policy as agents' clients read it.
type PolicyView struct {
	ReplyWindowSeconds int64    `json:"reply_window_seconds,omitempty"`
	MaxTextLength      int      `json:"max_text_length,omitempty"`
	Attachments        bool     `json:"attachments"`
	HTML               bool     `json:"html"`
	Threading          string   `json:"threading"`
	ContactFields      []string `json:"contact_fields,omitempty"`
	ReplyVia           string   `json:"reply_via,omitempty"`
}

func policyView(p connectors.Policy) *PolicyView {
	return &PolicyView{
		ReplyWindowSeconds: int64(p.ReplyWindow.Seconds()), MaxTextLength: p.MaxTextLength,
		Attachments: p.Attachments, HTML: p.HTML, Threading: string(p.Threading),
		ContactFields: p.ContactFields, ReplyVia: string(p.ReplyVia),
	}
}

// Ticket returns a ticket of the agent's instance with its contact and
// messages (notes included).
func (h *Hub) Ticket(ctx context.Context, a *store.Agent, ticketID int64) (*TicketView, error) {
	return h.ticketView(ctx, a.InstanceID, ticketID)
}

// ticketView is Ticket within an instance, for agents and API clients.
func (h *Hub) ticketView(ctx context.Context, instanceID string, ticketID int64) (*TicketView, error) {
	t, err := h.ticket(ctx, instanceID, ticketID)
	if err != nil {
		return nil, err
	}
	c, err := h.store.Contact(ctx, instanceID, t.ContactID)
	if err != nil {
		return nil, err
	}
	ms, err := h.store.Messages(ctx, instanceID, ticketID, 0, 1000, true)
	if err != nil {
		return nil, err
	}
	v := &TicketView{Ticket: t, Contact: c, Messages: ms}
	if rc := h.channel(t.ChannelID); rc != nil {
		v.ChannelKind = rc.ch.Kind
		v.Policy = policyView(rc.conn.Policy())
	} else if ch, err := h.store.Channel(ctx, instanceID, t.ChannelID); err == nil {
		v.ChannelKind = ch.Kind
	}
	return v, nil
}

// Tickets lists tickets of the agent's instance.
func (h *Hub) Tickets(ctx context.Context, a *store.Agent, f store.TicketFilter) ([]store.Ticket, error) {
	return h.store.Tickets(ctx, a.InstanceID, f)
}

// Typing passes an agent's typing indicator to the end user's channel, if
// it can show one, and to the other agents.
func (h *Hub) Typing(ctx context.Context, a *store.Agent, ticketID int64, on bool) error {
	t, err := h.ticketOf(ctx, a, ticketID)
	if err != nil {
		return err
	}
	kind := "typing"
	if !on {
		kind = "typing_stop"
	}
	h.publish(ctx, Update{Type: UpdateTyping, InstanceID: a.InstanceID, TicketID: ticketID, Signal: kind, From: a.Name, FromAgentID: a.ID})
	if rc := h.channel(t.ChannelID); rc != nil {
		if ss, ok := rc.conn.(connectors.SignalSender); ok {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return ss.SendSignal(sctx, connectors.Signal{ChannelID: t.ChannelID, ConversationID: t.ID, ThreadKey: t.ThreadKey, Kind: kind, From: a.Name})
		}
	}
	return nil
}

// PendingOffer is a ticket offered to an agent and when the offer lapses.
type PendingOffer struct {
	TicketID  int64
	ExpiresAt time.Time
}

// PendingOffers lists the tickets currently offered to the agent (sent
// again on resume, since offers are live state, not in the feed), with
// their deadlines, as the router keeps them: the same on every node.
func (h *Hub) PendingOffers(ctx context.Context, a *store.Agent) ([]PendingOffer, error) {
	snap, err := h.router.Snapshot(ctx, a.InstanceID)
	if err != nil {
		return nil, err
	}
	st := snap.Agents[strconv.FormatInt(a.ID, 10)]
	out := make([]PendingOffer, 0, len(st.Offered))
	for _, id := range st.Offered {
		out = append(out, PendingOffer{TicketID: parseID(id), ExpiresAt: st.OfferExpires[id]})
	}
	return out, nil
}
