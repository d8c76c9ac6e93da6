package connectors

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Kind names a channel implementation, e.g. "email" or "livechat".
type Kind string

// Connector is the core contract of a channel. A connector is built by its
// Factory without I/O, started once with the Host it delivers into, and
// stopped once; Stop must be safe after a failed or partial Start.
type Connector interface {
	Kind() Kind
	// Policy declares what the channel allows; the hub enforces it before
	// a reply is queued.
	Policy() Policy
	// Start begins receiving. Inbound items go to host.Deliver, which returns
	// only after the item is durably stored: a connector acknowledges
	// upstream only after Deliver returned nil (ack-after-commit).
	Start(ctx context.Context, host Host) error
	// Stop ends receiving and releases resources.
	Stop(ctx context.Context) error
	// Send delivers one outbound message and returns the provider's id for
	// it. Errors should be *Error values so the outbox knows whether to
	// retry; an unclassified error is treated as retryable.
	Send(ctx context.Context, msg Outbound) (SendResult, error)
}

// Host is what the hub offers a running connector.
type Host interface {
	// Deliver stores one inbound message durably (deduplicated on the
	// channel and Inbound.ExternalID) and returns after the commit.
	Deliver(ctx context.Context, in Inbound) (Receipt, error)
	// UpdateDelivery records delivery state reported by the provider
	// (delivered, read, failed) for earlier outbound messages.
	UpdateDelivery(ctx context.Context, u DeliveryUpdate) error
	// OpenThread returns the open conversation for a thread key, creating
	// it if there is none. Concurrent calls for one key return the same
	// conversation.
	OpenThread(ctx context.Context, t ThreadOpen) (Thread, error)
	// History lists the messages of a conversation after a cursor (a
	// message id; 0 for all), oldest first, at most limit of them.
	History(ctx context.Context, channelID string, conversationID int64, after int64, limit int) ([]HistoryItem, error)
	// Signal passes a transient, unstored signal (typing, seen) of the end
	// user on to the agents of the conversation.
	Signal(ctx context.Context, s Signal) error
	// LoadState and SaveState keep a small value of the channel's own
	// (e.g. an IMAP mailbox cursor) across restarts and nodes. LoadState
	// returns "" for a key never saved.
	LoadState(ctx context.Context, key string) (string, error)
	SaveState(ctx context.Context, key, value string) error
}

// Optional capabilities, found by type assertion on a Connector.

// HTTPRoutes is implemented by channels that receive over HTTP (webhooks,
// web forms, websockets). The host mounts each route under
// /channels/{channelID}/.
type HTTPRoutes interface {
	Routes() []Route
}

// Route is one HTTP endpoint of a connector.
type Route struct {
	Method  string // "" matches every method
	Path    string // relative to the channel prefix, e.g. "webhook"
	Handler http.Handler
}

// SendCapable is implemented by channels that may be configured to
// receive only (an email channel without a relay). When replies of another
// channel leave through a channel of this kind (Policy.ReplyVia), the hub
// picks one that can send; a reply whose only way out cannot send waits,
// visibly, until that channel is reconfigured.
type SendCapable interface {
	CanSend() bool
}

// Claimer is implemented by channels that take something no other channel
// may take as well: an inbound address, a mailbox to read. Two channels
// with the same claim would steal each other's messages, across tenants
// too; the admin layer refuses the second one. Claims are opaque strings,
// compared exactly among channels of the same kind.
type Claimer interface {
	Claims() []string
}

// SecretNamer is implemented by channels that know every secret they
// take; the admin layer refuses any other name, so that a misspelt secret
// is an error rather than a value kept and never used.
type SecretNamer interface {
	SecretNames() []string
}

// SignalSender is implemented by channels that can show agent signals
// (typing, read) to the end user.
type SignalSender interface {
	SendSignal(ctx context.Context, s Signal) error
}

// Config is what a Factory gets. Settings holds the channel's JSON
// configuration; factories decode it strictly (unknown fields rejected) and
// validate it, naming the bad field. Secrets are never logged.
type Config struct {
	InstanceID string
	ChannelID  string
	Settings   json.RawMessage
	Secrets    map[string]string
	Logger     *slog.Logger
	PubSub     PubSub
	Now        func() time.Time
}

// PubSub is a cross-node message fabric (Redis pub/sub in production,
// in-process for the embedded default). Channels that hold end-user
// connections (live chat) use it to reach the node that holds a socket.
type PubSub interface {
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe delivers messages published on topic until ctx ends or the
	// returned cancel func is called.
	Subscribe(ctx context.Context, topic string, fn func(payload []byte)) (cancel func(), err error)
}
