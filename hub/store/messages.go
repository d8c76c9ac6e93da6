package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// forUpdate locks the selected rows on Postgres. SQLite has no row locks;
// its transactions start IMMEDIATE (one writer), which gives the same
// guarantee.
func (s *Store) forUpdate(q *bun.SelectQuery) *bun.SelectQuery {
	if s.pg {
		return q.For("UPDATE")
	}
	return q
}

// addChange appends to the change feed and notes the feed position on the
// ticket and message (m may be nil).
func (s *Store) addChange(ctx context.Context, tx bun.Tx, t *Ticket, kind string, m *Message) error {
	c := &Change{InstanceID: t.InstanceID, TicketID: t.ID, Kind: kind, CreatedAt: s.now()}
	if m != nil {
		c.MessageID = &m.ID
	}
	if err := tx.NewRaw("UPDATE instances SET feed_seq = feed_seq + 1 WHERE id = ? RETURNING feed_seq", t.InstanceID).Scan(ctx, &c.Seq); err != nil {
		return fmt.Errorf("feed position: %w", notFound(err, "instance "+t.InstanceID))
	}
	if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	t.ChangeID = c.Seq
	if m != nil {
		m.ChangeID = c.Seq
	}
	return nil
}

// lockFeed takes the row locks of the instances a transaction will write
// to the feed of, before any other row lock, in id order. Every writer
// taking them first is what keeps the feed in commit order (see Change)
// without deadlocks between writers. SQLite needs nothing: it has one
// writer at a time.
func (s *Store) lockFeed(ctx context.Context, tx bun.Tx, instanceIDs ...string) error {
	if !s.pg || len(instanceIDs) == 0 {
		return nil
	}
	var ids []string
	return tx.NewSelect().Model((*Instance)(nil)).Column("id").Where("id IN (?)", bun.List(instanceIDs)).
		Order("id").For("UPDATE").Scan(ctx, &ids)
}

// AgentMessage is a reply or internal note written by an agent.
type AgentMessage struct {
	InstanceID string
	TicketID   int64
	AgentID    int64
	AuthorName string
	Note       bool
	Text       string
	HTML       string
	// IdempotencyKey makes a retried submit store one message ("" for none).
	IdempotencyKey string
	// OutChannelID is the channel the reply leaves through (the ticket's
	// own, or its ReplyVia channel); "" for notes.
	OutChannelID string
	Attachments  []*Attachment
}

// AddAgentMessage stores a reply and its outbox item, or a note, in one
// transaction: a reply is never stored without being queued, nor queued
// without being stored.
func (s *Store) AddAgentMessage(ctx context.Context, in AgentMessage) (*Message, *Ticket, error) {
	m := &Message{
		InstanceID: in.InstanceID, TicketID: in.TicketID, AgentID: &in.AgentID, AuthorName: in.AuthorName,
		Text: in.Text, HTML: in.HTML, CreatedAt: s.now(),
	}
	t := new(Ticket)
	err := s.Tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockFeed(ctx, tx, in.InstanceID); err != nil {
			return err
		}
		if err := s.forUpdate(tx.NewSelect().Model(t).Where("id = ? AND instance_id = ?", in.TicketID, in.InstanceID)).Scan(ctx); err != nil {
			return notFound(err, fmt.Sprintf("ticket %d", in.TicketID))
		}
		m.ChannelID = t.ChannelID
		if in.Note {
			m.Direction = DirNote
		} else {
			m.Direction, m.State = DirOut, "queued"
			if in.OutChannelID != "" {
				m.ChannelID = in.OutChannelID
			}
		}
		if in.IdempotencyKey != "" {
			// Scoped to the ticket: a key reused on another ticket is another
			// message, not a resubmission.
			key := fmt.Sprintf("agent:%d:%s", in.TicketID, in.IdempotencyKey)
			m.DedupKey = &key
			err := tx.NewSelect().Model(m).Where("channel_id = ? AND dedup_key = ?", m.ChannelID, key).Scan(ctx)
			if err == nil {
				return ErrDuplicate
			}
		}
		if _, err := tx.NewInsert().Model(m).Exec(ctx); err != nil {
			if IsUnique(err) {
				return ErrDuplicate
			}
			return fmt.Errorf("insert message: %w", err)
		}
		for _, a := range in.Attachments {
			a.InstanceID, a.MessageID = in.InstanceID, m.ID
			if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
				return fmt.Errorf("insert attachment: %w", err)
			}
			m.Attachments = append(m.Attachments, a)
		}
		now := s.now()
		if !in.Note {
			ob := &OutboxItem{InstanceID: in.InstanceID, MessageID: m.ID, ChannelID: m.ChannelID, State: OutboxPending,
				NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
			if _, err := tx.NewInsert().Model(ob).Exec(ctx); err != nil {
				return fmt.Errorf("queue message: %w", err)
			}
			if t.FirstResponseAt == nil {
				t.FirstResponseAt = &now
			}
			if t.Status == StatusNew {
				t.Status = StatusOpen
			}
		}
		t.LastMessageAt, t.UpdatedAt = now, now
		if _, err := tx.NewUpdate().Model(t).Column("status", "first_response_at", "last_message_at", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		return s.addChange(ctx, tx, t, ChangeMessage, m)
	})
	if err != nil {
		return m, t, err
	}
	return m, t, nil
}

