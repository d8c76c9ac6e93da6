package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// open runs fn against a migrated store on every dialect (SQLite always,
// Postgres when reachable): one test list, every database.
func open(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		fn(t, s)
	})
}

func seed(t *testing.T, s *store.Store, inst string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateInstance(ctx, &store.Instance{ID: inst, Name: inst, TimeZone: "Europe/Amsterdam"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChannel(ctx, &store.Channel{ID: inst + "-chat", InstanceID: inst, Kind: "livechat", Name: "Chat", Enabled: true}); err != nil {
		t.Fatal(err)
	}
}

func rec(inst, ext, thread, text string) *store.InboundRecord {
	return &store.InboundRecord{
		InstanceID: inst, ChannelID: inst + "-chat", ExternalID: ext, ThreadKey: thread,
		Contact: store.ContactInput{ExternalID: "vis-" + thread, DisplayName: "Visitor"}, Text: text,
	}
}

func TestMigrateUpDownTwice(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			if err := s.Rollback(ctx); err != nil {
				t.Fatalf("rollback %d: %v", i, err)
			}
			_, pending, err := s.MigrationStatus(ctx)
			if err != nil || len(pending) == 0 {
				t.Fatalf("after rollback: pending=%v err=%v", pending, err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("migrate %d: %v", i, err)
			}
		}
		seed(t, s, "acme")
	})
}

func TestIngestDedupAndThreading(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		r1, err := s.Ingest(ctx, rec("acme", "m1", "conv-1", "hello"))
		if err != nil {
			t.Fatal(err)
		}
		if !r1.Created || r1.Duplicate || r1.Ticket.Number != 1 {
			t.Fatalf("first: %+v", r1)
		}
		again, err := s.Ingest(ctx, rec("acme", "m1", "conv-1", "hello"))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Message.ID != r1.Message.ID {
			t.Fatalf("redelivery must be absorbed: %+v", again)
		}
		r2, err := s.Ingest(ctx, rec("acme", "m2", "conv-1", "more"))
		if err != nil {
			t.Fatal(err)
		}
		if r2.Created || r2.Ticket.ID != r1.Ticket.ID {
			t.Fatalf("same thread must join the ticket: %+v", r2)
		}
		msgs, err := s.Messages(ctx, "acme", r1.Ticket.ID, 0, 0, true)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("messages = %d, %v", len(msgs), err)
		}
		// Hints: a reply naming m2 lands on the same ticket even on a
		// header-threaded channel.
		h := rec("acme", "m3", "", "re")
		h.Contact.ExternalID = "vis-conv-1"
		h.ThreadHints = []string{"unknown", "m2"}
		r3, err := s.Ingest(ctx, h)
		if err != nil || r3.Ticket.ID != r1.Ticket.ID {
			t.Fatalf("hint threading: %+v %v", r3, err)
		}
		// Closing ends the thread: the next message opens a new ticket.
		closed := store.StatusClosed
		if _, err := s.UpdateTicket(ctx, "acme", r1.Ticket.ID, store.TicketUpdate{Status: &closed}); err != nil {
			t.Fatal(err)
		}
		r4, err := s.Ingest(ctx, rec("acme", "m4", "conv-1", "new"))
		if err != nil || !r4.Created || r4.Ticket.ID == r1.Ticket.ID {
			t.Fatalf("after close: %+v %v", r4, err)
		}
	})
}

func TestConcurrentIngestStoresOnce(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				// 10 distinct messages, each delivered 4 times at once,
				// all racing to open the same thread.
				_, err := s.Ingest(ctx, rec("acme", fmt.Sprintf("m%d", i%10), "race", "x"))
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		ts, err := s.Tickets(ctx, "acme", store.TicketFilter{})
		if err != nil || len(ts) != 1 {
			t.Fatalf("tickets = %d, %v", len(ts), err)
		}
		msgs, _ := s.Messages(ctx, "acme", ts[0].ID, 0, 0, true)
		if len(msgs) != 10 {
			t.Fatalf("messages = %d, want 10", len(msgs))
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "a")
		seed(t, s, "b")
		ra, err := s.Ingest(ctx, rec("a", "m1", "t", "secret of a"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Ticket(ctx, "b", ra.Ticket.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("instance b read a's ticket: %v", err)
		}
		if ms, _ := s.Messages(ctx, "b", ra.Ticket.ID, 0, 0, true); len(ms) != 0 {
			t.Fatal("instance b read a's messages")
		}
		if _, err := s.Message(ctx, "b", ra.Message.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("instance b read a's message")
		}
		if ts, _ := s.Tickets(ctx, "b", store.TicketFilter{Query: "secret"}); len(ts) != 0 {
			t.Fatal("search crossed tenants")
		}
		if _, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: "b", TicketID: ra.Ticket.ID, Text: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("instance b replied on a's ticket: %v", err)
		}
	})
}

