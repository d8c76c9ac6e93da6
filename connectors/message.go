package connectors

import "time"

// Identity is an end user's identity on one channel. Only the fields the
// user's privacy preferences on that channel allow are filled (M3).
type Identity struct {
	// ExternalID is the stable id on the channel: an email address, a
	// Twitter user id, a page-scoped id, a live-chat visitor id.
	ExternalID  string
	DisplayName string
	Handle      string // e.g. a screen name, without "@"
	Email       string
	// Fields holds further channel-specific contact data, keyed by names
	// the channel declares in Policy.ContactFields.
	Fields map[string]string
}

// Attachment is a file carried by a message. Inbound attachments carry
// their bytes in Data or, for provider-hosted files, a URL.
type Attachment struct {
	Filename    string
	ContentType string
	Data        []byte
	URL         string
	ContentID   string // for inline images referenced as cid:
	Inline      bool
	// Sticker marks an attachment that is a sticker (e.g. Messenger), with
	// its provider id in Meta.
	Meta map[string]string
}

// Inbound is one item received on a channel, normalized.
type Inbound struct {
	ChannelID string
	// ExternalID is the provider's id of the item and the dedup key within
	// the channel: the same ExternalID delivered twice is stored once.
	ExternalID string
	// ThreadKey names the conversation on channels that have one (DM
	// conversation id, page-scoped id, live-chat conversation). Empty on
	// channels that thread by headers.
	ThreadKey string
	// ConversationID, when set, is the hub conversation the item belongs to
	// (as returned by Host.OpenThread).
	ConversationID int64
	// ThreadHints are external ids of earlier messages this one answers,
	// most specific first (In-Reply-To, then References newest first).
	ThreadHints []string
	// OwnRef names an outbound message of the hub that this item answers,
	// found in a token the channel minted for it (our Message-ID). Both
	// ids must agree for it to count; it threads even when the provider's
	// id of that message was never recorded.
	OwnRef OwnRef
	// TicketRef is an optional ticket number hint (subject tag, address).
	// It threads only into a ticket of the same contact.
	TicketRef string
	Sender    Identity
	Subject   string
	// Text is the plain text; HTML is the raw HTML as received. The hub
	// sanitizes HTML before storing it for display. For mail, both hold
	// only the new part of a reply; the quoted history and signature go to
	// Quoted (text) and QuotedHTML, kept with the message and shown
	// collapsed.
	Text        string
	HTML        string
	Quoted      string
	QuotedHTML  string
	Attachments []Attachment
	SentAt      time.Time
	// AutoReply marks machine-generated mail (out-of-office, vacation).
	// It never opens a ticket, reopens one or asks for an agent (C07).
	AutoReply bool
	// AttachOnly stores the item only if it threads into an existing
	// ticket; otherwise nothing is stored and Receipt.Ignored is set. Set
	// for auto-replies, which must never open a ticket.
	AttachOnly bool
	// NewTicket forces a new ticket (each web-form submission is one).
	NewTicket bool
	// Meta keeps channel-specific data worth keeping (quick-reply payloads,
	// postback payloads, form fields).
	Meta map[string]string
}

// OwnRef is a reference to an outbound message by the hub's own ids.
type OwnRef struct {
	MessageID    int64
	TicketNumber int64
}

// Receipt tells a connector what became of a delivered item.
type Receipt struct {
	ConversationID int64 // the ticket id
	TicketNumber   int64
	MessageID      int64
	// CreatedAt is when the message was stored (the first time, for a
	// duplicate): the time the record shows.
	CreatedAt time.Time
	// Duplicate is true when the item had been stored before; the
	// connector acknowledges it upstream all the same.
	Duplicate bool
	// Ignored is true when an AttachOnly item matched no ticket and was
	// not stored; the connector acknowledges it upstream all the same.
	Ignored bool
}

// Outbound is one message the hub asks a channel to send.
type Outbound struct {
	InstanceID     string
	ChannelID      string
	MessageID      int64  // the hub's id of the message
	IdempotencyKey string // stable across retries of this message
	ConversationID int64
	TicketNumber   int64
	ThreadKey      string
	To             Identity
	Subject        string
	// References are the external ids of the conversation, oldest first
	// (for email: References / In-Reply-To).
	References  []string
	Text        string
	HTML        string
	Attachments []Attachment
	AuthorName  string // the agent's display name
	// Automatic marks messages not written by a person (acknowledgements).
	Automatic bool
	// CreatedAt is when the message was written, as the record shows it.
	CreatedAt time.Time
}

// SendResult is what a successful Send returns.
type SendResult struct {
	ExternalID string
	// State is DeliverySent unless the provider confirmed more at once.
	State DeliveryState
}

// DeliveryState is the life of an outbound message.
type DeliveryState string

const (
	DeliveryQueued    DeliveryState = "queued"
	DeliverySent      DeliveryState = "sent"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryRead      DeliveryState = "read"
	DeliveryFailed    DeliveryState = "failed"
)

// DeliveryUpdate reports delivery progress for outbound messages: either
// one message by ExternalID, or all messages to Recipient sent up to
// Watermark.
type DeliveryUpdate struct {
	ChannelID  string
	ExternalID string
	Recipient  string
	Watermark  time.Time
	State      DeliveryState
	Reason     string
}

// ThreadOpen asks for the open conversation of a thread key.
type ThreadOpen struct {
	ChannelID string
	ThreadKey string
	Contact   Identity
	Subject   string
}

// Thread is an open conversation.
type Thread struct {
	ConversationID int64
	TicketNumber   int64
	Created        bool
}

// HistoryItem is one stored message of a conversation as a channel may
// show it to the end user. Internal notes are never included.
type HistoryItem struct {
	ID         int64
	Direction  string // "in" or "out"
	Text       string
	HTML       string
	AuthorName string
	ExternalID string
	State      DeliveryState
	CreatedAt  time.Time
}

// Signal is a transient indication such as typing.
type Signal struct {
	ChannelID      string
	ConversationID int64
	ThreadKey      string
	Kind           string // "typing", "typing_stop", "seen"
	From           string // agent name or visitor id
}
