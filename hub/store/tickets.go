package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// errRace marks a transaction that lost a race on a unique key; the caller
// retries once and then finds the winner's row.
var errRace = errors.New("store: lost a race on a unique key")

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// InboundRecord is one inbound message, normalized and sanitized by the
// hub, ready to store.
type InboundRecord struct {
	InstanceID string
	ChannelID  string
	// ExternalID is the dedup key within the channel ("" for none).
	ExternalID     string
	ThreadKey      string
	ConversationID int64
	ThreadHints    []string
	// OwnRef names an earlier outbound message by the hub's own ids, as
	// the channel found them in a token it minted (our Message-ID).
	OwnRef       OwnRef
	TicketNumber int64
	NewTicket    bool
	// AttachOnly stores the message only if it threads into an existing
	// ticket; otherwise nothing is stored and IngestResult.Ignored is set
	// (auto-replies never open a ticket: C07).
	AttachOnly  bool
	TeamID      *int64
	Contact     ContactInput
	Subject     string
	Text        string
	HTML        string
	Quoted      string
	QuotedHTML  string
	Meta        map[string]string
	AutoReply   bool
	Attachments []*Attachment
	At          time.Time
}

// IngestResult says what Ingest did.
type IngestResult struct {
	Ticket    *Ticket
	Message   *Message
	Contact   *Contact
	Duplicate bool
	// Created is true when the message opened a new ticket; Reopened when
	// it moved a pending or solved ticket back to open.
	Created  bool
	Reopened bool
	// Ignored is true when an AttachOnly record matched no ticket: nothing
	// was stored, and Ticket and Message are nil.
	Ignored bool
}

// OwnRef is a reference to an outbound message by the hub's ids.
type OwnRef struct {
	MessageID    int64
	TicketNumber int64
}

// errIgnored rolls back the transaction of an AttachOnly record that
// matched no ticket (so no contact is left behind either).
var errIgnored = errors.New("store: attach-only message matched no ticket")

// Ingest stores one inbound message in one transaction: dedup, contact,
// ticket (threading), message, attachments, change feed (M2). A message
// already stored under (channel, external id) is not stored again; the
// result then has Duplicate set and points at the stored message.
func (s *Store) Ingest(ctx context.Context, rec *InboundRecord) (*IngestResult, error) {
	var res *IngestResult
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		res, err = s.ingestOnce(ctx, rec)
		if !errors.Is(err, errRace) {
			break
		}
	}
	if errors.Is(err, errIgnored) {
		return &IngestResult{Ignored: true}, nil
	}
	return res, err
}

func (s *Store) ingestOnce(ctx context.Context, rec *InboundRecord) (*IngestResult, error) {
	res := &IngestResult{}
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		return s.ingestTx(ctx, tx, rec, res)
	})
	if errors.Is(err, errRace) || errors.Is(err, errIgnored) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return res, nil
}

// ingestTx does Ingest's work inside tx.
func (s *Store) ingestTx(ctx context.Context, tx *txn, rec *InboundRecord, res *IngestResult) error {
	if rec.ExternalID != "" {
		m := new(Message)
		err := tx.NewSelect().Model(m).Where("channel_id = ? AND dedup_key = ?", rec.ChannelID, rec.ExternalID).Scan(ctx)
		if err == nil {
			if m.InstanceID != rec.InstanceID {
				return fmt.Errorf("dedup key of another instance: %w", ErrConflict)
			}
			res.Duplicate, res.Message = true, m
			res.Ticket = new(Ticket)
			return tx.NewSelect().Model(res.Ticket).Where("id = ?", m.TicketID).Scan(ctx)
		}
		if !isNotFound(notFound(err, "")) {
			return err
		}
	}
	c, err := s.upsertIdentity(ctx, tx, rec.InstanceID, rec.ChannelID, rec.Contact)
	if err != nil {
		return err
	}
	res.Contact = c
	t, created, err := s.threadTicket(ctx, tx, rec, c)
	if err != nil {
		return err
	}
	res.Ticket, res.Created = t, created
	meta := rec.Meta
	if t.ContactID != c.ID {
		// Threaded by message ids into another contact's ticket (a
		// colleague answering in Cc): attached, and visibly so.
		meta = make(map[string]string, len(rec.Meta)+1)
		for k, v := range rec.Meta {
			meta[k] = v
		}
		meta["other_contact"] = "true"
	}
	at := rec.At
	if at.IsZero() {
		at = s.now()
	}
	m := &Message{
		InstanceID: rec.InstanceID, TicketID: t.ID, ChannelID: rec.ChannelID, Direction: DirIn,
		ExternalID: rec.ExternalID, ContactID: &c.ID, AuthorName: authorName(c, rec.Contact),
		Subject: rec.Subject, Text: rec.Text, HTML: rec.HTML, Quoted: rec.Quoted, QuotedHTML: rec.QuotedHTML,
		Meta: meta, AutoReply: rec.AutoReply, CreatedAt: s.now(),
	}
	if rec.ExternalID != "" {
		key := rec.ExternalID
		m.DedupKey = &key
	}
	if _, err := tx.NewInsert().Model(m).Exec(ctx); err != nil {
		if IsUnique(err) {
			return errRace
		}
		return fmt.Errorf("insert message: %w", err)
	}
	res.Message = m
	for _, a := range rec.Attachments {
		a.InstanceID, a.MessageID = rec.InstanceID, m.ID
		if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
			return fmt.Errorf("insert attachment: %w", err)
		}
		m.Attachments = append(m.Attachments, a)
	}
	// An auto-reply never reopens or changes a ticket (C07).
	if !rec.AutoReply {
		switch t.Status {
		case StatusPending, StatusSolved:
			t.Status, t.ResolvedAt, res.Reopened = StatusOpen, nil, true
		}
		t.LastInboundAt = &at
	}
	t.LastMessageAt, t.UpdatedAt = s.now(), s.now()
	if _, err := tx.NewUpdate().Model(t).Column("status", "resolved_at", "last_inbound_at", "last_message_at", "updated_at").WherePK().Exec(ctx); err != nil {
		return err
	}
	return s.addChange(ctx, tx, t, ChangeMessage, m)
}

