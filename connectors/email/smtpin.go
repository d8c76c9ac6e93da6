package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Defaults of SMTPServerConfig.
const (
	DefaultSMTPMaxRecipients  = 100 // RFC 5321 4.5.3.1.8: at least 100 must be accepted
	DefaultSMTPMaxConnections = 100
	DefaultSMTPMaxConnsPerIP  = 20
	DefaultSMTPReadTimeout    = 5 * time.Minute // RFC 5321 4.5.3.2.7
	DefaultSMTPWriteTimeout   = time.Minute
	DefaultSMTPIngestTimeout  = 5 * time.Minute
	// smtpMaxLineLength is far above RFC 5321's 1000 octets: real senders
	// write longer lines in unencoded HTML, and a 500 at DATA would bounce
	// a customer's mail for it. Commands are tiny anyway.
	smtpMaxLineLength = 1 << 20
)

// SMTPServerConfig configures the node's inbound SMTP listener. Zero
// values take the defaults above.
type SMTPServerConfig struct {
	// Domain is the name in the greeting and EHLO answer (the MX host
	// name). Default "localhost".
	Domain string
	// MaxMessageBytes caps every message, whatever the channels allow
	// (advertised as SIZE). Default DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// MaxRecipients per message; more get 452 4.5.3 and the sender
	// sends the rest in another transaction.
	MaxRecipients int
	// MaxConnections open at once; one more is answered 421 4.7.0 and
	// closed at once.
	MaxConnections int
	// MaxConnectionsPerIP open at once from one address (IPv6: one /64),
	// so that one client holding idle connections cannot lock every
	// sender out. Default 20.
	MaxConnectionsPerIP int
	// TLSConfig, when set, enables STARTTLS.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// ReadTimeout bounds the wait for each command and for a whole DATA
	// transfer; WriteTimeout each answer.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// IngestTimeout bounds one ingest call; past it the sender gets 451
	// and tries again later.
	IngestTimeout time.Duration
}

// SMTPServer is the node's inbound SMTP listener (an MX, or the target of
// a mailbox's forwarding rule), shared by every email channel of the node
// with inbound_smtp: each channel registers its addresses with Handle.
//
// A message is answered 250 only after every channel it is for stored it
// (ack-after-commit); any ingest error gives 451 4.3.0, so the sending
// server keeps the message and tries again, and dedup (by Message-ID)
// absorbs the channels that had stored it the first time.
type SMTPServer struct {
	cfg SMTPServerConfig
	log *slog.Logger
	srv *smtp.Server

	ctx    context.Context // ends on Close; parent of every ingest
	cancel context.CancelFunc
	closed sync.Once

	mu        sync.RWMutex
	routes    map[string]*smtpRoute // lower-cased address -> channel
	conns     int                   // open connections
	perIP     map[string]int        // open connections by client network
	listeners []net.Listener
}

// smtpRoute is one channel registered with Handle.
type smtpRoute struct {
	addresses []string
	maxBytes  int64
	ingest    ingestFunc
	removed   bool // under SMTPServer.mu
}

