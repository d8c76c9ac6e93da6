package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Address is one mailbox of a header: a display name and an address.
// Addr is lower-cased in its domain part only; the local part is kept.
type Address struct {
	Name string
	Addr string
}

// Mail is one parsed message: what Parse could read of it. Parse fills it
// as far as the input allows and records what it could not read in
// Warnings; it never returns an empty Mail for readable input.
type Mail struct {
	// Header is the top-level header with its raw (undecoded) values, for
	// the loop and bounce checks (Auto-Submitted, Precedence, Return-Path…).
	Header textproto.MIMEHeader

	// MessageID is the Message-ID without angle brackets; "" when missing
	// or empty. InReplyTo and References are message ids likewise, in
	// header order (References oldest first, as written).
	MessageID  string
	InReplyTo  []string
	References []string

	Subject string // decoded to UTF-8
	From    Address
	To      []Address
	Cc      []Address
	ReplyTo []Address
	// DeliveredTo holds Delivered-To / X-Original-To addresses, which tell
	// which of our addresses the mail was sent to when To is a list.
	DeliveredTo []string
	Date        time.Time // zero when missing or unreadable

	// Text is the whole plain-text body in UTF-8 (derived from HTML for
	// HTML-only mail). HTML is the HTML body as received, in UTF-8, cid:
	// references kept.
	Text string
	HTML string
	// TextFromHTML is set when the mail had no text part and Text was
	// derived from HTML.
	TextFromHTML bool

	// Attachments are the files of the message, inline images (with
	// ContentID and Inline set) included. Files extracted from winmail.dat
	// are here too. When the message could not be fully read, the raw
	// source is attached as "original.eml".
	Attachments []connectors.Attachment

	// Report is set for multipart/report messages (DSNs): the
	// machine-readable parts, for bounce handling.
	Report *Report

	// Warnings name what could not be read (a bad charset, a broken
	// part), in plain words.
	Warnings []string
}

// Report holds the parts of a multipart/report (RFC 6522) message.
type Report struct {
	ReportType string // the report-type parameter, e.g. "delivery-status"
	// DeliveryStatus is the body of the message/delivery-status part
	// (RFC 3464), as received.
	DeliveryStatus []byte
	// OriginalHeaders is the header block of the returned message, from a
	// text/rfc822-headers or message/rfc822 part.
	OriginalHeaders []byte
}

// ingestFunc stores one raw mail through the hub. It returns nil when the
// mail is stored, was stored before, or is deliberately not stored (our
// own mail, an auto-reply to no ticket): the receiver may then
// acknowledge it upstream (\Seen, a move, an SMTP 250). Any error means
// "not stored, try again later"; the receiver must not acknowledge.
type ingestFunc func(ctx context.Context, raw []byte, src Source) error

// Source says where a raw mail came from, for logs and metrics.
type Source struct {
	Via     string // "imap" or "smtp"
	Mailbox string // IMAP mailbox
	UID     uint32 // IMAP UID
	// UIDValidity is the IMAP mailbox's UIDVALIDITY, which with UID names
	// the message on the server.
	UIDValidity uint32
	// InternalDate is the IMAP INTERNALDATE (when the server received the
	// mail); zero when unknown.
	InternalDate time.Time
	// Oversize is set (to the message's RFC822.SIZE) when the message was
	// larger than the channel's limit: raw is then only its header with a
	// plain-text note as the body, and the full message stays on the
	// server.
	Oversize int64
	// Recipients are the SMTP envelope recipients (RCPT TO) of this
	// channel, which tell the plus-address even when To does not.
	Recipients []string
}

// Cursor is how far a mailbox has been read: everything up to UID under
// UIDValidity is stored. A different UIDValidity means the mailbox was
// re-created and is read again from the start (dedup absorbs repeats).
type Cursor struct {
	UIDValidity uint32
	UID         uint32
}

// cursorStore keeps the cursors of a channel's mailboxes across restarts.
type cursorStore interface {
	LoadCursor(ctx context.Context, mailbox string) (Cursor, error)
	SaveCursor(ctx context.Context, mailbox string, c Cursor) error
}

// Our own Message-IDs are "sb-<ticket number>-<message id>.<check>@<domain>".
// They are a pure function of the outbound message, so a retry after a
// crash (sent, outcome not recorded) sends the same id, and a reply to one
// threads by its ticket number even if the id was never recorded.
var ownMessageID = regexp.MustCompile(`^sb-([0-9]{1,18})-([0-9]{1,18})\.([0-9a-f]{10})@(.+)$`)

// newMessageID returns the Message-ID (without angle brackets) for an
// outbound message.
func newMessageID(domain string, ticketNumber, messageID int64, idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return fmt.Sprintf("sb-%d-%d.%s@%s", ticketNumber, messageID, hex.EncodeToString(sum[:5]), domain)
}

// parseOwnMessageID returns the hub's ids in one of our Message-IDs
// (without angle brackets) for domain.
func parseOwnMessageID(id, domain string) (ref connectors.OwnRef, ok bool) {
	m := ownMessageID.FindStringSubmatch(id)
	if m == nil || !strings.EqualFold(m[4], domain) {
		return ref, false
	}
	n, err1 := strconv.ParseInt(m[1], 10, 64)
	mid, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || mid <= 0 {
		return ref, false
	}
	return connectors.OwnRef{TicketNumber: n, MessageID: mid}, true
}

// positiveOr sets *v to def unless it is positive: zero (and nonsense
// below it) in a config struct means "the default".
func positiveOr[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
