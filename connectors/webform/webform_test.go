package webform

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
)

func TestSettingsDefaults(t *testing.T) {
	for _, raw := range []string{"", "null", "{}", "  {}  "} {
		c, err := New(connectors.Config{ChannelID: "c", Settings: json.RawMessage(raw)})
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		want := Settings{
			RequiredFields: []string{"name", "email", "message"},
			MaxBodyBytes:   256 << 10,
			RateLimit:      RateLimit{PerMinute: 5, Burst: 5},
			HoneypotField:  "website",
			Title:          "Contact us",
		}
		if got := c.Settings(); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: settings\n%+v\nwant\n%+v", raw, got, want)
		}
	}
}

func TestSettingsFull(t *testing.T) {
	c, err := New(connectors.Config{Settings: json.RawMessage(`{
		"required_fields": ["email", "message", "subject"],
		"extra_fields": [{"name": "order_number", "label": "Order number", "required": true, "max_length": 20}, {"name": "phone"}],
		"max_body_bytes": 131072,
		"rate_limit": {"per_minute": 10, "burst": 3},
		"honeypot_field": "fax",
		"redirect_url": "https://www.example.com/thanks",
		"allowed_origins": ["https://WWW.Example.com", "http://localhost:8080/"],
		"trust_forwarded_for": true,
		"title": "Write to us"
	}`)})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Settings()
	if s.ExtraFields[1].Label != "phone" || s.ExtraFields[1].MaxLength != 200 || s.ExtraFields[0].MaxLength != 20 {
		t.Errorf("extra fields %+v", s.ExtraFields)
	}
	if !reflect.DeepEqual(s.AllowedOrigins, []string{"https://www.example.com", "http://localhost:8080"}) {
		t.Errorf("origins %v", s.AllowedOrigins)
	}
	if s.RateLimit != (RateLimit{PerMinute: 10, Burst: 3}) || !s.TrustForwardedFor || s.MaxBodyBytes != 131072 {
		t.Errorf("settings %+v", s)
	}
}

