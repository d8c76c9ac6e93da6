package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// Ingest stores one inbound message in one transaction: dedup, contact,
// ticket (threading), message, attachments, change feed (M2). A message
// already stored under (channel, external id) is not stored again; the
// result then has Duplicate set and points at the stored message.
func (s *Store) Ingest(ctx context.Context, rec *InboundRecord) (*IngestResult, error) {
	var res []*IngestResult
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		res, err = s.ingestOnce(ctx, []*InboundRecord{rec})
		if !errors.Is(err, errRace) {
			break
		}
	}
	if errors.Is(err, errIgnored) {
		return &IngestResult{Ignored: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// BatchResult is the outcome of one record of IngestBatch.
type BatchResult struct {
	Result *IngestResult
	Err    error
}

// IngestBatch stores many inbound messages in one transaction: one commit
// (one WAL flush) for the lot, and a fixed number of statements rather
// than a few per message (see ingestRun). If any record fails (a lost
// race, a bad record, an attach-only record that threads nowhere), the
// whole transaction is rolled back and every record is stored on its own
// with Ingest: failures are rare, so the common case pays no savepoint
// round trips, and one bad record never takes its neighbours down.
func (s *Store) IngestBatch(ctx context.Context, recs []*InboundRecord) []BatchResult {
	out := make([]BatchResult, len(recs))
	if len(recs) == 1 {
		out[0].Result, out[0].Err = s.Ingest(ctx, recs[0])
		return out
	}
	res, err := s.ingestOnce(ctx, recs)
	if err != nil {
		for i := range recs {
			out[i].Result, out[i].Err = s.Ingest(ctx, recs[i])
		}
		return out
	}
	for i := range recs {
		out[i].Result = res[i]
	}
	return out
}

func (s *Store) ingestOnce(ctx context.Context, recs []*InboundRecord) ([]*IngestResult, error) {
	out := make([]*IngestResult, len(recs))
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		r := newIngestRun(s, tx)
		if err := r.prefetch(ctx, recs); err != nil {
			return err
		}
		for i, rec := range recs {
			res, err := r.ingest(ctx, rec)
			if err != nil {
				return err
			}
			out[i] = res
		}
		return r.flush(ctx)
	})
	if errors.Is(err, errRace) || errors.Is(err, errIgnored) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return out, nil
}

// OpenThread returns the open ticket of a thread key, creating it (with no
// message yet) if there is none. A ticket so created has no number, no
// feed entry and no place in ticket lists until its end user writes: a
// visitor who opens the widget and leaves is no ticket for anyone to
// handle. Its first message numbers it, and that message's feed entry
// carries it to agents.
func (s *Store) OpenThread(ctx context.Context, rec *InboundRecord) (t *Ticket, created bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		err = s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
			r := newIngestRun(s, tx)
			c, err := r.contact(ctx, rec)
			if err != nil {
				return err
			}
			t, created, err = r.openThread(ctx, rec, c)
			if err != nil {
				return err
			}
			if created {
				r.unannounced(t)
			}
			return r.flush(ctx)
		})
		if !errors.Is(err, errRace) {
			break
		}
	}
	return t, created, err
}

// ingestRun is the work of one ingest transaction. Its statements do not
// grow with the number of records: what the records need is read up front
// in a few queries (prefetch), the records are threaded in memory in
// order, and what they create is written at the end with multi-row
// statements (flush), before the feed's tail (flushFeed). Only what is
// rare takes a statement of its own: a changed contact name, threading by
// mail headers or ticket number.
//
// Every row the run reads or creates has one struct, shared by all the
// records that use it, so a ticket touched by several messages of a batch
// is written once with its final state. Ids of created rows are known
// only after flush; links between them are kept as pointers until then.
type ingestRun struct {
	s  *Store
	tx *txn

	// byKey holds messages by (channel, dedup key): stored ones found by
	// prefetch and the run's own, so a key twice in a batch stores once.
	byKey map[chanKey]*Message
	// byExternal holds the run's own messages by (instance, external id),
	// for thread hints naming a message of the same batch.
	byExternal map[chanKey]*Message
	idents     map[identKey]*Identity
	tickets    map[int64]*Ticket
	threads    map[chanKey]*Ticket // open ticket by (channel, thread key)
	// msgTicket links a message to its ticket (whose id a new ticket gets
	// at flush).
	msgTicket map[*Message]*Ticket

	newContacts []*Contact
	newIdents   []*Identity
	identOf     map[*Identity]*Contact
	newTickets  []*Ticket
	ticketOf    map[*Ticket]*Contact
	newMessages []*Message
	msgContact  map[*Message]*Contact
	dirty       []*Ticket // stored tickets changed by the run
	isDirty     map[*Ticket]bool
	creations   map[*Ticket]*Change // feed entries of new tickets
	numbering   map[*Ticket]bool    // stored tickets numbered by this run
}