// NewSMTPServer returns a listener with no channel yet. It does no I/O.
func NewSMTPServer(cfg SMTPServerConfig) *SMTPServer {
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	positiveOr(&cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	positiveOr(&cfg.MaxRecipients, DefaultSMTPMaxRecipients)
	positiveOr(&cfg.MaxConnections, DefaultSMTPMaxConnections)
	positiveOr(&cfg.MaxConnectionsPerIP, DefaultSMTPMaxConnsPerIP)
	positiveOr(&cfg.ReadTimeout, DefaultSMTPReadTimeout)
	positiveOr(&cfg.WriteTimeout, DefaultSMTPWriteTimeout)
	positiveOr(&cfg.IngestTimeout, DefaultSMTPIngestTimeout)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &SMTPServer{
		cfg:    cfg,
		log:    log.With("component", "email.smtpin"),
		routes: map[string]*smtpRoute{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = smtpMaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.TLSConfig = cfg.TLSConfig
	srv.ErrorLog = smtpErrorLog{s.log}
	s.srv = srv
	return s
}

// Handle routes mail for addresses (and their plus-addressed forms,
// local+anything@domain) to ingest, for messages of at most maxBytes (0:
// the server's cap). Addresses match case-insensitively. It fails if an
// address is not a bare address or is already served by another channel
// of this node. remove unregisters the channel; it is safe to call twice.
func (s *SMTPServer) Handle(addresses []string, maxBytes int64, ingest ingestFunc) (remove func(), err error) {
	if ingest == nil {
		return nil, errors.New("email: smtp handle: nil ingest")
	}
	if len(addresses) == 0 {
		return nil, errors.New("email: smtp handle: no address")
	}
	if maxBytes <= 0 || maxBytes > s.cfg.MaxMessageBytes {
		maxBytes = s.cfg.MaxMessageBytes
	}
	r := &smtpRoute{maxBytes: maxBytes, ingest: ingest}
	seen := map[string]bool{}
	for _, a := range addresses {
		n, err := normalizeAddress(a)
		if err != nil {
			return nil, fmt.Errorf("email: smtp handle: %w", err)
		}
		key := strings.ToLower(n)
		if !seen[key] {
			seen[key] = true
			r.addresses = append(r.addresses, key)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range r.addresses {
		if _, taken := s.routes[key]; taken {
			return nil, fmt.Errorf("email: smtp handle: %s is already served by another channel on this node", key)
		}
	}
	for _, key := range r.addresses {
		s.routes[key] = r
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			r.removed = true
			for _, key := range r.addresses {
				if s.routes[key] == r {
					delete(s.routes, key)
				}
			}
		})
	}, nil
}

// lookup returns the channel of an envelope recipient: the address
// itself, else with its "+detail" cut off (at each '+' from the right,
// so a configured address that has a '+' of its own still gets its
// plus-addressed forms).
func (s *SMTPServer) lookup(rcpt string) *smtpRoute {
	key := strings.ToLower(strings.TrimSpace(rcpt))
	if key == "postmaster" {
		return s.postmaster("")
	}
	at := strings.LastIndexByte(key, '@')
	if at <= 0 {
		return nil
	}
	local, domain := key[:at], key[at:]
	s.mu.RLock()
	if r := s.routes[key]; r != nil {
		s.mu.RUnlock()
		return r
	}
	for i := strings.LastIndexByte(local, '+'); i > 0; i = strings.LastIndexByte(local[:i], '+') {
		if r := s.routes[local[:i]+domain]; r != nil {
			s.mu.RUnlock()
			return r
		}
	}
	s.mu.RUnlock()
	if local == "postmaster" {
		return s.postmaster(domain)
	}
	return nil
}

// postmaster is where mail to postmaster goes, which RFC 5321 (4.5.1)
// requires a mail server to accept: the channel of the first address (in
// order) of that domain ("@example.com"), or of any domain for a bare
// "postmaster". It is a mail like any other there, for an agent to read.
func (s *SMTPServer) postmaster(domain string) *smtpRoute {
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := ""
	for addr := range s.routes {
		if strings.HasSuffix(addr, domain) && (best == "" || addr < best) {
			best = addr
		}
	}
	if best == "" {
		return nil
	}
	return s.routes[best]
}

// Serve accepts connections on l until Close. It returns nil after Close.
// l is a plain TCP listener: TLS comes by STARTTLS (an MX has no implicit
// TLS port). Serve may run on several listeners at once.
func (s *SMTPServer) Serve(l net.Listener) error {
	// Registered here, not only inside go-smtp: a Close that comes before
	// go-smtp has seen l must still end this Serve.
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.log.Info("inbound smtp listening", "addr", l.Addr().String(), "starttls", s.cfg.TLSConfig != nil)
	err := s.srv.Serve(&smtpLimitListener{Listener: l, s: s})
	if s.ctx.Err() != nil {
		return nil
	}
	return err
}

// Close stops listening and ends every connection at once. A message
// whose ingest had not returned is answered 451 or not at all: either
// way its sender still has it and tries again.
func (s *SMTPServer) Close() error {
	var err error
	s.closed.Do(func() {
		s.mu.Lock()
		s.cancel()
		ls := s.listeners
		s.mu.Unlock()
		err = s.srv.Close()
		if errors.Is(err, smtp.ErrServerClosed) {
			err = nil
		}
		for _, l := range ls {
			l.Close() // already closed by go-smtp when it had them
		}
	})
	return err
}

func (s *SMTPServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{s: s, remote: c.Conn().RemoteAddr().String(), helo: c.Hostname()}, nil
}

// smtpSession is one SMTP transaction's state.
type smtpSession struct {
	s      *SMTPServer
	remote string
	helo   string
	from   string
	size   int64 // SIZE= of MAIL FROM, 0 when not given
	rcpts  []smtpRecipient
}

type smtpRecipient struct {
	addr  string
	route *smtpRoute
}

func (ss *smtpSession) Reset() {
	ss.from, ss.size, ss.rcpts = "", 0, nil
}

func (ss *smtpSession) Logout() error { return nil }

func (ss *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	ss.from = from
	if opts != nil {
		ss.size = opts.Size
	}
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	r := ss.s.lookup(to)
	if r == nil {
		ss.s.log.Debug("inbound smtp: unknown recipient", "remote", ss.remote, "rcpt", to)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox here"}
	}
	if ss.size > r.maxBytes {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too large for this recipient"}
	}
	ss.rcpts = append(ss.rcpts, smtpRecipient{addr: to, route: r})
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	// One limit for the whole transaction, the smallest of its channels':
	// SMTP has one answer for all recipients, and a channel must never
	// get a mail it would refuse.
	limit := ss.s.cfg.MaxMessageBytes
	for _, rc := range ss.rcpts {
		limit = min(limit, rc.route.maxBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge) || err == nil && int64(len(raw)) > limit:
		ss.s.log.Info("inbound smtp: message too large", "remote", ss.remote, "from", ss.from, "limit", limit)
		return smtp.ErrDataTooLarge
	case errors.Is(err, smtp.ErrTooLongLine):
		// Permanent: the same mail would fail the same way on every retry.
		ss.s.log.Info("inbound smtp: line too long", "remote", ss.remote, "from", ss.from, "limit", smtpMaxLineLength)
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message has a line longer than %d bytes", smtpMaxLineLength)}
	case err != nil:
		// The connection broke or timed out mid-message: temporary, and
		// never go-smtp's default 554 (a bounce) for it.
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection problem while receiving the message"}
	case len(bytes.TrimSpace(raw)) == 0:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Empty message"}
	}
	raw = smtpWithReturnPath(raw, ss.from)

	// Once per channel, with that channel's envelope recipients.
	type delivery struct {
		route *smtpRoute
		rcpts []string
	}
	var ds []*delivery
	for _, rc := range ss.rcpts {
		var d *delivery
		for _, x := range ds {
			if x.route == rc.route {
				d = x
			}
		}
		if d == nil {
			d = &delivery{route: rc.route}
			ds = append(ds, d)
		}
		d.rcpts = append(d.rcpts, rc.addr)
	}
	for _, d := range ds {
		ss.s.mu.RLock()
		removed := d.route.removed
		ss.s.mu.RUnlock()
		if removed {
			// The channel went away during the transaction: let the
			// sender retry, RCPT decides then.
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Mailbox is being reconfigured, try again later"}
		}
		if err := ss.ingest(d.route, bytes.Clone(raw), d.rcpts); err != nil {
			ss.s.log.Warn("inbound smtp: ingest failed, answering 451", "remote", ss.remote, "from", ss.from, "rcpt", d.rcpts, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure storing the message, try again later"}
		}
	}
	ss.s.log.Info("inbound smtp: message accepted", "remote", ss.remote, "helo", ss.helo, "from", ss.from, "rcpts", len(ss.rcpts), "channels", len(ds), "bytes", len(raw))
	return nil
}

// ingest calls one channel's ingest with a deadline, turning a panic into
// an error: the answer is then 451, and the connection lives on.
func (ss *smtpSession) ingest(r *smtpRoute, raw []byte, rcpts []string) (err error) {
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.cfg.IngestTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ingest panicked: %v", p)
		}
	}()
	return r.ingest(ctx, raw, Source{Via: "smtp", Recipients: rcpts})
}

// smtpWithReturnPath adds the envelope sender as Return-Path on top, as
// the final delivery does (RFC 5321 4.4): bounce detection reads it
// ("Return-Path: <>", C08). The header takes the line ending the message
// uses.
func smtpWithReturnPath(raw []byte, from string) []byte {
	from = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '<' || r == '>' {
			return -1
		}
		return r
	}, from)
	eol := "\r\n"
	if i := bytes.IndexByte(raw, '\n'); i >= 0 && (i == 0 || raw[i-1] != '\r') {
		eol = "\n"
	}
	out := make([]byte, 0, len(raw)+len(from)+16)
	out = append(out, "Return-Path: <"+from+">"+eol...)
	return append(out, raw...)
}

