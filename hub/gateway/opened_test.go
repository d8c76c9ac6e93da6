package gateway

import (
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// A conversation opened before its end user writes (a visitor opening
// the live-chat widget) is no ticket for agents yet: nothing is pushed
// (not even the visitor typing), lists leave it out, and it is not
// offered. Its first message brings
// it, with the ticket, and it is offered then.
func TestOpenedConversationComesWithItsFirstMessage(t *testing.T) {
	e := newEnv(t, envOpts{})
	tc := e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	ravi := e.connect("ravi", token)
	ravi.ok("presence", map[string]any{"status": "available"}, nil)

	th, err := tc.host().OpenThread(e.ctx, connectors.ThreadOpen{ChannelID: "acme-chat", ThreadKey: "conv-1",
		Contact: connectors.Identity{ExternalID: "vis-conv-1", DisplayName: "Visitor conv-1"}})
	if err != nil || !th.Created || th.TicketNumber != 0 {
		t.Fatalf("open: %+v %v", th, err)
	}
	typing := connectors.Signal{ChannelID: "acme-chat", ConversationID: th.ConversationID, ThreadKey: "conv-1", Kind: "typing", From: "Visitor conv-1"}
	if err := tc.host().Signal(e.ctx, typing); err != nil {
		t.Fatal(err)
	}
	e.fence("acme", ravi)
	for _, m := range ravi.all() {
		if m.TicketID == th.ConversationID {
			t.Fatalf("pushed before the first message: %+v", m)
		}
	}
	var list struct{ Tickets []store.Ticket }
	ravi.ok("tickets.list", map[string]any{}, &list)
	if len(list.Tickets) != 0 {
		t.Fatalf("listed before the first message: %+v", list.Tickets)
	}
	// Nor can it be reached by its id, to read or to answer.
	ravi.fails("ticket.get", map[string]any{"ticket_id": th.ConversationID}, CodeNotFound)
	ravi.fails("message.reply", map[string]any{"ticket_id": th.ConversationID, "text": "Can I help?"}, CodeNotFound)

	r, err := tc.host().Deliver(e.ctx, connectors.Inbound{
		ExternalID: "m1", ThreadKey: "conv-1", ConversationID: th.ConversationID, Text: "hello", SentAt: time.Now(),
		Sender: connectors.Identity{ExternalID: "vis-conv-1", DisplayName: "Visitor conv-1"},
	})
	if err != nil || r.ConversationID != th.ConversationID {
		t.Fatalf("first message: %+v %v", r, err)
	}
	first := ravi.waitFor("first message", isMessageNew(r.MessageID))
	if first.Ticket == nil || first.Ticket.ID != th.ConversationID || first.Ticket.Number == 0 || r.TicketNumber != first.Ticket.Number {
		t.Fatalf("first message without its ticket: %+v", first)
	}
	ravi.waitFor("offer", ofType(hub.UpdateOffer, th.ConversationID))
	if err := tc.host().Signal(e.ctx, typing); err != nil {
		t.Fatal(err)
	}
	ravi.waitFor("typing", ofType("typing", th.ConversationID))
	ravi.ok("tickets.list", map[string]any{}, &list)
	if len(list.Tickets) != 1 || list.Tickets[0].ID != th.ConversationID {
		t.Fatalf("listed after the first message: %+v", list.Tickets)
	}
}

// An agent alone on a node who reloads mid-offer gets the offer again on
// resume with its deadline: the router keeps it, so no socket of the
// instance needs to have stayed to see the offer made.
func TestResentOfferKeepsItsDeadline(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	tab := e.connect("ravi", token)
	tab.ok("presence", map[string]any{"status": "available"}, nil)
	r := e.inbound("acme", "conv-1", "m1", "hello")
	off := tab.waitFor("offer", ofType(hub.UpdateOffer, r.ConversationID))
	if off.ExpiresAt == nil {
		t.Fatalf("offer without a deadline: %+v", off)
	}
	tab.close()
	e.waitEvent("socket closed", func(ev event) bool { return ev.kind == "closed" })

	again := e.connect("ravi-again", token)
	again.send(map[string]any{"type": "resume", "id": "r", "cursor": 0})
	again.waitFor("resume.done", ofType("resume.done", 0))
	re := again.waitFor("offer again", ofType(hub.UpdateOffer, r.ConversationID))
	if re.ExpiresAt == nil || !re.ExpiresAt.Equal(*off.ExpiresAt) {
		t.Fatalf("re-sent offer expires at %v, want %v", re.ExpiresAt, off.ExpiresAt)
	}
}