// BatchResult is the outcome of one record of IngestBatch.
type BatchResult struct {
	Result *IngestResult
	Err    error
}

// IngestBatch stores many inbound messages in one transaction: one commit
// (one WAL flush) for the lot, which is what lets concurrent ingest go
// faster than one commit per message. If any record fails (a lost race, a
// bad record), the whole transaction is rolled back and every record is
// stored on its own with Ingest: failures are rare, so the common case
// pays no savepoint round trips, and one bad record never takes its
// neighbours down.
func (s *Store) IngestBatch(ctx context.Context, recs []*InboundRecord) []BatchResult {
	out := make([]BatchResult, len(recs))
	if len(recs) == 1 {
		out[0].Result, out[0].Err = s.Ingest(ctx, recs[0])
		return out
	}
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		for i, rec := range recs {
			res := &IngestResult{}
			if err := s.ingestTx(ctx, tx, rec, res); err != nil {
				return err
			}
			out[i].Result = res
		}
		return nil
	})
	if err != nil {
		for i := range recs {
			out[i].Result, out[i].Err = s.Ingest(ctx, recs[i])
		}
	}
	return out
}

func authorName(c *Contact, in ContactInput) string {
	switch {
	case in.DisplayName != "":
		return in.DisplayName
	case c.Name != "":
		return c.Name
	case in.Handle != "":
		return "@" + in.Handle
	}
	return in.ExternalID
}

// threadTicket finds the ticket an inbound message belongs to or creates
// one, in this order: by conversation id; by thread key; by the hub's own
// reference (OwnRef); by thread hints (external ids of earlier messages,
// most specific first); by ticket number (only the ticket's own contact:
// a number is easy to guess or mistype); else a new ticket, unless the
// record is AttachOnly. A closed ticket is final: a message threading
// into one starts a new ticket.
func (s *Store) threadTicket(ctx context.Context, tx *txn, rec *InboundRecord, c *Contact) (*Ticket, bool, error) {
	if rec.NewTicket {
		t, err := s.newTicket(ctx, tx, rec, c, "")
		return t, true, err
	}
	if rec.ConversationID != 0 {
		t := new(Ticket)
		err := tx.NewSelect().Model(t).Where("id = ? AND instance_id = ? AND channel_id = ?", rec.ConversationID, rec.InstanceID, rec.ChannelID).Scan(ctx)
		if err != nil {
			return nil, false, notFound(err, fmt.Sprintf("conversation %d", rec.ConversationID))
		}
		if t.Status != StatusClosed {
			return t, false, nil
		}
	}
	if rec.ThreadKey != "" && !rec.AttachOnly {
		return s.openThread(ctx, tx, rec, c)
	}
	if t, err := s.ticketByOwnRef(ctx, tx, rec); t != nil || err != nil {
		return t, false, err
	}
	if t, err := s.ticketByHints(ctx, tx, rec); t != nil || err != nil {
		return t, false, err
	}
	if rec.TicketNumber > 0 {
		t := new(Ticket)
		err := tx.NewSelect().Model(t).Where("instance_id = ? AND number = ? AND contact_id = ?", rec.InstanceID, rec.TicketNumber, c.ID).Scan(ctx)
		if err == nil && t.Status != StatusClosed {
			return t, false, nil
		}
	}
	if rec.AttachOnly {
		return nil, false, errIgnored
	}
	t, err := s.newTicket(ctx, tx, rec, c, "")
	return t, true, err
}

