package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/routing/routetest"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// wait is how long a test waits for a frame or an event before failing.
const wait = 10 * time.Second

const testKind connectors.Kind = "testchat"

// env is a real hub (real store, in-process router and bus, directory
// blobs, a test channel) with the gateway served over a real HTTP server.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     *store.Store
	h      *hub.Hub
	router routing.Router
	bus    routing.Bus
	clock  *routetest.Clock
	gw     *Gateway
	srv    *httptest.Server
	wsURL  string
	logs   *syncBuffer

	stopHub func() // stops the hub's loops and channels, once

	mu       sync.Mutex
	channels map[string]*testConnector
	events   chan event
}

type envOpts struct {
	dsn string
	cfg Config
	// smallBuffers shrinks the server's TCP send buffers so that a client
	// that stops reading fills them quickly.
	smallBuffers bool
	// router, bus and clock replace the in-process ones (another node of
	// the same deployment shares them); the store is then assumed
	// migrated.
	router routing.Router
	bus    routing.Bus
	clock  *routetest.Clock
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	if o.dsn == "" {
		o.dsn = testenv.SQLite(t)
	}
	st, err := store.Open(ctx, o.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, st: st, clock: o.clock, router: o.router, bus: o.bus, logs: &syncBuffer{},
		channels: map[string]*testConnector{}, events: make(chan event, 4096)}
	if e.clock == nil {
		e.clock = routetest.NewClock()
	}
	if e.router == nil {
		e.router = memroute.New(routing.Config{OfferTimeout: 30 * time.Second, PresenceTTL: 45 * time.Second, Now: e.clock.Now})
	}
	if e.bus == nil {
		e.bus = memroute.NewBus()
	}
	t.Cleanup(func() { e.bus.Close() })
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	if err := reg.Register(testKind, e.buildConnector); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h, err = hub.New(hub.Deps{Store: st, Router: e.router, Bus: e.bus, Blobs: blobs, Connectors: reg, Logger: log},
		// A fast sweep makes offer expiry follow the injected clock at
		// once; the outbox is woken by each reply.
		hub.Config{SweepInterval: 5 * time.Millisecond, OutboxInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	if err := e.h.Start(hctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	e.stopHub = func() {
		once.Do(func() {
			stop()
			e.h.Wait(ctx)
		})
	}
	t.Cleanup(func() { e.stopHub() })
	e.gw = New(e.h, o.cfg, log)
	e.gw.observe = func(ev event) {
		select {
		case e.events <- ev:
		default:
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/agent/ws", e.gw)
	mux.Handle("GET /agent/attachments/{id}", AttachmentHandler(e.h, log))
	e.srv = httptest.NewUnstartedServer(mux)
	if o.smallBuffers {
		e.srv.Listener = smallBufListener{e.srv.Listener}
	}
	e.srv.Start()
	e.wsURL = "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/agent/ws"
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := e.gw.Shutdown(sctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		e.srv.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	return e
}

// instance creates a tenant with a running test channel "<id>-chat".
func (e *env) instance(id string, settings string) *testConnector {
	e.t.Helper()
	if err := e.st.CreateInstance(e.ctx, &store.Instance{ID: id, Name: id}); err != nil {
		e.t.Fatal(err)
	}
	if settings == "" {
		settings = "{}"
	}
	ch := store.Channel{ID: id + "-chat", InstanceID: id, Kind: string(testKind), Name: "Chat", Settings: settings, Enabled: true}
	if err := e.st.CreateChannel(e.ctx, &ch); err != nil {
		e.t.Fatal(err)
	}
	return e.startChannel(ch.ID)
}

// startChannel runs a stored channel on this node (every node runs every
// channel).
func (e *env) startChannel(id string) *testConnector {
	e.t.Helper()
	ch, err := e.st.ChannelByID(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.h.StartChannel(e.ctx, *ch); err != nil {
		e.t.Fatal(err)
	}
	return e.connector(ch.ID)
}

func (e *env) connector(channelID string) *testConnector {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.channels[channelID]
}

// agent creates an agent and returns it with its token.
func (e *env) agent(instance, name string, teams ...int64) (*store.Agent, string) {
	e.t.Helper()
	token, hash := hub.NewToken("sbt_")
	a := &store.Agent{InstanceID: instance, Name: name, Email: strings.ToLower(name) + "@" + instance + ".example",
		TokenHash: hash, Capacity: 3, TeamIDs: teams}
	if err := e.st.CreateAgent(e.ctx, a); err != nil {
		e.t.Fatal(err)
	}
	return a, token
}

// inbound delivers an end-user message through the channel host, as a
// connector would.
func (e *env) inbound(instance, thread, externalID, text string) connectors.Receipt {
	e.t.Helper()
	r, err := e.connector(instance+"-chat").host().Deliver(e.ctx, connectors.Inbound{
		ExternalID: externalID, ThreadKey: thread, Text: text, SentAt: time.Now(),
		Sender: connectors.Identity{ExternalID: "vis-" + thread, DisplayName: "Visitor " + thread},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// fence publishes a marker on an instance's topic and waits until every
// given client has it. The bus delivers in publish order, so anything
// published before the fence has reached those clients by then: "nothing
// else arrived" can be asserted without sleeping.
func (e *env) fence(instance string, clients ...*client) {
	e.t.Helper()
	mark := fmt.Sprintf("fence-%d", time.Now().UnixNano())
	b, _ := json.Marshal(hub.Update{Type: hub.UpdateTyping, InstanceID: instance, Signal: "fence", From: mark})
	if err := e.bus.Publish(e.ctx, hub.InstanceTopic(instance), b); err != nil {
		e.t.Fatal(err)
	}
	for _, c := range clients {
		c.waitFor("fence "+mark, func(m msg) bool { return m.Type == "typing" && m.From == mark })
	}
}

// waitEvent waits for a gateway signal matching pred.
func (e *env) waitEvent(what string, pred func(event) bool) event {
	e.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev := <-e.events:
			if pred(ev) {
				return ev
			}
		case <-timer.C:
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testConnector is a minimal channel: the test delivers through its host,
// and it records what the outbox sends.
type testConnector struct {
	policy connectors.Policy

	mu   sync.Mutex
	h    connectors.Host
	sent []connectors.Outbound
	news chan connectors.Outbound
}

func (e *env) buildConnector(cfg connectors.Config) (connectors.Connector, error) {
	var s struct {
		MaxText int `json:"max_text"`
	}
	dec := json.NewDecoder(bytes.NewReader(cfg.Settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	tc := &testConnector{
		policy: connectors.Policy{MaxTextLength: s.MaxText, Threading: connectors.ThreadingSession},
		news:   make(chan connectors.Outbound, 100),
	}
	e.mu.Lock()
	e.channels[cfg.ChannelID] = tc
	e.mu.Unlock()
	return tc, nil
}

func (tc *testConnector) Kind() connectors.Kind      { return testKind }
func (tc *testConnector) Policy() connectors.Policy  { return tc.policy }
func (tc *testConnector) Stop(context.Context) error { return nil }

func (tc *testConnector) Start(_ context.Context, h connectors.Host) error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.h = h
	return nil
}

func (tc *testConnector) host() connectors.Host {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.h
}

func (tc *testConnector) Send(_ context.Context, ob connectors.Outbound) (connectors.SendResult, error) {
	tc.mu.Lock()
	tc.sent = append(tc.sent, ob)
	tc.mu.Unlock()
	tc.news <- ob
	return connectors.SendResult{ExternalID: fmt.Sprintf("ext-%d", ob.MessageID)}, nil
}

func (tc *testConnector) sentCount(messageID int64) int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	n := 0
	for _, ob := range tc.sent {
		if ob.MessageID == messageID {
			n++
		}
	}
	return n
}

var _ connectors.Connector = (*testConnector)(nil)

// client is a test agent socket: a goroutine reads every frame into a log
// that the test searches.
type client struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
	resp *http.Response

	mu      sync.Mutex
	frames  []msg
	changed chan struct{} // closed and replaced on every new frame
	done    chan struct{}
	err     error // why reading stopped
	nextID  int
}

// msg is any server frame.
type msg struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	OK        bool            `json:"ok"`
	Data      json.RawMessage `json:"data"`
	Code      string          `json:"code"`
	Reason    string          `json:"reason"`
	Cursor    int64           `json:"cursor"`
	TicketID  int64           `json:"ticket_id"`
	Ticket    *store.Ticket   `json:"ticket"`
	RawMsg    json.RawMessage `json:"message"` // text for errors, object for updates
	ExpiresAt *time.Time      `json:"expires_at"`
	Signal    string          `json:"signal"`
	From      string          `json:"from"`
	Agent     *store.Agent    `json:"agent"`
	Count     int             `json:"count"`
	Offers    int             `json:"offers"`
	Reset     bool            `json:"reset"`
	SessionID string          `json:"session_id"`
}

func (m msg) message() *store.Message {
	if len(m.RawMsg) == 0 || m.RawMsg[0] != '{' {
		return nil
	}
	var sm store.Message
	if err := json.Unmarshal(m.RawMsg, &sm); err != nil {
		return nil
	}
	return &sm
}

func (m msg) text() string {
	var s string
	_ = json.Unmarshal(m.RawMsg, &s)
	return s
}

// dial opens a socket without authenticating.
func (e *env) dial(name string, header http.Header) *client {
	e.t.Helper()
	c, err := e.tryDial(name, header, nil)
	if err != nil {
		e.t.Fatalf("%s: dial: %v", name, err)
	}
	return c
}

func (e *env) tryDial(name string, header http.Header, d *websocket.Dialer) (*client, error) {
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: wait}
	}
	ws, resp, err := d.Dial(e.wsURL, header)
	if err != nil {
		return nil, err
	}
	c := &client{t: e.t, name: name, ws: ws, resp: resp, changed: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	e.t.Cleanup(func() { c.ws.Close() })
	return c, nil
}

// connect opens a socket and authenticates with an auth frame.
func (e *env) connect(name, token string) *client {
	e.t.Helper()
	c := e.dial(name, nil)
	r := c.request("auth", map[string]any{"token": token, "protocol": 1})
	if r.Type != "ready" {
		e.t.Fatalf("%s: auth: got %s %s %s", name, r.Type, r.Code, r.text())
	}
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			c.poke()
			return
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("undecodable frame %q: %w", b, err)
			c.mu.Unlock()
			c.poke()
			return
		}
		c.mu.Lock()
		c.frames = append(c.frames, m)
		c.mu.Unlock()
		c.poke()
	}
}

// poke wakes every waiter.
func (c *client) poke() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.TextMessage, b)
}

func (c *client) sendRaw(kind int, b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(wait))
	if err := c.ws.WriteMessage(kind, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// sendRawMayFail sends a frame the server may refuse before it has all of
// it (closing the socket), so a failed write is no failure.
func (c *client) sendRawMayFail(kind int, b []byte) {
	_ = c.ws.SetWriteDeadline(time.Now().Add(wait))
	_ = c.ws.WriteMessage(kind, b)
}

// request sends a frame with a fresh id and returns the reply with that
// id.
func (c *client) request(typ string, fields map[string]any) msg {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := fmt.Sprintf("%s-%d", c.name, c.nextID)
	c.mu.Unlock()
	f := map[string]any{"type": typ, "id": id}
	for k, v := range fields {
		f[k] = v
	}
	c.send(f)
	want := `"` + id + `"`
	return c.waitFor(typ+" reply "+id, func(m msg) bool {
		return string(m.ID) == want && (m.Type == "result" || m.Type == "error" || m.Type == "ready")
	})
}

// ok sends a request that must succeed and decodes its data into out.
func (c *client) ok(typ string, fields map[string]any, out any) {
	c.t.Helper()
	r := c.request(typ, fields)
	if r.Type != "result" || !r.OK {
		c.t.Fatalf("%s: %s: got %s %s: %s", c.name, typ, r.Type, r.Code, r.text())
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			c.t.Fatalf("%s: %s: decode %s: %v", c.name, typ, r.Data, err)
		}
	}
}

// fails sends a request that must fail with code.
func (c *client) fails(typ string, fields map[string]any, code string) msg {
	c.t.Helper()
	r := c.request(typ, fields)
	if r.Type != "error" || r.Code != code {
		c.t.Fatalf("%s: %s: want error %s, got %s %s: %s", c.name, typ, code, r.Type, r.Code, r.text())
	}
	return r
}

// waitFor returns the first frame received so far or later that matches.
func (c *client) waitFor(what string, pred func(msg) bool) msg {
	c.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for _, m := range c.frames {
			if pred(m) {
				c.mu.Unlock()
				return m
			}
		}
		err, changed := c.err, c.changed
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: socket ended: %v", c.name, what, err)
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s: timed out waiting for %s; frames: %s", c.name, what, c.dump())
		}
	}
}

// waitCount waits until n frames matching pred have arrived.
func (c *client) waitCount(what string, n int, pred func(msg) bool) {
	c.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		got := 0
		for _, m := range c.frames {
			if pred(m) {
				got++
			}
		}
		err, changed := c.err, c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: socket ended: %v", c.name, what, err)
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s: timed out waiting for %d× %s; frames: %s", c.name, n, what, c.dump())
		}
	}
}