func TestOutboxLifecycle(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		r, err := s.Ingest(ctx, rec("acme", "m1", "t", "hi"))
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: "acme", TicketID: r.Ticket.ID, AgentID: 1, Text: "reply", IdempotencyKey: "k1"})
		if err != nil || m.State != "queued" {
			t.Fatalf("reply: %+v %v", m, err)
		}
		if _, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: "acme", TicketID: r.Ticket.ID, AgentID: 1, Text: "reply", IdempotencyKey: "k1"}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("resubmit must be absorbed: %v", err)
		}
		items, err := s.ClaimOutbox(ctx, 10, time.Minute)
		if err != nil || len(items) != 1 {
			t.Fatalf("claim: %d %v", len(items), err)
		}
		if again, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatal("a leased item was claimed twice")
		}
		if _, err := s.FinishOutbox(ctx, items[0], store.OutboxResult{Retry: true, RetryAt: now.Add(time.Second), Error: "timeout"}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Second)
		items, _ = s.ClaimOutbox(ctx, 10, time.Minute)
		if len(items) != 1 || items[0].Attempts != 1 {
			t.Fatalf("retry not due: %+v", items)
		}
		m, err = s.FinishOutbox(ctx, items[0], store.OutboxResult{Sent: true, ExternalID: "ext-1", State: "sent"})
		if err != nil || m.State != "sent" || m.ExternalID != "ext-1" {
			t.Fatalf("sent: %+v %v", m, err)
		}
		ms, err := s.SetDelivery(ctx, "acme", "acme-chat", 0, "ext-1", "read", "")
		if err != nil || len(ms) != 1 {
			t.Fatalf("read: %v %v", ms, err)
		}
		if ms, _ := s.SetDelivery(ctx, "acme", "acme-chat", 0, "ext-1", "delivered", ""); len(ms) != 0 {
			t.Fatal("delivery state moved backwards")
		}
	})
}

func TestIngestBatchIsolatesFailures(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		before, _ := s.Ingest(ctx, rec("acme", "old", "t0", "stored before"))
		bad := rec("acme", "bad", "t9", "no such instance")
		bad.InstanceID = "missing"
		recs := []*store.InboundRecord{
			rec("acme", "a1", "t1", "first"),
			rec("acme", "a2", "t1", "second, same new thread"),
			rec("acme", "a1", "t1", "first again in the same batch"),
			bad,
			rec("acme", "old", "t0", "re-delivery of an earlier message"),
			rec("acme", "b1", "t2", "other thread"),
		}
		out := s.IngestBatch(ctx, recs)
		if out[3].Err == nil {
			t.Fatal("a record of a missing instance was stored")
		}
		for i, want := range []bool{false, false, true, false, true, false} {
			if i == 3 {
				continue
			}
			if out[i].Err != nil {
				t.Fatalf("record %d: %v", i, out[i].Err)
			}
			if out[i].Result.Duplicate != want {
				t.Errorf("record %d duplicate = %v, want %v", i, out[i].Result.Duplicate, want)
			}
		}
		if out[0].Result.Ticket.ID != out[1].Result.Ticket.ID || out[2].Result.Message.ID != out[0].Result.Message.ID {
			t.Error("records of one thread in one batch must share the ticket")
		}
		if out[4].Result.Message.ID != before.Message.ID {
			t.Error("re-delivery must point at the stored message")
		}
		ts, _ := s.Tickets(ctx, "acme", store.TicketFilter{})
		if len(ts) != 3 {
			t.Errorf("tickets = %d, want 3", len(ts))
		}
	})
}

// A reader following the feed while many transactions commit at once must
// see every change exactly once: the feed position follows commit order.
func TestFeedFollowsCommitOrder(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		const writers, each = 8, 25
		var wg sync.WaitGroup
		done := make(chan struct{})
		seen := map[int64]int{}
		var cursor int64
		read := func() {
			cs, err := s.Changes(ctx, "acme", cursor, 1000)
			if err != nil {
				t.Error(err)
				return
			}
			for _, c := range cs {
				seen[c.Seq]++
				cursor = c.Seq
			}
		}
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for {
				select {
				case <-done:
					return
				default:
					read()
				}
			}
		}()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Ingest(ctx, rec("acme", fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("t%d", w), "x")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		<-readerDone
		read()
		last, _ := s.LastChange(ctx, "acme")
		if int64(len(seen)) != last {
			t.Fatalf("reader saw %d distinct changes of %d: it skipped some", len(seen), last)
		}
		for seq := int64(1); seq <= last; seq++ {
			if seen[seq] != 1 {
				t.Fatalf("change %d seen %d times", seq, seen[seq])
			}
		}
	})
}

