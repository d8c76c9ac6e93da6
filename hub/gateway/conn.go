package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/wscork"
)

// maxCloseGrace bounds how long a closing socket waits for the client's
// close frame before the TCP connection is dropped.
const maxCloseGrace = 2 * time.Second

// sentWindow is how many recently sent cursors a socket remembers, so
// that an update reaching it both live and through a resume is sent
// once. Bus notifications trail their commit by milliseconds; a few
// hundred changes of slack is plenty, and costs a few KiB per socket.
const sentWindow = 512

var errClosed = errors.New("socket closing")

// conn is one agent socket. Its reader is the ServeHTTP goroutine, which
// also runs requests one at a time in arrival order; its writer goroutine
// is the only one that writes to the websocket (gorilla itself may still
// write a protocol-error close frame, which it does safely). Everyone else
// queues frames on send without ever blocking.
type conn struct {
	g      *Gateway
	ws     *websocket.Conn
	log    *slog.Logger
	id     string
	remote string
	start  time.Time

	send chan []byte // frames for the writer
	ctrl chan []byte // pong payloads for the writer

	closeOnce  sync.Once
	closing    chan struct{} // closed when a close is requested
	closeCode  int
	closeMsg   string
	closeFlush bool          // write queued frames before the close frame
	readDone   chan struct{} // closed when the reader has stopped
	writerDone chan struct{} // closed when the writer has stopped

	// Set once by the reader at authentication, before the socket joins
	// its instance (the join's lock publishes them to the other
	// goroutines).
	authed bool
	token  string // kept to re-check it; never logged
	agent  atomic.Pointer[store.Agent]
	feedp  atomic.Pointer[feed]

	// mu orders live pushes against resumes.
	mu       sync.Mutex
	resuming bool
	held     []heldUpdate // live updates that arrived during a resume
	sent     cursorWindow
}

type heldUpdate struct {
	cursor int64
	frame  []byte
}

func newConn(g *Gateway, ws *websocket.Conn, remote string) *conn {
	id := fmt.Sprintf("s%d", g.nextID.Add(1))
	return &conn{
		g: g, ws: ws, id: id, remote: remote, start: time.Now(),
		log:        g.log.With("session", id),
		send:       make(chan []byte, g.cfg.SendQueue),
		ctrl:       make(chan []byte, 4),
		closing:    make(chan struct{}),
		readDone:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

func (c *conn) agentRecord() *store.Agent { return c.agent.Load() }

func (c *conn) agentID() int64 {
	if a := c.agent.Load(); a != nil {
		return a.ID
	}
	return 0
}

func (c *conn) instanceID() string {
	if a := c.agent.Load(); a != nil {
		return a.InstanceID
	}
	return ""
}

func (c *conn) setFeed(f *feed) { c.feedp.Store(f) }
func (c *conn) getFeed() *feed  { return c.feedp.Load() }

// serve runs the socket until it closes: authentication, then the read
// loop.
func (c *conn) serve(token string, urlToken bool) {
	go c.writeLoop()
	defer c.finish()
	c.ws.SetPingHandler(func(p string) error {
		// The pong is the writer's to send; a full control queue means the
		// client pings faster than it reads, and a dropped pong is fine.
		select {
		case c.ctrl <- []byte(p):
		default:
		}
		return nil
	})
	c.ws.SetPongHandler(func(string) error {
		// Before authentication only the auth deadline counts: answering
		// pings must not keep an anonymous socket open.
		if !c.authed {
			return nil
		}
		return c.ws.SetReadDeadline(time.Now().Add(c.g.cfg.PongWait))
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		// Echo the client's code (RFC 6455 §5.5.1), written by the writer;
		// a client that says goodbye wants no more frames.
		c.closeWith(code, "", false)
		return nil
	})
	if c.isClosing() {
		c.drain()
		return
	}
	if urlToken {
		c.fail(CodeUnauthorized, "tokens in URLs are refused (proxies and logs keep URLs): send the token in the auth frame", CloseUnauthorized, "token in URL refused")
		c.drain()
		return
	}
	authDeadline := time.Now().Add(c.g.cfg.AuthTimeout)
	if token != "" {
		ctx, cancel := context.WithTimeout(c.g.ctx, c.g.cfg.RequestTimeout)
		ok := c.authenticate(ctx, nil, token, ProtocolVersion, nil)
		cancel()
		if !ok {
			c.drain()
			return
		}
	}
	limit := c.g.cfg.MaxFrameBytes
	for {
		if c.isClosing() {
			c.drain()
			return
		}
		// The deadline counts silence from now: pongs (answers to the
		// writer's pings) push it further while we wait.
		if c.authed {
			_ = c.ws.SetReadDeadline(time.Now().Add(c.g.cfg.PongWait))
		} else {
			_ = c.ws.SetReadDeadline(authDeadline)
		}
		mt, r, err := c.ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		// Our own limit rather than gorilla's: its close frame carries no
		// reason, and it would write it from this goroutine.
		b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
		if err != nil {
			c.readFailed(err)
			return
		}
		if len(b) > limit {
			c.fail(CodeTooLarge, fmt.Sprintf("frames are limited to %d bytes", limit), websocket.CloseMessageTooBig, fmt.Sprintf("frame larger than %d bytes", limit))
			c.drain()
			return
		}
		if mt == websocket.BinaryMessage {
			c.sendError(nil, CodeBadFrame, "binary frames are not accepted: send JSON text frames", "")
			continue
		}
		if !utf8.Valid(b) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the
			// connection with 1007.
			c.fail(CodeBadFrame, "text frames must be valid UTF-8", websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in a text frame")
			c.drain()
			return
		}
		f, ferr := decodeFrame(b)
		if ferr != nil {
			c.sendError(ferr.id, ferr.code, ferr.msg, "")
			continue
		}
		c.handle(f)
	}
}

// readFailed decides what a read error means for the close.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
	case errors.As(err, &ne) && ne.Timeout() && !c.authed && !c.isClosing():
		c.fail(CodeUnauthorized, fmt.Sprintf("no auth frame within %s", c.g.cfg.AuthTimeout), CloseUnauthorized, "authentication timeout")
	case errors.As(err, &ne) && ne.Timeout() && !c.isClosing():
		c.closeWith(websocket.CloseGoingAway, "ping timeout", false)
	default:
		c.log.Debug("socket read ended", "err", err)
	}
}

