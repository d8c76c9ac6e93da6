package gateway

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// presence → offer → accept → reply, and the reply leaves through the
// outbox (M1: two-way), on every database.
func TestRoundTrip(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, envOpts{dsn: dsn})
		tc := e.instance("acme", "")
		ravi, token := e.agent("acme", "Ravi")
		_, otherToken := e.agent("acme", "Olga")
		olga := e.connect("olga", otherToken) // present but not available: sees changes, not offers

		rcpt := e.inbound("acme", "conv-1", "m1", "Hello, my order is late")
		tab := e.connect("ravi", token)
		var pres struct{ Status string }
		tab.ok("presence", map[string]any{"status": "available"}, &pres)
		if pres.Status != "available" {
			t.Fatalf("presence result %+v", pres)
		}
		off := tab.waitFor("offer", ofType(hub.UpdateOffer, rcpt.ConversationID))
		if off.ExpiresAt == nil || !off.ExpiresAt.Equal(e.clock.Now().Add(30*time.Second)) || off.Ticket == nil || off.Cursor != 0 {
			t.Fatalf("offer: %+v", off)
		}
		tab.ok("ticket.accept", map[string]any{"ticket_id": rcpt.ConversationID}, nil)
		upd := tab.waitFor("assignment", func(m msg) bool {
			return m.Type == hub.UpdateTicket && m.Ticket != nil && m.Ticket.AssigneeID != nil && *m.Ticket.AssigneeID == ravi.ID
		})
		if upd.Cursor == 0 || upd.Ticket.Status != store.StatusOpen {
			t.Fatalf("assignment update: %+v", upd)
		}

		var rep struct{ Message *store.Message }
		tab.ok("message.reply", map[string]any{"ticket_id": rcpt.ConversationID, "text": "  On its way!  ", "idempotency_key": "k1"}, &rep)
		m := rep.Message
		if m == nil || m.Direction != store.DirOut || m.Text != "On its way!" || m.AuthorName != "Ravi" || m.AgentID == nil || *m.AgentID != ravi.ID {
			t.Fatalf("reply: %+v", m)
		}
		tab.waitFor("own reply", isMessageNew(m.ID))
		olga.waitFor("colleague's reply", isMessageNew(m.ID))
		items, err := e.st.OutboxItems(e.ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].MessageID != m.ID || items[0].ChannelID != "acme-chat" {
			t.Fatalf("outbox: %+v", items)
		}
		select {
		case ob := <-tc.news:
			if ob.MessageID != m.ID || ob.Text != "On its way!" || ob.ThreadKey != "conv-1" {
				t.Fatalf("sent: %+v", ob)
			}
		case <-time.After(wait):
			t.Fatal("the reply never left the outbox")
		}
		st := tab.waitFor("delivery state", func(m2 msg) bool {
			sm := m2.message()
			return m2.Type == hub.UpdateDelivery && sm != nil && sm.ID == m.ID && sm.State == "sent"
		})
		if sm := st.message(); sm.ExternalID != "ext-"+strconv.FormatInt(m.ID, 10) {
			t.Fatalf("state: %+v", sm)
		}

		// A resubmitted reply (same key) is stored once.
		var again struct{ Message *store.Message }
		tab.ok("message.reply", map[string]any{"ticket_id": rcpt.ConversationID, "text": "On its way!", "idempotency_key": "k1"}, &again)
		if again.Message.ID != m.ID {
			t.Fatalf("resubmit stored a second message %d", again.Message.ID)
		}

		var note struct{ Message *store.Message }
		tab.ok("message.note", map[string]any{"ticket_id": rcpt.ConversationID, "text": "customer is VIP"}, &note)
		if note.Message.Direction != store.DirNote {
			t.Fatalf("note: %+v", note.Message)
		}
		olga.waitFor("note", isMessageNew(note.Message.ID))

		var view hub.TicketView
		tab.ok("ticket.get", map[string]any{"ticket_id": rcpt.ConversationID}, &view)
		if len(view.Messages) != 3 || view.ChannelKind != string(testKind) || view.Contact == nil || view.Policy == nil {
			t.Fatalf("view: %+v", view)
		}

		var list struct{ Tickets []store.Ticket }
		tab.ok("tickets.list", map[string]any{"assignee": "me", "status": []string{"open"}}, &list)
		if len(list.Tickets) != 1 || list.Tickets[0].ID != rcpt.ConversationID {
			t.Fatalf("my open tickets: %+v", list.Tickets)
		}
		tab.ok("tickets.list", map[string]any{"assignee": "none"}, &list)
		if len(list.Tickets) != 0 {
			t.Fatalf("unassigned: %+v", list.Tickets)
		}
		tab.ok("tickets.list", map[string]any{"query": "order is late"}, &list)
		if len(list.Tickets) != 1 {
			t.Fatalf("search: %+v", list.Tickets)
		}

		var solved struct{ Ticket *store.Ticket }
		tab.ok("ticket.status", map[string]any{"ticket_id": rcpt.ConversationID, "status": "solved"}, &solved)
		if solved.Ticket.Status != store.StatusSolved || solved.Ticket.ResolvedAt == nil {
			t.Fatalf("solved: %+v", solved.Ticket)
		}
		olga.waitFor("solved", func(m msg) bool {
			return m.Type == hub.UpdateTicket && m.Ticket != nil && m.Ticket.Status == store.StatusSolved
		})

		// Offers are for their agent only.
		e.fence("acme", olga)
		if n := olga.count(ofType(hub.UpdateOffer, 0)); n != 0 {
			t.Fatalf("olga saw %d offers meant for ravi", n)
		}
	})
}

