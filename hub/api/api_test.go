package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// The happy path of every endpoint, on SQLite and Postgres, through a real
// hub: what an end user writes is listed and readable (M2), a client's
// reply leaves through the outbox and the channel like an agent's (M1),
// and the change feed tells an integration all of it in order.

func TestTicketsListAndRead(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		parcel := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
		refund := e.conversation(e.acme.channel, "bob", "I want a refund")
		e.clock.Add(time.Minute)
		invoice := e.conversation(e.acme.channel, "carol", "Invoice 8812 is wrong")
		if _, err := e.hub.SetStatus(ctx, e.acme.agent, refund, store.StatusPending); err != nil {
			t.Fatal(err)
		}
		if err := e.hub.Transfer(ctx, e.acme.agent, invoice, &e.acme.agent.ID, nil); err != nil {
			t.Fatal(err)
		}

		list := func(query string) []int64 {
			t.Helper()
			l := into[TicketList](t, e.do(e.acme.key, "GET", v1+"/tickets"+query, nil), http.StatusOK)
			ids := []int64{}
			for _, tk := range l.Items {
				ids = append(ids, tk.ID)
			}
			return ids
		}
		for query, want := range map[string][]int64{
			"":                           {invoice, refund, parcel}, // newest activity first
			"?status=new":                {parcel},
			"?status=pending,open":       {invoice, refund},
			"?status=pending&status=new": {refund, parcel},
			"?status=closed":             {},
			"?query=PARCEL":              {parcel},  // the message text, any case
			"?query=user+bob":            {refund},  // the contact's name
			"?query=carol%40example.org": {invoice}, // the contact's email
			"?query=%25":                 {},        // LIKE wildcards are literal
			"?assignee=none":             {refund, parcel},
			fmt.Sprintf("?assignee=%d", e.acme.agent.ID): {invoice},
			"?assignee=999999":                           {},
		} {
			if got := list(query); !slices.Equal(got, want) {
				t.Errorf("GET /tickets%s = %v, want %v", query, got, want)
			}
		}

		// Paging: next_before leads through the list and ends with null.
		var paged []int64
		path := v1 + "/tickets?limit=2"
		for range 3 {
			l := into[TicketList](t, e.do(e.acme.key, "GET", path, nil), http.StatusOK)
			for _, tk := range l.Items {
				paged = append(paged, tk.ID)
			}
			if l.NextBefore == nil {
				break
			}
			path = fmt.Sprintf("%s/tickets?limit=2&before=%d", v1, *l.NextBefore)
		}
		if !slices.Equal(paged, []int64{invoice, refund, parcel}) {
			t.Errorf("paged = %v", paged)
		}

		l := into[TicketList](t, e.do(e.acme.key, "GET", v1+"/tickets?query=parcel", nil), http.StatusOK)
		if tk := l.Items[0]; tk.ContactName != "User alice" || tk.Status != store.StatusNew || tk.InstanceID != "acme" ||
			tk.ChannelID != e.acme.channel || tk.Number == 0 || tk.LastInboundAt == nil {
			t.Errorf("listed ticket %+v", tk)
		}

		d := into[TicketDetail](t, e.do(e.acme.key, "GET", ticketPath(parcel, ""), nil), http.StatusOK)
		if d.Ticket.ID != parcel || d.ChannelKind != testKind || d.Policy == nil || d.Policy.ContactFields == nil {
			t.Errorf("detail %+v", d)
		}
		if len(d.Messages) != 1 || d.Messages[0].Direction != store.DirIn || d.Messages[0].Text != "Where is my parcel?" ||
			d.Messages[0].ContactID == nil || d.Messages[0].AuthorName != "User alice" {
			t.Errorf("messages %+v", d.Messages)
		}
		if d.Contact.Name != "User alice" || d.Contact.Email != "alice@example.org" || len(d.Contact.Identities) != 1 ||
			d.Contact.Identities[0].ExternalID != "alice" || d.Contact.Identities[0].ChannelID != e.acme.channel {
			t.Errorf("contact %+v", d.Contact)
		}
		// Internal details stay out of the contract.
		for _, hidden := range []string{"thread_key", "thread-alice", "dedup_key", "blob_key", "key_hash"} {
			if r := e.do(e.acme.key, "GET", ticketPath(parcel, ""), nil); strings.Contains(string(r.body), hidden) {
				t.Errorf("ticket detail shows %q: %s", hidden, r.body)
			}
		}
	})
}

