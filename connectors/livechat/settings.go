package livechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Settings is the channel's JSON configuration (Config.Settings). Unknown
// fields are rejected; zero values take the documented defaults.
type Settings struct {
	// AllowedOrigins lists the web origins ("https://shop.example.com")
	// whose pages may open the visitor websocket. The hub's own origin is
	// always allowed (the demo page); "*" allows every origin. Default:
	// none besides the hub's own.
	AllowedOrigins []string `json:"allowed_origins"`
	// Title is the widget header. Default "Chat with us".
	Title string `json:"title"`
	// Color is the widget's accent colour as #rrggbb. Default "#2563eb".
	Color string `json:"color"`
	// Greeting is shown above an empty conversation. Default "Hi! How can
	// we help you?".
	Greeting string `json:"greeting"`
	// AskContact makes the widget offer optional name and email fields
	// (M3: only what the visitor types in reaches the hub). Default false.
	AskContact bool `json:"ask_contact"`
	// MaxMessageLength is the longest visitor or agent message in runes.
	// Default 4000, at most 100000.
	MaxMessageLength int `json:"max_message_length"`
	// RateLimit bounds the messages one visitor may send.
	RateLimit RateLimit `json:"rate_limit"`
	// TokenTTL is how long a visitor token stays valid after it was last
	// issued (every session.start issues a fresh one), as a Go duration
	// ("720h"). Default 30 days.
	TokenTTL Duration `json:"token_ttl"`
	// SendQueue is the number of frames buffered per connection; a tab
	// that falls this far behind is dropped so it never stalls the others.
	// Default 64.
	SendQueue int `json:"send_queue"`
}

// RateLimit is a token bucket per visitor (per node: a visitor's tabs on
// one node share it).
type RateLimit struct {
	// PerMinute is the sustained rate. Default 30.
	PerMinute int `json:"per_minute"`
	// Burst is how many messages may come at once. Default 10.
	Burst int `json:"burst"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON accepts "90s", "720h" and the like.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "720h"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Defaults and bounds of Settings.
const (
	DefaultTitle            = "Chat with us"
	DefaultColor            = "#2563eb"
	DefaultGreeting         = "Hi! How can we help you?"
	DefaultMaxMessageLength = 4000
	DefaultPerMinute        = 30
	DefaultBurst            = 10
	DefaultTokenTTL         = 30 * 24 * time.Hour
	DefaultSendQueue        = 64

	maxMaxMessageLength = 100000
	maxTitleLength      = 80
	maxGreetingLength   = 500
)

var colorRe = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// decodeSettings decodes raw strictly, applies defaults and validates,
// naming the bad field in every error.
func decodeSettings(raw json.RawMessage) (Settings, error) {
	// The shadow field takes token_ttl as a plain string, so that a bad
	// duration is reported with its field name (encoding/json does not
	// name the field of an UnmarshalJSON error).
	var in struct {
		Settings
		TokenTTL *string `json:"token_ttl"`
	}
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return Settings{}, settingsError(err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return Settings{}, errors.New("settings: trailing data after the JSON object")
		}
	}
	s := in.Settings
	if in.TokenTTL != nil {
		d, err := time.ParseDuration(*in.TokenTTL)
		if err != nil {
			return Settings{}, fmt.Errorf("settings.token_ttl: want a duration such as \"720h\": %w", err)
		}
		s.TokenTTL = Duration(d)
	}
	s.applyDefaults()
	if err := s.validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// settingsError names the field of a JSON decoding error.
func settingsError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field := strings.TrimPrefix(te.Field, "Settings.") // the embedded struct of the shadow
		return fmt.Errorf("settings.%s: want %s, got JSON %s", field, te.Type, te.Value)
	}
	// encoding/json words unknown fields as `json: unknown field "x"`.
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("settings: unknown field %s: %w", strings.TrimPrefix(msg, "json: unknown field "), err)
	}
	return fmt.Errorf("settings: %w", err)
}

func (s *Settings) applyDefaults() {
	if s.Title == "" {
		s.Title = DefaultTitle
	}
	if s.Color == "" {
		s.Color = DefaultColor
	}
	if s.Greeting == "" {
		s.Greeting = DefaultGreeting
	}
	if s.MaxMessageLength == 0 {
		s.MaxMessageLength = DefaultMaxMessageLength
	}
	if s.RateLimit.PerMinute == 0 {
		s.RateLimit.PerMinute = DefaultPerMinute
	}
	if s.RateLimit.Burst == 0 {
		s.RateLimit.Burst = DefaultBurst
	}
	if s.TokenTTL == 0 {
		s.TokenTTL = Duration(DefaultTokenTTL)
	}
	if s.SendQueue == 0 {
		s.SendQueue = DefaultSendQueue
	}
}

func (s *Settings) validate() error {
	for i, o := range s.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return fmt.Errorf("settings.allowed_origins[%d]: %w", i, err)
		}
		s.AllowedOrigins[i] = norm
	}
	if err := checkText(s.Title, maxTitleLength); err != nil {
		return fmt.Errorf("settings.title: %w", err)
	}
	// The colour goes into a CSS custom property; the pattern keeps it
	// from carrying anything but a colour.
	if !colorRe.MatchString(s.Color) {
		return fmt.Errorf("settings.color: want #rrggbb, got %q", s.Color)
	}
	if err := checkText(s.Greeting, maxGreetingLength); err != nil {
		return fmt.Errorf("settings.greeting: %w", err)
	}
	if s.MaxMessageLength < 1 || s.MaxMessageLength > maxMaxMessageLength {
		return fmt.Errorf("settings.max_message_length: want 1 to %d, got %d", maxMaxMessageLength, s.MaxMessageLength)
	}
	if s.RateLimit.PerMinute < 1 {
		return fmt.Errorf("settings.rate_limit.per_minute: want at least 1, got %d", s.RateLimit.PerMinute)
	}
	if s.RateLimit.Burst < 1 {
		return fmt.Errorf("settings.rate_limit.burst: want at least 1, got %d", s.RateLimit.Burst)
	}
	if time.Duration(s.TokenTTL) < time.Minute {
		return fmt.Errorf("settings.token_ttl: want at least 1m, got %s", time.Duration(s.TokenTTL))
	}
	if s.SendQueue < 4 || s.SendQueue > 4096 {
		return fmt.Errorf("settings.send_queue: want 4 to 4096, got %d", s.SendQueue)
	}
	return nil
}

func checkText(s string, max int) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("at most %d characters, got %d", max, n)
	}
	return nil
}

// normalizeOrigin turns "https://Shop.example.com/" into
// "https://shop.example.com", the form browsers send in Origin.
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil {
		return "", fmt.Errorf("not an origin: %q", o)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf(`want "scheme://host[:port]" (or "*"), got %q`, o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
