package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// deliver is the inbound pipeline: normalize, store in one transaction,
// then route and notify. It returns after the commit (ack-after-commit).
func (h *Hub) deliver(ctx context.Context, ch store.Channel, in connectors.Inbound) (connectors.Receipt, error) {
	start := time.Now()
	rec, err := h.record(ctx, ch, in)
	if err != nil {
		return connectors.Receipt{}, err
	}
	var res *store.IngestResult
	if h.batch != nil {
		res, err = h.batch.ingest(ctx, rec)
	} else {
		res, err = h.store.Ingest(ctx, rec)
	}
	if err != nil {
		return connectors.Receipt{}, fmt.Errorf("store inbound message: %w", err)
	}
	h.metrics.ingestSecs.Observe(time.Since(start).Seconds())
	if res.Ignored {
		return connectors.Receipt{Ignored: true}, nil
	}
	receipt := connectors.Receipt{ConversationID: res.Ticket.ID, TicketNumber: res.Ticket.Number, MessageID: res.Message.ID,
		CreatedAt: res.Message.CreatedAt, Duplicate: res.Duplicate}
	if res.Duplicate {
		h.metrics.duplicates.WithLabelValues(ch.Kind).Inc()
		return receipt, nil
	}
	h.metrics.inbound.WithLabelValues(ch.Kind).Inc()
	if res.Created {
		// Every feed position goes out live, so a client can tell a gap
		// from a position that was never published (agent protocol:
		// resume from the highest cursor up to which it saw every one).
		h.publish(ctx, Update{Type: UpdateTicket, InstanceID: res.Ticket.InstanceID, Cursor: res.CreatedCursor(), TicketID: res.Ticket.ID, Ticket: res.Ticket})
	}
	h.publishMessage(ctx, res.Ticket, res.Message)
	// An auto-reply never asks for an agent (C07).
	if !rec.AutoReply {
		h.routeInbound(ctx, res)
	}
	return receipt, nil
}

// record turns a connector's Inbound into what the store keeps: text to
// valid UTF-8 within limits, HTML sanitized for display, attachments moved
// to the blob store.
func (h *Hub) record(ctx context.Context, ch store.Channel, in connectors.Inbound) (*store.InboundRecord, error) {
	meta := map[string]string{}
	for k, v := range in.Meta {
		meta[k], _ = cleanText(v, 4096)
	}
	text, cut := cleanText(in.Text, h.cfg.MaxTextBytes)
	rawHTML, cutHTML := cleanText(in.HTML, 4*h.cfg.MaxTextBytes)
	safeHTML := ""
	if rawHTML != "" {
		safeHTML = h.html.Sanitize(rawHTML)
		if text == "" {
			text, _ = cleanText(textFromHTML(safeHTML), h.cfg.MaxTextBytes)
		}
	}
	quoted, cutQ := cleanText(in.Quoted, h.cfg.MaxTextBytes)
	quotedHTML, cutQH := cleanText(in.QuotedHTML, 4*h.cfg.MaxTextBytes)
	if quotedHTML != "" {
		quotedHTML = h.html.Sanitize(quotedHTML)
	}
	if cut || cutHTML || cutQ || cutQH {
		meta["truncated"] = "true"
	}
	subject, _ := cleanText(in.Subject, 998)
	ext, _ := cleanText(in.ExternalID, 998)
	contact := contactInput(in.Sender)
	contact.ExternalID, _ = cleanText(contact.ExternalID, 320)
	contact.DisplayName, _ = cleanText(contact.DisplayName, 256)
	contact.Handle, _ = cleanText(contact.Handle, 256)
	contact.Email, _ = cleanText(contact.Email, 320)
	if contact.ExternalID == "" {
		return nil, fmt.Errorf("inbound message without a sender id: %w", connectors.NewError(connectors.Permanent, "no_sender", "the message has no sender", nil))
	}
	var number int64
	if in.TicketRef != "" {
		number, _ = strconv.ParseInt(in.TicketRef, 10, 64)
	}
	atts := make([]*store.Attachment, 0, len(in.Attachments))
	for _, a := range in.Attachments {
		sa, err := h.storeAttachment(ctx, ch.InstanceID, a)
		if err != nil {
			return nil, err
		}
		atts = append(atts, sa)
	}
	if len(meta) == 0 {
		meta = nil
	}
	return &store.InboundRecord{
		InstanceID: ch.InstanceID, ChannelID: ch.ID, ExternalID: ext, ThreadKey: in.ThreadKey,
		ConversationID: in.ConversationID, ThreadHints: in.ThreadHints, TicketNumber: number,
		OwnRef:    store.OwnRef{MessageID: in.OwnRef.MessageID, TicketNumber: in.OwnRef.TicketNumber},
		NewTicket: in.NewTicket, AttachOnly: in.AttachOnly, TeamID: ch.TeamID, Contact: contact, Subject: subject,
		Text: text, HTML: safeHTML, Quoted: quoted, QuotedHTML: quotedHTML, Meta: meta, AutoReply: in.AutoReply,
		Attachments: atts, At: in.SentAt,
	}, nil
}

// storeAttachment writes the bytes under their content address (a
// redelivery writes the same key), before the transaction that records
// them.
func (h *Hub) storeAttachment(ctx context.Context, instanceID string, a connectors.Attachment) (*store.Attachment, error) {
	name, _ := cleanText(a.Filename, 255)
	ctype, _ := cleanText(a.ContentType, 255)
	sa := &store.Attachment{Filename: name, ContentType: ctype, URL: a.URL, ContentID: a.ContentID, Inline: a.Inline, Meta: a.Meta}
	if len(a.Data) == 0 {
		return sa, nil
	}
	sa.Size = int64(len(a.Data))
	sum := sha256.Sum256(a.Data)
	sa.SHA256 = hex.EncodeToString(sum[:])
	if sa.Size > h.cfg.MaxAttachmentBytes {
		if sa.Meta == nil {
			sa.Meta = map[string]string{}
		}
		sa.Meta["not_stored"] = fmt.Sprintf("larger than the %d byte limit", h.cfg.MaxAttachmentBytes)
		return sa, nil
	}
	sa.BlobKey = "att/" + instanceID + "/" + sa.SHA256[:2] + "/" + sa.SHA256
	if err := h.blobs.Put(ctx, sa.BlobKey, bytes.NewReader(a.Data)); err != nil {
		return nil, fmt.Errorf("store attachment %q: %w", name, err)
	}
	return sa, nil
}

// routeInbound asks the router for an agent after a new message. Failures
// are logged only: the ticket is stored and reconciliation re-routes it.
func (h *Hub) routeInbound(ctx context.Context, res *store.IngestResult) {
	t := routeTicket(res.Ticket)
	var (
		evs []routing.Event
		err error
	)
	if res.Created {
		evs, err = h.router.Enqueue(ctx, t)
	} else {
		evs, err = h.router.FollowUp(ctx, t)
	}
	if err != nil {
		h.log.Warn("route inbound message", "ticket", res.Ticket.ID, "err", err)
		return
	}
	h.applyEvents(ctx, evs)
}
