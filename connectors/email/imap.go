package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The IMAP watcher: one goroutine and one connection per watched mailbox.
// Each loop connects, selects its mailbox, reads every message above its
// cursor, hands it to Ingest, acknowledges what Ingest stored (\Seen or a
// move), advances the cursor, then waits for new mail with IDLE (or by
// polling where the server has no IDLE). A broken session ends in a
// reconnect with exponential backoff; nothing is shared between mailboxes,
// so one slow or broken mailbox never holds up another.

// imapConfig is what the connector gives the watcher.
type imapConfig struct {
	Settings        IMAPSettings // normalized (defaults filled)
	Password        string       // secret imap_password (auth plain/login)
	OAuthToken      string       // secret imap_oauth_token (auth xoauth2)
	MaxMessageBytes int64
	Cursors         cursorStore
	Ingest          ingestFunc // nil error = stored (or deliberately not stored): acknowledge
	Logger          *slog.Logger
	TLSConfig       *tls.Config // optional: tests with a self-signed certificate
	Now             func() time.Time

	// Optional tuning; zero values take the defaults below.

	// BatchSize is the most messages fetched and acknowledged together.
	BatchSize int
	// BatchBytes bounds the bodies held in memory for one batch (by their
	// RFC822.SIZE); a batch always takes at least one message.
	BatchBytes int64
	// MaxAttempts is how often one message is handed to Ingest before it
	// is skipped (left unacknowledged in the mailbox, logged as an error).
	MaxAttempts int
	// Parallel is how many mails of one mailbox are handed to Ingest at
	// once (default 16). A mail that answers an earlier one of its batch
	// always waits for it; 1 hands every mail over in UID order.
	Parallel int
	// Retry is the backoff of reconnects and of Ingest retries.
	Retry imapRetry
}

// imapRetry is the backoff policy of a mailbox loop.
type imapRetry struct {
	// Min and Max bound the exponential backoff (with full jitter) of
	// reconnects and of retries after an Ingest error.
	Min, Max time.Duration
	// AuthMin and AuthMax bound the backoff after a refused login, which
	// is retried slowly: a wrong password does not get better by trying
	// every second, and servers lock out accounts that do.
	AuthMin, AuthMax time.Duration
}

// Defaults of imapConfig.
const (
	defaultIMAPBatchSize   = 50
	defaultIMAPBatchBytes  = 16 << 20
	defaultIMAPMaxAttempts = 5
	defaultIMAPParallel    = 16
	defaultIMAPRetryMin    = time.Second
	defaultIMAPRetryMax    = 5 * time.Minute
	defaultIMAPAuthMin     = time.Minute
	defaultIMAPAuthMax     = 30 * time.Minute

	imapDialTimeout = 30 * time.Second
	// imapHealthyAfter is how long a session must have run (and read its
	// mailbox once) for its end to reset the reconnect backoff: a server
	// that drops every session right after the first round must not be
	// reconnected to at full speed.
	imapHealthyAfter  = time.Minute
	imapLogoutTimeout = 5 * time.Second
	// imapShutdownGrace is how long a session may take to finish its
	// current command after the context ended before its connection is
	// closed under it.
	imapShutdownGrace = 10 * time.Second
	// imapMaxHeaderBytes bounds the header fetched of an oversize message.
	imapMaxHeaderBytes = 1 << 20
)

// imapWatcher watches the mailboxes of one IMAP account.
type imapWatcher struct {
	cfg imapConfig
	log *slog.Logger
}

