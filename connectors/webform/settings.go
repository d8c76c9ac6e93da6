package webform

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/switchboard-hub/switchboard/connectors/internal/jsonsettings"
)

// Settings is the channel's JSON configuration (connectors.Config.Settings).
// Every field is optional; the zero value means the documented default.
// Unknown fields are rejected so that a typo never silently falls back to a
// default.
type Settings struct {
	// RequiredFields lists which of the standard fields (name, email,
	// subject, message) must be filled. Default: name, email, message.
	// It must include email (replies leave by email) and message (the
	// ticket's text).
	RequiredFields []string `json:"required_fields,omitempty"`
	// ExtraFields are further fields the form asks for; their values are
	// kept in Inbound.Meta under the field name.
	ExtraFields []ExtraField `json:"extra_fields,omitempty"`
	// MaxBodyBytes limits the request body. Default 256 KiB, or more when
	// extra fields need it: the longest valid submission, %-encoded, always
	// fits (10,000 characters of up to 4 bytes, each byte as %XX, are
	// 120,000 bytes). At most 10 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// RateLimit limits submissions per client address.
	RateLimit RateLimit `json:"rate_limit"`
	// HoneypotField names a field real people leave empty (it is hidden
	// from them). Default "website".
	HoneypotField string `json:"honeypot_field,omitempty"`
	// RedirectURL, when set, is where an HTML-form submission is sent
	// (303 See Other) after it was stored, instead of the thank-you page.
	RedirectURL string `json:"redirect_url,omitempty"`
	// AllowedOrigins are the origins (scheme://host[:port], or "*") whose
	// pages may call the JSON endpoint from a browser (CORS). Default: none.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// TrustForwardedFor makes the rate limiter use the right-most address
	// of X-Forwarded-For (the one the nearest proxy appended). Only turn it
	// on behind a proxy that sets the header; otherwise clients can choose
	// their own address. Default false.
	TrustForwardedFor bool `json:"trust_forwarded_for,omitempty"`
	// Title is the heading of the served form page. Default "Contact us".
	Title string `json:"title,omitempty"`
}

// RateLimit is a per-client token bucket: Burst submissions at once, then
// PerMinute a minute.
type RateLimit struct {
	PerMinute int  `json:"per_minute,omitempty"` // default 5
	Burst     int  `json:"burst,omitempty"`      // default 5
	Disabled  bool `json:"disabled,omitempty"`   // no limit (e.g. behind a limiting proxy)
}

// ExtraField is an additional form field.
type ExtraField struct {
	// Name is the form field name and the Inbound.Meta key:
	// lower-case letters, digits and underscores, starting with a letter.
	Name string `json:"name"`
	// Label is shown on the form. Default: Name.
	Label     string `json:"label,omitempty"`
	Required  bool   `json:"required,omitempty"`
	Multiline bool   `json:"multiline,omitempty"`
	// MaxLength in characters; default 200, at most 1,000.
	MaxLength int `json:"max_length,omitempty"`
}

// longestSubmission is the size of the longest valid submission sent
// %-encoded: every field full, in characters of four bytes, each byte as
// %XX, plus room for the field names, the idempotency key and a multipart
// body's boundaries.
func longestSubmission(extra []ExtraField) int64 {
	chars := maxNameLength + maxSubjectLength + maxMessageLength + maxEmailLength + maxKeyLength
	for _, f := range extra {
		chars += f.MaxLength
	}
	return int64(chars)*4*3 + 16<<10
}

// Defaults and bounds of the settings.
const (
	DefaultMaxBodyBytes  = 256 << 10
	maxMaxBodyBytes      = 10 << 20
	minMaxBodyBytes      = 1 << 10
	DefaultPerMinute     = 5
	DefaultBurst         = 5
	DefaultHoneypotField = "website"
	DefaultTitle         = "Contact us"
	defaultExtraLength   = 200
	maxExtraLength       = 1000
	maxExtraFields       = 20
)

// Names of the standard fields, and of the optional idempotency field.
const (
	fieldName        = "name"
	fieldEmail       = "email"
	fieldSubject     = "subject"
	fieldMessage     = "message"
	fieldIdempotency = "idempotency_key"
)

var standardFields = []string{fieldName, fieldEmail, fieldSubject, fieldMessage}

var fieldNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// decodeSettings decodes raw strictly and validates it, filling defaults.
// Errors name the offending field as "settings.<field>".
func decodeSettings(raw json.RawMessage) (Settings, error) {
	var s Settings
	if err := jsonsettings.Decode(raw, &s); err != nil {
		return Settings{}, err
	}
	if err := s.normalize(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// normalize validates s and fills its defaults.
func (s *Settings) normalize() error {
	if s.RequiredFields == nil {
		s.RequiredFields = []string{fieldName, fieldEmail, fieldMessage}
	}
	for i, f := range s.RequiredFields {
		if !slices.Contains(standardFields, f) {
			return fmt.Errorf("settings.required_fields[%d]: %q is not a standard field (name, email, subject, message); mark extra fields required in extra_fields", i, f)
		}
	}
	if !slices.Contains(s.RequiredFields, fieldEmail) {
		return errors.New(`settings.required_fields: must include "email": web-form tickets are answered by email`)
	}
	if !slices.Contains(s.RequiredFields, fieldMessage) {
		return errors.New(`settings.required_fields: must include "message": it is the ticket's text`)
	}

	if s.HoneypotField == "" {
		s.HoneypotField = DefaultHoneypotField
	}
	if !fieldNameRE.MatchString(s.HoneypotField) {
		return fmt.Errorf("settings.honeypot_field: %q must be lower-case letters, digits and underscores, starting with a letter", s.HoneypotField)
	}
	reserved := append(slices.Clone(standardFields), fieldIdempotency)
	if slices.Contains(reserved, s.HoneypotField) {
		return fmt.Errorf("settings.honeypot_field: %q is a field people fill in", s.HoneypotField)
	}

	if len(s.ExtraFields) > maxExtraFields {
		return fmt.Errorf("settings.extra_fields: at most %d extra fields", maxExtraFields)
	}
	seen := map[string]bool{}
	for i := range s.ExtraFields {
		f := &s.ExtraFields[i]
		if !fieldNameRE.MatchString(f.Name) {
			return fmt.Errorf("settings.extra_fields[%d].name: %q must be lower-case letters, digits and underscores, starting with a letter (at most 40)", i, f.Name)
		}
		if slices.Contains(reserved, f.Name) || f.Name == s.HoneypotField {
			return fmt.Errorf("settings.extra_fields[%d].name: %q is already used by the form", i, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("settings.extra_fields[%d].name: %q is listed twice", i, f.Name)
		}
		seen[f.Name] = true
		if f.Label == "" {
			f.Label = f.Name
		}
		switch {
		case f.MaxLength == 0:
			f.MaxLength = defaultExtraLength
		case f.MaxLength < 0 || f.MaxLength > maxExtraLength:
			return fmt.Errorf("settings.extra_fields[%d].max_length: must be between 1 and %d", i, maxExtraLength)
		}
	}

	switch {
	case s.MaxBodyBytes == 0:
		s.MaxBodyBytes = max(DefaultMaxBodyBytes, longestSubmission(s.ExtraFields))
	case s.MaxBodyBytes < minMaxBodyBytes || s.MaxBodyBytes > maxMaxBodyBytes:
		return fmt.Errorf("settings.max_body_bytes: must be between %d and %d", minMaxBodyBytes, maxMaxBodyBytes)
	}

	if s.RateLimit.PerMinute < 0 {
		return errors.New("settings.rate_limit.per_minute: must not be negative")
	}
	if s.RateLimit.Burst < 0 {
		return errors.New("settings.rate_limit.burst: must not be negative")
	}
	if s.RateLimit.PerMinute == 0 {
		s.RateLimit.PerMinute = DefaultPerMinute
	}
	if s.RateLimit.Burst == 0 {
		s.RateLimit.Burst = DefaultBurst
	}

	if s.RedirectURL != "" {
		u, err := url.Parse(s.RedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("settings.redirect_url: %q must be an absolute http or https URL", s.RedirectURL)
		}
	}

	for i, o := range s.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return fmt.Errorf("settings.allowed_origins[%d]: %w", i, err)
		}
		s.AllowedOrigins[i] = norm
	}

	if s.Title == "" {
		s.Title = DefaultTitle
	}
	return nil
}

// normalizeOrigin checks that o is "*" or a bare origin and returns it in the
// lower-case form browsers send in the Origin header.
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must be an origin like https://www.example.com, or \"*\"", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// required reports whether the standard field f must be filled.
func (s *Settings) required(f string) bool {
	return slices.Contains(s.RequiredFields, f)
}