// An offer not accepted in time is revoked and goes to the next agent;
// accepting it late is a conflict. Decline hands it on at once.
func TestOfferExpiryAndDecline(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	_, t1 := e.agent("acme", "Ravi")
	_, t2 := e.agent("acme", "Mia")
	a := e.connect("ravi", t1)
	b := e.connect("mia", t2)
	a.ok("presence", map[string]any{"status": "available"}, nil)
	b.ok("presence", map[string]any{"status": "available"}, nil)

	r := e.inbound("acme", "conv-1", "m1", "hello")
	first, second := a, b
	select {
	case <-waitAsync(a, ofType(hub.UpdateOffer, r.ConversationID)):
	case <-waitAsync(b, ofType(hub.UpdateOffer, r.ConversationID)):
		first, second = b, a
	case <-time.After(wait):
		t.Fatal("no offer")
	}
	e.clock.Advance(31 * time.Second)
	first.waitFor("revocation", ofType(hub.UpdateOfferRevoked, r.ConversationID))
	second.waitFor("offer to the next agent", ofType(hub.UpdateOffer, r.ConversationID))
	first.fails("ticket.accept", map[string]any{"ticket_id": r.ConversationID}, CodeOfferExpired)
	e.fence("acme", first)
	if n := first.count(ofType(hub.UpdateOffer, r.ConversationID)); n != 1 {
		t.Fatalf("first agent saw %d offers", n)
	}

	// The second declines: the ticket goes back to the first.
	second.ok("ticket.decline", map[string]any{"ticket_id": r.ConversationID}, nil)
	first.waitCount("offer after decline", 2, ofType(hub.UpdateOffer, r.ConversationID))
	first.ok("ticket.accept", map[string]any{"ticket_id": r.ConversationID}, nil)
}

// waitAsync reports on a channel when c has a frame matching pred.
func waitAsync(c *client, pred func(msg) bool) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			c.mu.Lock()
			changed := c.changed
			c.mu.Unlock()
			if c.count(pred) > 0 {
				close(ch)
				return
			}
			select {
			case <-changed:
			case <-c.done:
				return
			case <-time.After(wait):
				return
			}
		}
	}()
	return ch
}

// Each socket of an agent gets every update once; the instance has one
// subscription, dropped with its last socket.
func TestSeveralSocketsPerAgent(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	_, other := e.agent("acme", "Mia")
	tabs := []*client{e.connect("tab1", token), e.connect("tab2", token), e.connect("phone", token), e.connect("mia", other)}
	if s := e.gw.Stats(); s.Sockets != 4 || s.Agents != 2 || s.Instances != 1 {
		t.Fatalf("stats %+v", s)
	}
	r := e.inbound("acme", "conv-1", "m1", "hello")
	e.inbound("acme", "conv-1", "m2", "anyone?")
	e.fence("acme", tabs...)
	for _, c := range tabs {
		news := c.count(ofType(hub.UpdateMessage, r.ConversationID))
		if news != 2 {
			t.Fatalf("%s got %d message.new, want 2:%s", c.name, news, c.dump())
		}
		seen := map[int64]int{}
		for _, m := range c.all() {
			if m.Cursor != 0 {
				seen[m.Cursor]++
				if seen[m.Cursor] > 1 {
					t.Fatalf("%s got cursor %d twice", c.name, m.Cursor)
				}
			}
		}
	}
	for _, c := range tabs {
		c.close()
	}
	e.waitEvent("unsubscribe", func(ev event) bool { return ev.kind == "unsubscribed" && ev.instance == "acme" })
	if s := e.gw.Stats(); s != (Stats{}) {
		t.Fatalf("stats after close %+v", s)
	}
}

