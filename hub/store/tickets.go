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

	created *Change // the feed entry of the ticket's creation
}

// CreatedCursor is the feed position of the ticket's creation when the
// message opened it (0 otherwise). Ticket.ChangeID is the message's: both
// are in the feed, and a client following it live needs both.
func (r *IngestResult) CreatedCursor() int64 {
	if r.created == nil {
		return 0
	}
	return r.created.Seq
}

// OwnRef is a reference to an outbound message by the hub's ids.
type OwnRef struct {
	MessageID    int64
	TicketNumber int64
}

// errIgnored rolls back the transaction of an AttachOnly record that
// matched no ticket (so no contact is left behind either).
var errIgnored = errors.New("store: attach-only message matched no ticket")

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

// Tickets lists tickets of an instance, newest activity first. A ticket
// whose end user has not written yet (a live-chat conversation opened
// and left empty; see OpenThread) is not listed: every ticket starts with
// an inbound message, so last_inbound_at tells, as it does for routing
// (Hub.reconcile).
func (s *Store) Tickets(ctx context.Context, instanceID string, f TicketFilter) ([]Ticket, error) {
	var out []Ticket
	q := s.DB.NewSelect().Model(&out).ColumnExpr("t.*").ColumnExpr("c.name AS contact_name").
		Join("LEFT JOIN contacts AS c ON c.id = t.contact_id").
		Where("t.instance_id = ?", instanceID).
		Where("t.last_inbound_at IS NOT NULL")
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