func TestTicketListPagesAndNames(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		for i := range 7 {
			r := rec("acme", fmt.Sprintf("m%d", i), fmt.Sprintf("t%d", i), "x")
			r.Contact.DisplayName = fmt.Sprintf("Visitor %d", i)
			if _, err := s.Ingest(ctx, r); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				now = now.Add(time.Minute) // some tickets share a timestamp
			}
		}
		var got []int64
		var before int64
		for page := 0; page < 10; page++ {
			ts, err := s.Tickets(ctx, "acme", store.TicketFilter{Limit: 3, Before: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) == 0 {
				break
			}
			for _, tk := range ts {
				if tk.ContactName == "" {
					t.Errorf("ticket %d listed without its contact's name", tk.ID)
				}
				got = append(got, tk.ID)
			}
			before = ts[len(ts)-1].ID
		}
		if len(got) != 7 {
			t.Fatalf("paging returned %v, want each of 7 tickets once", got)
		}
		seen := map[int64]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("ticket %d on two pages: %v", id, got)
			}
			seen[id] = true
		}
	})
}

func TestReplyIdempotencyIsPerTicket(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		a, _ := s.Ingest(ctx, rec("acme", "m1", "t1", "x"))
		b, _ := s.Ingest(ctx, rec("acme", "m2", "t2", "y"))
		m1, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: "acme", TicketID: a.Ticket.ID, Text: "one", IdempotencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		m2, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: "acme", TicketID: b.Ticket.ID, Text: "two", IdempotencyKey: "k"})
		if err != nil || m2.ID == m1.ID || m2.TicketID != b.Ticket.ID {
			t.Fatalf("the same key on another ticket swallowed the reply: %+v %v", m2, err)
		}
	})
}