// ticketByOwnRef returns the open ticket of the outbound message the
// record names by the hub's ids, if both ids agree.
func (s *Store) ticketByOwnRef(ctx context.Context, tx *txn, rec *InboundRecord) (*Ticket, error) {
	if rec.OwnRef.MessageID <= 0 || rec.OwnRef.TicketNumber <= 0 {
		return nil, nil
	}
	t := new(Ticket)
	err := tx.NewSelect().Model(t).
		Join("JOIN messages AS m ON m.ticket_id = t.id").
		Where("m.id = ? AND m.instance_id = ? AND m.direction = ? AND t.number = ? AND t.status <> ?",
			rec.OwnRef.MessageID, rec.InstanceID, DirOut, rec.OwnRef.TicketNumber, StatusClosed).Scan(ctx)
	if isNotFound(notFound(err, "")) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ticketByHints returns the open ticket of the first hint that names a
// stored message of the instance. Message-IDs are global, so hints are
// looked up across the instance's channels: a reply to a web-form ticket
// that left by email threads by the email's Message-ID.
func (s *Store) ticketByHints(ctx context.Context, tx *txn, rec *InboundRecord) (*Ticket, error) {
	if len(rec.ThreadHints) == 0 {
		return nil, nil
	}
	var rows []struct {
		TicketID   int64
		ExternalID string
	}
	err := tx.NewSelect().Model((*Message)(nil)).Column("ticket_id", "external_id").
		Where("instance_id = ? AND external_id IN (?)", rec.InstanceID, bun.List(rec.ThreadHints)).
		Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	for _, hint := range rec.ThreadHints {
		for _, r := range rows {
			if r.ExternalID != hint {
				continue
			}
			t := new(Ticket)
			if err := tx.NewSelect().Model(t).Where("id = ?", r.TicketID).Scan(ctx); err != nil {
				return nil, err
			}
			if t.Status != StatusClosed {
				return t, nil
			}
		}
	}
	return nil, nil
}

// openThread returns the open ticket of a thread key or creates it. The
// partial unique index tickets_open_thread makes concurrent creators meet
// on one row (C23).
func (s *Store) openThread(ctx context.Context, tx *txn, rec *InboundRecord, c *Contact) (*Ticket, bool, error) {
	t := new(Ticket)
	err := tx.NewSelect().Model(t).
		Where("channel_id = ? AND thread_key = ? AND status <> ?", rec.ChannelID, rec.ThreadKey, StatusClosed).Scan(ctx)
	if err == nil {
		if t.InstanceID != rec.InstanceID {
			return nil, false, fmt.Errorf("thread of another instance: %w", ErrConflict)
		}
		return t, false, nil
	}
	if !isNotFound(notFound(err, "")) {
		return nil, false, err
	}
	t, err = s.newTicket(ctx, tx, rec, c, rec.ThreadKey)
	return t, true, err
}

func (s *Store) newTicket(ctx context.Context, tx *txn, rec *InboundRecord, c *Contact, threadKey string) (*Ticket, error) {
	// The number comes at the end of the transaction, with the feed
	// positions (flushFeed).
	now := s.now()
	t := &Ticket{
		InstanceID: rec.InstanceID, ChannelID: rec.ChannelID, ContactID: c.ID,
		ThreadKey: threadKey, Subject: subjectOf(rec), Status: StatusNew, TeamID: rec.TeamID,
		CreatedAt: now, UpdatedAt: now, LastMessageAt: now,
	}
	if _, err := tx.NewInsert().Model(t).Exec(ctx); err != nil {
		if IsUnique(err) {
			return nil, errRace
		}
		return nil, fmt.Errorf("create ticket: %w", err)
	}
	tx.newTickets = append(tx.newTickets, t)
	return t, s.addChange(ctx, tx, t, ChangeTicket, nil)
}

func subjectOf(rec *InboundRecord) string {
	s := strings.TrimSpace(rec.Subject)
	if s == "" {
		s = strings.Join(strings.Fields(rec.Text), " ")
	}
	if utf8.RuneCountInString(s) > 120 {
		s = string([]rune(s)[:117]) + "…"
	}
	return s
}

// OpenThread returns the open ticket of a thread key, creating it (with no
// message yet) if there is none.
func (s *Store) OpenThread(ctx context.Context, rec *InboundRecord) (t *Ticket, created bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		err = s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
			c, err := s.upsertIdentity(ctx, tx, rec.InstanceID, rec.ChannelID, rec.Contact)
			if err != nil {
				return err
			}
			t, created, err = s.openThread(ctx, tx, rec, c)
			return err
		})
		if !errors.Is(err, errRace) {
			break
		}
	}
	return t, created, err
}