// TestSettingsErrors: every bad setting is refused with a message that
// names the field.
func TestSettingsErrors(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`{"max_body_byte": 1}`, `settings.max_body_byte: unknown field`},
		{`{"rate_limit": {"per_second": 1}}`, `settings.rate_limit.per_second: unknown field`},
		{`{"extra_fields": [{"name": "a"}, {"name": "b", "lable": "B"}]}`, `settings.extra_fields[1].lable: unknown field`},
		{`{"Title": "x"}`, `settings.Title: unknown field`},
		{`{"max_body_bytes": "64k"}`, `settings.max_body_bytes: must be a whole number, not string`},
		{`{"max_body_bytes": 1.5}`, `settings.max_body_bytes: must be a whole number`},
		{`{"extra_fields": [{"name": "a", "max_length": "x"}]}`, `settings.extra_fields.max_length: must be a whole number`},
		{`{"allowed_origins": "https://a.example"}`, `settings.allowed_origins: must be a list`},
		{`{"trust_forwarded_for": "yes"}`, `settings.trust_forwarded_for: must be true or false`},
		{`[]`, `settings: must be a JSON object`},
		{`{"title": "x"`, `settings: invalid JSON`},
		{`{} {}`, `settings: unexpected data after the JSON object`},
		{`{"required_fields": ["email", "message", "phone"]}`, `settings.required_fields[2]: "phone" is not a standard field`},
		{`{"required_fields": ["name", "message"]}`, `settings.required_fields: must include "email"`},
		{`{"required_fields": ["email"]}`, `settings.required_fields: must include "message"`},
		{`{"extra_fields": [{"name": "Order Number"}]}`, `settings.extra_fields[0].name: "Order Number" must be lower-case`},
		{`{"extra_fields": [{"label": "x"}]}`, `settings.extra_fields[0].name: "" must be`},
		{`{"extra_fields": [{"name": "email"}]}`, `settings.extra_fields[0].name: "email" is already used`},
		{`{"extra_fields": [{"name": "website"}]}`, `settings.extra_fields[0].name: "website" is already used`},
		{`{"extra_fields": [{"name": "a"}, {"name": "a"}]}`, `settings.extra_fields[1].name: "a" is listed twice`},
		{`{"extra_fields": [{"name": "a", "max_length": 1001}]}`, `settings.extra_fields[0].max_length: must be between 1 and 1000`},
		{`{"max_body_bytes": 10}`, `settings.max_body_bytes: must be between 1024 and 10485760`},
		{`{"max_body_bytes": 1073741824}`, `settings.max_body_bytes: must be between`},
		{`{"rate_limit": {"per_minute": -1}}`, `settings.rate_limit.per_minute: must not be negative`},
		{`{"rate_limit": {"burst": -1}}`, `settings.rate_limit.burst: must not be negative`},
		{`{"honeypot_field": "message"}`, `settings.honeypot_field: "message" is a field people fill in`},
		{`{"honeypot_field": "web site"}`, `settings.honeypot_field: "web site" must be`},
		{`{"redirect_url": "/thanks"}`, `settings.redirect_url: "/thanks" must be an absolute http or https URL`},
		{`{"redirect_url": "javascript:alert(1)"}`, `settings.redirect_url:`},
		{`{"allowed_origins": ["https://www.example.com/contact"]}`, `settings.allowed_origins[0]: "https://www.example.com/contact" must be an origin`},
		{`{"allowed_origins": ["www.example.com"]}`, `settings.allowed_origins[0]:`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := New(connectors.Config{ChannelID: "forms", Settings: json.RawMessage(tt.raw)})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `channel "forms"`) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestFactoryAndPolicy(t *testing.T) {
	reg := connectors.NewRegistry()
	if err := reg.Register(Kind, Factory); err != nil {
		t.Fatal(err)
	}
	c, err := reg.Build("webform", connectors.Config{ChannelID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind() != "webform" {
		t.Errorf("Kind %q", c.Kind())
	}
	if _, ok := c.(connectors.HTTPRoutes); !ok {
		t.Error("no HTTP routes")
	}
	c, err = reg.Build("webform", connectors.Config{Settings: json.RawMessage(`{"bogus":1}`)})
	if err == nil || c != nil {
		t.Errorf("bad settings: connector %v, error %v; want a nil interface and an error", c, err)
	}

	want := connectors.Policy{
		Threading:     connectors.ThreadingNone,
		ReplyVia:      "email",
		ContactFields: []string{"name", "email"},
	}
	wf, _ := New(connectors.Config{})
	if got := wf.Policy(); !reflect.DeepEqual(got, want) {
		t.Errorf("Policy %+v, want %+v", got, want)
	}
}

// TestSendRefused: replies go out by email; Send is only a guard.
func TestSendRefused(t *testing.T) {
	c, _ := New(connectors.Config{})
	res, err := c.Send(context.Background(), connectors.Outbound{Text: "Hi", To: connectors.Identity{Email: "a@example.com"}})
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *connectors.Error", err)
	}
	if ce.Class != connectors.Refused || ce.Code != "reply_via_email" || !strings.Contains(ce.Msg, "email channel") {
		t.Errorf("error %+v", ce)
	}
	if connectors.ClassOf(err) != connectors.Refused || !errors.Is(err, connectors.ErrUnsupported) {
		t.Errorf("ClassOf %v, Is(ErrUnsupported) %v", connectors.ClassOf(err), errors.Is(err, connectors.ErrUnsupported))
	}
	if res != (connectors.SendResult{}) {
		t.Errorf("result %+v", res)
	}
}

func TestLifecycle(t *testing.T) {
	c, _ := New(connectors.Config{})
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := c.Start(context.Background(), nil); err == nil {
		t.Error("Start with a nil host accepted")
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Start(ctx, newRecordingHost()); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v", err)
	}
	if err := c.Start(context.Background(), newRecordingHost()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), newRecordingHost()); err == nil {
		t.Error("second Start accepted")
	}
	for range 2 {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
}
