package api

import (
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// The API's own shapes. They are copied from the store's models rather
// than being them, so that a change to the model is a visible change here
// (and in openapi.json, whose test would fail), never a silent change of
// a contract integrations depend on. Internal details stay out: thread
// keys (a live-chat conversation key), dedup keys, blob keys.

// Ticket is a ticket as API clients see it (M2: one channel-agnostic
// shape for every channel).
type Ticket struct {
	ID         int64  `json:"id"`
	InstanceID string `json:"instance_id"`
	Number     int64  `json:"number"`
	ChannelID  string `json:"channel_id"`
	ContactID  int64  `json:"contact_id"`
	// ContactName is filled in lists, where the contact is not included.
	ContactName     string     `json:"contact_name,omitempty"`
	Subject         string     `json:"subject"`
	Status          string     `json:"status"`
	Priority        int        `json:"priority"`
	TeamID          *int64     `json:"team_id"`
	AssigneeID      *int64     `json:"assignee_id"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	LastMessageAt   time.Time  `json:"last_message_at"`
	LastInboundAt   *time.Time `json:"last_inbound_at"`
	FirstResponseAt *time.Time `json:"first_response_at"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	ClosedAt        *time.Time `json:"closed_at"`
}

func ticketOut(t *store.Ticket) *Ticket {
	if t == nil {
		return nil
	}
	return &Ticket{
		ID: t.ID, InstanceID: t.InstanceID, Number: t.Number, ChannelID: t.ChannelID, ContactID: t.ContactID,
		ContactName: t.ContactName, Subject: t.Subject, Status: t.Status, Priority: t.Priority,
		TeamID: t.TeamID, AssigneeID: t.AssigneeID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		LastMessageAt: t.LastMessageAt, LastInboundAt: t.LastInboundAt, FirstResponseAt: t.FirstResponseAt,
		ResolvedAt: t.ResolvedAt, ClosedAt: t.ClosedAt,
	}
}

// Message is one message of a ticket: from the end user (in), to the end
// user (out), or an internal note (note).
type Message struct {
	ID        int64  `json:"id"`
	TicketID  int64  `json:"ticket_id"`
	ChannelID string `json:"channel_id"`
	Direction string `json:"direction"`
	// AgentID is the agent who wrote an outbound message or note; null
	// for the end user's messages and for an API client's.
	AgentID    *int64 `json:"agent_id"`
	ContactID  *int64 `json:"contact_id"`
	AuthorName string `json:"author_name"`
	Subject    string `json:"subject,omitempty"`
	Text       string `json:"text"`
	// HTML is the message's HTML as received, sanitized for display.
	HTML       string            `json:"html,omitempty"`
	ExternalID string            `json:"external_id,omitempty"`
	AutoReply  bool              `json:"auto_reply"`
	Meta       map[string]string `json:"meta,omitempty"`
	// State is the delivery state of an outbound message: queued, sent,
	// delivered, read or failed; StateReason says why it waits or failed.
	State       string       `json:"state,omitempty"`
	StateReason string       `json:"state_reason,omitempty"`
	Attachments []Attachment `json:"attachments"`
	CreatedAt   time.Time    `json:"created_at"`
}

// Attachment is a file's metadata; the bytes are not served by this API.
type Attachment struct {
	ID          int64  `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	URL         string `json:"url,omitempty"`
	Inline      bool   `json:"inline"`
}

func messageOut(m *store.Message) *Message {
	if m == nil {
		return nil
	}
	out := &Message{
		ID: m.ID, TicketID: m.TicketID, ChannelID: m.ChannelID, Direction: m.Direction,
		ContactID: m.ContactID, AuthorName: m.AuthorName, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
		ExternalID: m.ExternalID, AutoReply: m.AutoReply, Meta: m.Meta, State: m.State, StateReason: m.StateReason,
		Attachments: make([]Attachment, 0, len(m.Attachments)), CreatedAt: m.CreatedAt,
	}
	// The store records an API client's message with agent id 0: nobody.
	if m.AgentID != nil && *m.AgentID != 0 {
		out.AgentID = m.AgentID
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, Attachment{
			ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size,
			SHA256: a.SHA256, URL: a.URL, Inline: a.Inline,
		})
	}
	return out
}

// Contact is the end user of a ticket with their identity on each channel
// they wrote from: only what the channel's privacy preferences let it
// collect is there (M3).
type Contact struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Email      string     `json:"email,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Identities []Identity `json:"identities"`
}

// Identity is a contact's identity on one channel.
type Identity struct {
	ChannelID   string            `json:"channel_id"`
	ExternalID  string            `json:"external_id"`
	DisplayName string            `json:"display_name,omitempty"`
	Handle      string            `json:"handle,omitempty"`
	Email       string            `json:"email,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"`
}

func contactOut(c *store.ContactView) *Contact {
	out := &Contact{ID: c.ID, Name: c.Name, Email: c.Email, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Identities: make([]Identity, 0, len(c.Identities))}
	for _, id := range c.Identities {
		out.Identities = append(out.Identities, Identity{ChannelID: id.ChannelID, ExternalID: id.ExternalID,
			DisplayName: id.DisplayName, Handle: id.Handle, Email: id.Email, Fields: id.Fields})
	}
	return out
}

// Policy is what the ticket's channel allows a reply to be.
type Policy struct {
	// ReplyWindowSeconds is how long after the end user's last message a
	// reply is allowed; 0 means no limit.
	ReplyWindowSeconds int64 `json:"reply_window_seconds"`
	// MaxTextLength is the most characters a reply may have; 0 means no
	// limit.
	MaxTextLength int  `json:"max_text_length"`
	Attachments   bool `json:"attachments"`
	HTML          bool `json:"html"`
	// Threading is how the channel groups messages into conversations;
	// absent when the channel does not say.
	Threading     string   `json:"threading,omitempty"`
	ContactFields []string `json:"contact_fields"`
	// ReplyVia names the channel kind replies leave through when the
	// channel cannot answer itself (web forms reply by email).
	ReplyVia string `json:"reply_via,omitempty"`
}

func policyOut(p *hub.PolicyView) *Policy {
	if p == nil {
		return nil
	}
	out := &Policy{ReplyWindowSeconds: p.ReplyWindowSeconds, MaxTextLength: p.MaxTextLength,
		Attachments: p.Attachments, HTML: p.HTML, Threading: p.Threading, ContactFields: p.ContactFields, ReplyVia: p.ReplyVia}
	if out.ContactFields == nil {
		out.ContactFields = []string{}
	}
	return out
}

// TicketDetail is one ticket with what it takes to work on it.
type TicketDetail struct {
	Ticket      *Ticket    `json:"ticket"`
	Contact     *Contact   `json:"contact"`
	ChannelKind string     `json:"channel_kind"`
	Messages    []*Message `json:"messages"`
	// Policy is null when the channel is not running on this node.
	Policy *Policy `json:"policy"`
}

func detailOut(v *hub.TicketView) *TicketDetail {
	out := &TicketDetail{Ticket: ticketOut(v.Ticket), Contact: contactOut(v.Contact), ChannelKind: v.ChannelKind,
		Messages: make([]*Message, 0, len(v.Messages)), Policy: policyOut(v.Policy)}
	for _, m := range v.Messages {
		out.Messages = append(out.Messages, messageOut(m))
	}
	return out
}

// TicketList is a page of tickets; NextBefore, when not null, is the
// "before" of the next page.
type TicketList struct {
	Items      []*Ticket `json:"items"`
	NextBefore *int64    `json:"next_before"`
}

// Change is one entry of the instance's change feed.
type Change struct {
	// Cursor is the entry's position; pass the last one seen as "after".
	Cursor int64 `json:"cursor"`
	// Type is "ticket.updated" (created, assigned, status changed),
	// "message.new" (a message or note was added) or "message.state" (an
	// outbound message's delivery state changed).
	Type     string   `json:"type"`
	TicketID int64    `json:"ticket_id"`
	Ticket   *Ticket  `json:"ticket"`
	Message  *Message `json:"message"`
}

// ChangeList is a page of the change feed.
type ChangeList struct {
	Items []*Change `json:"items"`
	// Cursor is where the next call starts ("after"): the last entry's
	// cursor, or the request's own "after" when there was nothing new.
	Cursor int64 `json:"cursor"`
	// More is true when the page is full: call again at once.
	More bool `json:"more"`
}