// A batch that succeeds as a whole must leave the same rows as the same
// records stored one by one: stored and new tickets (one of them
// reopened), new contacts, mail threading into a message of the same
// batch, duplicates within the batch and of earlier messages, and the
// feed with every change's ticket and message.
func TestIngestBatchMatchesOneByOne(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seedMail(t, s, "acme")
		a, _ := s.Ingest(ctx, rec("acme", "a0", "ta", "thread a"))
		b, _ := s.Ingest(ctx, rec("acme", "b0", "tb", "thread b"))
		solved := store.StatusSolved
		if _, err := s.UpdateTicket(ctx, "acme", b.Ticket.ID, store.TicketUpdate{Status: &solved}); err != nil {
			t.Fatal(err)
		}
		before, _ := s.LastChange(ctx, "acme")
		conv := rec("acme", "a1", "ta", "a by conversation id")
		conv.ConversationID = a.Ticket.ID
		first := mailRec("acme", "m1@example.org", "new@example.org", "New mail")
		answer := mailRec("acme", "m2@example.org", "new@example.org", "Re: New mail")
		answer.ThreadHints = []string{"m1@example.org"}
		recs := []*store.InboundRecord{
			conv,
			rec("acme", "b1", "tb", "b again, reopens"),
			rec("acme", "c1", "tc", "new thread c"),
			rec("acme", "a0", "ta", "re-delivery"),
			rec("acme", "c2", "tc", "c again"),
			rec("acme", "c1", "tc", "c1 twice in a batch"),
			first,
			answer,
			rec("acme", "a2", "ta", "a by thread key"),
		}
		out := s.IngestBatch(ctx, recs)
		for i, o := range out {
			if o.Err != nil {
				t.Fatalf("record %d: %v", i, o.Err)
			}
		}
		ids := func(i int) (int64, int64) { return out[i].Result.Ticket.ID, out[i].Result.Message.ID }
		if tid, _ := ids(0); tid != a.Ticket.ID {
			t.Errorf("conversation id: ticket %d, want %d", tid, a.Ticket.ID)
		}
		if tid, _ := ids(8); tid != a.Ticket.ID {
			t.Errorf("thread key: ticket %d, want %d", tid, a.Ticket.ID)
		}
		if tid, _ := ids(1); tid != b.Ticket.ID || !out[1].Result.Reopened {
			t.Errorf("b: ticket %d reopened %v", tid, out[1].Result.Reopened)
		}
		if !out[2].Result.Created || out[4].Result.Created || out[4].Result.Ticket.ID != out[2].Result.Ticket.ID {
			t.Error("the second message of a new thread must join the ticket the first created")
		}
		if !out[3].Result.Duplicate || out[3].Result.Message.ID != a.Message.ID {
			t.Errorf("re-delivery: %+v", out[3].Result)
		}
		if !out[5].Result.Duplicate || out[5].Result.Message.ID != out[2].Result.Message.ID {
			t.Errorf("duplicate in batch: %+v", out[5].Result)
		}
		if out[7].Result.Created || out[7].Result.Ticket.ID != out[6].Result.Ticket.ID {
			t.Error("a mail answering a mail of the same batch must join its ticket")
		}
		var last int64
		for _, i := range []int{0, 1, 2, 4, 6, 7, 8} {
			tid, mid := ids(i)
			if tid == 0 || mid <= last {
				t.Fatalf("record %d: ticket %d message %d after %d: ids must follow the records", i, tid, mid, last)
			}
			last = mid
			m, err := s.Message(ctx, "acme", mid)
			if err != nil || m.TicketID != tid || m.Text != recs[i].Text || m.ContactID == nil || *m.ContactID != out[i].Result.Contact.ID {
				t.Fatalf("record %d stored as %+v (%v)", i, m, err)
			}
		}
		c, _ := s.Ticket(ctx, "acme", out[2].Result.Ticket.ID)
		m, _ := s.Ticket(ctx, "acme", out[6].Result.Ticket.ID)
		if c.Number == 0 || m.Number != c.Number+1 || c.ContactID == 0 || c.ContactID == m.ContactID {
			t.Errorf("new tickets: %+v %+v", c, m)
		}
		bt, _ := s.Ticket(ctx, "acme", b.Ticket.ID)
		at, _ := s.Ticket(ctx, "acme", a.Ticket.ID)
		if bt.Status != store.StatusOpen || bt.ResolvedAt != nil || at.LastInboundAt == nil || !at.LastMessageAt.After(a.Ticket.LastMessageAt) {
			t.Errorf("stored tickets not updated: %+v %+v", bt, at)
		}
		feed, err := s.Feed(ctx, "acme", before, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Two new tickets (c, mail) and seven messages.
		if len(feed) != 9 {
			t.Fatalf("feed has %d changes, want 9", len(feed))
		}
		for _, e := range feed {
			if e.Ticket == nil || (e.Change.Kind == store.ChangeMessage && (e.Message == nil || e.Message.TicketID != e.Ticket.ID)) {
				t.Fatalf("feed entry %+v does not name its ticket and message", e.Change)
			}
		}
	})
}