type chanKey struct{ scope, key string }

type identKey struct{ instance, channel, external string }

func newIngestRun(s *Store, tx *txn) *ingestRun {
	return &ingestRun{
		s: s, tx: tx,
		byKey: map[chanKey]*Message{}, byExternal: map[chanKey]*Message{},
		idents: map[identKey]*Identity{}, tickets: map[int64]*Ticket{}, threads: map[chanKey]*Ticket{},
		msgTicket: map[*Message]*Ticket{}, identOf: map[*Identity]*Contact{}, ticketOf: map[*Ticket]*Contact{},
		msgContact: map[*Message]*Contact{}, isDirty: map[*Ticket]bool{}, creations: map[*Ticket]*Change{},
		numbering: map[*Ticket]bool{},
	}
}

// prefetch reads, in one query each, the stored messages of the records'
// dedup keys, the records' sender identities with their contacts, their
// conversations' tickets, and the open tickets of their thread keys.
func (r *ingestRun) prefetch(ctx context.Context, recs []*InboundRecord) error {
	keys := map[string][]string{}          // channel → dedup keys
	exts := map[[2]string][]string{}       // (instance, channel) → sender ids
	threadKeys := map[[2]string][]string{} // (instance, channel) → thread keys
	var ticketIDs []int64
	for _, rec := range recs {
		if rec.ExternalID != "" {
			keys[rec.ChannelID] = append(keys[rec.ChannelID], rec.ExternalID)
		}
		ic := [2]string{rec.InstanceID, rec.ChannelID}
		if rec.Contact.ExternalID != "" {
			exts[ic] = append(exts[ic], rec.Contact.ExternalID)
		}
		switch {
		case rec.NewTicket:
		case rec.ConversationID != 0:
			ticketIDs = append(ticketIDs, rec.ConversationID)
		case rec.ThreadKey != "" && !rec.AttachOnly:
			threadKeys[ic] = append(threadKeys[ic], rec.ThreadKey)
		}
	}
	if len(keys) > 0 {
		var ms []*Message
		q := r.tx.NewSelect().Model(&ms)
		for ch, ks := range keys {
			q = q.WhereOr("(m.channel_id = ? AND m.dedup_key IN (?))", ch, bun.List(ks))
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("dedup: %w", err)
		}
		for _, m := range ms {
			r.byKey[chanKey{m.ChannelID, *m.DedupKey}] = m
			ticketIDs = append(ticketIDs, m.TicketID)
		}
	}
	if len(exts) > 0 {
		var ids []*Identity
		q := r.tx.NewSelect().Model(&ids).Relation("Contact")
		for ic, es := range exts {
			q = q.WhereOr("(?TableAlias.instance_id = ? AND ?TableAlias.channel_id = ? AND ?TableAlias.external_id IN (?))", ic[0], ic[1], bun.List(es))
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("identities: %w", err)
		}
		for _, id := range ids {
			r.idents[identKey{id.InstanceID, id.ChannelID, id.ExternalID}] = id
		}
	}
	if len(ticketIDs) > 0 || len(threadKeys) > 0 {
		var ts []*Ticket
		q := r.tx.NewSelect().Model(&ts)
		if len(ticketIDs) > 0 {
			q = q.WhereOr("t.id IN (?)", bun.List(ticketIDs))
		}
		for ic, ks := range threadKeys {
			q = q.WhereOr("(t.instance_id = ? AND t.channel_id = ? AND t.thread_key IN (?) AND t.status <> ?)", ic[0], ic[1], bun.List(ks), StatusClosed)
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("tickets: %w", err)
		}
		for _, t := range ts {
			r.tickets[t.ID] = t
			if t.ThreadKey != "" && t.Status != StatusClosed {
				r.threads[chanKey{t.ChannelID, t.ThreadKey}] = t
			}
		}
	}
	return nil
}

