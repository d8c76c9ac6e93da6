package webform

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/internal/keyrate"
)

// Kind is the channel kind of web forms.
const Kind connectors.Kind = "webform"

//go:embed templates/pages.html
var templateFS embed.FS

// Connector receives web-form submissions over HTTP and delivers each one
// as a new ticket. It answers nothing itself: replies leave by email
// (Policy.ReplyVia).
type Connector struct {
	channelID string
	settings  Settings
	log       *slog.Logger
	now       func() time.Time
	limiter   *keyrate.Limiter
	pages     *template.Template
	csp       string // Content-Security-Policy of the HTML pages

	mu   sync.RWMutex
	host connectors.Host // nil before Start and after Stop
}

// New builds a web-form connector from its configuration. It does no I/O:
// it decodes Settings strictly and validates them, naming the bad field.
func New(cfg connectors.Config) (*Connector, error) {
	s, err := decodeSettings(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("webform: channel %q: %w", cfg.ChannelID, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	pages, err := template.ParseFS(templateFS, "templates/pages.html")
	if err != nil {
		return nil, fmt.Errorf("webform: parse templates: %w", err)
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"
	if s.RedirectURL != "" {
		// Browsers apply form-action to the redirect after a post too.
		u, _ := url.Parse(s.RedirectURL) // validated by decodeSettings
		csp += " " + u.Scheme + "://" + u.Host
	}
	return &Connector{
		channelID: cfg.ChannelID,
		settings:  s,
		log:       log.With("component", "connectors/webform", "channel", cfg.ChannelID),
		now:       now,
		limiter:   newLimiter(s.RateLimit, now),
		pages:     pages,
		csp:       csp,
	}, nil
}

// Factory is New as a connectors.Factory, for the registry:
//
//	reg.Register(webform.Kind, webform.Factory)
func Factory(cfg connectors.Config) (connectors.Connector, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return c, nil
}

// Settings returns the effective settings, defaults filled in.
func (c *Connector) Settings() Settings { return c.settings }

// Kind returns "webform".
func (c *Connector) Kind() connectors.Kind { return Kind }

// Policy: every submission is its own ticket and is answered by email.
func (c *Connector) Policy() connectors.Policy {
	return connectors.Policy{
		Threading:     connectors.ThreadingNone,
		ReplyVia:      "email",
		ContactFields: []string{"name", "email"},
	}
}

// Start makes the routes accept submissions, delivering them into host.
// There is nothing to connect to: the hub serves the routes.
func (c *Connector) Start(ctx context.Context, host connectors.Host) error {
	if host == nil {
		return errors.New("webform: start: nil host")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webform: start: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.host != nil {
		return errors.New("webform: start: already started")
	}
	c.host = host
	c.log.Info("web form receiving")
	return nil
}

// Stop makes the routes answer 503 again. It is safe before Start, after a
// failed Start and more than once.
func (c *Connector) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.host = nil
	return nil
}

func (c *Connector) currentHost() connectors.Host {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.host
}

// Send always refuses: a web form has no way back to its sender. The hub
// routes replies to web-form tickets through the instance's email channel
// (Policy.ReplyVia); reaching this is a routing bug, and retrying cannot
// help, hence Refused.
func (c *Connector) Send(ctx context.Context, msg connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, connectors.NewError(connectors.Refused, "reply_via_email",
		"Web-form tickets are answered by email: the reply leaves through the instance's email channel, not the web form.",
		connectors.ErrUnsupported)
}

// Routes are mounted by the hub under /channels/{channelID}/.
func (c *Connector) Routes() []connectors.Route {
	return []connectors.Route{
		// Any method: the handlers check it themselves, so that submit
		// can answer the CORS preflight (OPTIONS), form can answer HEAD as
		// well as GET, and both give 405 with an Allow header otherwise.
		{Method: "", Path: "submit", Handler: http.HandlerFunc(c.handleSubmit)},
		{Method: "", Path: "form", Handler: http.HandlerFunc(c.handleForm)},
	}
}

var (
	_ connectors.Connector  = (*Connector)(nil)
	_ connectors.HTTPRoutes = (*Connector)(nil)
	_ connectors.Factory    = Factory
)