// A follow-up message updates its ticket in place on Postgres (a HOT
// update: no index of tickets gets a new entry), which is most of what
// a message costs the tickets table (D13). An index on a column the
// message path writes, or pages without room, would make it cold again.
func TestMessageUpdatesTicketInPlace(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seed(t, s, "acme")
	first, err := s.Ingest(ctx, rec("acme", "m1", "thread-1", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	// The backend's counts may still hold earlier transactions' (they are
	// flushed now and then): compare before and after.
	counts := func() (upd, hot int) {
		t.Helper()
		if err := tx.QueryRowContext(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'tickets'`).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		return upd, hot
	}
	upd0, hot0 := counts()
	// The columns the ingest path writes on a follow-up (ingest.go, flush).
	if _, err := tx.ExecContext(ctx, `UPDATE tickets SET status = status, resolved_at = resolved_at,
		last_inbound_at = now(), last_message_at = now(), updated_at = now() WHERE id = ?`, first.Ticket.ID); err != nil {
		t.Fatal(err)
	}
	upd, hot := counts()
	upd, hot = upd-upd0, hot-hot0
	if upd != 1 || hot != 1 {
		t.Fatalf("ticket update: %d updates, %d of them in place (HOT); want 1 and 1", upd, hot)
	}
}

// A conversation opened before its end user writes (a live-chat visitor
// opening the widget) is neither numbered, listed nor in the feed; its
// first message numbers it and brings it to both, so numbers have no gaps
// for visitors who left without writing.
func TestOpenedThreadAppearsWithItsFirstMessage(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		before, err := s.LastChange(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		tk, created, err := s.OpenThread(ctx, rec("acme", "", "vis-1", ""))
		if err != nil || !created || tk.Number != 0 {
			t.Fatalf("open thread: %+v created=%v err=%v", tk, created, err)
		}
		again, created, err := s.OpenThread(ctx, rec("acme", "", "vis-1", ""))
		if err != nil || created || again.ID != tk.ID {
			t.Fatalf("open again: %+v created=%v err=%v", again, created, err)
		}
		list := func() []int64 {
			ts, err := s.Tickets(ctx, "acme", store.TicketFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, x := range ts {
				ids = append(ids, x.ID)
			}
			return ids
		}
		if ids := list(); len(ids) != 0 {
			t.Fatalf("listed before a message: %v", ids)
		}
		if cur, _ := s.LastChange(ctx, "acme"); cur != before {
			t.Fatalf("feed moved from %d to %d without a message", before, cur)
		}
		r := rec("acme", "m1", "vis-1", "hello")
		r.ConversationID = tk.ID
		res, err := s.Ingest(ctx, r)
		if err != nil || res.Ticket.ID != tk.ID || res.Ticket.Number != 1 {
			t.Fatalf("first message: %+v err=%v", res, err)
		}
		r2 := rec("acme", "m2", "vis-1", "again")
		r2.ConversationID = tk.ID
		if res, err := s.Ingest(ctx, r2); err != nil || res.Ticket.Number != 1 {
			t.Fatalf("second message: %+v err=%v", res, err)
		}
		if ids := list(); len(ids) != 1 || ids[0] != tk.ID {
			t.Fatalf("listed after the first message: %v", ids)
		}
		feed, err := s.Feed(ctx, "acme", before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(feed) != 2 {
			t.Fatalf("feed after two messages: %+v", feed)
		}
		for _, e := range feed {
			if e.Change.Kind != store.ChangeMessage || e.Ticket == nil || e.Ticket.ID != tk.ID || e.Ticket.Number != 1 {
				t.Fatalf("feed entry %+v (ticket %+v)", e.Change, e.Ticket)
			}
		}
	})
}

// Two tabs of one visitor, on two nodes, send their first messages at the
// same moment: two transactions find the opened conversation without a
// number. It gets one number, both messages report it, and numbers stay
// dense (D14).
func TestFirstMessagesRacingNumberOnce(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		const convs = 20
		got := map[int64][]int64{} // ticket id → numbers its messages reported
		var mu sync.Mutex
		for i := range convs {
			thread := fmt.Sprintf("vis-%d", i)
			tk, _, err := s.OpenThread(ctx, rec("acme", "", thread, ""))
			if err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for tab := range 2 {
				wg.Go(func() {
					r := rec("acme", fmt.Sprintf("m-%d-%d", i, tab), thread, "hello")
					r.ConversationID = tk.ID
					<-start
					res, err := s.Ingest(ctx, r)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got[res.Ticket.ID] = append(got[res.Ticket.ID], res.Ticket.Number)
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
		}
		ts, err := s.Tickets(ctx, "acme", store.TicketFilter{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		numbers := map[int64]bool{}
		for _, tk := range ts {
			for _, n := range got[tk.ID] {
				if n != tk.Number {
					t.Errorf("ticket %d is number %d, a message reported %d", tk.ID, tk.Number, n)
				}
			}
			numbers[tk.Number] = true
		}
		if len(ts) != convs {
			t.Fatalf("%d tickets, want %d", len(ts), convs)
		}
		for n := int64(1); n <= convs; n++ {
			if !numbers[n] {
				t.Errorf("number %d missing: numbers %v", n, numbers)
			}
		}
	})
}

// A channel whose conversations were all opened and left empty can be
// deleted (they are no tickets, D14), and they go with it, with the
// visitors' identities and contacts; one real ticket keeps the channel.
func TestDeleteChannelTakesEmptyConversations(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme")
		if _, _, err := s.OpenThread(ctx, rec("acme", "", "vis-1", "")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteChannel(ctx, "acme", "acme-chat"); err != nil {
			t.Fatalf("delete with an empty conversation: %v", err)
		}
		var tickets, idents, contacts int
		for _, c := range []struct {
			table string
			n     *int
		}{{"tickets", &tickets}, {"contact_identities", &idents}, {"contacts", &contacts}} {
			if err := s.DB.NewRaw("SELECT count(*) FROM "+c.table+" WHERE instance_id = ?", "acme").Scan(ctx, c.n); err != nil {
				t.Fatal(err)
			}
		}
		if tickets+idents+contacts != 0 {
			t.Fatalf("left behind: %d tickets, %d identities, %d contacts", tickets, idents, contacts)
		}

		if err := s.CreateChannel(ctx, &store.Channel{ID: "acme-chat", InstanceID: "acme", Kind: "livechat", Name: "Chat", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Ingest(ctx, rec("acme", "m1", "vis-2", "hello")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteChannel(ctx, "acme", "acme-chat"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete with a ticket: %v, want a conflict", err)
		}
	})
}