// A resume returns exactly the updates missed while disconnected, then
// the pending offers, then resume.done; later updates arrive live once.
func TestResumeAfterDisconnect(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{ResumePage: 3}}) // small pages: paging is exercised
	e.instance("acme", "")
	ravi, token := e.agent("acme", "Ravi")
	_, miaToken := e.agent("acme", "Mia")
	mia := e.connect("mia", miaToken)

	tab := e.connect("tab", token)
	r := e.inbound("acme", "conv-1", "m1", "hello")
	last := tab.waitFor("message", ofType(hub.UpdateMessage, r.ConversationID)).Cursor
	tab.close()
	e.waitEvent("ravi gone", func(ev event) bool { return ev.kind == "closed" && ev.agentID == ravi.ID })

	// While ravi is away: inbound messages, a colleague's note and status
	// change, a new ticket.
	e.inbound("acme", "conv-1", "m2", "hello?")
	var note struct{ Message *store.Message }
	mia.ok("message.note", map[string]any{"ticket_id": r.ConversationID, "text": "I'll check"}, &note)
	mia.ok("ticket.status", map[string]any{"ticket_id": r.ConversationID, "status": "pending"}, nil)
	r2 := e.inbound("acme", "conv-2", "m3", "another question")
	e.inbound("acme", "conv-2", "m4", "and another")
	missed, err := e.st.Changes(e.ctx, "acme", last, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(missed) < 5 {
		t.Fatalf("only %d changes", len(missed))
	}
	// And ravi was offered a ticket before going away (presence from
	// another node): the offer is re-sent on resume.
	if err := e.h.Heartbeat(e.ctx, ravi, routing.Available); err != nil {
		t.Fatal(err)
	}
	// The offer travels over the bus; once Mia's socket has a fence
	// published after it, this node's feed has seen the offer too (the bus
	// delivers in publish order).
	e.fence("acme", mia)

	tab = e.dial("tab-again", nil)
	tab.send(map[string]any{"type": "auth", "id": "a", "token": token, "protocol": 1})
	tab.waitFor("ready", ofType("ready", 0))
	tab.send(map[string]any{"type": "resume", "id": "r", "cursor": last})
	done := tab.waitFor("resume.done", ofType("resume.done", 0))
	var got []int64
	for _, m := range tab.all() {
		if m.Cursor != 0 && m.Type != "ready" && m.Type != "resume.done" {
			got = append(got, m.Cursor)
		}
	}
	if len(got) != len(missed) {
		t.Fatalf("resume sent %d updates, missed %d:%s", len(got), len(missed), tab.dump())
	}
	for i, c := range missed {
		if got[i] != c.ID {
			t.Fatalf("update %d: cursor %d, want %d", i, got[i], c.ID)
		}
	}
	if done.Cursor != missed[len(missed)-1].ID || done.Count != len(missed) || string(done.ID) != `"r"` {
		t.Fatalf("resume.done %+v", done)
	}
	pending, err := e.h.PendingOffers(e.ctx, ravi)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) == 0 || done.Offers != len(pending) || tab.count(ofType(hub.UpdateOffer, 0)) != len(pending) {
		t.Fatalf("offers: %d pending, done says %d:%s", len(pending), done.Offers, tab.dump())
	}
	for _, m := range tab.all() {
		// The router keeps each offer's deadline.
		if m.Type == hub.UpdateOffer && (m.ExpiresAt == nil || m.Ticket == nil) {
			t.Fatalf("re-sent offer: %+v", m)
		}
	}
	// The note arrives with its text, typed as a note.
	nm := tab.waitFor("note", isMessageNew(note.Message.ID))
	if nm.message().Direction != store.DirNote {
		t.Fatalf("note: %+v", nm.message())
	}

	// After the resume, new updates arrive live, once.
	r3 := e.inbound("acme", "conv-2", "m5", "still there?")
	e.fence("acme", tab)
	if n := tab.count(func(m msg) bool {
		return m.Type == hub.UpdateMessage && m.message() != nil && m.message().ID == r3.MessageID
	}); n != 1 {
		t.Fatalf("live update after resume arrived %d times", n)
	}
	_ = r2

	// Resume in the auth frame: same gap, one step.
	tab3 := e.dial("tab3", nil)
	tab3.send(map[string]any{"type": "auth", "id": "a", "token": token, "protocol": 1, "cursor": last})
	done3 := tab3.waitFor("resume.done", ofType("resume.done", 0))
	if done3.Count != len(missed)+1 || string(done3.ID) != `"a"` {
		t.Fatalf("resume at auth: %+v:%s", done3, tab3.dump())
	}
}

