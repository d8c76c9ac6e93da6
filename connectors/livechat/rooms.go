package livechat

import (
	"context"
	"encoding/json"
	"fmt"
)

// Cross-node fan-out. Every node subscribes to the topic of each
// conversation it holds sockets for (a "room"), and leaves the topic when
// the last such socket goes. Agent replies, agent signals and visitor
// messages are published on the topic; each node writes them to its own
// sockets of the room. The socket is a live view: the database is the
// record, and a tab that misses something gets it with resume.

// Envelope kinds on the pub/sub topic.
const (
	envMessage    = "message"
	envTyping     = "typing"
	envTypingStop = "typing_stop"
	envSeen       = "seen"
	envMoved      = "moved" // the visitor's conversation was closed; a new one took over
)

// envelope is what travels on a conversation's topic, between nodes of
// possibly different versions: hence V.
type envelope struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// Origin is the connection that caused the event; it already has it
	// (as a message.ack) and is skipped.
	Origin  string       `json:"origin,omitempty"`
	Message *wireMessage `json:"message,omitempty"`
	Author  string       `json:"author,omitempty"`
	MovedTo int64        `json:"moved_to,omitempty"`
}

// room is one conversation with sockets on this node. conns is guarded by
// Connector.mu; cancel and err are written once before ready is closed.
type room struct {
	convID int64
	conns  map[*conn]struct{}
	ready  chan struct{}
	cancel func()
	err    error
}

// join adds c to the room of convID, subscribing to the topic when c is
// the room's first socket on this node. It returns once the subscription
// is live, so nothing published afterwards can be missed.
func (k *Connector) join(ctx context.Context, c *conn, convID int64) (*room, error) {
	k.mu.Lock()
	r := k.rooms[convID]
	first := r == nil
	if first {
		r = &room{convID: convID, conns: map[*conn]struct{}{}, ready: make(chan struct{})}
		k.rooms[convID] = r
	}
	r.conns[c] = struct{}{}
	runCtx := k.runCtx
	k.mu.Unlock()

	if first {
		// Subscribing is I/O (Redis); it happens outside the lock, and
		// later joiners of the room wait on ready.
		r.cancel, r.err = k.ps.Subscribe(runCtx, k.topic(convID), func(p []byte) { k.fanout(r, p) })
		if r.err != nil {
			k.mu.Lock()
			if k.rooms[convID] == r {
				delete(k.rooms, convID) // the next joiner tries afresh
			}
			k.mu.Unlock()
		}
		close(r.ready)
	} else {
		select {
		case <-r.ready:
		case <-ctx.Done():
			k.leave(c, r)
			return nil, ctx.Err()
		}
	}
	if r.err != nil {
		k.leave(c, r)
		return nil, fmt.Errorf("subscribe %s: %w", k.topic(convID), r.err)
	}
	return r, nil
}

// leave removes c from r and ends the subscription with the room's last
// socket.
func (k *Connector) leave(c *conn, r *room) {
	k.mu.Lock()
	delete(r.conns, c)
	last := len(r.conns) == 0
	if last && k.rooms[r.convID] == r {
		delete(k.rooms, r.convID)
	}
	k.mu.Unlock()
	if !last {
		return
	}
	// The first joiner closes ready before its join returns, and it was
	// a member until now, so this never waits long.
	<-r.ready
	if r.cancel != nil {
		r.cancel()
		if h := k.hooks.unsubscribed; h != nil {
			h(r.convID)
		}
	}
}

// fanout runs on the pub/sub delivery goroutine: it encodes the frame once
// and queues it on each socket of the room without blocking (a full queue
// drops that socket, never stalls the others).
func (k *Connector) fanout(r *room, payload []byte) {
	// Most envelopes are a visitor's message coming back to the one tab
	// that sent it: look at the origin before decoding and encoding the
	// rest for nobody.
	var head struct {
		Origin string `json:"origin"`
	}
	if json.Unmarshal(payload, &head) == nil && head.Origin != "" && !k.othersIn(r, head.Origin) {
		return
	}
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil || env.V != ProtocolVersion {
		k.log.Warn("dropping undecodable pub/sub envelope", "conversation", r.convID, "err", err, "v", env.V)
		return
	}
	var frame []byte
	var msgID int64
	switch env.Kind {
	case envMessage:
		if env.Message == nil {
			return
		}
		frame, msgID = encode(messageNewFrame{Type: typeMessageNew, Message: *env.Message}), env.Message.ID
	case envTyping, envTypingStop:
		frame = encode(typingFrame{Type: typeTyping, Active: env.Kind == envTyping, Author: env.Author})
	case envSeen:
		frame = encode(seenFrame{Type: typeSeen, Author: env.Author})
	case envMoved:
		frame = encode(convChangedFrame{Type: typeConvChanged, ConversationID: env.MovedTo})
	default:
		k.log.Debug("ignoring pub/sub envelope of unknown kind", "kind", env.Kind)
		return
	}
	k.mu.Lock()
	targets := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		if c.id != env.Origin {
			targets = append(targets, c)
		}
	}
	k.mu.Unlock()
	for _, c := range targets {
		c.push(frame, msgID)
	}
}

// othersIn reports whether the room has a socket here other than origin.
func (k *Connector) othersIn(r *room, origin string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range r.conns {
		if c.id != origin {
			return true
		}
	}
	return false
}