// newIMAPWatcher returns a watcher for cfg. It does no I/O. Zero settings
// take their documented defaults, so a partly filled config still runs.
func newIMAPWatcher(cfg imapConfig) *imapWatcher {
	st := &cfg.Settings
	if st.Security == "" {
		st.Security = SecurityTLS
	}
	if st.Port == 0 {
		st.Port = 143
		if st.Security == SecurityTLS {
			st.Port = 993
		}
	}
	if st.Auth == "" {
		st.Auth = "plain"
	}
	if len(st.Mailboxes) == 0 {
		st.Mailboxes = []string{"INBOX"}
	}
	if st.AfterFetch == "" {
		st.AfterFetch = "seen"
	}
	positiveOr(&st.PollInterval, Duration(DefaultPollInterval))
	positiveOr(&st.IdleRestart, Duration(DefaultIdleRestart))
	if st.InitialSync == "" {
		st.InitialSync = InitialSyncAll
	}
	positiveOr(&cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	positiveOr(&cfg.BatchSize, defaultIMAPBatchSize)
	positiveOr(&cfg.BatchBytes, defaultIMAPBatchBytes)
	positiveOr(&cfg.MaxAttempts, defaultIMAPMaxAttempts)
	positiveOr(&cfg.Parallel, defaultIMAPParallel)
	r := &cfg.Retry
	positiveOr(&r.Min, defaultIMAPRetryMin)
	if r.Max < r.Min {
		r.Max = max(defaultIMAPRetryMax, r.Min)
	}
	positiveOr(&r.AuthMin, defaultIMAPAuthMin)
	if r.AuthMax < r.AuthMin {
		r.AuthMax = max(defaultIMAPAuthMax, r.AuthMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "email.imap", "host", st.Host, "username", st.Username)
	return &imapWatcher{cfg: cfg, log: logger}
}

// Run watches every configured mailbox until ctx ends. It returns once
// every mailbox loop has stopped (and logged out where it could).
func (w *imapWatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range w.cfg.Settings.Mailboxes {
		m := &imapMailbox{
			w:        w,
			name:     name,
			log:      w.log.With("mailbox", name),
			attempts: map[imap.UID]int{},
		}
		wg.Go(func() { m.run(ctx) })
	}
	wg.Wait()
}

// imapMailbox is the loop of one mailbox. Its fields outlive sessions.
type imapMailbox struct {
	w    *imapWatcher
	name string
	log  *slog.Logger

	// attempts counts failed Ingest calls per UID under attemptsValidity,
	// so that one message that can never be stored is skipped after
	// MaxAttempts instead of blocking the mailbox forever.
	attempts         map[imap.UID]int
	attemptsValidity uint32
	// noIdle is set when the server advertised IDLE but refused it: the
	// loop then polls, in this session and the following ones.
	noIdle bool
}

// imapAuthError is a refused login. The loop retries it slowly.
type imapAuthError struct {
	mech string
	err  error
}

func (e *imapAuthError) Error() string {
	return fmt.Sprintf("IMAP login (%s) refused: %v", e.mech, e.err)
}

func (e *imapAuthError) Unwrap() error { return e.err }

func (m *imapMailbox) run(ctx context.Context) {
	cfg := m.w.cfg
	conn := imapBackoff{min: cfg.Retry.Min, max: cfg.Retry.Max}
	auth := imapBackoff{min: cfg.Retry.AuthMin, max: cfg.Retry.AuthMax, floor: true}
	for {
		healthy, err := m.safeSession(ctx)
		if ctx.Err() != nil {
			return
		}
		var delay time.Duration
		var authErr *imapAuthError
		if errors.As(err, &authErr) {
			delay = auth.next()
			m.log.Error("IMAP login refused; check the username and the channel's secret; retrying slowly",
				"err", err, "retry_in", delay.Round(time.Millisecond))
		} else {
			if healthy {
				conn.reset()
				auth.reset()
			}
			delay = conn.next()
			m.log.Warn("IMAP session ended; reconnecting", "err", err, "retry_in", delay.Round(time.Millisecond))
		}
		if !imapSleep(ctx, delay, nil) {
			return
		}
	}
}

// safeSession runs one session and turns a panic into an error, so that a
// bug met by one message or server never stops the loop for good.
func (m *imapMailbox) safeSession(ctx context.Context) (healthy bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			m.log.Error("IMAP session panicked", "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return m.session(ctx)
}

// session connects, selects the mailbox and reads and waits for mail until
// the connection breaks or ctx ends. healthy reports whether it read the
// mailbox once and ran for imapHealthyAfter, which resets the reconnect
// backoff.
func (m *imapMailbox) session(ctx context.Context) (healthy bool, err error) {
	start := m.w.cfg.Now()
	read := false
	// Every return below says false; this sets the real answer.
	defer func() { healthy = read && m.w.cfg.Now().Sub(start) >= imapHealthyAfter }()
	s, err := m.open(ctx)
	if err != nil {
		return false, err
	}
	defer s.close()

	s.ingest = m.w.cfg.Ingest
	s.ack, s.save = true, true
	cursor, err := m.w.cfg.Cursors.LoadCursor(ctx, m.name)
	if err != nil {
		return false, fmt.Errorf("load cursor: %w", err)
	}
	s.setCursor(cursor)

	retry := imapBackoff{min: m.w.cfg.Retry.Min, max: m.w.cfg.Retry.Max}
	var lastRound time.Time
	for {
		s.drainNewMail()
		lastRound = m.w.cfg.Now()
		failed, err := s.syncRound(ctx)
		if err != nil {
			return false, err
		}
		read = true
		if failed {
			// An Ingest error: the message stays unacknowledged and the
			// cursor stays before it; try the mailbox again after a pause.
			if !imapSleep(ctx, retry.next(), s.c.Closed()) {
				return false, imapSessionEnd(ctx)
			}
			continue
		}
		retry.reset()
		for {
			due, err := s.waitForMail(ctx, lastRound)
			if err != nil {
				return false, err
			}
			if due {
				break
			}
		}
	}
}

// imapSessionEnd is the error of a session whose wait was cut short: the
// context's, or a closed connection.
func imapSessionEnd(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return errIMAPClosed
}

var errIMAPClosed = errors.New("IMAP connection closed")

// imapSession is one connection with the mailbox selected.
type imapSession struct {
	m       *imapMailbox
	c       *imapclient.Client
	newMail chan struct{} // signalled by EXISTS responses
	done    chan struct{} // closed by closeNow
	unwatch func() bool   // stops the shutdown watchdog

	uidValidity uint32
	uidNext     imap.UID // from SELECT; used once, by the first round
	cursor      Cursor
	firstSync   bool

	// What the fetch loop does with a message: the watcher ingests,
	// acknowledges and saves the cursor; fetchOnly does none of it.
	ingest    ingestFunc
	ack, save bool
}

// open connects, logs in and selects the mailbox.
func (m *imapMailbox) open(ctx context.Context) (*imapSession, error) {
	s := &imapSession{
		m:       m,
		newMail: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					s.signalNewMail()
				}
			},
		},
	}
	c, err := m.w.connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	s.c = c
	// Past this point a command that hangs must not keep Run from
	// returning: close the connection if the session has not ended
	// shortly after ctx did.
	s.unwatch = context.AfterFunc(ctx, func() {
		t := time.NewTimer(imapShutdownGrace)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			c.Close()
		}
	})
	if err := m.w.authenticate(c); err != nil {
		s.closeNow()
		return nil, err
	}
	data, err := c.Select(m.name, nil).Wait()
	if err != nil {
		s.logout()
		return nil, fmt.Errorf("select %q: %w", m.name, err)
	}
	if data.UIDValidity == 0 {
		s.logout()
		return nil, fmt.Errorf("select %q: the server sent no UIDVALIDITY", m.name)
	}
	s.uidValidity = data.UIDValidity
	s.uidNext = data.UIDNext
	m.log.Debug("IMAP mailbox selected", "uidvalidity", data.UIDValidity, "uidnext", data.UIDNext,
		"messages", data.NumMessages, "idle", s.canIdle())
	return s, nil
}

