package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/redisroute"
	"github.com/switchboard-hub/switchboard/hub/routing/routetest"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// Two nodes sharing Postgres and Redis: the visitor's message arrives on
// node A, the agent's socket is on node B; the offer, the agent's reply
// and the updates cross the Redis bus. When node B dies, its agent is not
// signed out at once; after the presence TTL the unanswered ticket goes to
// an agent on node A.
func TestTwoNodes(t *testing.T) {
	dsn := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	clock := routetest.NewClock()
	rcfg := redisroute.Config{Prefix: prefix, Config: routing.Config{OfferTimeout: 30 * time.Second, PresenceTTL: 45 * time.Second, Now: clock.Now}}
	node := func(hb time.Duration) *env {
		return newEnv(t, envOpts{dsn: dsn, clock: clock, cfg: Config{HeartbeatInterval: hb},
			router: redisroute.New(rdb, rcfg), bus: redisroute.NewBus(rdb, redisroute.BusConfig{Prefix: prefix})})
	}
	a := node(20 * time.Millisecond)
	b := node(time.Hour) // node B never renews presence: its heartbeats come only from "presence" frames
	a.instance("acme", "")
	b.startChannel("acme-chat")
	ravi, raviToken := a.agent("acme", "Ravi")
	_, miaToken := a.agent("acme", "Mia")

	raviB := b.connect("ravi@B", raviToken)
	miaA := a.connect("mia@A", miaToken)
	raviB.ok("presence", map[string]any{"status": "available"}, nil)

	r := a.inbound("acme", "conv-1", "m1", "hello from node A")
	raviB.waitFor("offer on B", ofType(hub.UpdateOffer, r.ConversationID))
	raviB.ok("ticket.accept", map[string]any{"ticket_id": r.ConversationID}, nil)
	miaA.waitFor("assignment seen on A", func(m msg) bool {
		return m.Type == hub.UpdateTicket && m.Ticket != nil && m.Ticket.AssigneeID != nil && *m.Ticket.AssigneeID == ravi.ID
	})
	var note struct{ Message struct{ ID int64 } }
	raviB.ok("message.note", map[string]any{"ticket_id": r.ConversationID, "text": "looking"}, &note)
	miaA.waitFor("note from B", isMessageNew(note.Message.ID))
	r2 := a.inbound("acme", "conv-1", "m2", "still there?")
	raviB.waitFor("follow-up on B", isMessageNew(r2.MessageID))

	// A reply from B leaves through the channel (on whichever node
	// dispatches it).
	var reply struct{ Message struct{ ID int64 } }
	raviB.ok("message.reply", map[string]any{"ticket_id": r.ConversationID, "text": "yes"}, &reply)
	miaA.waitFor("reply seen on A", isMessageNew(reply.Message.ID))
	raviB.waitFor("sent", func(m msg) bool {
		sm := m.message()
		return m.Type == hub.UpdateDelivery && sm != nil && sm.ID == reply.Message.ID && sm.State == "sent"
	})

	// Another inbound makes the ticket unanswered again, then node B dies.
	a.inbound("acme", "conv-1", "m3", "hello??")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.stopHub()
	if ce := raviB.closed(); ce.Text != "server shutting down" {
		t.Fatalf("close %v", ce)
	}
	snap, err := a.router.Snapshot(a.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st := snap.Agents[itoa(ravi.ID)]; !st.Present || len(st.Assigned) != 1 {
		t.Fatalf("ravi right after node B died: %+v", st)
	}

	miaA.ok("presence", map[string]any{"status": "available"}, nil)
	clock.Advance(46 * time.Second) // Ravi's TTL lapses; Mia's is renewed by node A
	miaA.waitFor("re-queued ticket offered to mia", ofType(hub.UpdateOffer, r.ConversationID))
	miaA.ok("ticket.accept", map[string]any{"ticket_id": r.ConversationID}, nil)
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
