package store_test

import (
	"context"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// mailRec is an inbound record of a header-threaded (mail) channel.
func mailRec(inst, ext, from, subject string) *store.InboundRecord {
	return &store.InboundRecord{
		InstanceID: inst, ChannelID: inst + "-mail", ExternalID: ext,
		Contact: store.ContactInput{ExternalID: from, Email: from}, Subject: subject, Text: "body of " + ext,
	}
}

func seedMail(t *testing.T, s *store.Store, inst string) {
	t.Helper()
	seed(t, s, inst)
	ctx := context.Background()
	for _, ch := range []*store.Channel{
		{ID: inst + "-mail", InstanceID: inst, Kind: "email", Name: "Mail", Enabled: true},
		{ID: inst + "-mail2", InstanceID: inst, Kind: "email", Name: "Billing", Enabled: true},
	} {
		if err := s.CreateChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
}

// reply stores an agent reply on a ticket and records its provider id.
func reply(t *testing.T, s *store.Store, inst string, ticketID int64, externalID string) *store.Message {
	t.Helper()
	ctx := context.Background()
	m, _, err := s.AddAgentMessage(ctx, store.AgentMessage{InstanceID: inst, TicketID: ticketID, AuthorName: "Ben", Text: "answer"})
	if err != nil {
		t.Fatal(err)
	}
	if externalID != "" {
		if _, err := s.SetDelivery(ctx, inst, m.ChannelID, m.ID, externalID, "sent", ""); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// Threading rules for header-threaded channels (issue: email threading):
// the hub's own reference, then stored ids, then a ticket number of the
// same contact; an attach-only record (auto-reply) never opens a ticket
// and leaves nothing behind.
func TestMailThreading(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seedMail(t, s, "acme")
		first, err := s.Ingest(ctx, mailRec("acme", "a1@example.org", "alice@example.org", "Order 5521"))
		if err != nil || !first.Created {
			t.Fatalf("first mail: %+v %v", first, err)
		}
		tk := first.Ticket
		out := reply(t, s, "acme", tk.ID, "sb-out-1@support.example.com")

		ingest := func(r *store.InboundRecord) *store.IngestResult {
			t.Helper()
			res, err := s.Ingest(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}

		t.Run("stored id on another channel of the instance", func(t *testing.T) {
			r := mailRec("acme", "a2@example.org", "alice@example.org", "Re: Order 5521")
			r.ChannelID = "acme-mail2"
			r.ThreadHints = []string{"unknown@x", "sb-out-1@support.example.com"}
			if res := ingest(r); res.Created || res.Ticket.ID != tk.ID {
				t.Fatalf("want ticket %d, got %+v", tk.ID, res.Ticket)
			}
		})
		t.Run("own reference, provider id never recorded", func(t *testing.T) {
			unrecorded := reply(t, s, "acme", tk.ID, "")
			r := mailRec("acme", "a3@example.org", "alice@example.org", "Re: Order 5521")
			r.OwnRef = store.OwnRef{MessageID: unrecorded.ID, TicketNumber: tk.Number}
			if res := ingest(r); res.Created || res.Ticket.ID != tk.ID {
				t.Fatalf("want ticket %d, got %+v", tk.ID, res.Ticket)
			}
		})
		t.Run("own reference whose ids disagree", func(t *testing.T) {
			r := mailRec("acme", "a4@example.org", "alice@example.org", "Re: Order 5521")
			r.OwnRef = store.OwnRef{MessageID: out.ID, TicketNumber: tk.Number + 7}
			if res := ingest(r); !res.Created {
				t.Fatalf("a forged reference must not thread: %+v", res.Ticket)
			}
		})
		t.Run("ticket number of the same contact", func(t *testing.T) {
			r := mailRec("acme", "a5@example.org", "alice@example.org", "[#1] still waiting")
			r.TicketNumber = tk.Number
			if res := ingest(r); res.Created || res.Ticket.ID != tk.ID {
				t.Fatalf("want ticket %d, got %+v", tk.ID, res.Ticket)
			}
		})
		t.Run("ticket number of another contact opens a new ticket", func(t *testing.T) {
			r := mailRec("acme", "m1@example.net", "mallory@example.net", "[#1] give me the data")
			r.TicketNumber = tk.Number
			if res := ingest(r); !res.Created || res.Ticket.ID == tk.ID {
				t.Fatalf("a guessed number must not merge: %+v", res.Ticket)
			}
		})
		t.Run("message id from another contact attaches, marked", func(t *testing.T) {
			r := mailRec("acme", "b1@example.org", "bob@example.org", "Re: Order 5521")
			r.ThreadHints = []string{"sb-out-1@support.example.com"}
			res := ingest(r)
			if res.Created || res.Ticket.ID != tk.ID || res.Message.Meta["other_contact"] != "true" {
				t.Fatalf("want ticket %d marked other_contact, got %+v %v", tk.ID, res.Ticket, res.Message.Meta)
			}
		})
		t.Run("same subject, no references: a new ticket", func(t *testing.T) {
			if res := ingest(mailRec("acme", "a6@example.org", "alice@example.org", "Order 5521")); !res.Created {
				t.Fatal("a reused subject must open a new ticket")
			}
		})
		t.Run("attach-only that threads is stored, ticket not reopened", func(t *testing.T) {
			solved := store.StatusSolved
			if _, err := s.UpdateTicket(ctx, "acme", tk.ID, store.TicketUpdate{Status: &solved}); err != nil {
				t.Fatal(err)
			}
			r := mailRec("acme", "ooo1@example.org", "alice@example.org", "Out of office")
			r.ThreadHints, r.AttachOnly, r.AutoReply = []string{"sb-out-1@support.example.com"}, true, true
			res := ingest(r)
			if res.Ignored || res.Ticket.ID != tk.ID || res.Reopened || res.Ticket.Status != store.StatusSolved {
				t.Fatalf("auto-reply must attach without reopening: %+v", res)
			}
		})
		t.Run("attach-only that threads nowhere leaves nothing", func(t *testing.T) {
			before, _ := s.Tickets(ctx, "acme", store.TicketFilter{})
			r := mailRec("acme", "ooo2@example.org", "newcomer@example.org", "Automatic reply")
			r.ThreadHints, r.AttachOnly, r.AutoReply = []string{"nothing@here"}, true, true
			res := ingest(r)
			if !res.Ignored || res.Ticket != nil {
				t.Fatalf("want ignored, got %+v", res)
			}
			after, _ := s.Tickets(ctx, "acme", store.TicketFilter{})
			if len(after) != len(before) {
				t.Fatalf("tickets %d -> %d", len(before), len(after))
			}
			n, err := s.DB.NewSelect().Model((*store.Identity)(nil)).Where("external_id = ?", "newcomer@example.org").Count(ctx)
			if err != nil || n != 0 {
				t.Fatalf("an ignored auto-reply must leave no contact behind: %d %v", n, err)
			}
		})
	})
}

// An attach-only record that threads nowhere does not fail the records
// committed with it (group commit falls back to one by one).
func TestIngestBatchWithIgnoredRecord(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seedMail(t, s, "acme")
		ooo := mailRec("acme", "ooo@example.org", "x@example.org", "Out of office")
		ooo.AttachOnly, ooo.AutoReply = true, true
		out := s.IngestBatch(ctx, []*store.InboundRecord{
			mailRec("acme", "n1@example.org", "a@example.org", "one"), ooo,
			mailRec("acme", "n2@example.org", "b@example.org", "two"),
		})
		if out[0].Err != nil || out[2].Err != nil || !out[0].Result.Created || !out[2].Result.Created {
			t.Fatalf("neighbours must be stored: %+v %+v", out[0], out[2])
		}
		if out[1].Err != nil || !out[1].Result.Ignored {
			t.Fatalf("auto-reply: %+v", out[1])
		}
	})
}