// finish ends the socket once the reader has stopped: the writer sends the
// close frame (if none was requested: a normal one) and drops the TCP
// connection.
func (c *conn) finish() {
	close(c.readDone)
	c.closeWith(websocket.CloseNormalClosure, "", true)
	<-c.writerDone
	code, reason := c.closeStatus()
	if a := c.agentRecord(); a != nil {
		c.log.Info("agent socket closed", "agent", a.ID, "instance", a.InstanceID, "code", code, "reason", reason, "duration", time.Since(c.start).Round(time.Millisecond))
	} else {
		c.log.Debug("unauthenticated socket closed", "remote", c.remote, "code", code, "reason", reason)
	}
}

// drain reads and discards until the client answers our close frame or
// the grace period ends, so that the client's unread bytes do not turn our
// close into a TCP reset that could hide the close reason from it.
func (c *conn) drain() {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.grace()))
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
	}
}

func (c *conn) grace() time.Duration { return min(maxCloseGrace, c.g.cfg.WriteTimeout) }

// closeWith asks the writer to close the socket with code and reason;
// only the first request counts. flush sends the frames already queued
// first (an error frame before its close), except to a client too slow to
// take them.
func (c *conn) closeWith(code int, reason string, flush bool) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeMsg, c.closeFlush = code, clip(reason, 120), flush
		close(c.closing)
	})
}