// Updates committed while a client resumes reach it exactly once: from the
// feed or live, never both, never neither.
func TestResumeUnderConcurrentWrites(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{ResumePage: 4}})
	e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	for i := range 10 {
		e.inbound("acme", "conv-"+strconv.Itoa(i%3), "pre-"+strconv.Itoa(i), "before")
	}
	tab := e.dial("tab", nil)
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.inbound("acme", "conv-"+strconv.Itoa(i%3), "during-"+strconv.Itoa(i), "during")
			if i == 40 {
				return
			}
		}
	}()
	tab.send(map[string]any{"type": "auth", "token": token, "protocol": 1, "cursor": 0})
	tab.waitFor("resume.done", ofType("resume.done", 0))
	<-writing
	close(stop)
	e.fence("acme", tab)
	all, err := e.st.Changes(e.ctx, "acme", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, m := range tab.all() {
		if m.Cursor != 0 && m.Type != "ready" && m.Type != "resume.done" {
			seen[m.Cursor]++
		}
	}
	for _, c := range all {
		if seen[c.ID] != 1 {
			t.Fatalf("cursor %d arrived %d times", c.ID, seen[c.ID])
		}
	}
	if len(seen) != len(all) {
		t.Fatalf("%d cursors arrived, %d changes exist", len(seen), len(all))
	}
}

// A reply the channel's policy refuses is an error with the channel's
// words and reason; nothing is stored or queued.
func TestPolicyRefusal(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", `{"max_text": 10}`)
	_, token := e.agent("acme", "Ravi")
	tab := e.connect("tab", token)
	r := e.inbound("acme", "conv-1", "m1", "hi")
	er := tab.fails("message.reply", map[string]any{"ticket_id": r.ConversationID, "text": "this is far too long for the channel"}, CodePolicy)
	if er.Reason != "too_long" || !strings.Contains(er.text(), "10 characters") {
		t.Fatalf("policy error: %+v %s", er, er.text())
	}
	items, _ := e.st.OutboxItems(e.ctx, "acme", "")
	if len(items) != 0 {
		t.Fatalf("outbox: %+v", items)
	}
	tab.ok("message.reply", map[string]any{"ticket_id": r.ConversationID, "text": "short"}, nil)
}

// Transfers within the instance work; the target must be of the same
// instance.
func TestTransfer(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	team := &store.Team{InstanceID: "acme", Name: "billing"}
	if err := e.st.CreateTeam(e.ctx, team); err != nil {
		t.Fatal(err)
	}
	_, token := e.agent("acme", "Ravi")
	mia, miaToken := e.agent("acme", "Mia", team.ID)
	ravi := e.connect("ravi", token)
	miaTab := e.connect("mia", miaToken)
	r := e.inbound("acme", "conv-1", "m1", "invoice question")
	ravi.ok("ticket.transfer", map[string]any{"ticket_id": r.ConversationID, "agent_id": mia.ID}, nil)
	miaTab.waitFor("assigned to mia", func(m msg) bool {
		return m.Type == hub.UpdateTicket && m.Ticket != nil && m.Ticket.AssigneeID != nil && *m.Ticket.AssigneeID == mia.ID
	})
	ravi.ok("ticket.transfer", map[string]any{"ticket_id": r.ConversationID, "team_id": team.ID}, nil)
	ravi.waitFor("moved to team", func(m msg) bool {
		return m.Type == hub.UpdateTicket && m.Ticket != nil && m.Ticket.TeamID != nil && *m.Ticket.TeamID == team.ID && m.Ticket.AssigneeID == nil
	})
	ravi.fails("ticket.transfer", map[string]any{"ticket_id": r.ConversationID, "agent_id": mia.ID, "team_id": team.ID}, CodeInvalid)
	ravi.fails("ticket.transfer", map[string]any{"ticket_id": r.ConversationID, "agent_id": 999999}, CodeNotFound)
}
