package email

import (
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors/internal/jsonsettings"
)

// Duration is a duration written as a string in the settings ("60s").
type Duration = jsonsettings.Duration

// Settings is an email channel's JSON configuration
// (connectors.Config.Settings). Unknown fields are rejected; zero values
// take the documented defaults. Passwords and tokens are never settings:
// they are the channel's secrets (see Secret* below).
type Settings struct {
	// Address is the support address of the channel (required), e.g.
	// support@example.com. Replies are sent from it; mail to it (and its
	// plus-addressed forms) belongs to the channel.
	Address string `json:"address"`
	// Aliases are further addresses of the same channel. Mail from any of
	// the channel's addresses is never taken for a customer's (loop guard).
	Aliases []string `json:"aliases,omitempty"`
	// FromName is the display name on replies. "{agent}" is replaced by the
	// agent's name. Default "{agent}".
	FromName string `json:"from_name,omitempty"`
	// MessageIDDomain is the right-hand side of the Message-IDs we
	// generate. Default: the domain of Address.
	MessageIDDomain string `json:"message_id_domain,omitempty"`
	// SubjectTag adds "[#<ticket number>]" to reply subjects, so a reply
	// threads even through mail clients that drop In-Reply-To. Default true.
	SubjectTag *bool `json:"subject_tag,omitempty"`
	// PlusAddressing sets Reply-To to address+t<number>@domain on replies,
	// a further threading hint. Only turn it on when the mailbox provider
	// delivers plus-addressed mail. Default false.
	PlusAddressing bool `json:"plus_addressing,omitempty"`
	// MaxMessageBytes is the largest mail accepted (inbound SMTP refuses
	// larger ones at DATA; larger IMAP messages are stored with their
	// headers and a note). Default 25 MiB.
	MaxMessageBytes int64 `json:"max_message_bytes,omitempty"`
	// SenderLimit limits how many mails one sender address may open or add
	// to tickets per hour; mail over it is treated like an auto-reply (a
	// mail storm never floods the agents). Default 30 an hour.
	SenderLimit RateLimit `json:"sender_limit"`

	// IMAP, when set, fetches mail from an IMAP server.
	IMAP *IMAPSettings `json:"imap,omitempty"`
	// InboundSMTP accepts mail for the channel's addresses on the node's
	// SMTP listener (serve --smtp-addr). Default false.
	InboundSMTP bool `json:"inbound_smtp,omitempty"`
	// SMTP is the relay replies are sent through. Without it the channel
	// receives only: a reply to one of its tickets fails at once, with
	// that reason shown to the agent.
	SMTP *SMTPSettings `json:"smtp,omitempty"`
}

// RateLimit is a per-sender budget per hour.
type RateLimit struct {
	PerHour  int  `json:"per_hour,omitempty"` // default 30
	Disabled bool `json:"disabled,omitempty"`
}

// IMAPSettings says where and how to fetch mail.
type IMAPSettings struct {
	Host string `json:"host"`
	// Port defaults to 993 for "tls" and 143 otherwise.
	Port int `json:"port,omitempty"`
	// Security is "tls" (implicit TLS, the default), "starttls" or "plain".
	// "plain" sends the password unencrypted and must be chosen explicitly.
	Security string `json:"security,omitempty"`
	// TLSServerName overrides the name the server certificate is checked
	// against. Default: Host.
	TLSServerName string `json:"tls_server_name,omitempty"`
	Username      string `json:"username"`
	// Auth is "plain" (the default), "login" or "xoauth2" (the secret
	// imap_oauth_token is then the bearer token).
	Auth string `json:"auth,omitempty"`
	// Mailboxes to watch. Default ["INBOX"].
	Mailboxes []string `json:"mailboxes,omitempty"`
	// AfterFetch is what happens to a message once it is stored: "seen"
	// (the default) sets \Seen; "move" moves it to ProcessedMailbox.
	AfterFetch       string `json:"after_fetch,omitempty"`
	ProcessedMailbox string `json:"processed_mailbox,omitempty"`
	// PollInterval is how often a mailbox is checked when the server has
	// no IDLE. Default 60s, at least 5s.
	PollInterval Duration `json:"poll_interval,omitempty"`
	// IdleRestart ends and restarts IDLE this often (servers drop idle
	// connections after 30 minutes, RFC 2177). Default 25m.
	IdleRestart Duration `json:"idle_restart,omitempty"`
	// InitialSync is what the first read of a mailbox takes in (no cursor
	// yet, or a new UIDVALIDITY): "all" (the default) takes every message;
	// "unseen" skips messages that already have \Seen.
	InitialSync string `json:"initial_sync,omitempty"`
}

