package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/apitest"
	"github.com/switchboard-hub/switchboard/internal/httpjson"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// testKind is the channel kind of the tests' connector.
const testKind = "apitest"

// testConn is a tiny channel connector: inbound messages go in through
// its host like any connector's, and what the outbox sends is recorded.
// Its settings are its policy, so tests can make a strict channel.
type testConn struct {
	policy connectors.Policy

	mu   sync.Mutex
	host connectors.Host
	sent []connectors.Outbound
}

func (c *testConn) Kind() connectors.Kind     { return testKind }
func (c *testConn) Policy() connectors.Policy { return c.policy }
func (c *testConn) Stop(context.Context) error {
	return nil
}

func (c *testConn) Start(_ context.Context, h connectors.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.host = h
	return nil
}

func (c *testConn) Send(_ context.Context, o connectors.Outbound) (connectors.SendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, o)
	return connectors.SendResult{ExternalID: "ext-" + o.IdempotencyKey, State: connectors.DeliverySent}, nil
}

func (c *testConn) Sent() []connectors.Outbound {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]connectors.Outbound(nil), c.sent...)
}

func (c *testConn) deliver(t *testing.T, in connectors.Inbound) connectors.Receipt {
	t.Helper()
	c.mu.Lock()
	h := c.host
	c.mu.Unlock()
	r, err := h.Deliver(context.Background(), in)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return r
}

var _ connectors.Connector = (*testConn)(nil)

// clock is the tests' time: the store and the router read it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// tenant is one instance of the environment with its credentials.
type tenant struct {
	id      string
	channel string // its test channel
	agent   *store.Agent
	key     string // a live API key
	keyID   int64
	keyName string
	revoked string // a revoked API key
	// agentToken is its agent's token: a credential, but not an API key.
	agentToken string
}

// maxText is the hub's text limit in the tests: small, so that the
// refusal of longer text is cheap to test.
const maxText = 4096

// env is a real hub on a migrated database with in-process routing, two
// instances (acme, globex) each with a running test channel, an agent and
// API keys, and the API handler in front of it.
type env struct {
	t     *testing.T
	st    *store.Store
	hub   *hub.Hub
	h     http.Handler
	clock *clock
	logs  *apitest.LogBuffer
	conns map[string]*testConn // by channel id
	acme  tenant
	glob  tenant
	// secrets are every credential made, for the log check.
	secrets []string
	seq     int // numbers inbound messages
}

func newEnv(t *testing.T, dsn string) *env {
	t.Helper()
	st := apitest.OpenStore(t, dsn)
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	st.SetClock(clk.Now)
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, clock: clk, logs: &apitest.LogBuffer{}, conns: map[string]*testConn{}}
	var mu sync.Mutex
	reg := connectors.NewRegistry()
	if err := reg.Register(testKind, func(c connectors.Config) (connectors.Connector, error) {
		conn := &testConn{}
		if len(c.Settings) > 0 {
			if err := json.Unmarshal(c.Settings, &conn.policy); err != nil {
				return nil, err
			}
		}
		mu.Lock()
		e.conns[c.ChannelID] = conn
		mu.Unlock()
		return conn, nil
	}); err != nil {
		t.Fatal(err)
	}
	bus := memroute.NewBus()
	t.Cleanup(func() { bus.Close() })
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := hub.New(hub.Deps{Store: st, Router: memroute.New(routing.Config{Now: clk.Now}), Bus: bus,
		Blobs: blobs, Connectors: reg, Logger: log}, hub.Config{MaxTextBytes: maxText})
	if err != nil {
		t.Fatal(err)
	}
	e.hub = h
	e.h = NewHandler(h, log)
	e.acme = e.tenant("acme", "")
	e.glob = e.tenant("globex", "")
	return e
}