func TestReplyGoesThroughTheOutbox(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
		updates := make(chan hub.Update, 64)
		cancel, err := e.hub.SubscribeInstance(ctx, "acme", func(u hub.Update) { updates <- u })
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()

		body := map[string]any{"text": "It left our warehouse today.", "idempotency_key": "crm-4711"}
		m := into[Message](t, e.do(e.acme.key, "POST", ticketPath(id, "/messages"), body), http.StatusCreated)
		if m.Direction != store.DirOut || m.State != "queued" || m.AuthorName != e.acme.keyName || m.AgentID != nil ||
			m.TicketID != id || m.Text != "It left our warehouse today." {
			t.Fatalf("reply %+v", m)
		}
		// A retry with the same key stores nothing new.
		again := into[Message](t, e.do(e.acme.key, "POST", ticketPath(id, "/messages"), body), http.StatusCreated)
		if again.ID != m.ID {
			t.Fatalf("retried reply stored twice: %d and %d", m.ID, again.ID)
		}
		items, _ := e.st.OutboxItems(ctx, "acme", store.OutboxPending)
		if len(items) != 1 || items[0].MessageID != m.ID {
			t.Fatalf("outbox %+v", items)
		}
		// Agents are told at once, as for an agent's reply.
		select {
		case u := <-updates:
			if u.Type != hub.UpdateMessage || u.Message.ID != m.ID {
				t.Fatalf("update %+v", u)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message.new update")
		}
		e.hub.DispatchNow(ctx)
		sent := e.conns[e.acme.channel].Sent()
		if len(sent) != 1 || sent[0].Text != m.Text || sent[0].AuthorName != e.acme.keyName || sent[0].To.ExternalID != "alice" {
			t.Fatalf("sent %+v", sent)
		}
		d := into[TicketDetail](t, e.do(e.acme.key, "GET", ticketPath(id, ""), nil), http.StatusOK)
		if len(d.Messages) != 2 || d.Messages[1].State != "sent" || d.Messages[1].ExternalID == "" {
			t.Fatalf("after sending: %+v", d.Messages)
		}
		if d.Ticket.Status != store.StatusOpen || d.Ticket.FirstResponseAt == nil {
			t.Fatalf("a reply opens the ticket and is its first response: %+v", d.Ticket)
		}
		// The agents' view shows the client's reply under the key's name.
		v, err := e.hub.Ticket(ctx, e.acme.agent, id)
		if err != nil || v.Messages[1].AuthorName != e.acme.keyName {
			t.Fatalf("agent view %+v %v", v, err)
		}

		// A note is stored, never sent.
		n := into[Message](t, e.do(e.acme.key, "POST", ticketPath(id, "/messages"),
			map[string]any{"text": "Reseller, see CRM.", "note": true}), http.StatusCreated)
		if n.Direction != store.DirNote || n.State != "" || n.AuthorName != e.acme.keyName {
			t.Fatalf("note %+v", n)
		}
		e.hub.DispatchNow(ctx)
		if len(e.conns[e.acme.channel].Sent()) != 1 {
			t.Fatal("a note was sent to the end user")
		}
		// The same idempotency key on another ticket is another message.
		other := e.conversation(e.acme.channel, "bob", "Hello?")
		m2 := into[Message](t, e.do(e.acme.key, "POST", ticketPath(other, "/messages"), body), http.StatusCreated)
		if m2.ID == m.ID || m2.TicketID != other {
			t.Fatalf("idempotency key crossed tickets: %+v", m2)
		}
	})
}