// ingest threads one record and queues what it stores.
func (r *ingestRun) ingest(ctx context.Context, rec *InboundRecord) (*IngestResult, error) {
	if rec.ExternalID != "" {
		if m := r.byKey[chanKey{rec.ChannelID, rec.ExternalID}]; m != nil {
			if m.InstanceID != rec.InstanceID {
				return nil, fmt.Errorf("dedup key of another instance: %w", ErrConflict)
			}
			t := r.msgTicket[m]
			if t == nil {
				var err error
				if t, err = r.ticket(ctx, m.TicketID); err != nil {
					return nil, err
				}
			}
			return &IngestResult{Duplicate: true, Message: m, Ticket: t}, nil
		}
	}
	res := &IngestResult{}
	c, err := r.contact(ctx, rec)
	if err != nil {
		return nil, err
	}
	res.Contact = c
	t, created, err := r.thread(ctx, rec, c)
	if err != nil {
		return nil, err
	}
	res.Ticket, res.Created = t, created
	if created {
		res.created = r.creations[t]
	}
	meta := rec.Meta
	if !r.owns(t, c) {
		// Threaded by message ids into another contact's ticket (a
		// colleague answering in Cc): attached, and visibly so.
		meta = make(map[string]string, len(rec.Meta)+1)
		for k, v := range rec.Meta {
			meta[k] = v
		}
		meta["other_contact"] = "true"
	}
	now := r.s.now()
	at := rec.At
	if at.IsZero() {
		at = now
	}
	m := &Message{
		InstanceID: rec.InstanceID, ChannelID: rec.ChannelID, Direction: DirIn,
		ExternalID: rec.ExternalID, AuthorName: authorName(c, rec.Contact),
		Subject: rec.Subject, Text: rec.Text, HTML: rec.HTML, Quoted: rec.Quoted, QuotedHTML: rec.QuotedHTML,
		Meta: meta, AutoReply: rec.AutoReply, CreatedAt: now, Attachments: rec.Attachments,
	}
	if rec.ExternalID != "" {
		key := rec.ExternalID
		m.DedupKey = &key
		r.byKey[chanKey{rec.ChannelID, key}] = m
		r.byExternal[chanKey{rec.InstanceID, key}] = m
	}
	r.newMessages = append(r.newMessages, m)
	r.msgTicket[m], r.msgContact[m] = t, c
	res.Message = m
	// An auto-reply never reopens or changes a ticket (C07).
	if !rec.AutoReply {
		switch t.Status {
		case StatusPending, StatusSolved:
			t.Status, t.ResolvedAt, res.Reopened = StatusOpen, nil, true
		}
		t.LastInboundAt = &at
	}
	t.LastMessageAt, t.UpdatedAt = now, now
	r.touch(t)
	if t.ID != 0 && t.Number == 0 && !r.numbering[t] {
		// Opened before its first message (OpenThread): numbered now,
		// unless another transaction got there first (flushFeed).
		r.numbering[t] = true
		r.tx.firstMessage = append(r.tx.firstMessage, t)
	}
	return res, r.s.addChange(ctx, r.tx, t, ChangeMessage, m)
}

