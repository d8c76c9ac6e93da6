package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Kind is the channel kind of email.
const Kind connectors.Kind = "email"

// Options are what the binary gives every email channel of a node.
type Options struct {
	// SMTPServer is the node's inbound SMTP listener (serve --smtp-addr);
	// nil when the node has none. Channels with inbound_smtp register
	// their addresses with it.
	SMTPServer *SMTPServer
	// TLSConfig, when set, is used for IMAP and outgoing SMTP connections
	// instead of the system's (tests with a private certificate
	// authority). ServerName is filled per connection.
	TLSConfig *tls.Config
}

// NewFactory returns the factory of email channels for the registry:
//
//	reg.Register(email.Kind, email.NewFactory(email.Options{SMTPServer: srv}))
func NewFactory(opts Options) connectors.Factory {
	return func(cfg connectors.Config) (connectors.Connector, error) {
		return New(cfg, opts)
	}
}

// Connector is one email channel: a support address with its mailboxes,
// its inbound SMTP addresses and its relay.
type Connector struct {
	channelID string
	settings  Settings
	secrets   map[string]string
	opts      Options
	log       *slog.Logger
	now       func() time.Time
	limit     *senderLimiter
	sender    *smtpSender // nil: receive only

	mu      sync.Mutex
	host    connectors.Host
	cancel  context.CancelFunc
	done    chan struct{}
	unhook  func() // removes the SMTP listener's handler
	started bool
}

// New builds an email channel from its configuration. It does no I/O: it
// decodes the settings strictly, validates them (naming the bad field) and
// checks that the secrets they need are there.
func New(cfg connectors.Config, opts Options) (*Connector, error) {
	s, err := decodeSettings(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("email: channel %q: %w", cfg.ChannelID, err)
	}
	if s.IMAP != nil {
		need := SecretIMAPPassword
		if s.IMAP.Auth == "xoauth2" {
			need = SecretIMAPOAuthToken
		}
		if cfg.Secrets[need] == "" {
			return nil, fmt.Errorf("email: channel %q: secrets.%s: required for imap.auth %q", cfg.ChannelID, need, s.IMAP.Auth)
		}
	}
	if s.SMTP != nil && s.SMTP.Username != "" && cfg.Secrets[SecretSMTPPassword] == "" {
		return nil, fmt.Errorf("email: channel %q: secrets.%s: required when smtp.username is set", cfg.ChannelID, SecretSMTPPassword)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c := &Connector{
		channelID: cfg.ChannelID,
		settings:  s,
		secrets:   cfg.Secrets,
		opts:      opts,
		log:       log.With("component", "connectors/email", "channel", cfg.ChannelID),
		now:       now,
		limit:     newSenderLimiter(s.SenderLimit, now),
	}
	if s.SMTP != nil {
		c.sender = newSMTPSender(*s.SMTP, cfg.Secrets[SecretSMTPPassword], opts.TLSConfig)
	}
	return c, nil
}

// Kind returns "email".
func (c *Connector) Kind() connectors.Kind { return Kind }

// Policy: mail carries HTML and attachments, has no reply window, and
// threads by headers. The contact data it gives is the address and the
// display name, nothing else of the headers (M3).
func (c *Connector) Policy() connectors.Policy {
	return connectors.Policy{
		Attachments:        true,
		MaxAttachmentBytes: c.settings.MaxMessageBytes,
		HTML:               true,
		Threading:          connectors.ThreadingHeaders,
		ContactFields:      []string{"email", "name"},
	}
}

// Start begins receiving: one IMAP watcher for the channel's mailboxes,
// and the channel's addresses on the node's SMTP listener.
func (c *Connector) Start(ctx context.Context, host connectors.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("email: started twice")
	}
	if c.settings.InboundSMTP {
		if c.opts.SMTPServer == nil {
			return fmt.Errorf("email: channel %q has inbound_smtp, but this node runs no SMTP listener (serve --smtp-addr)", c.channelID)
		}
		remove, err := c.opts.SMTPServer.Handle(c.addresses(), c.settings.MaxMessageBytes, c.ingest)
		if err != nil {
			return fmt.Errorf("email: channel %q: %w", c.channelID, err)
		}
		c.unhook = remove
	}
	c.host, c.started = host, true
	if c.settings.IMAP != nil {
		// The watcher outlives Start's context: it runs until Stop.
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w := newIMAPWatcher(imapConfig{
			Settings:        *c.settings.IMAP,
			Password:        c.secrets[SecretIMAPPassword],
			OAuthToken:      c.secrets[SecretIMAPOAuthToken],
			MaxMessageBytes: c.settings.MaxMessageBytes,
			Cursors:         hostCursors{host},
			Ingest:          c.ingest,
			Logger:          c.log,
			TLSConfig:       c.opts.TLSConfig,
			Now:             c.now,
		})
		c.cancel, c.done = cancel, make(chan struct{})
		go func() {
			defer close(c.done)
			defer func() {
				if r := recover(); r != nil {
					c.log.Error("imap watcher panicked", "panic", r)
				}
			}()
			w.Run(wctx)
		}()
	}
	return nil
}

