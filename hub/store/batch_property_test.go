package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// The same inbound records, stored one by one in one instance and in
// random batches in another, leave the same tickets, messages, contacts
// and feed: group commit changes how records are stored, never what.
// The records mix live chat and mail, new and known senders whose names
// change, duplicates (also within a batch), mail answering mail (also of
// the same batch), web-form style new tickets and auto-replies that
// thread nowhere (which send a batch back to one by one).
func TestIngestBatchPropertyMatchesOneByOne(t *testing.T) {
	open(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for round := range 6 {
			one, batch := fmt.Sprintf("one%d", round), fmt.Sprintf("batch%d", round)
			seedMail(t, s, one)
			seedMail(t, s, batch)
			rng := rand.New(rand.NewPCG(uint64(round), 7))
			recs := randomRecords(rng, 80)
			for _, r := range recs {
				if _, err := s.Ingest(ctx, r(one)); err != nil {
					t.Fatalf("round %d one by one: %v", round, err)
				}
			}
			for i := 0; i < len(recs); {
				n := 1 + rng.IntN(24)
				var chunk []*store.InboundRecord
				for _, r := range recs[i:min(i+n, len(recs))] {
					chunk = append(chunk, r(batch))
				}
				i += n
				for j, res := range s.IngestBatch(ctx, chunk) {
					if res.Err != nil {
						t.Fatalf("round %d batch record %d: %v", round, j, res.Err)
					}
				}
			}
			want, got := snapshot(t, s, one), snapshot(t, s, batch)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("round %d: stored in batches:\n%s\none by one:\n%s", round, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// randomRecords returns n records, each a function of the instance id.
func randomRecords(rng *rand.Rand, n int) []func(inst string) *store.InboundRecord {
	var out []func(string) *store.InboundRecord
	var mailIDs []string
	names := []string{"", "Ann", "Ann B.", "Bo"}
	for i := range n {
		ext := fmt.Sprintf("x%d", i)
		name := names[rng.IntN(len(names))]
		switch k := rng.IntN(10); {
		case k < 4: // live chat
			thread := fmt.Sprintf("t%d", rng.IntN(5))
			if i > 0 && rng.IntN(8) == 0 {
				ext = fmt.Sprintf("x%d", rng.IntN(i)) // a resend
			}
			out = append(out, func(inst string) *store.InboundRecord {
				r := rec(inst, ext, thread, "chat "+ext)
				r.Contact.DisplayName = name
				return r
			})
		default: // mail
			from := fmt.Sprintf("u%d@example.org", rng.IntN(4))
			id := fmt.Sprintf("m%d@example.org", i)
			if len(mailIDs) > 0 && rng.IntN(8) == 0 {
				id = mailIDs[rng.IntN(len(mailIDs))] // redelivered
			}
			var hints []string
			if len(mailIDs) > 0 && rng.IntN(3) == 0 {
				hints = []string{"unknown@example.org", mailIDs[rng.IntN(len(mailIDs))]}
			}
			newTicket := k == 9 && rng.IntN(2) == 0
			autoReply := k == 8 && rng.IntN(2) == 0
			mailIDs = append(mailIDs, id)
			out = append(out, func(inst string) *store.InboundRecord {
				r := mailRec(inst, id, from, "Subject "+id)
				r.Contact.DisplayName = name
				r.ThreadHints, r.NewTicket = hints, newTicket
				r.AttachOnly, r.AutoReply = autoReply, autoReply
				return r
			})
		}
	}
	return out
}

// snapshot describes what an instance holds, with ids replaced by their
// rank within the instance, so two instances can be compared.
func snapshot(t *testing.T, s *store.Store, inst string) []string {
	t.Helper()
	ctx := context.Background()
	var contacts []store.Contact
	var tickets []store.Ticket
	var msgs []store.Message
	var changes []store.Change
	for _, q := range []error{
		s.DB.NewSelect().Model(&contacts).Where("instance_id = ?", inst).Order("id").Scan(ctx),
		s.DB.NewSelect().Model(&tickets).Where("t.instance_id = ?", inst).Order("t.id").Scan(ctx),
		s.DB.NewSelect().Model(&msgs).Where("m.instance_id = ?", inst).Order("m.id").Scan(ctx),
		s.DB.NewSelect().Model(&changes).Where("instance_id = ?", inst).Order("seq").Scan(ctx),
	} {
		if q != nil {
			t.Fatal(q)
		}
	}
	rank := func(ids ...int64) map[int64]int {
		m := map[int64]int{}
		for i, id := range ids {
			m[id] = i + 1
		}
		return m
	}
	var cids, tids, mids []int64
	for _, c := range contacts {
		cids = append(cids, c.ID)
	}
	for _, tk := range tickets {
		tids = append(tids, tk.ID)
	}
	for _, m := range msgs {
		mids = append(mids, m.ID)
	}
	cr, tr, mr := rank(cids...), rank(tids...), rank(mids...)
	ch := func(id string) string { return strings.TrimPrefix(id, inst) }
	var out []string
	for _, c := range contacts {
		out = append(out, fmt.Sprintf("contact %d %q %q", cr[c.ID], c.Name, c.Email))
	}
	for _, tk := range tickets {
		out = append(out, fmt.Sprintf("ticket %d #%d %s %q %q %s contact %d inbound %v", tr[tk.ID], tk.Number, ch(tk.ChannelID), tk.ThreadKey, tk.Subject, tk.Status, cr[tk.ContactID], tk.LastInboundAt != nil))
	}
	for _, m := range msgs {
		contact := 0
		if m.ContactID != nil {
			contact = cr[*m.ContactID]
		}
		out = append(out, fmt.Sprintf("message %d ticket %d %s %q %q by %q contact %d auto %v meta %v", mr[m.ID], tr[m.TicketID], ch(m.ChannelID), m.ExternalID, m.Text, m.AuthorName, contact, m.AutoReply, m.Meta))
	}
	for _, c := range changes {
		msg := 0
		if c.MessageID != nil {
			msg = mr[*c.MessageID]
		}
		out = append(out, fmt.Sprintf("change %d %s ticket %d message %d", c.Seq, c.Kind, tr[c.TicketID], msg))
	}
	return out
}