func (c *conn) closeStatus() (int, string) {
	select {
	case <-c.closing:
		return c.closeCode, c.closeMsg
	default:
		return 0, ""
	}
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// kill drops the TCP connection at once (shutdown past its deadline).
func (c *conn) kill() {
	c.closeWith(websocket.CloseAbnormalClosure, "killed", false)
	_ = c.ws.Close()
}

// fail sends an error frame and closes the socket; safe from any
// goroutine.
func (c *conn) fail(code, msg string, closeCode int, reason string) {
	select {
	case c.send <- encode(errorFrame{Type: typeError, Code: code, Message: msg}):
	default: // no room: the close reason alone has to do
	}
	c.closeWith(closeCode, reason, true)
}

func (c *conn) tooSlow() {
	if !c.isClosing() {
		c.log.Warn("socket too slow, closing it", "agent", c.agentID(), "instance", c.instanceID(), "queue", cap(c.send))
	}
	c.closeWith(CloseTooSlow, "too slow", false)
}

// offer queues a frame without blocking; a full queue closes the socket
// as too slow. Callers that may block use enqueue instead.
func (c *conn) offer(b []byte) bool {
	if c.isClosing() {
		return false
	}
	select {
	case c.send <- b:
		return true
	default:
		c.tooSlow()
		return false
	}
}

// enqueue queues a frame, waiting for room: only the reader goroutine
// calls it, so a client that does not read stops being read (the writer's
// deadline then closes it), and nobody else waits.
func (c *conn) enqueue(ctx context.Context, b []byte) error {
	select {
	case <-c.closing:
		return errClosed
	default:
	}
	select {
	case c.send <- b:
		return nil
	case <-c.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pushUpdate delivers a live update from the bus; it never blocks.
func (c *conn) pushUpdate(cursor int64, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resuming {
		if len(c.held) >= c.heldCap() {
			c.tooSlow()
			return
		}
		c.held = append(c.held, heldUpdate{cursor, b})
		return
	}
	if cursor != 0 {
		if c.sent.has(cursor) {
			return
		}
		c.sent.add(cursor)
	}
	c.offer(b)
}

func (c *conn) heldCap() int { return max(1024, 4*c.g.cfg.SendQueue) }

// writeLoop is the only writer of the websocket.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic recovered", "in", "writer", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.closeWith(websocket.CloseAbnormalClosure, "writer failed", false)
			_ = c.ws.Close()
		}
	}()
	ping := time.NewTicker(c.g.cfg.PingInterval)
	defer ping.Stop()
	for {
		// A requested close wins over queued work (select picks at random).
		if c.isClosing() {
			c.writeClose()
			return
		}
		select {
		case b := <-c.send:
			if err := c.writeFrames(b); err != nil {
				c.abort(err)
				return
			}
		case p := <-c.ctrl:
			if err := c.ws.WriteControl(websocket.PongMessage, p, time.Now().Add(c.g.cfg.WriteTimeout)); err != nil {
				c.abort(err)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.g.cfg.WriteTimeout)); err != nil {
				c.abort(err)
				return
			}
		case <-c.closing:
			c.writeClose()
			return
		}
	}
}

// maxFramesPerWrite bounds the queued frames sent together.
const maxFramesPerWrite = 64

// writeFrames writes b and the frames queued behind it; on a corkable
// socket (wscork) they leave in one system call, not one each.
func (c *conn) writeFrames(b []byte) error {
	cork, _ := c.ws.NetConn().(*wscork.Conn)
	if cork != nil {
		cork.Cork()
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	for n := 1; err == nil && n < maxFramesPerWrite; n++ {
		select {
		case b = <-c.send:
			err = c.ws.WriteMessage(websocket.TextMessage, b)
			continue
		default:
		}
		break
	}
	if cork != nil {
		if uerr := cork.Uncork(); err == nil {
			err = uerr
		}
	}
	return err
}

// writeClose sends what is queued (when asked to), then the close frame,
// waits briefly for the client's answer, and drops the connection.
func (c *conn) writeClose() {
	defer c.ws.Close()
	deadline := time.Now().Add(c.g.cfg.WriteTimeout)
	if c.closeFlush {
	flush:
		for {
			select {
			case b := <-c.send:
				_ = c.ws.SetWriteDeadline(deadline)
				if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
					return
				}
			default:
				break flush
			}
		}
	}
	if c.closeCode == websocket.CloseAbnormalClosure {
		return // 1006 is never sent on the wire
	}
	msg := websocket.FormatCloseMessage(c.closeCode, c.closeMsg)
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
		return
	}
	t := time.NewTimer(c.grace())
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-t.C:
	}
}

// abort ends a socket whose write failed: there is no one to send a close
// frame to.
func (c *conn) abort(err error) {
	c.log.Debug("socket write failed", "err", err)
	c.closeWith(websocket.CloseAbnormalClosure, "write failed", false)
	_ = c.ws.Close()
}

// cursorWindow remembers the last sentWindow cursors sent on a socket.
type cursorWindow struct {
	ring []int64
	next int
	set  map[int64]struct{}
}

func (w *cursorWindow) has(c int64) bool {
	_, ok := w.set[c]
	return ok
}

func (w *cursorWindow) add(c int64) {
	if w.set == nil {
		w.set = make(map[int64]struct{}, sentWindow)
		w.ring = make([]int64, 0, sentWindow)
	}
	if _, ok := w.set[c]; ok {
		return
	}
	if len(w.ring) < sentWindow {
		w.ring = append(w.ring, c)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = c
		w.next = (w.next + 1) % sentWindow
	}
	w.set[c] = struct{}{}
}