// SMTPSettings is the outgoing relay.
type SMTPSettings struct {
	Host string `json:"host"`
	// Port defaults to 587 for "starttls", 465 for "tls", 25 for "plain".
	Port int `json:"port,omitempty"`
	// Security is "starttls" (the default), "tls" or "plain".
	Security      string `json:"security,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	// Username, when set, authenticates with the secret smtp_password
	// (PLAIN, or LOGIN when the server offers only that).
	Username string `json:"username,omitempty"`
	// HelloName is the name given in EHLO. Default: the domain of Address.
	HelloName string `json:"hello_name,omitempty"`
}

// Names of the channel's secrets.
const (
	SecretIMAPPassword   = "imap_password"
	SecretIMAPOAuthToken = "imap_oauth_token"
	SecretSMTPPassword   = "smtp_password"
)

// Defaults of the settings.
const (
	DefaultMaxMessageBytes = 25 << 20
	maxMessageBytesLimit   = 100 << 20
	DefaultSenderPerHour   = 30
	DefaultPollInterval    = 60 * time.Second
	DefaultIdleRestart     = 25 * time.Minute
	minPollInterval        = 5 * time.Second
)

// Initial sync modes of IMAPSettings.InitialSync.
const (
	InitialSyncAll    = "all"
	InitialSyncUnseen = "unseen"
)

// Security modes.
const (
	SecurityTLS      = "tls"
	SecurityStartTLS = "starttls"
	SecurityPlain    = "plain"
)

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

func (s *Settings) normalize() error {
	addr, err := normalizeAddress(s.Address)
	if err != nil {
		return fmt.Errorf("settings.address: %w", err)
	}
	s.Address = addr
	for i, a := range s.Aliases {
		if s.Aliases[i], err = normalizeAddress(a); err != nil {
			return fmt.Errorf("settings.aliases[%d]: %w", i, err)
		}
	}
	if s.FromName == "" {
		s.FromName = "{agent}"
	}
	if s.MessageIDDomain == "" {
		s.MessageIDDomain = domainOf(s.Address)
	}
	if strings.ContainsAny(s.MessageIDDomain, "<>@ \t\r\n") {
		return fmt.Errorf("settings.message_id_domain: %q is not a domain name", s.MessageIDDomain)
	}
	if s.SubjectTag == nil {
		yes := true
		s.SubjectTag = &yes
	}
	switch {
	case s.MaxMessageBytes == 0:
		s.MaxMessageBytes = DefaultMaxMessageBytes
	case s.MaxMessageBytes < 64<<10:
		return fmt.Errorf("settings.max_message_bytes: %d is too small (at least 65536)", s.MaxMessageBytes)
	case s.MaxMessageBytes > maxMessageBytesLimit:
		// Every mail is held in memory while it is parsed and stored.
		return fmt.Errorf("settings.max_message_bytes: %d is too large (at most %d)", s.MaxMessageBytes, maxMessageBytesLimit)
	}
	switch {
	case s.SenderLimit.PerHour == 0:
		s.SenderLimit.PerHour = DefaultSenderPerHour
	case s.SenderLimit.PerHour < 0:
		return fmt.Errorf("settings.sender_limit.per_hour: must be positive")
	}
	if s.IMAP != nil {
		if err := s.IMAP.normalize(); err != nil {
			return err
		}
	}
	if s.SMTP != nil {
		if err := s.SMTP.normalize(domainOf(s.Address)); err != nil {
			return err
		}
	}
	if s.IMAP == nil && !s.InboundSMTP && s.SMTP == nil {
		return fmt.Errorf("settings: an email channel needs at least one of imap, inbound_smtp or smtp")
	}
	return nil
}

func (s *IMAPSettings) normalize() error {
	if err := checkHost(s.Host); err != nil {
		return fmt.Errorf("settings.imap.host: %w", err)
	}
	switch s.Security {
	case "":
		s.Security = SecurityTLS
	case SecurityTLS, SecurityStartTLS, SecurityPlain:
	default:
		return fmt.Errorf("settings.imap.security: %q is not one of tls, starttls, plain", s.Security)
	}
	if s.Port == 0 {
		s.Port = 143
		if s.Security == SecurityTLS {
			s.Port = 993
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("settings.imap.port: %d is not a port", s.Port)
	}
	if s.Username == "" {
		return fmt.Errorf("settings.imap.username: required")
	}
	switch s.Auth {
	case "":
		s.Auth = "plain"
	case "plain", "login", "xoauth2":
	default:
		return fmt.Errorf("settings.imap.auth: %q is not one of plain, login, xoauth2", s.Auth)
	}
	if len(s.Mailboxes) == 0 {
		s.Mailboxes = []string{"INBOX"}
	}
	seen := map[string]bool{}
	for i, m := range s.Mailboxes {
		if strings.TrimSpace(m) == "" {
			return fmt.Errorf("settings.imap.mailboxes[%d]: empty", i)
		}
		if seen[m] {
			return fmt.Errorf("settings.imap.mailboxes[%d]: %q is listed twice", i, m)
		}
		seen[m] = true
	}
	switch s.AfterFetch {
	case "":
		s.AfterFetch = "seen"
	case "seen":
	case "move":
		if s.ProcessedMailbox == "" {
			return fmt.Errorf("settings.imap.processed_mailbox: required when after_fetch is \"move\"")
		}
		if seen[s.ProcessedMailbox] {
			return fmt.Errorf("settings.imap.processed_mailbox: %q is also a watched mailbox", s.ProcessedMailbox)
		}
	default:
		return fmt.Errorf("settings.imap.after_fetch: %q is not one of seen, move", s.AfterFetch)
	}
	switch {
	case s.PollInterval == 0:
		s.PollInterval = Duration(DefaultPollInterval)
	case s.PollInterval.D() < minPollInterval:
		return fmt.Errorf("settings.imap.poll_interval: %s is too short (at least %s)", s.PollInterval.D(), minPollInterval)
	}
	switch {
	case s.IdleRestart == 0:
		s.IdleRestart = Duration(DefaultIdleRestart)
	case s.IdleRestart.D() < time.Second:
		return fmt.Errorf("settings.imap.idle_restart: %s is too short", s.IdleRestart.D())
	}
	switch s.InitialSync {
	case "":
		s.InitialSync = InitialSyncAll
	case InitialSyncAll, InitialSyncUnseen:
	default:
		return fmt.Errorf("settings.imap.initial_sync: %q is not one of all, unseen", s.InitialSync)
	}
	return nil
}

func (s *SMTPSettings) normalize(domain string) error {
	if err := checkHost(s.Host); err != nil {
		return fmt.Errorf("settings.smtp.host: %w", err)
	}
	switch s.Security {
	case "":
		s.Security = SecurityStartTLS
	case SecurityTLS, SecurityStartTLS, SecurityPlain:
	default:
		return fmt.Errorf("settings.smtp.security: %q is not one of starttls, tls, plain", s.Security)
	}
	if s.Port == 0 {
		switch s.Security {
		case SecurityTLS:
			s.Port = 465
		case SecurityStartTLS:
			s.Port = 587
		default:
			s.Port = 25
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("settings.smtp.port: %d is not a port", s.Port)
	}
	if s.HelloName == "" {
		s.HelloName = domain
	}
	return nil
}

// checkHost accepts a host name or an IP address, without a port or a
// scheme (those have fields of their own).
func checkHost(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("required")
	case strings.Contains(h, "://"):
		return fmt.Errorf("%q: give the host name only, without a scheme", h)
	case strings.ContainsAny(h, " \t\r\n/@"):
		return fmt.Errorf("%q is not a host name", h)
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return fmt.Errorf("%q: give the port in the port field, not in the host", h)
	}
	return nil
}

// normalizeAddress checks a bare address and lower-cases its domain.
func normalizeAddress(a string) (string, error) {
	a = strings.TrimSpace(a)
	if a == "" {
		return "", fmt.Errorf("required")
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Name != "" || p.Address != a {
		return "", fmt.Errorf("%q is not a bare email address such as support@example.com", a)
	}
	local, domain, _ := strings.Cut(p.Address, "@")
	return local + "@" + strings.ToLower(domain), nil
}

func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return d
}