// tenant makes an instance with a running test channel (settings are its
// policy), an agent, a live API key and a revoked one. Keys are made the
// way the admin API makes them: prefix "sbk_", only the hash stored.
func (e *env) tenant(id, settings string) tenant {
	t := e.t
	t.Helper()
	ctx := context.Background()
	if err := e.st.CreateInstance(ctx, &store.Instance{ID: id, Name: id, TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	tn := tenant{id: id, keyName: id + "-crm-sync"}
	tn.channel = e.channel(id, id+"-chat", settings)
	agentToken, hash := hub.NewToken("sbt_")
	tn.agent = &store.Agent{InstanceID: id, Name: "Agent of " + id, Email: "agent@" + id + ".test", TokenHash: hash, Capacity: 3}
	if err := e.st.CreateAgent(ctx, tn.agent); err != nil {
		t.Fatal(err)
	}
	key, hash := hub.NewToken(KeyPrefix)
	k := &store.APIKey{InstanceID: id, Name: tn.keyName, KeyHash: hash}
	if err := e.st.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	tn.key, tn.keyID = key, k.ID
	revoked, hash := hub.NewToken(KeyPrefix)
	rk := &store.APIKey{InstanceID: id, Name: id + "-old", KeyHash: hash}
	if err := e.st.CreateAPIKey(ctx, rk); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RevokeAPIKey(ctx, id, rk.ID); err != nil {
		t.Fatal(err)
	}
	tn.revoked, tn.agentToken = revoked, agentToken
	e.secrets = append(e.secrets, key, revoked, agentToken)
	return tn
}

// channel adds and starts a test channel whose settings are its policy.
func (e *env) channel(inst, id, settings string) string {
	e.t.Helper()
	ctx := context.Background()
	ch := store.Channel{ID: id, InstanceID: inst, Kind: testKind, Name: id, Enabled: true, Settings: settings}
	if err := e.st.CreateChannel(ctx, &ch); err != nil {
		e.t.Fatal(err)
	}
	if err := e.hub.StartChannel(ctx, ch); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// conversation delivers an inbound message from an end user on a channel
// and returns the ticket id.
func (e *env) conversation(channel, user, text string) int64 {
	e.t.Helper()
	e.seq++
	r := e.conns[channel].deliver(e.t, connectors.Inbound{
		ExternalID: fmt.Sprintf("in-%d", e.seq), ThreadKey: "thread-" + user,
		Sender: connectors.Identity{ExternalID: user, DisplayName: "User " + user, Email: user + "@example.org"},
		Text:   text,
	})
	return r.ConversationID
}

// sqliteDSN is a fresh SQLite database: for tests about the HTTP layer
// rather than the database.
func sqliteDSN(t *testing.T) string { return testenv.SQLite(t) }

// eachDatabase runs fn on a fresh environment on SQLite and on Postgres.
func eachDatabase(t *testing.T, fn func(t *testing.T, e *env)) {
	testenv.Databases(t, func(t *testing.T, dsn string) { fn(t, newEnv(t, dsn)) })
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func withoutHeader(k string) reqOpt { return func(r *http.Request) { r.Header.Del(k) } }

// response is one answer of the handler.
type response struct {
	status int
	body   []byte
	header http.Header
}

// do sends a request with key as the bearer credential ("" for none);
// body is sent as is when it is a string or []byte, else as JSON.
func (e *env) do(key, method, path string, body any, opts ...reqOpt) response {
	e.t.Helper()
	r := apitest.NewRequest(e.t, method, path, body)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := response{status: w.Code, body: w.Body.Bytes(), header: w.Header()}
	// Every answer, whatever it is, is JSON and never cached.
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q", method, path, cc)
	}
	if res.status >= 500 {
		e.t.Errorf("%s %s: %d: %s", method, path, res.status, res.body)
	}
	return res
}

// into decodes a response body, failing the test on an unexpected status.
func into[T any](t *testing.T, r response, want int) T {
	t.Helper()
	var v T
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, r.body)
	}
	return v
}

// errOf returns the error detail of an error response.
func errOf(t *testing.T, r response) httpjson.ErrorDetail {
	t.Helper()
	var b httpjson.ErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not an error body (%v): %s", err, r.body)
	}
	return b.Error
}

// wantError checks an error response's status, code and field.
func wantError(t *testing.T, r response, status int, code, field string) httpjson.ErrorDetail {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	d := errOf(t, r)
	if d.Code != code || d.Field != field {
		t.Errorf("error %q field %q, want %q field %q: %s", d.Code, d.Field, code, field, d.Message)
	}
	return d
}

func ticketPath(id int64, suffix string) string {
	return fmt.Sprintf("%s/tickets/%d%s", v1, id, suffix)
}
