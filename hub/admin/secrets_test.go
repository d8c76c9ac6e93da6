package admin

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestSecretsNeverEchoed: a channel secret is accepted, stored and handed
// to the connector, but no response body and no log line ever carries it:
// not on create, read, list, update, enable or disable, not in a
// connector's validation error that quotes it, not in a start error that
// quotes it.
func TestSecretsNeverEchoed(t *testing.T) {
	e := sqliteEnv(t)
	ctx := context.Background()
	const (
		secret  = "hunter2-very-secret-value"
		secret2 = "second-secret-value-42"
		base    = "/admin/v1/instances/acme"
	)
	if _, err := e.svc.CreateInstance(ctx, NewInstance{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	reqs := []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", base + "/channels", map[string]any{"id": "mail", "kind": "strict", "name": "Mail",
			"settings": map[string]any{"address": "help@acme.test"}, "secrets": map[string]any{"password": secret}}, 201},
		{"GET", base + "/channels/mail", nil, 200},
		{"GET", base + "/channels", nil, 200},
		// The connector's validation error quotes the password.
		{"PATCH", base + "/channels/mail", map[string]any{"settings": map[string]any{"address": "echo"}}, 422},
		{"POST", base + "/channels", map[string]any{"id": "mail2", "kind": "strict", "name": "Mail",
			"settings": map[string]any{"address": "echo"}, "secrets": map[string]any{"password": secret2}}, 422},
		// The running node's start error quotes the password.
		{"PATCH", base + "/channels/mail", map[string]any{"settings": map[string]any{"address": "fail-start@acme.test"}}, 200},
		{"PATCH", base + "/channels/mail", map[string]any{"secrets": map[string]any{"password": secret2}}, 200},
		{"POST", base + "/channels/mail/disable", nil, 200},
		{"POST", base + "/channels/mail/enable", nil, 200},
		{"PATCH", base + "/channels/mail", map[string]any{"name": "Mail again", "settings": map[string]any{"address": "help@acme.test"}}, 200},
		{"GET", "/admin/v1/openapi.json", nil, 200},
	}
	for _, r := range reqs {
		status, body, _ := e.do(r.method, r.path, r.body)
		if status != r.want {
			t.Errorf("%s %s: %d, want %d: %s", r.method, r.path, status, r.want, body)
		}
	}
	// The redacted errors still say what went wrong.
	var sawRedacted, sawStartError bool
	for _, b := range e.bodies {
		sawRedacted = sawRedacted || strings.Contains(b, "login refused for password \\\"[redacted]\\\"")
		sawStartError = sawStartError || strings.Contains(b, `"start_error":"connect: authentication failed with password [redacted]"`)
	}
	if !sawRedacted || !sawStartError {
		t.Errorf("redacted validation error seen: %v, redacted start error seen: %v", sawRedacted, sawStartError)
	}
	for _, s := range []string{secret, secret2} {
		for i, b := range e.bodies {
			if strings.Contains(b, s) {
				t.Errorf("response %d carries a secret: %s", i, b)
			}
		}
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("the log carries a secret:\n%s", e.logs.String())
		}
	}
	if !strings.Contains(e.logs.String(), `"secrets_set":["password"]`) {
		t.Errorf("the audit log should name the secrets set:\n%s", e.logs.String())
	}
	// Write-only is not write-never: the store and the connector have it.
	ch, err := e.st.Channel(ctx, "acme", "mail")
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.SecretMap()["password"]; got != secret2 {
		t.Errorf("stored password %q, want the updated one", got)
	}
	started := e.runner.last["mail"]
	if got := started.SecretMap()["password"]; got != secret2 {
		t.Errorf("the runner started the channel with password %q", got)
	}
}

// TestRunnerFollowsChanges: the running node starts a channel when it is
// created, changed or enabled, and stops it when it is disabled or
// deleted; without a runner (the CLI) nothing breaks.
func TestRunnerFollowsChanges(t *testing.T) {
	e := sqliteEnv(t)
	ctx := context.Background()
	if _, err := e.svc.CreateInstance(ctx, NewInstance{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	off := false
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"create enabled", func() error {
			_, err := e.svc.CreateChannel(ctx, "acme", NewChannel{ID: "chat", Kind: "livechat", Name: "Chat"})
			return err
		}, []string{"start chat"}},
		{"create disabled", func() error {
			_, err := e.svc.CreateChannel(ctx, "acme", NewChannel{ID: "chat2", Kind: "livechat", Name: "Chat", Enabled: &off})
			return err
		}, []string{"stop chat2"}},
		{"update", func() error {
			name := "Chat!"
			_, err := e.svc.UpdateChannel(ctx, "acme", "chat", ChannelUpdate{Name: &name})
			return err
		}, []string{"start chat"}},
		{"disable", func() error { _, err := e.svc.SetChannelEnabled(ctx, "acme", "chat", false); return err }, []string{"stop chat"}},
		{"enable", func() error { _, err := e.svc.SetChannelEnabled(ctx, "acme", "chat", true); return err }, []string{"start chat"}},
		{"delete", func() error { return e.svc.DeleteChannel(ctx, "acme", "chat") }, []string{"stop chat"}},
		{"empty update", func() error {
			_, err := e.svc.UpdateChannel(ctx, "acme", "chat2", ChannelUpdate{})
			return err
		}, nil},
		{"refused change", func() error {
			_, err := e.svc.UpdateChannel(ctx, "acme", "chat2", ChannelUpdate{Settings: []byte(`[1]`)})
			if err == nil {
				t.Error("settings [1] accepted")
			}
			return nil
		}, nil},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := e.runner.take(); !slices.Equal(got, s.want) {
			t.Errorf("%s: runner got %v, want %v", s.name, got, s.want)
		}
	}

	plain := NewService(e.st, Options{})
	if _, err := plain.CreateChannel(ctx, "acme", NewChannel{ID: "chat3", Kind: "anything", Name: "Chat", Settings: []byte(`{"a":1}`)}); err != nil {
		t.Fatalf("without registry and runner: %v", err)
	}
	if _, err := plain.SetChannelEnabled(ctx, "acme", "chat3", false); err != nil {
		t.Fatal(err)
	}
	if err := plain.DeleteChannel(ctx, "acme", "chat3"); err != nil {
		t.Fatal(err)
	}
}
