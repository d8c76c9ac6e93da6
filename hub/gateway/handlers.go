package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// authenticate checks a token and joins the socket to its instance. On
// failure the socket gets an error frame and is closed; it reports
// whether the socket may go on.
func (c *conn) authenticate(ctx context.Context, id json.RawMessage, token string, protocol int, cursor *int64) bool {
	if protocol != ProtocolVersion {
		c.sendError(id, CodeInvalid, fmt.Sprintf("protocol version %d is not supported; this server speaks %d", protocol, ProtocolVersion), "")
		c.closeWith(CloseUnsupportedProtocol, "unsupported protocol version", true)
		return false
	}
	a, err := c.g.hub.AuthenticateAgent(ctx, token)
	if errors.Is(err, hub.ErrUnauthorized) {
		c.log.Info("agent authentication refused", "remote", c.remote)
		c.sendError(id, CodeUnauthorized, "invalid or expired token", "")
		c.closeWith(CloseUnauthorized, "invalid or expired token", true)
		return false
	}
	if err != nil {
		c.log.Error("authenticate agent", "err", err)
		c.sendError(id, CodeInternal, "could not check the token; try again", "")
		c.closeWith(websocket.CloseInternalServerErr, "internal error", true)
		return false
	}
	c.token = token
	c.agent.Store(a)
	if cursor != nil {
		// Hold live updates from the moment the socket joins, so that
		// the resume below and the live stream neither overlap nor leave
		// a gap.
		c.beginResume()
	}
	cur, err := c.g.join(ctx, c, a)
	if err != nil {
		c.log.Error("join instance", "agent", a.ID, "instance", a.InstanceID, "err", err)
		c.sendError(id, CodeInternal, "could not subscribe to updates; try again", "")
		c.closeWith(websocket.CloseInternalServerErr, "internal error", true)
		return false
	}
	c.authed = true
	c.log.Info("agent socket open", "agent", a.ID, "instance", a.InstanceID, "remote", c.remote)
	_ = c.enqueue(ctx, encode(readyFrame{
		Type: typeReady, ID: id, Protocol: ProtocolVersion, SessionID: c.id, Agent: a, Cursor: cur,
		HeartbeatS: int(c.g.cfg.HeartbeatInterval / time.Second), MaxFrame: c.g.cfg.MaxFrameBytes,
	}))
	if cursor != nil {
		c.resume(ctx, id, *cursor)
	}
	return true
}

