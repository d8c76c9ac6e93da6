package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/apitest"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

const testToken = "operator-token-for-tests"

// fakeConn is the connector the test registry builds; validation never
// starts it.
type fakeConn struct{ kind connectors.Kind }

func (c fakeConn) Kind() connectors.Kind                        { return c.kind }
func (c fakeConn) Policy() connectors.Policy                    { return connectors.Policy{} }
func (c fakeConn) Start(context.Context, connectors.Host) error { return nil }
func (c fakeConn) Stop(context.Context) error                   { return nil }
func (c fakeConn) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, connectors.ErrUnsupported
}

// claimConn is a connector with exclusive claims (connectors.Claimer).
type claimConn struct {
	fakeConn
	claims []string
}

func (c claimConn) Claims() []string { return c.claims }

// SecretNames: a "claiming" channel takes the secret "password" only.
func (c claimConn) SecretNames() []string { return []string{"password"} }

// strictSettings is the "strict" kind's configuration: decoded strictly,
// like real factories do.
type strictSettings struct {
	Address string `json:"address"`
}

// testRegistry has permissive "email" and "livechat" kinds (the examples
// of the API description use them) and a "strict" kind that validates its
// settings and requires the secret "password". Its error for the address
// "echo" quotes the password, as a careless connector might, to prove the
// Service redacts it.
func testRegistry(t testing.TB) *connectors.Registry {
	t.Helper()
	reg := connectors.NewRegistry()
	permissive := func(kind connectors.Kind) connectors.Factory {
		return func(cfg connectors.Config) (connectors.Connector, error) {
			var m map[string]any
			if err := json.Unmarshal(cfg.Settings, &m); err != nil {
				return nil, fmt.Errorf("settings: %w", err)
			}
			return fakeConn{kind}, nil
		}
	}
	strict := func(cfg connectors.Config) (connectors.Connector, error) {
		var s strictSettings
		dec := json.NewDecoder(bytes.NewReader(cfg.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
		switch {
		case s.Address == "":
			return nil, errors.New("address: required")
		case s.Address == "echo":
			return nil, fmt.Errorf("address: login refused for password %q", cfg.Secrets["password"])
		case cfg.Secrets["password"] == "":
			return nil, errors.New("secret password: required")
		}
		return fakeConn{"strict"}, nil
	}
	// "claiming" connectors claim the strings of their settings' "claims".
	claiming := func(cfg connectors.Config) (connectors.Connector, error) {
		var s struct {
			Claims []string `json:"claims"`
		}
		if err := json.Unmarshal(cfg.Settings, &s); err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
		return claimConn{fakeConn{"claiming"}, s.Claims}, nil
	}
	for kind, f := range map[connectors.Kind]connectors.Factory{"email": permissive("email"), "livechat": permissive("livechat"), "strict": strict, "claiming": claiming} {
		if err := reg.Register(kind, f); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// fakeRunner records what the Service tells the running node. A channel
// whose settings contain "fail-start" fails to start with an error that
// quotes its password.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	last  map[string]store.Channel
}

func (r *fakeRunner) StartChannel(_ context.Context, ch store.Channel) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "start "+ch.ID)
	if r.last == nil {
		r.last = map[string]store.Channel{}
	}
	r.last[ch.ID] = ch
	if strings.Contains(ch.Settings, "fail-start") {
		return fmt.Errorf("connect: authentication failed with password %s", ch.SecretMap()["password"])
	}
	return nil
}

func (r *fakeRunner) StopChannel(_ context.Context, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "stop "+id)
}

func (r *fakeRunner) ChannelsChanged(context.Context) {}

func (r *fakeRunner) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// env is a Service and its handler on a migrated store, with every log
// line captured.
type env struct {
	t      *testing.T
	st     *store.Store
	svc    *Service
	h      http.Handler
	logs   *apitest.LogBuffer
	runner *fakeRunner
	// bodies are every response body served, for the secrets check.
	bodies []string
}

func newEnv(t *testing.T, dsn string) *env {
	t.Helper()
	st := apitest.OpenStore(t, dsn)
	logs := &apitest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	runner := &fakeRunner{}
	svc := NewService(st, Options{Registry: testRegistry(t), Runner: runner, Logger: log})
	return &env{t: t, st: st, svc: svc, h: NewHandler(svc, testToken, log), logs: logs, runner: runner}
}

// sqliteEnv is an env on a fresh SQLite file: for tests that are about the
// HTTP layer rather than the database.
func sqliteEnv(t *testing.T) *env { return newEnv(t, testenv.SQLite(t)) }

type reqOpt func(*http.Request)

func noAuth(r *http.Request) { r.Header.Del("Authorization") }

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends a request to the handler; body is sent as is when it is a
// string or []byte, else encoded as JSON.
func (e *env) do(method, path string, body any, opts ...reqOpt) (int, []byte, http.Header) {
	e.t.Helper()
	return e.doWith(e.h, method, path, body, opts...)
}

func (e *env) doWith(h http.Handler, method, path string, body any, opts ...reqOpt) (int, []byte, http.Header) {
	e.t.Helper()
	r := apitest.NewRequest(e.t, method, path, body)
	r.Header.Set("Authorization", "Bearer "+testToken)
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	e.bodies = append(e.bodies, w.Body.String())
	return w.Code, w.Body.Bytes(), w.Header()
}

// obj decodes a JSON object response.
func obj(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, b)
	}
	return m
}

// errOf returns the code and field of an error response.
func errOf(t testing.TB, b []byte) (code, field string) {
	t.Helper()
	e, ok := obj(t, b)["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error body: %s", b)
	}
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

// fixture is one instance with one of everything.
type fixture struct {
	inst, channel    string
	team, agent, key int64
	agentToken       string
}

func seed(t *testing.T, svc *Service, inst string) fixture {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateInstance(ctx, NewInstance{ID: inst, Name: "Instance " + inst, TimeZone: "Europe/Amsterdam"}); err != nil {
		t.Fatal(err)
	}
	tm, err := svc.CreateTeam(ctx, inst, NewTeam{Name: "Support"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := svc.CreateChannel(ctx, inst, NewChannel{ID: inst + "-web", Kind: "email", Name: "Web", Secrets: map[string]string{"password": "fixture-password"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := svc.CreateAgent(ctx, inst, NewAgent{Name: "Agent", Email: "agent@" + inst + ".test", TeamIDs: []int64{tm.ID}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := svc.CreateAPIKey(ctx, inst, NewAPIKey{Name: "key"})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{inst: inst, channel: ch.ID, team: tm.ID, agent: a.Agent.ID, key: k.APIKey.ID, agentToken: a.Token}
}
