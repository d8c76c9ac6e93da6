package gateway

import (
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// An agent of instance A can neither read nor change anything of instance
// B, and gets none of B's updates; B's tickets look exactly like tickets
// that do not exist.
func TestTenantIsolation(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, envOpts{dsn: dsn})
		e.instance("alpha", "")
		e.instance("beta", "")
		teamB := &store.Team{InstanceID: "beta", Name: "support"}
		if err := e.st.CreateTeam(e.ctx, teamB); err != nil {
			t.Fatal(err)
		}
		_, tokenA := e.agent("alpha", "Ann")
		bob, tokenB := e.agent("beta", "Bob")
		ann := e.connect("ann", tokenA)
		bobTab := e.connect("bob", tokenB)
		ann.ok("presence", map[string]any{"status": "available"}, nil)
		bobTab.ok("presence", map[string]any{"status": "available"}, nil)

		rA := e.inbound("alpha", "conv-a", "a1", "alpha question")
		rB := e.inbound("beta", "conv-b", "b1", "beta secret")
		bobTab.waitFor("beta offer", ofType("ticket.offered", rB.ConversationID))
		bobTab.ok("ticket.accept", map[string]any{"ticket_id": rB.ConversationID}, nil)
		bobTab.ok("message.reply", map[string]any{"ticket_id": rB.ConversationID, "text": "beta answer"}, nil)

		const missing = 987654321
		tid := rB.ConversationID
		for _, tc := range []struct {
			typ    string
			fields map[string]any
		}{
			{"ticket.get", map[string]any{"ticket_id": tid}},
			{"ticket.accept", map[string]any{"ticket_id": tid}},
			{"ticket.decline", map[string]any{"ticket_id": tid}},
			{"message.reply", map[string]any{"ticket_id": tid, "text": "hijack"}},
			{"message.note", map[string]any{"ticket_id": tid, "text": "peek"}},
			{"ticket.transfer", map[string]any{"ticket_id": tid, "agent_id": bob.ID}},
			{"ticket.status", map[string]any{"ticket_id": tid, "status": "closed"}},
			{"typing", map[string]any{"ticket_id": tid, "on": true}},
		} {
			got := ann.fails(tc.typ, tc.fields, CodeNotFound)
			// Same answer as for a ticket that does not exist.
			tc.fields["ticket_id"] = missing
			none := ann.fails(tc.typ, tc.fields, CodeNotFound)
			if got.text() != none.text() || got.Reason != none.Reason {
				t.Fatalf("%s: another instance's ticket answers %q, a missing one %q", tc.typ, got.text(), none.text())
			}
		}
		// Transfers of one's own ticket into the other instance.
		ann.fails("ticket.transfer", map[string]any{"ticket_id": rA.ConversationID, "agent_id": bob.ID}, CodeNotFound)
		ann.fails("ticket.transfer", map[string]any{"ticket_id": rA.ConversationID, "team_id": teamB.ID}, CodeNotFound)

		var list struct{ Tickets []store.Ticket }
		ann.ok("tickets.list", map[string]any{}, &list)
		for _, tk := range list.Tickets {
			if tk.InstanceID != "alpha" {
				t.Fatalf("list shows %+v", tk)
			}
		}
		ann.ok("tickets.list", map[string]any{"query": "beta secret"}, &list)
		if len(list.Tickets) != 0 {
			t.Fatalf("search finds beta: %+v", list.Tickets)
		}
		ann.ok("tickets.list", map[string]any{"assignee": bob.ID}, &list)
		if len(list.Tickets) != 0 {
			t.Fatalf("bob's tickets: %+v", list.Tickets)
		}

		// Nothing of beta was changed by ann.
		tk, err := e.st.Ticket(e.ctx, "beta", tid)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status == store.StatusClosed || tk.AssigneeID == nil || *tk.AssigneeID != bob.ID {
			t.Fatalf("beta ticket changed: %+v", tk)
		}
		ms, _ := e.st.Messages(e.ctx, "beta", tid, 0, 100, true)
		if len(ms) != 2 {
			t.Fatalf("beta has %d messages", len(ms))
		}

		// A resume from 0 replays alpha only.
		ann2 := e.dial("ann2", nil)
		ann2.send(map[string]any{"type": "auth", "token": tokenA, "protocol": 1, "cursor": 0})
		ann2.waitFor("resume.done", ofType("resume.done", 0))

		// And no beta update reached alpha's sockets (the fence on alpha's
		// topic follows everything published before it).
		e.fence("alpha", ann, ann2)
		e.fence("beta", bobTab)
		for _, c := range []*client{ann, ann2} {
			for _, m := range c.all() {
				if m.TicketID == tid || (m.Ticket != nil && m.Ticket.InstanceID != "alpha") ||
					(m.message() != nil && m.message().InstanceID != "alpha") {
					t.Fatalf("%s received beta's %s", c.name, m.Type)
				}
			}
		}
		if n := bobTab.count(ofType("message.new", rA.ConversationID)); n != 0 {
			t.Fatal("bob received alpha's message")
		}
	})
}
