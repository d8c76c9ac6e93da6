package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Tenant isolation (issue 2): an API key of instance A cannot read or
// change anything of instance B. Every request a key of acme can make on
// a ticket of globex is answered exactly as for a ticket that does not
// exist; globex's tickets are in no list and no change feed of acme; and
// globex is unchanged afterwards, to the row.

// snapshot is everything of an instance a request could change.
type snapshot struct {
	Tickets  []store.Ticket
	Messages map[int64][]*store.Message
	Outbox   []*store.OutboxItem
	Feed     []store.Change
	Last     int64
}

func (e *env) snapshot(inst string) snapshot {
	e.t.Helper()
	ctx := context.Background()
	s := snapshot{Messages: map[int64][]*store.Message{}}
	var err error
	if s.Tickets, err = e.st.Tickets(ctx, inst, store.TicketFilter{Limit: 500}); err != nil {
		e.t.Fatal(err)
	}
	for _, tk := range s.Tickets {
		if s.Messages[tk.ID], err = e.st.Messages(ctx, inst, tk.ID, 0, 1000, true); err != nil {
			e.t.Fatal(err)
		}
	}
	if s.Outbox, err = e.st.OutboxItems(ctx, inst, ""); err != nil {
		e.t.Fatal(err)
	}
	if s.Feed, err = e.st.Changes(ctx, inst, 0, 1000); err != nil {
		e.t.Fatal(err)
	}
	if s.Last, err = e.st.LastChange(ctx, inst); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func TestTenantIsolation(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// acme has a ticket of its own, so that its lists and feed are not
		// trivially empty.
		mine := e.conversation(e.acme.channel, "alice", "acme's own question")
		// globex has a conversation with a reply (sent), a note, and a
		// pending reply in its outbox.
		theirs := e.conversation(e.glob.channel, "zed", "globex secret: merger with initech")
		for _, body := range []map[string]any{
			{"text": "globex reply"}, {"text": "globex note", "note": true},
		} {
			into[Message](t, e.do(e.glob.key, "POST", ticketPath(theirs, "/messages"), body), http.StatusCreated)
		}
		e.hub.DispatchNow(ctx)
		into[Message](t, e.do(e.glob.key, "POST", ticketPath(theirs, "/messages"), map[string]any{"text": "queued globex reply"}), http.StatusCreated)
		before := e.snapshot("globex")
		sentBefore := len(e.conns[e.glob.channel].Sent())

		// An id no instance has: bodies are compared byte for byte once
		// the id they name is swapped.
		missing := theirs + 1_000_000
		if _, err := e.st.Ticket(ctx, "globex", missing); err == nil {
			t.Fatalf("ticket %d exists", missing)
		}
		if _, err := e.st.Ticket(ctx, "acme", missing); err == nil {
			t.Fatalf("ticket %d exists", missing)
		}

		type req struct {
			method, suffix string
			body           any
		}
		reqs := []req{
			{"GET", "", nil},
			{"POST", "/messages", map[string]any{"text": "hijack"}},
			{"POST", "/messages", map[string]any{"text": "hijack", "idempotency_key": "k1"}},
			{"POST", "/messages", map[string]any{"text": "spy note", "note": true}},
			{"POST", "/status", map[string]any{"status": "closed"}},
			{"POST", "/status", map[string]any{"status": "open"}},
			// Refused input is refused before the ticket is looked up, so
			// it cannot tell whether the ticket exists either.
			{"POST", "/status", map[string]any{"status": "new"}},
			{"POST", "/messages", map[string]any{"text": " "}},
			{"POST", "/messages", `{"text": 1}`},
			{"POST", "/messages", "not json"},
		}
		for _, rq := range reqs {
			name := rq.method + " " + rq.suffix + fmt.Sprint(rq.body)
			got := e.do(e.acme.key, rq.method, ticketPath(theirs, rq.suffix), rq.body)
			ref := e.do(e.acme.key, rq.method, ticketPath(missing, rq.suffix), rq.body)
			norm := strings.ReplaceAll(string(got.body), fmt.Sprintf("ticket %d", theirs), fmt.Sprintf("ticket %d", missing))
			if got.status != ref.status || norm != string(ref.body) || !reflect.DeepEqual(got.header, ref.header) {
				t.Errorf("%s: globex's ticket answered %d %s %v; a missing ticket %d %s %v",
					name, got.status, got.body, got.header, ref.status, ref.body, ref.header)
			}
			if got.status < 400 {
				t.Errorf("%s: %d on another instance's ticket", name, got.status)
			}
			if strings.Contains(string(got.body), "globex") || strings.Contains(string(got.body), "merger") {
				t.Errorf("%s: the answer speaks of globex: %s", name, got.body)
			}
		}
		// The plain reads and writes are exactly 404.
		for _, rq := range reqs[:6] {
			wantError(t, e.do(e.acme.key, rq.method, ticketPath(theirs, rq.suffix), rq.body), http.StatusNotFound, "not_found", "")
		}

		// Lists: nothing of globex, whatever the filter; paging from
		// globex's ticket is paging from a ticket that does not exist.
		for _, q := range []string{
			"", "?status=new,open,pending,solved,closed", "?query=merger", "?query=globex", "?query=zed",
			"?assignee=none", fmt.Sprintf("?assignee=%d", e.glob.agent.ID), "?limit=500",
			fmt.Sprintf("?before=%d", theirs), fmt.Sprintf("?before=%d", missing),
		} {
			l := into[TicketList](t, e.do(e.acme.key, "GET", v1+"/tickets"+q, nil), http.StatusOK)
			for _, tk := range l.Items {
				if tk.InstanceID != "acme" || tk.ID == theirs {
					t.Errorf("GET /tickets%s lists %+v", q, tk)
				}
			}
			if strings.Contains(q, "merger") || strings.Contains(q, "zed") || strings.Contains(q, "globex") || strings.Contains(q, "before") {
				if len(l.Items) != 0 {
					t.Errorf("GET /tickets%s = %d tickets, want none", q, len(l.Items))
				}
			}
		}
		// The feed: acme's changes only, from the start and from any cursor.
		for _, after := range []int64{0, 1, before.Last} {
			f := into[ChangeList](t, e.do(e.acme.key, "GET", fmt.Sprintf("%s/changes?after=%d&limit=1000", v1, after), nil), http.StatusOK)
			for _, c := range f.Items {
				if c.TicketID != mine || (c.Ticket != nil && c.Ticket.InstanceID != "acme") {
					t.Errorf("acme's feed after %d has %+v", after, c)
				}
			}
			if raw := e.do(e.acme.key, "GET", fmt.Sprintf("%s/changes?after=%d", v1, after), nil); strings.Contains(string(raw.body), "globex") {
				t.Errorf("acme's feed speaks of globex: %s", raw.body)
			}
		}

		// globex is unchanged, to the row (dedup keys and outbox leases
		// included), and its channel sent nothing.
		if after := e.snapshot("globex"); !reflect.DeepEqual(before, after) {
			bj, _ := json.Marshal(before)
			aj, _ := json.Marshal(after)
			t.Errorf("globex changed:\nbefore %s\nafter  %s", bj, aj)
		}
		if sent := e.conns[e.glob.channel].Sent(); len(sent) != sentBefore {
			t.Errorf("globex's channel sent %+v", sent[sentBefore:])
		}
		// The outbox then sends globex's own queued reply, and nothing else.
		e.hub.DispatchNow(ctx)
		if sent := e.conns[e.glob.channel].Sent(); len(sent) != sentBefore+1 || sent[sentBefore].Text != "queued globex reply" {
			t.Errorf("globex's channel sent %+v", sent[sentBefore:])
		}

		// And globex's own key still sees all of it (the ticket is real).
		d := into[TicketDetail](t, e.do(e.glob.key, "GET", ticketPath(theirs, ""), nil), http.StatusOK)
		if len(d.Messages) != 4 || d.Ticket.Status != store.StatusOpen {
			t.Errorf("globex's own view: %+v", d)
		}
		// Neither key sees the other's ticket in its feed, both ways.
		f := into[ChangeList](t, e.do(e.glob.key, "GET", v1+"/changes?limit=1000", nil), http.StatusOK)
		for _, c := range f.Items {
			if c.TicketID == mine {
				t.Errorf("globex's feed has acme's ticket: %+v", c)
			}
		}
		wantError(t, e.do(e.glob.key, "GET", ticketPath(mine, ""), nil), http.StatusNotFound, "not_found", "")
	})
}