// handle runs one request of an authenticated (or authenticating)
// socket. Every request gets exactly one reply: ready for auth, result or
// error for the rest.
func (c *conn) handle(f *frame) {
	ctx, cancel := context.WithTimeout(c.g.ctx, c.g.cfg.RequestTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic recovered", "in", f.typ, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.sendError(f.id, CodeInternal, "internal error", "")
		}
	}()
	if !c.authed {
		if f.typ != typeAuth {
			c.sendError(f.id, CodeUnauthorized, "authenticate first: send an auth frame", "")
			return
		}
		r := f.body.(*authReq)
		c.authenticate(ctx, f.id, r.Token, r.Protocol, r.Cursor)
		return
	}
	a := c.g.agent(c)
	h := c.g.hub
	const ticketMissing = "ticket not found"
	switch f.typ {
	case typeAuth:
		c.sendError(f.id, CodeInvalid, "this socket is already authenticated", "")
	case typePing:
		c.result(ctx, f.id, map[string]any{"time": time.Now().UTC()})
	case typePresence:
		st := routing.Status(f.body.(*presenceReq).Status)
		if err := h.Heartbeat(ctx, a, st); err != nil {
			c.replyError(f, err, "")
			return
		}
		c.g.setStatus(a, st)
		c.result(ctx, f.id, map[string]any{"status": st})
	case typeResume:
		c.beginResume()
		c.resume(ctx, f.id, *f.body.(*resumeReq).Cursor)
	case typeTicketsList:
		r := f.body.(*ticketsListReq)
		flt := store.TicketFilter{Statuses: r.Status, TeamID: r.TeamID, Query: r.Query, Before: r.Before, Limit: r.Limit}
		if flt.Limit == 0 {
			flt.Limit = 50
		}
		switch kind, id, _ := parseAssignee(r.Assignee); kind {
		case "me":
			flt.AssigneeID = &a.ID
		case "none":
			flt.Unassigned = true
		case "id":
			flt.AssigneeID = &id
		}
		ts, err := h.Tickets(ctx, a, flt)
		if err != nil {
			c.replyError(f, err, "")
			return
		}
		if ts == nil {
			ts = []store.Ticket{}
		}
		c.result(ctx, f.id, map[string]any{"tickets": ts})
	case typeTicketGet:
		// M3: the contact's identities, as far as each channel's privacy
		// preferences let the hub store them.
		v, err := h.Ticket(ctx, a, f.body.(*ticketReq).TicketID)
		if err != nil {
			c.replyError(f, err, ticketMissing)
			return
		}
		c.result(ctx, f.id, v)
	case typeAccept, typeDecline:
		tid := f.body.(*ticketReq).TicketID
		op := h.Accept
		if f.typ == typeDecline {
			op = h.Decline
		}
		if err := op(ctx, a, tid); err != nil {
			c.replyError(f, err, ticketMissing)
			return
		}
		c.result(ctx, f.id, map[string]any{"ticket_id": tid})
	case typeReply, typeNote:
		// M1: the agent's half of the two-way conversation; the hub checks
		// the channel's policy and queues the reply in the outbox.
		r := f.body.(*composeReq)
		op := h.Reply
		if f.typ == typeNote {
			op = h.Note
		}
		m, err := op(ctx, a, r.TicketID, hub.Compose{Text: r.Text, IdempotencyKey: r.IdempotencyKey})
		if err != nil {
			c.replyError(f, err, ticketMissing)
			return
		}
		c.result(ctx, f.id, map[string]any{"message": m})
	case typeTransfer:
		r := f.body.(*transferReq)
		if err := h.Transfer(ctx, a, r.TicketID, r.AgentID, r.TeamID); err != nil {
			c.replyError(f, err, "ticket, agent or team not found")
			return
		}
		c.result(ctx, f.id, map[string]any{"ticket_id": r.TicketID})
	case typeTicketStatus:
		r := f.body.(*statusReq)
		t, err := h.SetStatus(ctx, a, r.TicketID, r.Status)
		if err != nil {
			c.replyError(f, err, ticketMissing)
			return
		}
		c.result(ctx, f.id, map[string]any{"ticket": t})
	case typeTyping:
		r := f.body.(*typingReq)
		if err := h.Typing(ctx, a, r.TicketID, *r.On); err != nil {
			c.replyError(f, err, ticketMissing)
			return
		}
		c.result(ctx, f.id, map[string]any{"ticket_id": r.TicketID})
	default:
		// decodeFrame knows the same types; reaching this is a bug.
		c.sendError(f.id, CodeUnknownType, fmt.Sprintf("unknown frame type %q", f.typ), "")
	}
}

func (c *conn) result(ctx context.Context, id json.RawMessage, data any) {
	_ = c.enqueue(ctx, encode(resultFrame{Type: typeResult, ID: id, OK: true, Data: data}))
}

// sendError queues an error frame from the reader goroutine.
func (c *conn) sendError(id json.RawMessage, code, msg, reason string) {
	_ = c.enqueue(c.g.ctx, encode(errorFrame{Type: typeError, ID: id, Code: code, Message: msg, Reason: reason}))
}

// replyError answers a failed request; notFound is the message for a
// missing ticket, worded so that another instance's ticket and a ticket
// that does not exist look the same.
func (c *conn) replyError(f *frame, err error, notFound string) {
	code, msg, reason := classify(err, notFound)
	if code == CodeInternal {
		c.log.Error("request failed", "type", f.typ, "agent", c.agentID(), "err", err)
	} else {
		c.log.Debug("request refused", "type", f.typ, "agent", c.agentID(), "code", code, "err", err)
	}
	c.sendError(f.id, code, msg, reason)
}

// classify maps a hub error to an error code, a message the agent can
// read, and for channel refusals the channel's own reason.
func classify(err error, notFound string) (code, msg, reason string) {
	var ce *connectors.Error
	switch {
	case errors.Is(err, routing.ErrNoOffer):
		return CodeOfferExpired, "this offer is no longer yours: it expired, was declined, or went to someone else", ""
	case errors.Is(err, store.ErrNotFound):
		if notFound == "" {
			notFound = "not found"
		}
		// Never the store's message: it names ids, and an agent must not
		// learn whether another instance's ticket exists.
		return CodeNotFound, notFound, ""
	case errors.Is(err, hub.ErrUnauthorized):
		return CodeUnauthorized, "invalid or expired token", ""
	case errors.Is(err, hub.ErrForbidden):
		return CodeForbidden, "not allowed", ""
	case errors.Is(err, hub.ErrInvalid):
		return CodeInvalid, invalidMessage(err), ""
	case errors.As(err, &ce) && ce.Class == connectors.Refused:
		return CodePolicy, ce.Msg, ce.Code
	case errors.As(err, &ce):
		return CodeChannel, ce.Msg, ce.Code
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrDuplicate):
		return CodeConflict, "the request conflicts with the ticket's current state; reload it", ""
	}
	return CodeInternal, "internal error", ""
}