func TestReplyPolicyRefusals(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ch := e.channel("acme", "acme-dm", `{"ReplyWindow":86400000000000,"MaxTextLength":10,"Threading":"conversation"}`)
		id := e.conversation(ch, "dora", "hi")
		d := into[TicketDetail](t, e.do(e.acme.key, "GET", ticketPath(id, ""), nil), http.StatusOK)
		if d.Policy == nil || d.Policy.ReplyWindowSeconds != 86400 || d.Policy.MaxTextLength != 10 || d.Policy.Threading != "conversation" {
			t.Fatalf("policy %+v", d.Policy)
		}
		r := e.do(e.acme.key, "POST", ticketPath(id, "/messages"), map[string]any{"text": "this is far too long"})
		if got := wantError(t, r, http.StatusUnprocessableEntity, "policy", "text"); got.Reason != "too_long" {
			t.Errorf("reason %q", got.Reason)
		}
		e.clock.Add(25 * time.Hour)
		r = e.do(e.acme.key, "POST", ticketPath(id, "/messages"), map[string]any{"text": "late"})
		if got := wantError(t, r, http.StatusUnprocessableEntity, "policy", ""); got.Reason != "reply_window" {
			t.Errorf("reason %q", got.Reason)
		}
		// Notes are not bound by the channel.
		e.do(e.acme.key, "POST", ticketPath(id, "/messages"), map[string]any{"text": "notes are always fine", "note": true})
		d = into[TicketDetail](t, e.do(e.acme.key, "GET", ticketPath(id, ""), nil), http.StatusOK)
		if len(d.Messages) != 2 || d.Messages[1].Direction != store.DirNote {
			t.Fatalf("refused replies must store nothing: %+v", d.Messages)
		}
	})
}

func TestSetStatus(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
		for _, s := range []string{store.StatusPending, store.StatusSolved, store.StatusOpen, store.StatusClosed} {
			tk := into[Ticket](t, e.do(e.acme.key, "POST", ticketPath(id, "/status"), map[string]string{"status": s}), http.StatusOK)
			if tk.Status != s || tk.ID != id {
				t.Fatalf("set %s: %+v", s, tk)
			}
			switch s {
			case store.StatusSolved:
				if tk.ResolvedAt == nil {
					t.Errorf("solved without resolved_at: %+v", tk)
				}
			case store.StatusOpen:
				if tk.ResolvedAt != nil {
					t.Errorf("reopened with resolved_at: %+v", tk)
				}
			case store.StatusClosed:
				if tk.ClosedAt == nil {
					t.Errorf("closed without closed_at: %+v", tk)
				}
			}
		}
		got, err := e.st.Ticket(ctx, "acme", id)
		if err != nil || got.Status != store.StatusClosed {
			t.Fatalf("stored %+v %v", got, err)
		}
	})
}

