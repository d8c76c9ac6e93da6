package livechat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
)

// conn is one visitor websocket (one browser tab). One goroutine reads
// and handles frames one at a time, so a tab's messages reach the host in
// the order the tab sent them. Writes go through a bounded queue drained
// by a writer goroutine that runs only while there is something to write,
// and pings come from a timer: an idle socket costs one parked goroutine
// and its buffers (see BenchmarkIdleVisitorMemory).
type conn struct {
	k    *Connector
	ws   *websocket.Conn
	id   string          // unique across nodes: the Origin of envelopes
	base context.Context // the connector's run context

	// qmu guards the write side.
	qmu       sync.Mutex
	queue     [][]byte // bounded by Settings.SendQueue: a full queue drops the socket
	writing   bool     // a writer goroutine is draining queue
	closeReq  bool     // write a close frame once queue is drained
	closeCode int
	closeMsg  string
	closed    bool          // no more writes
	flushed   chan struct{} // closed once the close frame is written (or given up)
	flushDone bool
	writers   sync.WaitGroup
	pinger    *time.Timer

	// mu guards holding and held: while a session starts, frames from the
	// room are held back until session.ready is queued, so that
	// session.ready always comes first and a message is not both in the
	// history and in a message.new.
	mu      sync.Mutex
	holding bool
	held    []heldFrame

	// Owned by the reader goroutine.
	visitorID  string
	contact    connectors.Identity
	pageURL    string
	room       *room
	bad        int
	starts     int
	typingOn   bool
	typingSent time.Time
}

type heldFrame struct {
	frame []byte
	msgID int64
}

func newConnID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serveWS upgrades a visitor's request to the websocket and hands the
// socket to its own goroutine: returning from the handler lets net/http
// free its per-request state (buffers, headers) that an idle socket would
// otherwise keep.
func (k *Connector) serveWS(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	if k.state != stateRunning {
		k.mu.Unlock()
		http.Error(w, "live chat is not running", http.StatusServiceUnavailable)
		return
	}
	k.wg.Add(1) // under the lock, so Stop's Wait never races an Add
	base := k.runCtx
	k.mu.Unlock()

	ws, err := k.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has answered with an HTTP error already.
		k.log.Debug("websocket upgrade failed", "err", err)
		k.wg.Done()
		return
	}
	c := &conn{k: k, ws: ws, id: newConnID(), base: base}
	k.mu.Lock()
	if k.state != stateRunning {
		k.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(closeGrace))
		_ = ws.Close()
		k.wg.Done()
		return
	}
	k.conns[c] = struct{}{}
	k.mu.Unlock()
	go c.run()
}

func (c *conn) run() {
	defer c.k.wg.Done()
	defer c.cleanup()
	defer func() {
		if p := recover(); p != nil {
			c.k.log.Error("panic in live chat connection", "panic", p)
		}
	}()
	c.qmu.Lock()
	c.pinger = time.AfterFunc(pingPeriod, c.ping)
	c.qmu.Unlock()
	c.readLoop()
}

// hostCtx bounds one Host call; Stop cancels it.
func (c *conn) hostCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.base, hostTimeout)
}

// checkOrigin allows the hub's own origin, the configured ones, and
// clients that send no Origin (not browsers, so no cross-site risk: the
// visitor token is the credential).
func (k *Connector) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	norm := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, o := range k.settings.AllowedOrigins {
		if o == "*" || o == norm {
			return true
		}
	}
	k.log.Debug("websocket origin refused", "origin", norm)
	return false
}

// readLoop reads frames until the socket fails or the conn closes it.
// It is kept small, and the frame handling out of line, because an idle
// socket's goroutine is parked in here: a shallow stack lets the runtime
// shrink it to 4 KiB (BenchmarkIdleVisitorMemory).
func (c *conn) readLoop() {
	c.ws.SetReadLimit(c.k.readLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(c.pong)
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.dispatch(mt, data) {
			return
		}
	}
}

func (c *conn) pong(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) }

//go:noinline
func (c *conn) readFailed(err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla has sent close 1009 (message too big) already.
		c.k.log.Debug("frame over the read limit", "limit", c.k.readLimit)
		c.finish(0, "")
	}
}

