package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/time/rate"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/internal/keyrate"
)

// ingest is the one path of every received mail, from IMAP and SMTP
// alike: parse, classify, then either act on it (a bounce marks our
// message failed), drop it on purpose (our own mail), or deliver it to the
// hub. It returns nil only when the receiver may acknowledge the mail
// upstream.
func (c *Connector) ingest(ctx context.Context, raw []byte, src Source) error {
	c.mu.Lock()
	host := c.host
	c.mu.Unlock()
	if host == nil {
		return fmt.Errorf("email: channel %q is not running", c.channelID)
	}
	m := Parse(raw)
	log := c.log.With("via", src.Via, "message_id", m.MessageID)
	if src.Mailbox != "" {
		log = log.With("mailbox", src.Mailbox, "uid", src.UID)
	}
	for _, w := range m.Warnings {
		log.Warn("mail partly unreadable", "warning", w)
	}
	if c.isOwn(m.From.Addr) {
		// Our own mail coming back (a copy in the mailbox, a loop through a
		// forward) is never a customer's message.
		log.Info("ignored mail from the channel's own address", "from", m.From.Addr)
		return nil
	}
	cls := Classify(m)
	if cls.Kind == KindBounce {
		return c.bounce(ctx, host, m, cls, log)
	}
	in := c.inbound(m, raw, cls, src)
	rec, err := host.Deliver(ctx, in)
	if err != nil {
		return err
	}
	switch {
	case rec.Ignored:
		log.Info("auto-reply matched no ticket; not stored", "from", m.From.Addr, "reason", in.Meta["auto_reply"])
	case rec.Duplicate:
		log.Debug("mail stored before", "ticket", rec.TicketNumber)
	default:
		log.Info("mail stored", "ticket", rec.TicketNumber, "message", rec.MessageID)
	}
	return nil
}

// bounce marks the outbound message a delivery status notification
// returns as failed, with the reason an agent can read (C08). A bounce is
// never a ticket or a contact.
func (c *Connector) bounce(ctx context.Context, host connectors.Host, m *Mail, cls Classification, log *slog.Logger) error {
	b := cls.Bounce
	if b == nil || b.OriginalMessageID == "" {
		log.Warn("bounce for a message we cannot identify; nothing to mark", "from", m.From.Addr, "subject", m.Subject)
		return nil
	}
	u := connectors.DeliveryUpdate{ChannelID: c.channelID, ExternalID: b.OriginalMessageID,
		State: connectors.DeliveryFailed, Reason: bounceReason(b)}
	if err := host.UpdateDelivery(ctx, u); err != nil {
		return fmt.Errorf("mark bounced message: %w", err)
	}
	log.Info("bounce recorded", "original", b.OriginalMessageID, "reason", u.Reason)
	return nil
}

