package livechat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
)

const (
	testChannel = "ch_live1"
	testSecret  = "test-visitor-secret-0123456789abcdef"
	waitFor     = 5 * time.Second
)

// clock is a controllable Config.Now: real time plus an offset.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// node is one hub node: a connector behind its own HTTP server.
type node struct {
	k   *Connector
	srv *httptest.Server
}

type env struct {
	t     testing.TB
	host  *testHost
	ps    *memPubSub
	clock *clock
	nodes []*node
}

// envOption adjusts a node before it starts.
type envOption func(*connectors.Config, *testHooks)

func withSettings(js string) envOption {
	return func(c *connectors.Config, _ *testHooks) { c.Settings = json.RawMessage(js) }
}

func withConfig(f func(*connectors.Config)) envOption {
	return func(c *connectors.Config, _ *testHooks) { f(c) }
}

// withHooks sets test hooks; they are set before Start, so the connection
// goroutines read them without a race.
func withHooks(f func(*testHooks)) envOption {
	return func(_ *connectors.Config, h *testHooks) { f(h) }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, host: newTestHost(), ps: newMemPubSub(), clock: &clock{}}
	e.addNode(opts...)
	return e
}

// addNode starts another node on the same host (database) and pub/sub
// (Redis), with the same channel configuration.
func (e *env) addNode(opts ...envOption) *node {
	t := e.t
	t.Helper()
	cfg := connectors.Config{
		InstanceID: "inst1",
		ChannelID:  testChannel,
		Secrets:    map[string]string{SecretVisitor: testSecret},
		PubSub:     e.ps,
		Now:        e.clock.now,
	}
	var hooks testHooks
	for _, o := range opts {
		o(&cfg, &hooks)
	}
	k, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	k.hooks = hooks
	if err := k.Start(context.Background(), e.host); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mux := http.NewServeMux()
	for _, r := range k.Routes() {
		pattern := "/channels/" + testChannel + "/" + r.Path
		if r.Method != "" {
			pattern = r.Method + " " + pattern
		}
		mux.Handle(pattern, r.Handler)
	}
	n := &node{k: k, srv: httptest.NewServer(mux)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := k.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		n.srv.Close()
	})
	e.nodes = append(e.nodes, n)
	return n
}

func (e *env) k() *Connector { return e.nodes[0].k }

// frame is any server frame; Message is raw because it is an object in
// message.new and a string in error frames.
type frame struct {
	Type           string          `json:"type"`
	V              int             `json:"v"`
	Token          string          `json:"token"`
	VisitorID      string          `json:"visitor_id"`
	ConversationID int64           `json:"conversation_id"`
	TicketNumber   int64           `json:"ticket_number"`
	History        []wireMessage   `json:"history"`
	Messages       []wireMessage   `json:"messages"`
	More           bool            `json:"more"`
	Widget         widgetConfig    `json:"widget"`
	ClientID       string          `json:"client_id"`
	MessageID      int64           `json:"message_id"`
	Duplicate      bool            `json:"duplicate"`
	Message        json.RawMessage `json:"message"`
	Code           string          `json:"code"`
	Active         bool            `json:"active"`
	Author         string          `json:"author"`
	RetryAfterMS   int64           `json:"retry_after_ms"`
	raw            string
}

func (f frame) msg(t testing.TB) wireMessage {
	t.Helper()
	var m wireMessage
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("frame %s: message is not an object: %v", f.raw, err)
	}
	return m
}

func (f frame) errText() string {
	var s string
	_ = json.Unmarshal(f.Message, &s)
	return s
}

// client is a visitor tab: a real websocket whose frames a goroutine
// reads into a channel, so tests wait on frames with a timeout.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan frame
	err    chan error // the read error that ended the connection
}

func (n *node) dial(t testing.TB, hdr http.Header) *client {
	t.Helper()
	c, err := n.tryDial(hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.t = t
	t.Cleanup(func() { _ = c.ws.Close() })
	return c
}

func (n *node) wsURL() string {
	return "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/channels/" + testChannel + "/ws"
}

func (n *node) tryDial(hdr http.Header) (*client, error) {
	ws, resp, err := websocket.DefaultDialer.Dial(n.wsURL(), hdr)
	if err != nil {
		if resp != nil {
			return nil, &dialError{status: resp.StatusCode, err: err}
		}
		return nil, err
	}
	c := &client{ws: ws, frames: make(chan frame, 4096), err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				close(c.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				f = frame{Type: "<undecodable>"}
			}
			f.raw = string(data)
			c.frames <- f
		}
	}()
	return c, nil
}

type dialError struct {
	status int
	err    error
}

func (d *dialError) Error() string { return d.err.Error() }

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) sendRaw(mt int, data []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(mt, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing after waitFor.
func (c *client) next() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed while waiting for a frame: %v", <-c.err)
		}
		return f
	case <-time.After(waitFor):
		c.t.Fatalf("no frame within %s", waitFor)
	}
	return frame{}
}

// expect returns the next frame and fails unless it has type typ.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ {
		c.t.Fatalf("want a %s frame, got %s", typ, f.raw)
	}
	return f
}

// expectError returns the next frame, which must be an error with code.
func (c *client) expectError(code string) frame {
	c.t.Helper()
	f := c.expect(typeError)
	if f.Code != code {
		c.t.Fatalf("want error %q, got %s", code, f.raw)
	}
	return f
}

// expectClose waits for the server to close the connection and returns
// the close error.
func (c *client) expectClose() *websocket.CloseError {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-c.frames:
			if ok {
				continue // frames queued before the close
			}
			err := <-c.err
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				c.t.Fatalf("want a close frame, connection ended with %v", err)
			}
			return ce
		case <-deadline:
			c.t.Fatalf("connection not closed within %s", waitFor)
		}
	}
}

// quiet asserts that no frame arrives for d: a bounded negative check,
// never used to wait for something to happen.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("want no frame, got %s", f.raw)
		}
	case <-time.After(d):
	}
}

// roundTrip sends a ping and waits for its pong: proof that the socket
// still serves, and that every frame the server queued before is read.
func (c *client) roundTrip() []frame {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	var before []frame
	for {
		f := c.next()
		if f.Type == typePong {
			return before
		}
		before = append(before, f)
	}
}

// start sends session.start and returns session.ready.
func (c *client) start(fields map[string]any) frame {
	c.t.Helper()
	f := map[string]any{"type": "session.start"}
	for k, v := range fields {
		f[k] = v
	}
	c.send(f)
	return c.expect(typeSessionReady)
}

// say sends message.send and returns its ack.
func (c *client) say(clientID, text string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "message.send", "client_id": clientID, "text": text})
	f := c.expect(typeMessageAck)
	if f.ClientID != clientID {
		c.t.Fatalf("ack for %q, want %q", f.ClientID, clientID)
	}
	return f
}

// waitCh waits for a value on ch.
func waitCh[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}