// dispatch handles one frame; false means the socket is being closed.
//
//go:noinline
func (c *conn) dispatch(mt int, data []byte) bool {
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	if mt != websocket.TextMessage {
		return c.fail(&frameError{Code: codeBinary, Msg: "binary frames are not supported; send JSON text frames"})
	}
	f, err := decodeFrame(data, c.k.settings.MaxMessageLength)
	if err != nil {
		var fe *frameError
		if !errors.As(err, &fe) {
			fe = &frameError{Code: codeBadFrame, Msg: err.Error()}
		}
		return c.fail(fe)
	}
	return c.handle(f)
}

// fail answers a bad frame with an error frame; a socket that keeps
// sending bad frames is closed with 1008 (policy violation). It returns
// false when the socket is being closed.
func (c *conn) fail(fe *frameError) bool {
	c.sendError(fe.Code, fe.Msg, fe.ClientID, 0)
	c.bad++
	if c.bad > maxBadFrames {
		c.finish(websocket.ClosePolicyViolation, "too many invalid frames")
		return false
	}
	return true
}

func (c *conn) handle(f clientFrame) bool {
	switch f.Type {
	case typePing:
		c.enqueue(encode(struct {
			Type string `json:"type"`
		}{typePong}))
		return true
	case typeSessionStart:
		return c.startSession(f)
	}
	if c.visitorID == "" {
		c.sendError(codeNoSession, "send session.start first", f.ClientID, 0)
		return true
	}
	switch f.Type {
	case typeMessageSend:
		c.sendMessage(f)
	case typeTyping:
		c.typing(f)
	case typeResume:
		c.resume(f)
	case typeMessageState:
		c.messageState(f)
	}
	return true
}

// startSession verifies or issues the visitor token, opens (or finds) the
// visitor's conversation and answers session.ready with its history.
// session.start may be sent again on a live socket (after a
// conversation.changed); the socket then moves to the new conversation.
func (c *conn) startSession(f clientFrame) bool {
	k := c.k
	if c.starts++; c.starts > maxSessionStarts {
		c.finish(websocket.ClosePolicyViolation, "too many session.start frames")
		return false
	}
	visitorID := ""
	if f.Token != "" {
		v, err := k.tokens.verify(f.Token)
		switch {
		case errors.Is(err, errTokenExpired):
			c.sendError(codeTokenExpired, "the visitor token has expired; start without a token", "", 0)
			return true
		case err != nil:
			c.sendError(codeTokenInvalid, "the visitor token is not valid for this channel; start without a token", "", 0)
			return true
		}
		visitorID = v
	} else {
		visitorID = newVisitorID()
	}
	// M3: the contact is what the visitor typed in, nothing more.
	contact := connectors.Identity{ExternalID: visitorID, DisplayName: f.Name, Email: f.Email}
	ctx, cancel := c.hostCtx()
	defer cancel()
	th, err := k.host.OpenThread(ctx, connectors.ThreadOpen{ChannelID: k.channelID, ThreadKey: visitorID, Contact: contact})
	if err != nil {
		k.log.Warn("open thread failed", "err", err)
		c.sendError(codeUnavailable, "the chat is unavailable; try again shortly", "", 0)
		return true
	}

	if c.room != nil && c.room.convID != th.ConversationID {
		k.leave(c, c.room)
		c.room = nil
	}
	c.setHolding(true)
	if c.room == nil {
		r, err := k.join(ctx, c, th.ConversationID)
		if err != nil {
			c.setHolding(false)
			k.log.Warn("join conversation failed", "conversation", th.ConversationID, "err", err)
			c.sendError(codeUnavailable, "the chat is unavailable; try again shortly", "", 0)
			return true
		}
		c.room = r
	}
	// The subscription is live before the history is read: whatever
	// happens in between is held and deduplicated against the history.
	hist, more, err := c.history(ctx, th.ConversationID, f.After, visitorID)
	if err != nil {
		c.setHolding(false)
		k.log.Warn("history failed", "conversation", th.ConversationID, "err", err)
		c.sendError(codeUnavailable, "the chat is unavailable; try again shortly", "", 0)
		return true
	}
	if visitorID != c.visitorID {
		if c.visitorID != "" {
			k.releaseVisitor(c.visitorID)
		}
		k.acquireVisitor(visitorID)
	}
	c.visitorID, c.contact, c.pageURL = visitorID, contact, f.PageURL
	c.typingOn = false

	last := f.After
	if n := len(hist); n > 0 {
		last = hist[n-1].ID
	}
	ready := encode(sessionReadyFrame{
		Type: typeSessionReady, V: ProtocolVersion,
		Token:     k.tokens.issue(visitorID), // sliding expiry
		VisitorID: visitorID, ConversationID: th.ConversationID, TicketNumber: th.TicketNumber,
		History: hist, More: more,
		Widget: widgetConfig{
			Title: k.settings.Title, Color: k.settings.Color, Greeting: k.settings.Greeting,
			AskContact: k.settings.AskContact, MaxMessageLength: k.settings.MaxMessageLength,
		},
	})
	c.mu.Lock()
	c.holding = false
	held := c.held
	c.held = nil
	ok := c.enqueue(ready)
	for _, h := range held {
		if ok && (h.msgID == 0 || h.msgID > last) {
			ok = c.enqueue(h.frame)
		}
	}
	c.mu.Unlock()
	return true
}