// setCursor takes the stored cursor, or starts over when the mailbox has a
// new UIDVALIDITY (C15: every cached UID is void; the hub's dedup on
// Message-ID absorbs the messages read a second time).
func (s *imapSession) setCursor(c Cursor) {
	switch {
	case c.UIDValidity == 0:
		s.firstSync = true
	case c.UIDValidity != s.uidValidity:
		s.m.log.Warn("IMAP mailbox has a new UIDVALIDITY (re-created or migrated); reading it again from the start",
			"old_uidvalidity", c.UIDValidity, "new_uidvalidity", s.uidValidity, "old_uid", c.UID)
		s.firstSync = true
	}
	if s.firstSync {
		c = Cursor{UIDValidity: s.uidValidity}
	}
	s.cursor = c
	if s.m.attemptsValidity != s.uidValidity {
		clear(s.m.attempts)
		s.m.attemptsValidity = s.uidValidity
	}
}

func (s *imapSession) signalNewMail() {
	select {
	case s.newMail <- struct{}{}:
	default:
	}
}

func (s *imapSession) drainNewMail() {
	select {
	case <-s.newMail:
	default:
	}
}

func (s *imapSession) canIdle() bool {
	return !s.m.noIdle && s.c.Caps().Has(imap.CapIdle)
}

// waitForMail blocks until a round is due: new mail was announced, or
// (as a safety net against servers that forget to announce) IdleRestart
// passed since the last round.
func (s *imapSession) waitForMail(ctx context.Context, lastRound time.Time) (due bool, err error) {
	select {
	case <-s.newMail:
		return true, nil
	default:
	}
	if s.canIdle() {
		s.m.log.Debug("IMAP waiting for mail with IDLE")
		return s.idle(ctx)
	}
	// C15: a server that does not advertise IDLE is never sent IDLE; it
	// is polled with NOOP, which makes it report new mail (EXISTS).
	st := s.m.w.cfg.Settings
	t := time.NewTimer(st.PollInterval.D())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-s.c.Closed():
		return false, errIMAPClosed
	case <-t.C:
	}
	if err := s.c.Noop().Wait(); err != nil {
		return false, fmt.Errorf("NOOP: %w", err)
	}
	select {
	case <-s.newMail:
		return true, nil
	default:
	}
	return s.m.w.cfg.Now().Sub(lastRound) >= st.IdleRestart.D(), nil
}

