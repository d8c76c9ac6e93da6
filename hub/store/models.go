package store

import (
	"time"

	"github.com/uptrace/bun"
)

// Instance is a tenant: one customer's support organisation.
type Instance struct {
	bun.BaseModel `bun:"table:instances"`

	ID       string `bun:"id,pk" json:"id"`
	Name     string `bun:"name,notnull" json:"name"`
	TimeZone string `bun:"time_zone,notnull" json:"time_zone"`
	// TicketSeq is the last ticket number handed out in this instance.
	TicketSeq int64 `bun:"ticket_seq,notnull,default:0" json:"-"`
	// FeedSeq is the last position handed out in this instance's change
	// feed.
	FeedSeq   int64     `bun:"feed_seq,notnull,default:0" json:"-"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Channel is one connected support channel of an instance.
type Channel struct {
	bun.BaseModel `bun:"table:channels"`

	ID         string `bun:"id,pk" json:"id"`
	InstanceID string `bun:"instance_id,notnull" json:"instance_id"`
	Kind       string `bun:"kind,notnull" json:"kind"`
	Name       string `bun:"name,notnull" json:"name"`
	// Settings is the connector's JSON configuration.
	Settings string `bun:"settings,notnull" json:"settings"`
	// Secrets is a JSON object of secret values; it is never returned by an
	// API nor logged.
	Secrets string `bun:"secrets,notnull" json:"-"`
	Enabled bool   `bun:"enabled,notnull" json:"enabled"`
	// TeamID is the team new tickets of this channel are routed to; nil
	// routes them to the instance-wide queue.
	TeamID    *int64    `bun:"team_id" json:"team_id,omitempty"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Contact is an end user, across channels.
type Contact struct {
	bun.BaseModel `bun:"table:contacts"`

	ID         int64     `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string    `bun:"instance_id,notnull" json:"instance_id"`
	Name       string    `bun:"name,notnull" json:"name"`
	Email      string    `bun:"email,notnull" json:"email,omitempty"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at,notnull" json:"updated_at"`
}

// Identity is a contact's identity on one channel. Only the fields the
// channel's privacy preferences allow are stored (M3).
type Identity struct {
	bun.BaseModel `bun:"table:contact_identities"`

	ID          int64             `bun:"id,pk,autoincrement" json:"id"`
	InstanceID  string            `bun:"instance_id,notnull,unique:identity_key" json:"instance_id"`
	ChannelID   string            `bun:"channel_id,notnull,unique:identity_key" json:"channel_id"`
	ExternalID  string            `bun:"external_id,notnull,unique:identity_key" json:"external_id"`
	ContactID   int64             `bun:"contact_id,notnull" json:"contact_id"`
	DisplayName string            `bun:"display_name,notnull" json:"display_name,omitempty"`
	Handle      string            `bun:"handle,notnull" json:"handle,omitempty"`
	Email       string            `bun:"email,notnull" json:"email,omitempty"`
	Fields      map[string]string `bun:"fields,type:text" json:"fields,omitempty"`
	CreatedAt   time.Time         `bun:"created_at,notnull" json:"created_at"`
	// Contact is loaded with the identity when asked (one query, not two).
	Contact *Contact `bun:"rel:belongs-to,join:contact_id=id" json:"-"`
}

// Team groups agents; tickets are routed to a team's queue.
type Team struct {
	bun.BaseModel `bun:"table:teams"`

	ID         int64     `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string    `bun:"instance_id,notnull,unique:team_name" json:"instance_id"`
	Name       string    `bun:"name,notnull,unique:team_name" json:"name"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Agent is a support agent. Agents authenticate with a token whose
// SHA-256 is stored, never the token itself.
type Agent struct {
	bun.BaseModel `bun:"table:agents"`

	ID         int64     `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string    `bun:"instance_id,notnull,unique:agent_email" json:"instance_id"`
	Name       string    `bun:"name,notnull" json:"name"`
	Email      string    `bun:"email,notnull,unique:agent_email" json:"email"`
	TokenHash  string    `bun:"token_hash,notnull,unique" json:"-"`
	Capacity   int       `bun:"capacity,notnull" json:"capacity"`
	Disabled   bool      `bun:"disabled,notnull" json:"disabled"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
	TeamIDs    []int64   `bun:"-" json:"team_ids"`
}

// AgentTeam is the membership of an agent in a team.
type AgentTeam struct {
	bun.BaseModel `bun:"table:agent_teams"`

	AgentID    int64  `bun:"agent_id,pk"`
	TeamID     int64  `bun:"team_id,pk"`
	InstanceID string `bun:"instance_id,notnull"`
}

// APIKey authenticates an API client of one instance; only its hash is
// stored.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         int64      `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string     `bun:"instance_id,notnull" json:"instance_id"`
	Name       string     `bun:"name,notnull" json:"name"`
	KeyHash    string     `bun:"key_hash,notnull,unique" json:"-"`
	CreatedAt  time.Time  `bun:"created_at,notnull" json:"created_at"`
	RevokedAt  *time.Time `bun:"revoked_at" json:"revoked_at,omitempty"`
}

// Ticket statuses.
const (
	StatusNew     = "new"
	StatusOpen    = "open"
	StatusPending = "pending"
	StatusSolved  = "solved"
	StatusClosed  = "closed"
)

// Ticket is one conversation with an end user on one channel.
type Ticket struct {
	bun.BaseModel `bun:"table:tickets,alias:t"`

	ID         int64  `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string `bun:"instance_id,notnull,unique:ticket_number" json:"instance_id"`
	// Number is the ticket's number within its instance, handed out when
	// the creating transaction commits (NULL until then, never seen
	// outside it).
	Number    int64  `bun:"number,nullzero,unique:ticket_number" json:"number"`
	ChannelID string `bun:"channel_id,notnull" json:"channel_id"`
	ContactID int64  `bun:"contact_id,notnull" json:"contact_id"`
	// ThreadKey is the channel's conversation key (visitor conversation,
	// DM conversation, page-scoped id); empty for header-threaded channels.
	ThreadKey       string     `bun:"thread_key,notnull" json:"thread_key,omitempty"`
	Subject         string     `bun:"subject,notnull" json:"subject"`
	Status          string     `bun:"status,notnull" json:"status"`
	Priority        int        `bun:"priority,notnull" json:"priority"`
	TeamID          *int64     `bun:"team_id" json:"team_id,omitempty"`
	AssigneeID      *int64     `bun:"assignee_id" json:"assignee_id,omitempty"`
	CreatedAt       time.Time  `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt       time.Time  `bun:"updated_at,notnull" json:"updated_at"`
	LastMessageAt   time.Time  `bun:"last_message_at,notnull" json:"last_message_at"`
	LastInboundAt   *time.Time `bun:"last_inbound_at" json:"last_inbound_at,omitempty"`
	FirstResponseAt *time.Time `bun:"first_response_at" json:"first_response_at,omitempty"`
	ResolvedAt      *time.Time `bun:"resolved_at" json:"resolved_at,omitempty"`
	ClosedAt        *time.Time `bun:"closed_at" json:"closed_at,omitempty"`
	// ChangeID is the feed position of the last change a store call made
	// to this ticket (not stored).
	ChangeID int64 `bun:"-" json:"-"`
	// ContactName is filled by ticket lists (not stored).
	ContactName string `bun:"contact_name,scanonly" json:"contact_name,omitempty"`
}

// Message directions.
const (
	DirIn   = "in"
	DirOut  = "out"
	DirNote = "note"
)

// Message is one message of a ticket: from the end user (in), to the end
// user (out), or an internal note between agents.
type Message struct {
	bun.BaseModel `bun:"table:messages,alias:m"`

	ID         int64  `bun:"id,pk,autoincrement" json:"id"`
	InstanceID string `bun:"instance_id,notnull" json:"instance_id"`
	TicketID   int64  `bun:"ticket_id,notnull" json:"ticket_id"`
	ChannelID  string `bun:"channel_id,notnull" json:"channel_id"`
	Direction  string `bun:"direction,notnull" json:"direction"`
	// DedupKey makes (channel, key) unique: the external id for inbound
	// items, the idempotency key for outbound ones.
	DedupKey   *string `bun:"dedup_key" json:"-"`
	ExternalID string  `bun:"external_id,notnull" json:"external_id,omitempty"`
	AgentID    *int64  `bun:"agent_id" json:"agent_id,omitempty"`
	ContactID  *int64  `bun:"contact_id" json:"contact_id,omitempty"`
	AuthorName string  `bun:"author_name,notnull" json:"author_name"`
	Subject    string  `bun:"subject,notnull" json:"subject,omitempty"`
	Text       string  `bun:"text,notnull" json:"text"`
	HTML       string  `bun:"html,notnull" json:"html,omitempty"`
	// Quoted and QuotedHTML are the quoted history and signature of a
	// mail reply, kept beside its new text (Text, HTML).
	Quoted     string            `bun:"quoted,notnull,default:''" json:"quoted,omitempty"`
	QuotedHTML string            `bun:"quoted_html,notnull,default:''" json:"quoted_html,omitempty"`
	Meta       map[string]string `bun:"meta,type:text" json:"meta,omitempty"`
	AutoReply  bool              `bun:"auto_reply,notnull" json:"auto_reply,omitempty"`
	// State and StateReason track delivery of outbound messages.
	State       string        `bun:"state,notnull" json:"state,omitempty"`
	StateReason string        `bun:"state_reason,notnull" json:"state_reason,omitempty"`
	CreatedAt   time.Time     `bun:"created_at,notnull" json:"created_at"`
	Attachments []*Attachment `bun:"rel:has-many,join:id=message_id" json:"attachments,omitempty"`
	// ChangeID is the feed position of the change that recorded this
	// message's latest state (not stored).
	ChangeID int64 `bun:"-" json:"-"`
}

// Attachment is a file of a message; the bytes live in the blob store.
type Attachment struct {
	bun.BaseModel `bun:"table:attachments"`

	ID          int64             `bun:"id,pk,autoincrement" json:"id"`
	InstanceID  string            `bun:"instance_id,notnull" json:"-"`
	MessageID   int64             `bun:"message_id,notnull" json:"message_id"`
	Filename    string            `bun:"filename,notnull" json:"filename"`
	ContentType string            `bun:"content_type,notnull" json:"content_type"`
	Size        int64             `bun:"size,notnull" json:"size"`
	SHA256      string            `bun:"sha256,notnull" json:"sha256,omitempty"`
	BlobKey     string            `bun:"blob_key,notnull" json:"-"`
	URL         string            `bun:"url,notnull" json:"url,omitempty"`
	ContentID   string            `bun:"content_id,notnull" json:"content_id,omitempty"`
	Inline      bool              `bun:"inline,notnull" json:"inline,omitempty"`
	Meta        map[string]string `bun:"meta,type:text" json:"meta,omitempty"`
}

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxDead    = "dead"
)