func (c *conn) setHolding(on bool) {
	c.mu.Lock()
	c.holding = on
	if !on {
		c.held = nil
	}
	c.mu.Unlock()
}

// history reads one page of the conversation after a message id.
func (c *conn) history(ctx context.Context, convID, after int64, visitorID string) ([]wireMessage, bool, error) {
	items, err := c.k.host.History(ctx, c.k.channelID, convID, after, historyPage)
	if err != nil {
		return nil, false, err
	}
	out := make([]wireMessage, 0, len(items))
	for _, it := range items {
		m := wireMessage{ID: it.ID, Text: it.Text, State: string(it.State), CreatedAt: it.CreatedAt.UTC()}
		if it.Direction == "in" {
			m.From, m.ClientID = fromVisitor, clientIDOf(visitorID, it.ExternalID)
		} else {
			m.From, m.Author = fromAgent, it.AuthorName
		}
		out = append(out, m)
	}
	return out, len(items) == historyPage, nil
}

// sendMessage delivers a visitor message and acknowledges it only after
// Host.Deliver returned, i.e. after the commit (ack-after-commit): a
// message.ack means the message is stored. The dedup key is the visitor
// id and the client id, so a resend after a lost ack is stored once.
func (c *conn) sendMessage(f clientFrame) {
	k := c.k
	if ok, wait := k.allow(c.visitorID); !ok {
		c.sendError(codeRateLimited, "too many messages; wait a moment", f.ClientID, wait.Milliseconds()+1)
		return
	}
	in := connectors.Inbound{
		ChannelID:      k.channelID,
		ExternalID:     inboundExternalID(c.visitorID, f.ClientID),
		ThreadKey:      c.visitorID,
		ConversationID: c.room.convID,
		Sender:         c.contact,
		Text:           f.Text,
		SentAt:         k.now(),
	}
	if c.pageURL != "" {
		in.Meta = map[string]string{"page_url": c.pageURL}
	}
	ctx, cancel := c.hostCtx()
	defer cancel()
	rc, err := k.host.Deliver(ctx, in)
	if err != nil {
		if c.base.Err() == nil {
			k.log.Warn("deliver failed", "err", err)
		}
		// No ack: the widget keeps the message and sends it again.
		c.sendError(codeDeliverFailed, "the message was not stored; it will be sent again", f.ClientID, 1000)
		return
	}
	// The time the record shows (history, agents), also for a resend.
	created := rc.CreatedAt.UTC()
	if rc.CreatedAt.IsZero() {
		created = k.now().UTC()
	}
	conv := c.room.convID
	moved := !rc.Duplicate && rc.ConversationID != 0 && rc.ConversationID != conv
	if moved {
		// The visitor's conversation was closed; the hub opened a new one
		// for this message. Follow it, and tell the other tabs below.
		old := c.room
		r, err := k.join(ctx, c, rc.ConversationID)
		if err != nil {
			k.log.Warn("join new conversation failed", "conversation", rc.ConversationID, "err", err)
		} else {
			c.room = r
			k.leave(c, old)
		}
		conv = rc.ConversationID
	}
	c.enqueue(encode(messageAckFrame{
		Type: typeMessageAck, ClientID: f.ClientID, MessageID: rc.MessageID,
		ConversationID: conv, TicketNumber: rc.TicketNumber, Duplicate: rc.Duplicate, CreatedAt: created,
	}))
	if rc.Duplicate {
		// Published when it was first stored.
		return
	}
	// The other tabs, on any node, show it too. A failed publish loses
	// nothing: they get it with their next resume.
	env := envelope{Kind: envMessage, Origin: c.id, Message: &wireMessage{
		ID: rc.MessageID, ClientID: f.ClientID, From: fromVisitor, Text: f.Text, CreatedAt: created,
	}}
	if err := k.publish(ctx, conv, env); err != nil {
		k.log.Warn("publish visitor message failed", "err", err)
	}
	if moved {
		if err := k.publish(ctx, in.ConversationID, envelope{Kind: envMoved, Origin: c.id, MovedTo: conv}); err != nil {
			k.log.Warn("publish conversation change failed", "err", err)
		}
	}
}

