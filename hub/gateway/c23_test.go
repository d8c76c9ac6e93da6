package gateway

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// C23, the agent's side (shared/cases/inputs/C23.json): Ravi has two tabs
// open. R-1, replied from tab 1 while tab 2 signals typing, reaches each
// tab once as an outbound message by Ravi, not as a new inbound message to
// answer, and leaves through the channel once. The visitor's messages are
// stored in receipt order: A-1, B-1, R-1, A-2.
func TestC23AgentSide(t *testing.T) {
	e := newEnv(t, envOpts{})
	tc := e.instance("example", "")
	ravi, token := e.agent("example", "Ravi")
	tab1 := e.connect("agentTab1", token)
	tab2 := e.connect("agentTab2", token)
	tab1.ok("presence", map[string]any{"status": "available"}, nil)

	// The visitor writes from two tabs of one conversation.
	a1 := e.inbound("example", "vis_3c8e1f5a", "A-1", "Hi, I have a question about invoice INV-3391")
	b1 := e.inbound("example", "vis_3c8e1f5a", "B-1", "It was charged twice")
	if a1.ConversationID != b1.ConversationID {
		t.Fatalf("two conversations: %d, %d", a1.ConversationID, b1.ConversationID)
	}
	conv := a1.ConversationID
	for _, tab := range []*client{tab1, tab2} {
		tab.waitFor("offer", ofType(hub.UpdateOffer, conv))
	}
	tab2.ok("ticket.accept", map[string]any{"ticket_id": conv}, nil)

	// t=900 and t=901: the reply from tab 1 and typing from tab 2, at
	// once.
	// Both frames are written by their own goroutine; the replies are
	// awaited here (only the test goroutine may fail the test).
	var wg sync.WaitGroup
	wg.Add(2)
	errs := make(chan error, 2)
	go func() {
		defer wg.Done()
		errs <- tab1.ws.WriteJSON(map[string]any{"type": "message.reply", "id": "R-1", "ticket_id": conv, "text": "Hello! Let me look at INV-3391.", "idempotency_key": "R-1"})
	}()
	go func() {
		defer wg.Done()
		errs <- tab2.ws.WriteJSON(map[string]any{"type": "typing", "id": "T-1", "ticket_id": conv, "on": true})
	}()
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res := tab1.waitFor("R-1 result", func(m msg) bool { return string(m.ID) == `"R-1"` })
	if res.Type != "result" {
		t.Fatalf("R-1: %+v %s", res, res.text())
	}
	if res := tab2.waitFor("typing result", func(m msg) bool { return string(m.ID) == `"T-1"` }); res.Type != "result" {
		t.Fatalf("typing: %+v %s", res, res.text())
	}
	var reply struct{ Message *store.Message }
	if err := json.Unmarshal(res.Data, &reply); err != nil {
		t.Fatal(err)
	}
	r1 := reply.Message

	for _, tab := range []*client{tab1, tab2} {
		m := tab.waitFor("R-1", isMessageNew(r1.ID)).message()
		if m.Direction != store.DirOut || m.AuthorName != "Ravi" || m.AgentID == nil || *m.AgentID != ravi.ID || m.ContactID != nil {
			t.Fatalf("%s: R-1 shown as %+v", tab.name, m)
		}
	}
	tab1.waitFor("typing from tab 2", func(m msg) bool { return m.Type == hub.UpdateTyping && m.TicketID == conv && m.From == "Ravi" })

	// R-1 leaves through the channel once.
	select {
	case ob := <-tc.news:
		if ob.MessageID != r1.ID || ob.AuthorName != "Ravi" {
			t.Fatalf("sent %+v", ob)
		}
	case <-time.After(wait):
		t.Fatal("R-1 was not sent")
	}
	tab1.waitFor("R-1 sent", func(m msg) bool {
		sm := m.message()
		return m.Type == hub.UpdateDelivery && sm != nil && sm.ID == r1.ID && sm.State == "sent"
	})

	// Tab 1 retries R-1 (say, after a reconnect): still one message, no
	// new push, one send.
	var again struct{ Message *store.Message }
	tab1.ok("message.reply", map[string]any{"ticket_id": conv, "text": "Hello! Let me look at INV-3391.", "idempotency_key": "R-1"}, &again)
	if again.Message.ID != r1.ID {
		t.Fatalf("retry stored message %d", again.Message.ID)
	}

	// t=2100: the visitor writes again from the remaining tab.
	a2 := e.inbound("example", "vis_3c8e1f5a", "A-2", "Still there?")
	if a2.ConversationID != conv {
		t.Fatalf("A-2 opened conversation %d", a2.ConversationID)
	}
	e.fence("example", tab1, tab2)
	e.h.DispatchNow(e.ctx)
	for _, tab := range []*client{tab1, tab2} {
		if n := tab.count(isMessageNew(r1.ID)); n != 1 {
			t.Fatalf("%s got R-1 %d times", tab.name, n)
		}
		for _, m := range tab.all() {
			if sm := m.message(); m.Type == hub.UpdateMessage && sm != nil && sm.Direction == store.DirIn && sm.Text == r1.Text {
				t.Fatalf("%s got R-1 as an inbound message", tab.name)
			}
		}
		if n := tab.count(isMessageNew(a2.MessageID)); n != 1 {
			t.Fatalf("%s got A-2 %d times", tab.name, n)
		}
	}
	if n := tc.sentCount(r1.ID); n != 1 {
		t.Fatalf("R-1 sent %d times", n)
	}

	var view hub.TicketView
	tab2.ok("ticket.get", map[string]any{"ticket_id": conv}, &view)
	var order []string
	for _, m := range view.Messages {
		order = append(order, m.Direction+":"+m.Text)
	}
	want := []string{
		"in:Hi, I have a question about invoice INV-3391", "in:It was charged twice",
		"out:Hello! Let me look at INV-3391.", "in:Still there?",
	}
	if len(order) != len(want) {
		t.Fatalf("messages %q", order)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("messages %q, want %q", order, want)
		}
	}
}