// OutboxItem is an outbound message waiting to be sent (or done).
type OutboxItem struct {
	bun.BaseModel `bun:"table:outbox"`

	ID            int64      `bun:"id,pk,autoincrement"`
	InstanceID    string     `bun:"instance_id,notnull"`
	MessageID     int64      `bun:"message_id,notnull,unique"`
	ChannelID     string     `bun:"channel_id,notnull"`
	State         string     `bun:"state,notnull"`
	Attempts      int        `bun:"attempts,notnull"`
	NextAttemptAt time.Time  `bun:"next_attempt_at,notnull"`
	LockedUntil   *time.Time `bun:"locked_until"`
	LastError     string     `bun:"last_error,notnull"`
	CreatedAt     time.Time  `bun:"created_at,notnull"`
	UpdatedAt     time.Time  `bun:"updated_at,notnull"`
}

// Change kinds of the feed.
const (
	ChangeMessage = "message"
	ChangeTicket  = "ticket"
	ChangeState   = "delivery"
)

// Change is one entry of an instance's change feed: the record agents
// resume from after a reconnect (the socket is a live view; this is the
// record).
//
// Seq, not ID, is the feed position. IDs are handed out when rows are
// inserted and concurrent transactions may commit out of that order, so a
// reader could pass over a change committed late with a smaller ID. Seq is
// taken under the instance's row lock, held to the commit: within an
// instance, seq order is commit order.
type Change struct {
	bun.BaseModel `bun:"table:changes"`

	ID         int64     `bun:"id,pk,autoincrement" json:"-"`
	InstanceID string    `bun:"instance_id,notnull,unique:change_seq" json:"-"`
	Seq        int64     `bun:"seq,notnull,unique:change_seq" json:"seq"`
	TicketID   int64     `bun:"ticket_id,notnull" json:"ticket_id"`
	Kind       string    `bun:"kind,notnull" json:"kind"`
	MessageID  *int64    `bun:"message_id" json:"message_id,omitempty"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
}