// bounceReason says in one line who could not be reached and why.
func bounceReason(b *Bounce) string {
	var parts []string
	for _, r := range b.Recipients {
		if r.Action != "" && !strings.EqualFold(r.Action, "failed") {
			continue // delayed, relayed, delivered: not why it bounced
		}
		p := r.Address
		if r.Status != "" {
			p += ": " + r.Status
		}
		if r.Diagnostic != "" {
			p += " " + r.Diagnostic
		}
		parts = append(parts, strings.TrimSpace(p))
	}
	if len(parts) == 0 {
		return "the recipient's mail server returned the message as undeliverable"
	}
	s := "undeliverable to " + strings.Join(parts, "; ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// maxStoredText is the text the hub keeps of one message (its
// MaxTextBytes default); a longer mail is kept whole as original.eml too.
const maxStoredText = 256 << 10

// inbound turns a parsed mail (and its raw source) into what the hub
// stores.
func (c *Connector) inbound(m *Mail, raw []byte, cls Classification, src Source) connectors.Inbound {
	sender := senderOf(m)
	reply := SplitReply(m.Text, m.HTML)
	if m.TextFromHTML {
		// Text derived from HTML has lost the markup that tells quotes
		// apart: split the HTML and derive both parts from it, so text and
		// HTML agree on what is new.
		reply.Text, _ = htmlToText(reply.HTML)
		reply.Quoted, _ = htmlToText(reply.QuotedHTML)
	}
	in := connectors.Inbound{
		ChannelID:   c.channelID,
		ExternalID:  externalID(m, sender),
		Sender:      connectors.Identity{ExternalID: sender.Addr, DisplayName: oneLine(sender.Name), Email: sender.Addr},
		Subject:     oneLine(m.Subject),
		Text:        strings.TrimPrefix(reply.Text, "\ufeff"),
		HTML:        strings.TrimPrefix(reply.HTML, "\ufeff"),
		Quoted:      reply.Quoted,
		QuotedHTML:  reply.QuotedHTML,
		Attachments: m.Attachments,
		SentAt:      sentAt(m.Date, c.now()),
		ThreadHints: threadHints(m),
		Meta:        map[string]string{},
	}
	for _, h := range in.ThreadHints {
		if ref, ok := parseOwnMessageID(h, c.settings.MessageIDDomain); ok {
			in.OwnRef = ref
			break
		}
	}
	in.TicketRef = c.ticketRef(m, src)
	reason := ""
	switch {
	case cls.Kind == KindAutoReply:
		reason = cls.Reason
	case !c.limit.allow(limitKey(sender.Addr)):
		// A mail storm (a broken script, a loop with another helpdesk that
		// sends no marker) is kept out of the agents' queue.
		reason = fmt.Sprintf("more than %d mails an hour from this sender", c.settings.SenderLimit.PerHour)
	}
	if reason != "" {
		// Never opens a ticket, reopens one, or asks for an agent (C07).
		in.AutoReply, in.AttachOnly = true, true
		in.Meta["auto_reply"] = reason
	}
	if len(m.Warnings) > 0 {
		in.Meta["parse_warnings"] = strings.Join(m.Warnings, "; ")
	}
	if len(in.Text)+len(in.Quoted) > maxStoredText || len(in.HTML)+len(in.QuotedHTML) > 4*maxStoredText {
		// The hub keeps that much of the text; the whole mail stays as its
		// source, so nothing of it is lost.
		keepOriginal(&in, raw)
	}
	if len(in.Meta) == 0 {
		in.Meta = nil
	}
	return in
}

// oneLine is a header value as agents see it: control characters (C0 and
// C1, often a byte of another charset shown raw) become spaces, and a byte
// order mark goes.
func oneLine(v string) string {
	v = strings.Map(func(r rune) rune {
		switch {
		case r == '\ufeff':
			return -1
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, v)
	return strings.TrimSpace(v)
}

// keepOriginal attaches the raw mail as original.eml unless it is there.
func keepOriginal(in *connectors.Inbound, raw []byte) {
	for _, a := range in.Attachments {
		if a.Filename == "original.eml" && a.ContentType == "message/rfc822" {
			return
		}
	}
	in.Attachments = append(in.Attachments, connectors.Attachment{Filename: "original.eml", ContentType: "message/rfc822", Data: raw})
}

// limitKey is whom the sender limit counts a mail against: the address
// without its +tag, so that one sender cannot escape the limit by tagging.
func limitKey(addr string) string {
	local, domain, ok := strings.Cut(strings.ToLower(addr), "@")
	if !ok {
		return addr
	}
	local, _, _ = strings.Cut(local, "+")
	return local + "@" + domain
}

// senderOf is who the mail is from: From, else Reply-To, else the
// envelope's Return-Path. A mail with none of them is still stored, from
// an unknown sender, rather than dropped.
func senderOf(m *Mail) Address {
	if m.From.Addr != "" {
		return Address{Name: m.From.Name, Addr: strings.ToLower(m.From.Addr)}
	}
	if len(m.ReplyTo) > 0 && m.ReplyTo[0].Addr != "" {
		return Address{Name: m.ReplyTo[0].Name, Addr: strings.ToLower(m.ReplyTo[0].Addr)}
	}
	if rp := strings.Trim(strings.TrimSpace(m.Header.Get("Return-Path")), "<>"); strings.Contains(rp, "@") {
		return Address{Addr: strings.ToLower(rp)}
	}
	return Address{Name: "Unknown sender", Addr: "unknown-sender@invalid"}
}

// externalID is the dedup key: the Message-ID, or for mail without one a
// hash of what identifies it (not of the raw bytes: the same mail fetched
// over IMAP and received over SMTP differs in its Received lines).
func externalID(m *Mail, from Address) string {
	if m.MessageID != "" {
		return m.MessageID
	}
	h := sha256.New()
	for _, part := range []string{from.Addr, m.Date.UTC().Format(time.RFC3339), m.Subject, m.Text, m.HTML} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	for _, a := range m.Attachments {
		sum := sha256.Sum256(a.Data)
		h.Write(sum[:])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// sentAt is when the mail says it was written, unless that is missing or
// implausibly far in the future (a wrong clock): then when we received it.
func sentAt(date, now time.Time) time.Time {
	if date.IsZero() || date.After(now.Add(24*time.Hour)) {
		return now
	}
	return date
}

// threadHints are the ids of earlier mails this one answers, most
// specific first: In-Reply-To, then References newest first.
func threadHints(m *Mail) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] && len(out) < 50 {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range m.InReplyTo {
		add(id)
	}
	for i := len(m.References) - 1; i >= 0; i-- {
		add(m.References[i])
	}
	return out
}

var subjectTag = regexp.MustCompile(`\[#([0-9]{1,18})\]`)

// ticketRef is a ticket number the mail names: a reply token in one of its
// recipient addresses (local+t<number>@domain of a channel address), else
// a "[#number]" tag in the subject. The hub threads by it only into a
// ticket of the same contact.
func (c *Connector) ticketRef(m *Mail, src Source) string {
	var rcpts []string
	rcpts = append(rcpts, src.Recipients...)
	rcpts = append(rcpts, m.DeliveredTo...)
	for _, list := range [][]Address{m.To, m.Cc} {
		for _, a := range list {
			rcpts = append(rcpts, a.Addr)
		}
	}
	for _, r := range rcpts {
		if n, ok := c.replyToken(r); ok {
			return strconv.FormatInt(n, 10)
		}
	}
	if sm := subjectTag.FindStringSubmatch(m.Subject); sm != nil {
		return sm[1]
	}
	return ""
}

// replyToken reads the ticket number of local+t<number>@domain, for one of
// the channel's addresses.
func (c *Connector) replyToken(addr string) (int64, bool) {
	local, domain, ok := strings.Cut(strings.ToLower(strings.TrimSpace(addr)), "@")
	if !ok {
		return 0, false
	}
	base, tag, ok := strings.Cut(local, "+")
	if !ok || !strings.HasPrefix(tag, "t") {
		return 0, false
	}
	n, err := strconv.ParseInt(tag[1:], 10, 64)
	if err != nil || n <= 0 || !c.isOwn(base+"@"+domain) {
		return 0, false
	}
	return n, true
}

// isOwn tells whether addr is one of the channel's addresses (or a
// plus-addressed form of one).
func (c *Connector) isOwn(addr string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(strings.TrimSpace(addr)), "@")
	if !ok {
		return false
	}
	if base, _, plus := strings.Cut(local, "+"); plus {
		local = base
	}
	for _, a := range c.addresses() {
		if strings.EqualFold(a, local+"@"+domain) {
			return true
		}
	}
	return false
}

// senderLimiter is the per-sender budget of mails an hour.
type senderLimiter struct{ l *keyrate.Limiter }

func newSenderLimiter(rl RateLimit, now func() time.Time) *senderLimiter {
	if rl.Disabled {
		return &senderLimiter{}
	}
	return &senderLimiter{l: keyrate.New(rate.Limit(float64(rl.PerHour)/3600), rl.PerHour, now)}
}

func (s *senderLimiter) allow(sender string) bool {
	ok, _ := s.l.Allow(sender)
	return ok
}