// count counts the frames received so far that match.
func (c *client) count(pred func(msg) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.frames {
		if pred(m) {
			n++
		}
	}
	return n
}

func (c *client) all() []msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]msg(nil), c.frames...)
}

func (c *client) dump() string {
	var sb strings.Builder
	for _, m := range c.all() {
		fmt.Fprintf(&sb, "\n  %s id=%s cursor=%d ticket=%d code=%s %s", m.Type, m.ID, m.Cursor, m.TicketID, m.Code, clip(string(m.RawMsg), 80))
	}
	return sb.String()
}

// closed waits for the socket to end and returns the close frame the
// server sent.
func (c *client) closed() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("%s: socket still open", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ce *websocket.CloseError
	if !errors.As(c.err, &ce) {
		c.t.Fatalf("%s: socket ended without a close frame: %v", c.name, c.err)
	}
	return ce
}

func (c *client) close() {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("%s: server did not answer the close", c.name)
	}
}

func isMessageNew(messageID int64) func(msg) bool {
	return func(m msg) bool {
		sm := m.message()
		return m.Type == "message.new" && sm != nil && sm.ID == messageID
	}
}

func ofType(typ string, ticketID int64) func(msg) bool {
	return func(m msg) bool { return m.Type == typ && (ticketID == 0 || m.TicketID == ticketID) }
}

// syncBuffer collects logs from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// smallBufListener gives accepted connections a tiny send buffer.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}