// Messages lists a ticket's messages with id > after, oldest first.
// withNotes false hides internal notes (what an end user may see).
func (s *Store) Messages(ctx context.Context, instanceID string, ticketID, after int64, limit int, withNotes bool) ([]*Message, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	var out []*Message
	q := s.DB.NewSelect().Model(&out).Relation("Attachments").
		Where("m.instance_id = ? AND m.ticket_id = ? AND m.id > ?", instanceID, ticketID, after)
	if !withNotes {
		q = q.Where("m.direction <> ?", DirNote)
	}
	return out, q.Order("m.id").Limit(int64(limit)).Scan(ctx)
}

// Message returns one message with its attachments.
func (s *Store) Message(ctx context.Context, instanceID string, id int64) (*Message, error) {
	m := new(Message)
	err := s.DB.NewSelect().Model(m).Relation("Attachments").Where("m.id = ? AND m.instance_id = ?", id, instanceID).Scan(ctx)
	return m, notFound(err, fmt.Sprintf("message %d", id))
}

// Attachment returns an attachment's metadata.
func (s *Store) Attachment(ctx context.Context, instanceID string, id int64) (*Attachment, error) {
	a := new(Attachment)
	err := s.DB.NewSelect().Model(a).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx)
	return a, notFound(err, fmt.Sprintf("attachment %d", id))
}

// SetDelivery records the delivery state of one outbound message, found by
// its hub id (with externalID set when the provider named it) or by its
// external id. States only move forward (queued → sent → delivered →
// read); failed is final. It returns the messages that changed.
func (s *Store) SetDelivery(ctx context.Context, instanceID, channelID string, messageID int64, externalID, state, reason string) ([]*Message, error) {
	var changed []*Message
	err := s.Tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockFeed(ctx, tx, instanceID); err != nil {
			return err
		}
		var ms []*Message
		q := tx.NewSelect().Model(&ms).Where("m.instance_id = ? AND m.direction = ?", instanceID, DirOut)
		if messageID != 0 {
			q = q.Where("m.id = ?", messageID)
		} else {
			q = q.Where("m.channel_id = ? AND m.external_id = ?", channelID, externalID)
		}
		if err := q.Scan(ctx); err != nil {
			return err
		}
		for _, m := range ms {
			if !advances(m.State, state) {
				continue
			}
			m.State, m.StateReason = state, reason
			cols := []string{"state", "state_reason"}
			if messageID != 0 && externalID != "" {
				m.ExternalID = externalID
				cols = append(cols, "external_id")
			}
			if _, err := tx.NewUpdate().Model(m).Column(cols...).WherePK().Exec(ctx); err != nil {
				return err
			}
			if err := s.addChange(ctx, tx, &Ticket{ID: m.TicketID, InstanceID: instanceID}, ChangeState, m); err != nil {
				return err
			}
			changed = append(changed, m)
		}
		return nil
	})
	return changed, err
}