// idle runs one IDLE command until new mail is announced, IdleRestart
// passes (servers drop connections idle for 30 minutes, RFC 2177) or ctx
// ends.
func (s *imapSession) idle(ctx context.Context) (due bool, err error) {
	cmd, err := s.c.Idle()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			// Advertised but refused: poll from now on rather than
			// sending IDLE again and again (no BAD loop).
			s.m.noIdle = true
			s.m.log.Warn("IMAP server refused IDLE although it advertises it; polling instead", "err", err)
			return false, nil
		}
		return false, fmt.Errorf("IDLE: %w", err)
	}
	t := time.NewTimer(s.m.w.cfg.Settings.IdleRestart.D())
	defer t.Stop()
	var waitErr error
	select {
	case <-ctx.Done():
		waitErr = ctx.Err()
	case <-s.c.Closed():
		waitErr = errIMAPClosed
	case <-s.newMail:
		due = true
	case <-t.C:
		due = true
	}
	if err := cmd.Close(); err != nil && waitErr == nil {
		waitErr = fmt.Errorf("end IDLE: %w", err)
	}
	if waitErr != nil {
		return false, waitErr
	}
	if err := cmd.Wait(); err != nil {
		return false, fmt.Errorf("IDLE: %w", err)
	}
	return due, nil
}

// close ends the session: LOGOUT when the connection still works, then
// close it.
func (s *imapSession) close() { s.logout() }

func (s *imapSession) logout() {
	defer s.closeNow()
	select {
	case <-s.c.Closed():
		return
	default:
	}
	done := make(chan error, 1)
	go func() { done <- s.c.Logout().Wait() }()
	t := time.NewTimer(imapLogoutTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func (s *imapSession) closeNow() {
	s.c.Close()
	if s.unwatch != nil {
		s.unwatch()
	}
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// connect dials the server with the configured security and waits for its
// greeting. Plain text is used only when Security is "plain"; STARTTLS
// that fails never falls back to plain text.
func (w *imapWatcher) connect(ctx context.Context, opts *imapclient.Options) (*imapclient.Client, error) {
	st := w.cfg.Settings
	addr := net.JoinHostPort(st.Host, strconv.Itoa(st.Port))
	d := &net.Dialer{Timeout: imapDialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// The handshake and greeting honour ctx by closing the connection.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	tlsConf := w.tlsConfig()
	opts.TLSConfig = tlsConf
	var c *imapclient.Client
	switch st.Security {
	case SecurityTLS:
		tc := tls.Client(raw, tlsConf)
		hctx, cancel := context.WithTimeout(ctx, imapDialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, imapCtxErr(ctx, err))
		}
		c = imapclient.New(tc, opts)
	case SecurityStartTLS:
		c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", addr, imapCtxErr(ctx, err))
		}
	case SecurityPlain:
		c = imapclient.New(raw, opts)
	default:
		raw.Close()
		return nil, fmt.Errorf("settings.imap.security: %q is not one of tls, starttls, plain", st.Security)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting of %s: %w", addr, imapCtxErr(ctx, err))
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

// imapCtxErr prefers ctx's error over the "use of closed connection" that
// closing the connection for ctx produced.
func imapCtxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (w *imapWatcher) tlsConfig() *tls.Config {
	var c *tls.Config
	if w.cfg.TLSConfig != nil {
		c = w.cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = w.cfg.Settings.TLSServerName
		if c.ServerName == "" {
			c.ServerName = w.cfg.Settings.Host
		}
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// imapBackoff is exponential backoff with full jitter: the n-th delay is
// uniform in [0, min(max, min·2ⁿ)). With floor set it is never below min
// (the slow retry after a refused login).
type imapBackoff struct {
	min, max time.Duration
	floor    bool
	n        int
}

func (b *imapBackoff) next() time.Duration {
	ceil := b.min
	for i := 0; i < b.n && ceil < b.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	b.n++
	if b.floor {
		return b.min + rand.N(ceil-b.min+1)
	}
	return rand.N(ceil) + 1
}

func (b *imapBackoff) reset() { b.n = 0 }

// imapSleep waits d; it returns false when ctx ended or closed was closed
// first.
func imapSleep(ctx context.Context, d time.Duration, closed <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-closed:
		return false
	case <-t.C:
		return true
	}
}