// contact finds or creates the contact behind the record's channel
// identity, refreshing the identity's details.
func (r *ingestRun) contact(ctx context.Context, rec *InboundRecord) (*Contact, error) {
	in := rec.Contact
	if in.ExternalID == "" {
		return nil, fmt.Errorf("contact identity has no external id: %w", ErrConflict)
	}
	key := identKey{rec.InstanceID, rec.ChannelID, in.ExternalID}
	id, ok := r.idents[key]
	if !ok {
		// Not prefetched (OpenThread): look it up.
		id = new(Identity)
		err := r.tx.NewSelect().Model(id).Relation("Contact").
			Where("?TableAlias.instance_id = ? AND ?TableAlias.channel_id = ? AND ?TableAlias.external_id = ?", rec.InstanceID, rec.ChannelID, in.ExternalID).Scan(ctx)
		if err = notFound(err, "identity"); err != nil && !isNotFound(err) {
			return nil, err
		}
		if err != nil {
			id = nil
		}
	}
	now := r.s.now()
	if id == nil {
		c := &Contact{InstanceID: rec.InstanceID, Name: in.DisplayName, Email: in.Email, CreatedAt: now, UpdatedAt: now}
		id = &Identity{
			InstanceID: rec.InstanceID, ChannelID: rec.ChannelID, ExternalID: in.ExternalID,
			DisplayName: in.DisplayName, Handle: in.Handle, Email: in.Email, Fields: in.Fields, CreatedAt: now, Contact: c,
		}
		r.newContacts = append(r.newContacts, c)
		r.newIdents = append(r.newIdents, id)
		r.identOf[id] = c
		r.idents[key] = id
		return c, nil
	}
	r.idents[key] = id
	if id.Contact == nil {
		return nil, fmt.Errorf("identity %d has no contact: %w", id.ID, ErrNotFound)
	}
	c := id.Contact
	// Rows created earlier in this run change in memory only: they are
	// inserted at flush with their final details.
	changed := false
	if in.DisplayName != "" && in.DisplayName != id.DisplayName {
		id.DisplayName, changed = in.DisplayName, true
	}
	if in.Handle != "" && in.Handle != id.Handle {
		id.Handle, changed = in.Handle, true
	}
	if in.Email != "" && in.Email != id.Email {
		id.Email, changed = in.Email, true
	}
	if changed && id.ID != 0 {
		if _, err := r.tx.NewUpdate().Model(id).Column("display_name", "handle", "email").WherePK().Exec(ctx); err != nil {
			return nil, err
		}
	}
	if c.Name == "" && in.DisplayName != "" || c.Email == "" && in.Email != "" {
		if c.Name == "" {
			c.Name = in.DisplayName
		}
		if c.Email == "" {
			c.Email = in.Email
		}
		c.UpdatedAt = now
		if c.ID != 0 {
			if _, err := r.tx.NewUpdate().Model(c).Column("name", "email", "updated_at").WherePK().Exec(ctx); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// thread finds the ticket an inbound message belongs to or creates one,
// in this order: by conversation id; by thread key; by the hub's own
// reference (OwnRef); by thread hints (external ids of earlier messages,
// most specific first); by ticket number (only the ticket's own contact:
// a number is easy to guess or mistype); else a new ticket, unless the
// record is AttachOnly. A closed ticket is final: a message threading
// into one starts a new ticket.
func (r *ingestRun) thread(ctx context.Context, rec *InboundRecord, c *Contact) (*Ticket, bool, error) {
	if rec.NewTicket {
		return r.newTicket(ctx, rec, c, ""), true, nil
	}
	if rec.ConversationID != 0 {
		t, err := r.ticket(ctx, rec.ConversationID)
		if err == nil && (t.InstanceID != rec.InstanceID || t.ChannelID != rec.ChannelID) {
			err = fmt.Errorf("ticket %d: %w", rec.ConversationID, ErrNotFound)
		}
		if err != nil {
			return nil, false, notFound(err, fmt.Sprintf("conversation %d", rec.ConversationID))
		}
		if t.Status != StatusClosed {
			return t, false, nil
		}
	}
	if rec.ThreadKey != "" && !rec.AttachOnly {
		return r.openThread(ctx, rec, c)
	}
	if t, err := r.s.ticketByOwnRef(ctx, r.tx, rec); t != nil || err != nil {
		return r.keep(t), false, err
	}
	if t, err := r.ticketByHints(ctx, rec); t != nil || err != nil {
		return t, false, err
	}
	if rec.TicketNumber > 0 && c.ID != 0 {
		t := new(Ticket)
		err := r.tx.NewSelect().Model(t).Where("instance_id = ? AND number = ? AND contact_id = ?", rec.InstanceID, rec.TicketNumber, c.ID).Scan(ctx)
		if err == nil && t.Status != StatusClosed {
			return r.keep(t), false, nil
		}
	}
	if rec.AttachOnly {
		return nil, false, errIgnored
	}
	return r.newTicket(ctx, rec, c, ""), true, nil
}

// ticketByHints returns the open ticket of the first hint that names a
// message of the instance, stored or of this run. Message-IDs are global,
// so hints are looked up across the instance's channels: a reply to a
// web-form ticket that left by email threads by the email's Message-ID.
func (r *ingestRun) ticketByHints(ctx context.Context, rec *InboundRecord) (*Ticket, error) {
	if len(rec.ThreadHints) == 0 {
		return nil, nil
	}
	var rows []struct {
		TicketID   int64
		ExternalID string
	}
	err := r.tx.NewSelect().Model((*Message)(nil)).Column("ticket_id", "external_id").
		Where("instance_id = ? AND external_id IN (?)", rec.InstanceID, bun.List(rec.ThreadHints)).
		Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	for _, hint := range rec.ThreadHints {
		if m := r.byExternal[chanKey{rec.InstanceID, hint}]; m != nil {
			if t := r.msgTicket[m]; t.Status != StatusClosed {
				return t, nil
			}
		}
		for _, row := range rows {
			if row.ExternalID != hint {
				continue
			}
			t, err := r.ticket(ctx, row.TicketID)
			if err != nil {
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
// on one row (C23): the loser's transaction fails with errRace and is
// tried again.
func (r *ingestRun) openThread(ctx context.Context, rec *InboundRecord, c *Contact) (*Ticket, bool, error) {
	key := chanKey{rec.ChannelID, rec.ThreadKey}
	t, ok := r.threads[key]
	if !ok {
		t = new(Ticket)
		err := r.tx.NewSelect().Model(t).
			Where("channel_id = ? AND thread_key = ? AND status <> ?", rec.ChannelID, rec.ThreadKey, StatusClosed).Scan(ctx)
		if err = notFound(err, "thread"); err != nil && !isNotFound(err) {
			return nil, false, err
		}
		if err != nil {
			t = nil
		} else {
			t = r.keep(t)
		}
	}
	if t != nil && t.Status != StatusClosed {
		if t.InstanceID != rec.InstanceID {
			return nil, false, fmt.Errorf("thread of another instance: %w", ErrConflict)
		}
		return t, false, nil
	}
	t = r.newTicket(ctx, rec, c, rec.ThreadKey)
	r.threads[key] = t
	return t, true, nil
}

// unannounced takes back the feed entry and the number of a ticket the
// run created, for a ticket opened before its first message
// (OpenThread): both come with that message (ingest), so agents see
// numbers without gaps where visitors opened the widget and left.
func (r *ingestRun) unannounced(t *Ticket) {
	c := r.creations[t]
	delete(r.creations, t)
	for i, p := range r.tx.feed {
		if p.change == c {
			r.tx.feed = append(r.tx.feed[:i], r.tx.feed[i+1:]...)
			break
		}
	}
	for i, nt := range r.tx.newTickets {
		if nt == t {
			r.tx.newTickets = append(r.tx.newTickets[:i], r.tx.newTickets[i+1:]...)
			break
		}
	}
}

// newTicket queues a new ticket, written at flush. Its number comes at
// the end of the transaction, with the feed positions (flushFeed).
func (r *ingestRun) newTicket(ctx context.Context, rec *InboundRecord, c *Contact, threadKey string) *Ticket {
	now := r.s.now()
	t := &Ticket{
		InstanceID: rec.InstanceID, ChannelID: rec.ChannelID, ContactID: c.ID,
		ThreadKey: threadKey, Subject: subjectOf(rec), Status: StatusNew, TeamID: rec.TeamID,
		CreatedAt: now, UpdatedAt: now, LastMessageAt: now,
	}
	r.newTickets = append(r.newTickets, t)
	r.ticketOf[t] = c
	r.tx.newTickets = append(r.tx.newTickets, t)
	_ = r.s.addChange(ctx, r.tx, t, ChangeTicket, nil)
	r.creations[t] = r.tx.feed[len(r.tx.feed)-1].change
	return t
}

// ticket returns a stored ticket by id, read once per run.
func (r *ingestRun) ticket(ctx context.Context, id int64) (*Ticket, error) {
	if t := r.tickets[id]; t != nil {
		return t, nil
	}
	t := new(Ticket)
	if err := r.tx.NewSelect().Model(t).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, fmt.Sprintf("ticket %d", id))
	}
	r.tickets[id] = t
	return t, nil
}

// keep returns the run's struct for a ticket just read: the one already
// known (with this run's changes) if there is one.
func (r *ingestRun) keep(t *Ticket) *Ticket {
	if t == nil {
		return nil
	}
	if known := r.tickets[t.ID]; known != nil {
		return known
	}
	r.tickets[t.ID] = t
	return t
}

// owns reports whether c is the ticket's contact; either may be new.
func (r *ingestRun) owns(t *Ticket, c *Contact) bool {
	if tc := r.ticketOf[t]; tc != nil {
		return tc == c
	}
	return c.ID != 0 && t.ContactID == c.ID
}

// touch marks a stored ticket to be written at flush (new tickets are
// inserted with their final state anyway).
func (r *ingestRun) touch(t *Ticket) {
	if t.ID != 0 && !r.isDirty[t] {
		r.isDirty[t] = true
		r.dirty = append(r.dirty, t)
	}
}

// flush writes what the run created and changed, each kind in one
// statement: contacts, identities, tickets, messages, attachments, then
// the changed tickets. Rows are inserted in record order, so message ids
// follow the order messages were received (C23).
func (r *ingestRun) flush(ctx context.Context) error {
	tx := r.tx
	if len(r.newContacts) > 0 {
		if err := insertAll(ctx, tx, &r.newContacts, "contacts"); err != nil {
			return err
		}
		for _, id := range r.newIdents {
			id.ContactID = r.identOf[id].ID
		}
	}
	if len(r.newIdents) > 0 {
		if err := insertAll(ctx, tx, &r.newIdents, "identities"); err != nil {
			return err
		}
	}
	if len(r.newTickets) > 0 {
		for _, t := range r.newTickets {
			t.ContactID = r.ticketOf[t].ID
		}
		if err := insertAll(ctx, tx, &r.newTickets, "tickets"); err != nil {
			return err
		}
	}
	if len(r.newMessages) > 0 {
		for _, m := range r.newMessages {
			m.TicketID = r.msgTicket[m].ID
			cid := r.msgContact[m].ID
			m.ContactID = &cid
		}
		if err := insertAll(ctx, tx, &r.newMessages, "messages"); err != nil {
			return err
		}
		var atts []*Attachment
		for _, m := range r.newMessages {
			for _, a := range m.Attachments {
				a.InstanceID, a.MessageID = m.InstanceID, m.ID
				atts = append(atts, a)
			}
		}
		if len(atts) > 0 {
			if err := insertAll(ctx, tx, &atts, "attachments"); err != nil {
				return err
			}
		}
	}
	if err := r.s.updateTickets(ctx, tx, r.dirty, "status", "resolved_at", "last_inbound_at", "last_message_at", "updated_at"); err != nil {
		return err
	}
	r.newContacts, r.newIdents, r.newTickets, r.newMessages, r.dirty = nil, nil, nil, nil, nil
	clear(r.isDirty)
	return nil
}

// insertAll inserts a slice of rows in one statement, filling in their
// ids. A unique violation means a concurrent transaction stored the same
// row first (errRace: the caller tries again and finds it).
func insertAll(ctx context.Context, tx *txn, rows any, what string) error {
	if _, err := tx.NewInsert().Model(rows).Exec(ctx); err != nil {
		if IsUnique(err) {
			return errRace
		}
		return fmt.Errorf("insert %s: %w", what, err)
	}
	return nil
}

// updateTickets writes the columns of several tickets: one statement on
// Postgres (an UPDATE from a VALUES list), one per ticket on SQLite,
// whose statements cost no round trip.
func (s *Store) updateTickets(ctx context.Context, tx *txn, ts []*Ticket, cols ...string) error {
	if len(ts) == 0 {
		return nil
	}
	if s.pg && len(ts) > 1 {
		// bun's Bulk would carry every column in the VALUES list; only
		// the changed ones travel here.
		set := make([]string, len(cols))
		for i, c := range cols {
			set[i] = c + " = _data." + c
		}
		values := tx.NewValues(&ts).Column(append([]string{"id"}, cols...)...)
		if _, err := tx.NewUpdate().With("_data", values).Model((*Ticket)(nil)).TableExpr("_data").
			Set(strings.Join(set, ", ")).Where("t.id = _data.id").Exec(ctx); err != nil {
			return fmt.Errorf("update tickets: %w", err)
		}
		return nil
	}
	for _, t := range ts {
		if _, err := tx.NewUpdate().Model(t).Column(cols...).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update ticket %d: %w", t.ID, err)
		}
	}
	return nil
}
