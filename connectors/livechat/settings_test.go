package livechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

func TestNewSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		wantErr  string // substring; "" for success
		check    func(t *testing.T, s Settings)
	}{
		{name: "empty takes defaults", settings: ``, check: func(t *testing.T, s Settings) {
			want := Settings{
				Title: DefaultTitle, Color: DefaultColor, Greeting: DefaultGreeting,
				MaxMessageLength: 4000, RateLimit: RateLimit{PerMinute: 30, Burst: 10},
				TokenTTL: Duration(30 * 24 * time.Hour), SendQueue: 64,
			}
			if !reflect.DeepEqual(s, want) {
				t.Errorf("got %+v, want %+v", s, want)
			}
		}},
		{name: "null takes defaults", settings: `null`},
		{name: "full", settings: `{"allowed_origins":["https://Shop.example.com/","*"],"title":"Help","color":"#AABBCC","greeting":"Hello","ask_contact":true,"max_message_length":500,"rate_limit":{"per_minute":5,"burst":2},"token_ttl":"48h","send_queue":16}`,
			check: func(t *testing.T, s Settings) {
				if got := s.AllowedOrigins; !reflect.DeepEqual(got, []string{"https://shop.example.com", "*"}) {
					t.Errorf("origins %q", got)
				}
				if s.MaxMessageLength != 500 || s.RateLimit.Burst != 2 || time.Duration(s.TokenTTL) != 48*time.Hour || !s.AskContact || s.SendQueue != 16 {
					t.Errorf("got %+v", s)
				}
			}},
		{name: "unknown field", settings: `{"colour":"#ffffff"}`, wantErr: `settings: unknown field "colour"`},
		{name: "unknown nested field", settings: `{"rate_limit":{"per_second":1}}`, wantErr: `unknown field "per_second"`},
		{name: "wrong type", settings: `{"max_message_length":"long"}`, wantErr: `settings.max_message_length: want int`},
		{name: "wrong nested type", settings: `{"rate_limit":{"burst":true}}`, wantErr: `settings.rate_limit.burst`},
		{name: "bad colour", settings: `{"color":"red;background:url(x)"}`, wantErr: `settings.color`},
		{name: "bad origin", settings: `{"allowed_origins":["https://ok.example","https://x.example/path"]}`, wantErr: `settings.allowed_origins[1]`},
		{name: "origin without scheme", settings: `{"allowed_origins":["shop.example.com"]}`, wantErr: `settings.allowed_origins[0]`},
		{name: "max length too big", settings: `{"max_message_length":1000000}`, wantErr: `settings.max_message_length`},
		{name: "negative max length", settings: `{"max_message_length":-1}`, wantErr: `settings.max_message_length`},
		{name: "negative rate", settings: `{"rate_limit":{"per_minute":-5}}`, wantErr: `settings.rate_limit.per_minute`},
		{name: "bad ttl", settings: `{"token_ttl":"forever"}`, wantErr: `settings.token_ttl`},
		{name: "ttl as number", settings: `{"token_ttl":3600}`, wantErr: `settings.token_ttl`},
		{name: "short ttl", settings: `{"token_ttl":"1s"}`, wantErr: `settings.token_ttl`},
		{name: "long title", settings: `{"title":"` + strings.Repeat("x", 81) + `"}`, wantErr: `settings.title`},
		{name: "send queue too small", settings: `{"send_queue":1}`, wantErr: `settings.send_queue`},
		{name: "trailing data", settings: `{} {}`, wantErr: `trailing data`},
		{name: "not an object", settings: `[1]`, wantErr: `settings`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := New(connectors.Config{
				ChannelID: testChannel, Settings: json.RawMessage(tt.settings),
				Secrets: map[string]string{SecretVisitor: testSecret}, PubSub: newMemPubSub(),
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, k.Settings())
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	good := func() connectors.Config {
		return connectors.Config{ChannelID: testChannel, Secrets: map[string]string{SecretVisitor: testSecret}, PubSub: newMemPubSub()}
	}
	tests := []struct {
		name    string
		mutate  func(*connectors.Config)
		wantErr string
	}{
		{"missing secret", func(c *connectors.Config) { c.Secrets = nil }, `secret "visitor_secret" is required`},
		{"empty secret", func(c *connectors.Config) { c.Secrets[SecretVisitor] = "" }, `secret "visitor_secret" is required`},
		{"short secret", func(c *connectors.Config) { c.Secrets[SecretVisitor] = "hunter2" }, `at least 16 bytes`},
		{"no pubsub", func(c *connectors.Config) { c.PubSub = nil }, `PubSub is required`},
		{"no channel", func(c *connectors.Config) { c.ChannelID = "" }, `ChannelID is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := Factory(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}

// The secret never reaches the log, whatever happens (Config contract).
func TestSecretNotLogged(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, withConfig(func(c *connectors.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	c := e.nodes[0].dial(t, nil)
	ready := c.start(nil)
	c.say("m1", "hello")
	c.send(map[string]any{"type": "session.start", "token": ready.Token + "x"})
	c.expectError(codeTokenInvalid)
	_ = e.k().Stop(t.Context())
	if out := buf.String(); strings.Contains(out, testSecret) || strings.Contains(out, ready.Token) {
		t.Fatalf("log shows the secret or a token:\n%s", out)
	}
	if !strings.Contains(buf.String(), "component=connectors/livechat") {
		t.Fatalf("log lines are not tagged with the component:\n%s", buf.String())
	}
}

func TestPolicyAndRegistry(t *testing.T) {
	e := newEnv(t, withSettings(`{"max_message_length":1234}`))
	p := e.k().Policy()
	want := connectors.Policy{MaxTextLength: 1234, Threading: connectors.ThreadingSession, ContactFields: []string{"name", "email"}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy %+v, want %+v", p, want)
	}
	r := connectors.NewRegistry()
	if err := r.Register(Kind, Factory); err != nil {
		t.Fatal(err)
	}
	c, err := r.Build(Kind, connectors.Config{ChannelID: "x", Secrets: map[string]string{SecretVisitor: testSecret}, PubSub: newMemPubSub()})
	if err != nil || c.Kind() != "livechat" {
		t.Fatalf("build: %v %v", c, err)
	}
	_, err = r.Build(Kind, connectors.Config{ChannelID: "x", PubSub: newMemPubSub()})
	if err == nil {
		t.Fatal("want an error without secret")
	}
	// A failed factory returns a nil interface, not a typed nil.
	if c, _ := Factory(connectors.Config{}); c != nil {
		t.Fatalf("want a nil Connector, got %#v", c)
	}
	if !errors.Is(e.k().SendSignal(t.Context(), connectors.Signal{ConversationID: 1, Kind: "wave"}), connectors.ErrUnsupported) {
		t.Fatal("an unknown signal kind is not ErrUnsupported")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used by many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
