package connectors

import "time"

// Threading says how a channel groups messages into conversations.
type Threading string

const (
	// ThreadingHeaders: messages reference earlier ones (email).
	ThreadingHeaders Threading = "headers"
	// ThreadingConversation: the provider names the conversation (DMs,
	// Messenger page-scoped ids).
	ThreadingConversation Threading = "conversation"
	// ThreadingSession: a live session with the end user (live chat).
	ThreadingSession Threading = "session"
	// ThreadingNone: every inbound item starts a ticket (web forms); replies
	// leave through another channel.
	ThreadingNone Threading = "none"
)

// Policy is what a channel declares about itself; the hub checks replies
// against it before they reach the outbox.
type Policy struct {
	// ReplyWindow is how long after the end user's last message a reply is
	// allowed; 0 means no limit.
	ReplyWindow time.Duration
	// MaxTextLength is the longest text in runes one message may carry; 0
	// means no limit.
	MaxTextLength int
	// Attachments tells whether outbound attachments are supported, and
	// MaxAttachmentBytes their size limit (0: no limit).
	Attachments        bool
	MaxAttachmentBytes int64
	// HTML tells whether the channel renders HTML.
	HTML      bool
	Threading Threading
	// ContactFields lists the contact data the channel can provide (M3):
	// e.g. "email", "name", "handle", "avatar_url", "locale".
	ContactFields []string
	// ReplyVia names the channel kind replies use when the channel cannot
	// answer itself (web forms reply by email).
	ReplyVia Kind
}