// SetDeliveryUpTo marks every outbound message of the channel to the
// recipient's tickets sent at or before watermark as state (Messenger read
// and delivery watermarks).
func (s *Store) SetDeliveryUpTo(ctx context.Context, instanceID, channelID, recipient string, watermark time.Time, state string) ([]*Message, error) {
	var ids []int64
	err := s.DB.NewSelect().Model((*Message)(nil)).Column("m.id").
		Join("JOIN tickets AS t ON t.id = m.ticket_id").
		Join("JOIN contact_identities AS ci ON ci.contact_id = t.contact_id AND ci.channel_id = m.channel_id").
		Where("m.instance_id = ? AND m.channel_id = ? AND m.direction = ? AND ci.external_id = ? AND m.created_at <= ?",
			instanceID, channelID, DirOut, recipient, watermark.UTC()).
		Scan(ctx, &ids)
	if err != nil {
		return nil, err
	}
	var all []*Message
	for _, id := range ids {
		ms, err := s.SetDelivery(ctx, instanceID, channelID, id, "", state, "")
		if err != nil {
			return nil, err
		}
		all = append(all, ms...)
	}
	return all, nil
}

var stateRank = map[string]int{"": 0, "queued": 1, "sent": 2, "delivered": 3, "read": 4}

func advances(from, to string) bool {
	if from == "failed" {
		return false
	}
	if to == "failed" {
		return true
	}
	return stateRank[to] > stateRank[from]
}

// Changes returns an instance's change feed after a cursor, oldest first.
func (s *Store) Changes(ctx context.Context, instanceID string, after int64, limit int) ([]Change, error) {
	if limit <= 0 || limit > 1000 {
		limit = 500
	}
	var out []Change
	err := s.DB.NewSelect().Model(&out).Where("instance_id = ? AND seq > ?", instanceID, after).
		Order("seq").Limit(int64(limit)).Scan(ctx)
	return out, err
}

// LastChange returns the newest change id of an instance (0 if none).
func (s *Store) LastChange(ctx context.Context, instanceID string) (int64, error) {
	var id int64
	err := s.DB.NewSelect().Model((*Change)(nil)).ColumnExpr("COALESCE(MAX(seq), 0)").Where("instance_id = ?", instanceID).Scan(ctx, &id)
	return id, err
}

// FeedEntry is a change with the ticket and message it refers to, as
// they are now.
type FeedEntry struct {
	Change  Change
	Ticket  *Ticket
	Message *Message
}

// Feed returns an instance's change feed after a cursor with the tickets
// and messages loaded in two queries.
func (s *Store) Feed(ctx context.Context, instanceID string, after int64, limit int) ([]FeedEntry, error) {
	cs, err := s.Changes(ctx, instanceID, after, limit)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	tids, mids := []int64{}, []int64{}
	for _, c := range cs {
		tids = append(tids, c.TicketID)
		if c.MessageID != nil {
			mids = append(mids, *c.MessageID)
		}
	}
	var ts []*Ticket
	if err := s.DB.NewSelect().Model(&ts).Where("t.instance_id = ? AND t.id IN (?)", instanceID, bun.List(tids)).Scan(ctx); err != nil {
		return nil, err
	}
	tm := map[int64]*Ticket{}
	for _, t := range ts {
		tm[t.ID] = t
	}
	mm := map[int64]*Message{}
	if len(mids) > 0 {
		var ms []*Message
		if err := s.DB.NewSelect().Model(&ms).Relation("Attachments").Where("m.instance_id = ? AND m.id IN (?)", instanceID, bun.List(mids)).Scan(ctx); err != nil {
			return nil, err
		}
		for _, m := range ms {
			mm[m.ID] = m
		}
	}
	out := make([]FeedEntry, 0, len(cs))
	for _, c := range cs {
		e := FeedEntry{Change: c, Ticket: tm[c.TicketID]}
		if c.MessageID != nil {
			e.Message = mm[*c.MessageID]
		}
		out = append(out, e)
	}
	return out, nil
}

// ActiveTickets lists tickets of every instance that are not solved or
// closed, in id order after a cursor (routing reconciliation at start).
func (s *Store) ActiveTickets(ctx context.Context, after int64, limit int) ([]Ticket, error) {
	var out []Ticket
	err := s.DB.NewSelect().Model(&out).Where("t.status IN (?) AND t.id > ?", bun.List([]string{StatusNew, StatusOpen, StatusPending}), after).
		Order("t.id").Limit(int64(limit)).Scan(ctx)
	return out, err
}