func TestChangeFeed(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
		e.do(e.acme.key, "POST", ticketPath(id, "/messages"), map[string]any{"text": "On its way."})
		e.do(e.acme.key, "POST", ticketPath(id, "/messages"), map[string]any{"text": "Internal.", "note": true})
		e.hub.DispatchNow(ctx)
		e.do(e.acme.key, "POST", ticketPath(id, "/status"), map[string]any{"status": "solved"})

		all := into[ChangeList](t, e.do(e.acme.key, "GET", v1+"/changes", nil), http.StatusOK)
		var kinds []string
		for i, c := range all.Items {
			if i > 0 && c.Cursor <= all.Items[i-1].Cursor {
				t.Fatalf("cursors not increasing: %+v", all.Items)
			}
			if c.TicketID != id || c.Ticket == nil || c.Ticket.InstanceID != "acme" {
				t.Fatalf("change %+v", c)
			}
			k := c.Type
			if c.Message != nil {
				k += ":" + c.Message.Direction
			}
			kinds = append(kinds, k)
		}
		want := []string{"ticket.updated", "message.new:in", "message.new:out", "message.new:note", "message.state:out", "ticket.updated"}
		if !slices.Equal(kinds, want) {
			t.Fatalf("feed %v, want %v", kinds, want)
		}
		if all.More || all.Cursor != all.Items[len(all.Items)-1].Cursor {
			t.Fatalf("page %+v", all)
		}
		// Following: nothing new keeps the cursor; something new comes after it.
		idle := into[ChangeList](t, e.do(e.acme.key, "GET", fmt.Sprintf("%s/changes?after=%d", v1, all.Cursor), nil), http.StatusOK)
		if len(idle.Items) != 0 || idle.Cursor != all.Cursor || idle.More {
			t.Fatalf("idle %+v", idle)
		}
		e.conversation(e.acme.channel, "alice", "Thanks!")
		next := into[ChangeList](t, e.do(e.acme.key, "GET", fmt.Sprintf("%s/changes?after=%d", v1, all.Cursor), nil), http.StatusOK)
		if len(next.Items) == 0 || next.Items[0].Cursor <= all.Cursor || next.Items[0].Message == nil || next.Items[0].Message.Text != "Thanks!" {
			t.Fatalf("next %+v", next)
		}
		// Small pages say there is more, and walk the same feed.
		var walked []int64
		cursor := int64(0)
		for range 20 {
			p := into[ChangeList](t, e.do(e.acme.key, "GET", fmt.Sprintf("%s/changes?after=%d&limit=2", v1, cursor), nil), http.StatusOK)
			for _, c := range p.Items {
				walked = append(walked, c.Cursor)
			}
			cursor = p.Cursor
			if !p.More {
				break
			}
		}
		full := into[ChangeList](t, e.do(e.acme.key, "GET", v1+"/changes", nil), http.StatusOK)
		var fullCursors []int64
		for _, c := range full.Items {
			fullCursors = append(fullCursors, c.Cursor)
		}
		if !slices.Equal(walked, fullCursors) {
			t.Fatalf("paged feed %v, whole feed %v", walked, fullCursors)
		}
	})
}

func TestOpenAPIIsPublic(t *testing.T) {
	e := newEnv(t, sqliteDSN(t))
	r := e.do("", "GET", v1+"/openapi.json", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"openapi": "3.1.0"`) {
		t.Fatalf("%d %.200s", r.status, r.body)
	}
}

// Idempotency holds under concurrent retries, and keys are the API key's
// own: another integration of the instance using the same key string
// writes its own message.
func TestIdempotentRetries(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
		body := map[string]any{"text": "On its way.", "idempotency_key": "retry-1"}
		const n = 8
		ids := make(chan int64, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				r := e.do(e.acme.key, "POST", ticketPath(id, "/messages"), body)
				var m Message
				if r.status != http.StatusCreated || json.Unmarshal(r.body, &m) != nil {
					t.Errorf("concurrent retry: %d %s", r.status, r.body)
				}
				ids <- m.ID
			})
		}
		wg.Wait()
		close(ids)
		first := int64(0)
		for got := range ids {
			if first == 0 {
				first = got
			}
			if got == 0 || got != first {
				t.Fatalf("concurrent retries answered different messages: %d and %d", first, got)
			}
		}
		if items, _ := e.st.OutboxItems(ctx, "acme", ""); len(items) != 1 {
			t.Fatalf("outbox has %d items", len(items))
		}

		other, hash := hub.NewToken(KeyPrefix)
		if err := e.st.CreateAPIKey(ctx, &store.APIKey{InstanceID: "acme", Name: "helpdesk-bridge", KeyHash: hash}); err != nil {
			t.Fatal(err)
		}
		m := into[Message](t, e.do(other, "POST", ticketPath(id, "/messages"), body), http.StatusCreated)
		if m.ID == first || m.AuthorName != "helpdesk-bridge" {
			t.Fatalf("another key's message %+v", m)
		}
	})
}