// typing passes the visitor's typing to the agents, throttled: a start at
// most every typingEvery, a stop only after a start.
func (c *conn) typing(f clientFrame) {
	k := c.k
	now := k.now()
	if f.Active == c.typingOn && (!f.Active || now.Sub(c.typingSent) < typingEvery) {
		return
	}
	c.typingOn, c.typingSent = f.Active, now
	kind := envTypingStop
	if f.Active {
		kind = envTyping
	}
	// Agents see who types by name, as on the visitor's messages; the
	// visitor id stands in for a visitor who gave none.
	from := c.contact.DisplayName
	if from == "" {
		from = c.visitorID
	}
	ctx, cancel := c.hostCtx()
	defer cancel()
	err := k.host.Signal(ctx, connectors.Signal{
		ChannelID: k.channelID, ConversationID: c.room.convID, ThreadKey: c.visitorID, Kind: kind, From: from,
	})
	if err != nil {
		k.log.Debug("typing signal failed", "err", err)
	}
}

func (c *conn) resume(f clientFrame) {
	ctx, cancel := c.hostCtx()
	defer cancel()
	hist, more, err := c.history(ctx, c.room.convID, f.After, c.visitorID)
	if err != nil {
		c.k.log.Warn("history failed", "err", err)
		c.sendError(codeUnavailable, "history is unavailable; try again shortly", "", 0)
		return
	}
	c.enqueue(encode(historyFrame{Type: typeHistory, Messages: hist, More: more}))
}

// messageState records that agent replies reached the visitor (delivered)
// or were shown to them (read).
func (c *conn) messageState(f clientFrame) {
	ctx, cancel := c.hostCtx()
	defer cancel()
	for _, id := range f.MessageIDs {
		err := c.k.host.UpdateDelivery(ctx, connectors.DeliveryUpdate{
			ChannelID:  c.k.channelID,
			ExternalID: outboundExternalID(c.room.convID, id),
			Recipient:  c.visitorID,
			State:      connectors.DeliveryState(f.State),
		})
		if err != nil {
			c.k.log.Debug("delivery update failed", "err", err)
		}
	}
}

func (c *conn) sendError(code, msg, clientID string, retryAfterMS int64) {
	c.enqueue(encode(errorFrame{Type: typeError, Code: code, Message: msg, ClientID: clientID, RetryAfterMS: retryAfterMS}))
}

// push queues a frame from the room (fan-out).
func (c *conn) push(frame []byte, msgID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		if len(c.held) >= c.k.settings.SendQueue {
			c.drop("held frames overflow")
			return
		}
		c.held = append(c.held, heldFrame{frame, msgID})
		return
	}
	c.enqueue(frame)
}