// smtpLimitListener answers connections past MaxConnections with 421 and
// closes them before go-smtp sees them, so a flood cannot grow goroutines
// and buffers without bound; the senders try again later.
type smtpLimitListener struct {
	net.Listener
	s *SMTPServer
}

func (l *smtpLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := smtpClientNet(c.RemoteAddr())
		l.s.mu.Lock()
		if l.s.perIP == nil {
			l.s.perIP = map[string]int{}
		}
		full := l.s.conns >= l.s.cfg.MaxConnections
		fullIP := l.s.perIP[ip] >= l.s.cfg.MaxConnectionsPerIP
		if !full && !fullIP {
			l.s.conns++
			l.s.perIP[ip]++
		}
		l.s.mu.Unlock()
		if !full && !fullIP {
			return &smtpCountedConn{Conn: c, s: l.s, ip: ip}, nil
		}
		// Debug, not warn: a flood would otherwise write a line per try.
		l.s.log.Debug("inbound smtp: too many connections", "remote", c.RemoteAddr().String(),
			"max", l.s.cfg.MaxConnections, "max_per_ip", l.s.cfg.MaxConnectionsPerIP)
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "421 4.7.0 "+l.s.cfg.Domain+" Too many connections, try again later\r\n")
		_ = c.Close()
	}
}

// smtpClientNet is what the per-client limit counts by: the IP address,
// or for IPv6 its /64 (one subscriber usually holds a whole /64).
func smtpClientNet(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return a.String()
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

type smtpCountedConn struct {
	net.Conn
	s    *SMTPServer
	ip   string
	once sync.Once
}

func (c *smtpCountedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.conns--
		if n := c.s.perIP[c.ip]; n <= 1 {
			delete(c.s.perIP, c.ip) // a no-op on a nil map
		} else {
			c.s.perIP[c.ip] = n - 1
		}
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// smtpErrorLog routes go-smtp's internal messages to slog.
type smtpErrorLog struct{ log *slog.Logger }

func (l smtpErrorLog) Printf(format string, v ...any) {
	l.log.Warn("inbound smtp: " + fmt.Sprintf(format, v...))
}

func (l smtpErrorLog) Println(v ...any) {
	l.log.Warn("inbound smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
