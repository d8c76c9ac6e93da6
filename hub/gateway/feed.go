package gateway

import (
	"sync"

	"github.com/switchboard-hub/switchboard/hub"
)

// feed is one instance's bus subscription on this node, shared by all the
// instance's sockets here (one subscription per instance per node, not per
// socket).
type feed struct {
	g        *Gateway
	instance string
	cancel   func()

	mu    sync.RWMutex
	conns map[*conn]struct{}
}

func newFeed(g *Gateway, instance string) *feed {
	return &feed{g: g, instance: instance, conns: map[*conn]struct{}{}}
}

func (f *feed) add(c *conn) {
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
}

// remove detaches c and returns how many sockets remain.
func (f *feed) remove(c *conn) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	return len(f.conns)
}

// dispatch runs on the bus's delivery goroutine for this subscription: it
// must never block, so it only queues to each socket. The update as
// published is the frame (u has no message; see SubscribeInstanceRelay).
func (f *feed) dispatch(u hub.Update, raw []byte) {
	f.g.safely("dispatch", func() {
		if u.InstanceID != f.instance {
			// The bus topic is per instance; anything else is a bug we
			// refuse to turn into a cross-tenant leak.
			f.g.log.Error("update for another instance on an instance topic", "topic_instance", f.instance, "update_instance", u.InstanceID)
			return
		}
		b := raw
		if u.Type == "" {
			b = encodeUpdate(u)
		}
		f.mu.RLock()
		defer f.mu.RUnlock()
		for c := range f.conns {
			// Offers and their revocations are for one agent only.
			if u.AgentID != 0 && c.agentID() != u.AgentID {
				continue
			}
			c.pushUpdate(u.Cursor, b)
		}
	})
}

// encodeUpdate turns a hub update into its frame.
func encodeUpdate(u hub.Update) []byte {
	typ := u.Type
	if typ == "" {
		// A feed entry the hub could not classify still tells the client
		// that the ticket changed.
		typ = hub.UpdateTicket
	}
	return encode(updateFrame{
		Type: typ, Cursor: u.Cursor, TicketID: u.TicketID, Ticket: u.Ticket, Message: u.Message,
		ExpiresAt: u.ExpiresAt, Signal: u.Signal, From: u.From,
	})
}
