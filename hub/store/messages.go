package store

import (
	"context"
	"fmt"
	"sort"
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

// txn is a write transaction that records feed changes. The changes get
// their feed positions at the end, just before the commit (see Change), so
// the instance row lock that orders them is the last lock a transaction
// takes and is held only for that tail: writers of one instance work in
// parallel and queue only to commit.
type txn struct {
	bun.Tx
	feed       []pending
	newTickets []*Ticket // numbered at the end, like the feed
	// firstMessage holds stored tickets that had no number when read and
	// got their first message in this transaction (OpenThread, D14).
	firstMessage []*Ticket
}

type pending struct {
	change *Change
	ticket *Ticket
	msg    *Message
}

// writeTx runs fn in a transaction and records its feed changes.
func (s *Store) writeTx(ctx context.Context, fn func(ctx context.Context, tx *txn) error) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, btx bun.Tx) error {
		tx := &txn{Tx: btx}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return s.flushFeed(ctx, tx)
	})
}

// addChange queues a feed entry for the ticket (and message, if any).
func (s *Store) addChange(_ context.Context, tx *txn, t *Ticket, kind string, m *Message) error {
	c := &Change{InstanceID: t.InstanceID, TicketID: t.ID, Kind: kind, CreatedAt: s.now()}
	if m != nil {
		c.MessageID = &m.ID
	}
	tx.feed = append(tx.feed, pending{change: c, ticket: t, msg: m})
	return nil
}

// flushFeed numbers the transaction's new tickets and queued changes per
// instance, in instance-id order (so two transactions never wait on each
// other's instance rows), and inserts the changes.
func (s *Store) flushFeed(ctx context.Context, tx *txn) error {
	if err := s.numberFirstMessages(ctx, tx); err != nil {
		return err
	}
	if len(tx.feed) == 0 && len(tx.newTickets) == 0 {
		return nil
	}
	count, tickets := map[string]int64{}, map[string]int64{}
	var insts []string
	seen := map[string]bool{}
	note := func(inst string) {
		if !seen[inst] {
			seen[inst] = true
			insts = append(insts, inst)
		}
	}
	for _, p := range tx.feed {
		note(p.change.InstanceID)
		count[p.change.InstanceID]++
	}
	for _, t := range tx.newTickets {
		note(t.InstanceID)
		tickets[t.InstanceID]++
	}
	sort.Strings(insts)
	next, nextNumber := map[string]int64{}, map[string]int64{}
	for _, inst := range insts {
		var last struct{ FeedSeq, TicketSeq int64 }
		if err := tx.NewRaw("UPDATE instances SET feed_seq = feed_seq + ?, ticket_seq = ticket_seq + ? WHERE id = ? RETURNING feed_seq, ticket_seq",
			count[inst], tickets[inst], inst).Scan(ctx, &last.FeedSeq, &last.TicketSeq); err != nil {
			return fmt.Errorf("feed position: %w", notFound(err, "instance "+inst))
		}
		next[inst] = last.FeedSeq - count[inst] + 1
		nextNumber[inst] = last.TicketSeq - tickets[inst] + 1
	}
	for _, t := range tx.newTickets {
		t.Number = nextNumber[t.InstanceID]
		nextNumber[t.InstanceID]++
	}
	if err := s.updateTickets(ctx, tx, tx.newTickets, "number"); err != nil {
		return fmt.Errorf("number tickets: %w", err)
	}
	tx.newTickets = nil
	if len(tx.feed) == 0 {
		return nil
	}
	changes := make([]*Change, 0, len(tx.feed))
	for _, p := range tx.feed {
		// A ticket created in the transaction got its id after the
		// change was queued.
		p.change.TicketID = p.ticket.ID
		p.change.Seq = next[p.change.InstanceID]
		next[p.change.InstanceID]++
		p.ticket.ChangeID = p.change.Seq
		if p.msg != nil {
			p.msg.ChangeID = p.change.Seq
		}
		changes = append(changes, p.change)
	}
	if _, err := tx.NewInsert().Model(&changes).Exec(ctx); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	tx.feed = nil
	return nil
}

// numberFirstMessages queues for numbering the stored tickets that got
// their first message in this transaction, unless another transaction
// numbered one since it was read: the visitor's other tab, writing at the
// same moment through another node. That transaction has committed by
// now: this one has updated the ticket (ingest's flush), so it holds the
// row, and a read now sees the other's number, which the ticket keeps.
func (s *Store) numberFirstMessages(ctx context.Context, tx *txn) error {
	if len(tx.firstMessage) == 0 {
		return nil
	}
	ids := make([]int64, len(tx.firstMessage))
	for i, t := range tx.firstMessage {
		ids[i] = t.ID
	}
	var rows []struct {
		ID     int64
		Number *int64
	}
	q := tx.NewSelect().Model((*Ticket)(nil)).Column("id", "number").Where("id IN (?)", bun.List(ids))
	if err := s.forUpdate(q).Scan(ctx, &rows); err != nil {
		return fmt.Errorf("ticket numbers: %w", err)
	}
	number := make(map[int64]int64, len(rows))
	for _, r := range rows {
		if r.Number != nil {
			number[r.ID] = *r.Number
		}
	}
	for _, t := range tx.firstMessage {
		if n := number[t.ID]; n != 0 {
			t.Number = n
		} else {
			tx.newTickets = append(tx.newTickets, t)
		}
	}
	tx.firstMessage = nil
	return nil
}

// AgentMessage is a reply or internal note written by an agent.
type AgentMessage struct {
	InstanceID string
	TicketID   int64
	AgentID    int64 // 0 for an API client
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
		InstanceID: in.InstanceID, TicketID: in.TicketID, AuthorName: in.AuthorName,
		Text: in.Text, HTML: in.HTML, CreatedAt: s.now(),
	}
	if in.AgentID != 0 { // 0: written by an API client, not an agent
		m.AgentID = &in.AgentID
	}
	t := new(Ticket)
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
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
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
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