// invalidMessage keeps what the hub said after "hub: invalid request: ".
func invalidMessage(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, hub.ErrInvalid.Error()+": "); ok && after != "" {
		return after
	}
	return "invalid request"
}

func (c *conn) beginResume() {
	c.mu.Lock()
	c.resuming = true
	c.mu.Unlock()
}

// resume sends what the agent missed after a cursor, from the database,
// then the offers that are still pending (live state, not in the feed),
// then resume.done; live updates that arrive meanwhile are held and sent
// after it, each cursor once.
func (c *conn) resume(ctx context.Context, id json.RawMessage, after int64) {
	seen := map[int64]struct{}{}
	defer c.endResume(seen)
	a := c.g.agent(c)
	cursor, count, reset, err := c.replay(ctx, a, after, seen)
	if err != nil {
		if !errors.Is(err, errClosed) {
			c.replyError(&frame{typ: typeResume, id: id}, err, "")
		}
		return
	}
	offers, err := c.resendOffers(ctx, a)
	if err != nil {
		if !errors.Is(err, errClosed) {
			c.replyError(&frame{typ: typeResume, id: id}, err, "")
		}
		return
	}
	_ = c.enqueue(ctx, encode(resumeDoneFrame{Type: typeResumeDone, ID: id, Cursor: cursor, Count: count, Offers: offers, Reset: reset}))
}

// replay sends the feed after a cursor, page by page, waiting for room in
// the send queue (a resume is paced by the client, never cut as too slow).
func (c *conn) replay(ctx context.Context, a *store.Agent, after int64, seen map[int64]struct{}) (cursor int64, count int, reset bool, err error) {
	cursor = after
	page := c.g.cfg.ResumePage
	for {
		ups, err := c.g.hub.Feed(ctx, a, cursor, page)
		if err != nil {
			return cursor, count, false, fmt.Errorf("read the feed: %w", err)
		}
		for _, u := range ups {
			cursor = max(cursor, u.Cursor)
			seen[u.Cursor] = struct{}{}
			c.mu.Lock()
			dup := c.sent.has(u.Cursor)
			c.sent.add(u.Cursor)
			c.mu.Unlock()
			if dup {
				continue // already sent live on this socket
			}
			if err := c.enqueue(ctx, encodeUpdate(u)); err != nil {
				return cursor, count, false, err
			}
			count++
		}
		if len(ups) < page {
			return cursor, count, false, nil
		}
		if len(seen) >= c.g.cfg.MaxResume {
			// Too far behind to replay: the client reloads its lists and
			// carries on from the newest cursor.
			last, err := c.g.hub.Store().LastChange(ctx, a.InstanceID)
			if err != nil {
				return cursor, count, false, fmt.Errorf("read the newest cursor: %w", err)
			}
			return max(cursor, last), count, true, nil
		}
	}
}

// resendOffers sends the agent's pending offers again, with their
// deadlines.
func (c *conn) resendOffers(ctx context.Context, a *store.Agent) (int, error) {
	offers, err := c.g.hub.PendingOffers(ctx, a)
	if err != nil {
		return 0, fmt.Errorf("read pending offers: %w", err)
	}
	n := 0
	for _, o := range offers {
		t, err := c.g.hub.Store().Ticket(ctx, a.InstanceID, o.TicketID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("load offered ticket: %w", err)
		}
		var exp *time.Time
		if !o.ExpiresAt.IsZero() {
			exp = &o.ExpiresAt
		}
		if err := c.enqueue(ctx, encode(updateFrame{Type: hub.UpdateOffer, TicketID: o.TicketID, Ticket: t, ExpiresAt: exp})); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// endResume sends the live updates held during the resume, minus those
// the resume already sent, and returns the socket to live delivery. It
// loops because more may be held while it sends.
func (c *conn) endResume(seen map[int64]struct{}) {
	for {
		c.mu.Lock()
		if len(c.held) == 0 {
			c.resuming = false
			c.held = nil
			c.mu.Unlock()
			return
		}
		batch := c.held
		c.held = nil
		out := batch[:0]
		for _, h := range batch {
			if h.cursor != 0 {
				if _, ok := seen[h.cursor]; ok || c.sent.has(h.cursor) {
					continue
				}
				c.sent.add(h.cursor)
			}
			out = append(out, h)
		}
		c.mu.Unlock()
		for _, h := range out {
			// The gateway's context, not the request's: dropping held
			// updates would leave a gap the client cannot see.
			if err := c.enqueue(c.g.ctx, h.frame); err != nil {
				c.mu.Lock()
				c.resuming, c.held = false, nil
				c.mu.Unlock()
				return
			}
		}
	}
}