// enqueue never blocks: a tab whose queue is full is too slow and is
// dropped, so that it cannot stall the reader, the fan-out or other tabs.
func (c *conn) enqueue(frame []byte) bool {
	c.qmu.Lock()
	if c.closed || c.closeReq {
		c.qmu.Unlock()
		return false
	}
	if len(c.queue) >= c.k.settings.SendQueue {
		c.qmu.Unlock()
		c.drop("send queue full")
		return false
	}
	c.queue = append(c.queue, frame)
	c.startWriterLocked()
	c.qmu.Unlock()
	return true
}

func (c *conn) startWriterLocked() {
	if !c.writing && !c.closed {
		c.writing = true
		c.writers.Add(1)
		go c.writeLoop()
	}
}

// writeLoop drains the queue and ends when it is empty; a requested close
// frame goes out after the queued frames.
func (c *conn) writeLoop() {
	defer c.writers.Done()
	for {
		c.qmu.Lock()
		if c.closed {
			c.writing = false
			c.markFlushedLocked()
			c.qmu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.queue = nil // an idle socket keeps no queue array
			c.writing = false
			if c.closeReq {
				c.closed = true
				c.qmu.Unlock()
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeMsg), time.Now().Add(writeWait))
				c.qmu.Lock()
				c.markFlushedLocked()
				c.qmu.Unlock()
				return
			}
			c.qmu.Unlock()
			return
		}
		b := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.qmu.Unlock()

		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			c.kill()
			c.qmu.Lock()
			c.closed, c.writing, c.queue = true, false, nil
			c.markFlushedLocked()
			c.qmu.Unlock()
			return
		}
	}
}

// ping keeps the socket alive through proxies and proves the peer alive:
// the read deadline moves only with its pong (or any frame).
func (c *conn) ping() {
	c.qmu.Lock()
	closed := c.closed
	c.qmu.Unlock()
	if closed {
		return
	}
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		c.kill()
		return
	}
	c.qmu.Lock()
	if !c.closed {
		c.pinger.Reset(pingPeriod)
	}
	c.qmu.Unlock()
}

// drop cuts a slow socket off at once: a close frame would queue behind
// the frames it cannot take. Its reader then fails and cleans up; the
// widget reconnects and resumes.
func (c *conn) drop(reason string) {
	c.k.log.Info("dropping slow visitor socket", "reason", reason)
	if h := c.k.hooks.dropped; h != nil {
		h(c)
	}
	c.kill()
}

func (c *conn) kill() { _ = c.ws.NetConn().Close() }

// requestClose writes what is queued, then a close frame with code and
// reason. It returns a channel closed once the close frame is out.
func (c *conn) requestClose(code int, reason string) <-chan struct{} {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closeReq {
		return c.flushed
	}
	c.closeReq, c.closeCode, c.closeMsg = true, code, reason
	c.flushed = make(chan struct{})
	if c.closed {
		c.markFlushedLocked()
		return c.flushed
	}
	c.startWriterLocked()
	return c.flushed
}

func (c *conn) markFlushedLocked() {
	if c.closeReq && !c.flushDone {
		c.flushDone = true
		close(c.flushed)
	}
}

// finish closes from the reader's side: queued frames and the close frame
// (when code is not 0) go out, then the reader waits briefly for the
// peer's close and cuts the connection. Reading the peer's remaining bytes
// avoids a TCP reset that would swallow the close frame.
func (c *conn) finish(code int, reason string) {
	if code != 0 {
		select {
		case <-c.requestClose(code, reason):
		case <-time.After(writeWait):
		}
	}
	nc := c.ws.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 1<<20))
	c.kill()
}

// cleanup runs when the reader has ended: the socket leaves its room and
// the connector, and the writer stops.
func (c *conn) cleanup() {
	c.qmu.Lock()
	c.closed = true
	c.markFlushedLocked()
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.qmu.Unlock()
	c.kill()
	c.writers.Wait()
	k := c.k
	if c.room != nil {
		k.leave(c, c.room)
	}
	if c.visitorID != "" {
		k.releaseVisitor(c.visitorID)
	}
	k.mu.Lock()
	delete(k.conns, c)
	k.mu.Unlock()
	if h := k.hooks.connClosed; h != nil {
		h(c)
	}
}