// Ticket returns a ticket of an instance.
func (s *Store) Ticket(ctx context.Context, instanceID string, id int64) (*Ticket, error) {
	t := new(Ticket)
	err := s.DB.NewSelect().Model(t).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx)
	return t, notFound(err, fmt.Sprintf("ticket %d", id))
}

// TicketFilter selects tickets for a list.
type TicketFilter struct {
	Statuses   []string
	AssigneeID *int64
	TeamID     *int64
	Unassigned bool
	// Query matches the subject, the contact's name and message text.
	Query string
	Limit int
	// Before is the id of the last ticket of the previous page.
	Before int64
}

// Tickets lists tickets of an instance, newest activity first.
func (s *Store) Tickets(ctx context.Context, instanceID string, f TicketFilter) ([]Ticket, error) {
	var out []Ticket
	q := s.DB.NewSelect().Model(&out).ColumnExpr("t.*").ColumnExpr("c.name AS contact_name").
		Join("LEFT JOIN contacts AS c ON c.id = t.contact_id").
		Where("t.instance_id = ?", instanceID)
	if len(f.Statuses) > 0 {
		q = q.Where("t.status IN (?)", bun.List(f.Statuses))
	}
	if f.AssigneeID != nil {
		q = q.Where("t.assignee_id = ?", *f.AssigneeID)
	}
	if f.Unassigned {
		q = q.Where("t.assignee_id IS NULL")
	}
	if f.TeamID != nil {
		q = q.Where("t.team_id = ?", *f.TeamID)
	}
	if f.Before > 0 {
		// Pages follow the list order (last activity, then id): Before
		// names the last ticket of the previous page.
		q = q.Where("(t.last_message_at < (SELECT last_message_at FROM tickets WHERE id = ? AND instance_id = ?)) OR "+
			"(t.last_message_at = (SELECT last_message_at FROM tickets WHERE id = ? AND instance_id = ?) AND t.id < ?)",
			f.Before, instanceID, f.Before, instanceID, f.Before)
	}
	if qs := strings.TrimSpace(f.Query); qs != "" {
		like := "%" + strings.ToLower(escapeLike(qs)) + "%"
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("LOWER(t.subject) LIKE ? ESCAPE '\\'", like).
				WhereOr("t.contact_id IN (SELECT id FROM contacts WHERE instance_id = ? AND (LOWER(name) LIKE ? ESCAPE '\\' OR LOWER(email) LIKE ? ESCAPE '\\'))", instanceID, like, like).
				WhereOr("t.id IN (SELECT ticket_id FROM messages WHERE instance_id = ? AND LOWER(text) LIKE ? ESCAPE '\\')", instanceID, like)
		})
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	err := q.Order("t.last_message_at DESC", "t.id DESC").Limit(int64(limit)).Scan(ctx)
	return out, err
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// TicketUpdate changes a ticket's routing and lifecycle fields.
type TicketUpdate struct {
	Status     *string
	AssigneeID **int64
	TeamID     **int64
	Priority   *int
}

// UpdateTicket applies u to a ticket and records the change.
func (s *Store) UpdateTicket(ctx context.Context, instanceID string, id int64, u TicketUpdate) (*Ticket, error) {
	t := new(Ticket)
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		if err := s.forUpdate(tx.NewSelect().Model(t).Where("id = ? AND instance_id = ?", id, instanceID)).Scan(ctx); err != nil {
			return notFound(err, fmt.Sprintf("ticket %d", id))
		}
		now := s.now()
		if u.Status != nil && *u.Status != t.Status {
			switch *u.Status {
			case StatusNew, StatusOpen, StatusPending:
				t.ResolvedAt, t.ClosedAt = nil, nil
			case StatusSolved:
				t.ResolvedAt = &now
			case StatusClosed:
				if t.ResolvedAt == nil {
					t.ResolvedAt = &now
				}
				t.ClosedAt = &now
			default:
				return fmt.Errorf("unknown status %q: %w", *u.Status, ErrConflict)
			}
			t.Status = *u.Status
		}
		if u.AssigneeID != nil {
			t.AssigneeID = *u.AssigneeID
		}
		if u.TeamID != nil {
			t.TeamID = *u.TeamID
		}
		if u.Priority != nil {
			t.Priority = *u.Priority
		}
		t.UpdatedAt = now
		if _, err := tx.NewUpdate().Model(t).Column("status", "resolved_at", "closed_at", "assignee_id", "team_id", "priority", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		return s.addChange(ctx, tx, t, ChangeTicket, nil)
	})
	return t, err
}
