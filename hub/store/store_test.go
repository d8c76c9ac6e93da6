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