// Stop ends receiving. It is safe after a failed or partial Start and
// waits for the IMAP watcher to finish (or ctx to end).
func (c *Connector) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel, done, unhook := c.cancel, c.done, c.unhook
	c.cancel, c.done, c.unhook, c.started = nil, nil, nil, false
	c.mu.Unlock()
	if unhook != nil {
		unhook()
	}
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Send composes a reply as mail and sends it through the channel's relay.
// The Message-ID is a pure function of the outbound message, so a retry
// after a crash sends the same id and the recipient's client shows one
// mail.
func (c *Connector) Send(ctx context.Context, out connectors.Outbound) (connectors.SendResult, error) {
	if c.sender == nil {
		return connectors.SendResult{}, connectors.NewError(connectors.Permanent, "no_smtp",
			fmt.Sprintf("the email channel %q (%s) has no SMTP relay configured (settings.smtp), so it cannot send replies", c.channelID, c.settings.Address), nil)
	}
	raw, id, err := composeReply(c.settings, out, c.now())
	if err != nil {
		return connectors.SendResult{}, err
	}
	// The envelope gets the address as the header has it: internationalized
	// domains as A-labels, which every relay takes.
	to, err := composeRecipient(c.settings, out.To)
	if err != nil {
		return connectors.SendResult{}, err
	}
	if err := c.sender.Send(ctx, c.settings.Address, []string{to.Address}, raw); err != nil {
		return connectors.SendResult{}, err
	}
	return connectors.SendResult{ExternalID: id, State: connectors.DeliverySent}, nil
}

// CanSend tells whether the channel has a relay: the hub sends replies of
// web-form tickets through an email channel that can.
func (c *Connector) CanSend() bool { return c.sender != nil }

// Claims are the channel's inbound addresses on the SMTP listener and the
// IMAP mailboxes it reads: a second channel with one of them would take
// this channel's mail.
func (c *Connector) Claims() []string {
	var out []string
	if c.settings.InboundSMTP {
		for _, a := range c.addresses() {
			out = append(out, "smtp:"+strings.ToLower(a))
		}
	}
	if im := c.settings.IMAP; im != nil {
		host := strings.TrimSuffix(strings.ToLower(im.Host), ".")
		for _, mb := range im.Mailboxes {
			if strings.EqualFold(mb, "INBOX") {
				mb = "INBOX" // the one mailbox name IMAP compares without case
			}
			out = append(out, fmt.Sprintf("imap:%s:%d/%s/%s", host, im.Port, strings.ToLower(im.Username), mb))
		}
	}
	return out
}

// SecretNames are the secrets an email channel knows; the admin layer
// refuses others (a misspelt secret would otherwise be kept and unused).
func (c *Connector) SecretNames() []string {
	return []string{SecretIMAPPassword, SecretIMAPOAuthToken, SecretSMTPPassword}
}

// addresses are every address of the channel: its support address and its
// aliases.
func (c *Connector) addresses() []string {
	return append([]string{c.settings.Address}, c.settings.Aliases...)
}

// hostCursors keeps IMAP cursors in the hub's per-channel state.
type hostCursors struct{ host connectors.Host }

func cursorKey(mailbox string) string { return "imap-cursor:" + mailbox }

func (h hostCursors) LoadCursor(ctx context.Context, mailbox string) (Cursor, error) {
	v, err := h.host.LoadState(ctx, cursorKey(mailbox))
	if err != nil || v == "" {
		return Cursor{}, err
	}
	a, b, ok := strings.Cut(v, ":")
	validity, err1 := strconv.ParseUint(a, 10, 32)
	uid, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		// A damaged cursor reads the mailbox again; dedup absorbs it.
		return Cursor{}, nil
	}
	return Cursor{UIDValidity: uint32(validity), UID: uint32(uid)}, nil
}

func (h hostCursors) SaveCursor(ctx context.Context, mailbox string, cur Cursor) error {
	return h.host.SaveState(ctx, cursorKey(mailbox), fmt.Sprintf("%d:%d", cur.UIDValidity, cur.UID))
}

var (
	_ connectors.Connector   = (*Connector)(nil)
	_ connectors.SendCapable = (*Connector)(nil)
	_ connectors.Claimer     = (*Connector)(nil)
	_ connectors.SecretNamer = (*Connector)(nil)
	_ cursorStore            = hostCursors{}
)
