package email

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// Test harness of the IMAP watcher: go-imap's in-memory server on a
// loopback port (real TCP), with hooks that count what the watcher asks
// of it, and the recorders the watcher delivers into.

const (
	imapTestUser     = "support@example.com"
	imapTestPassword = "pw-7Qx!secret-imap"
	imapTestToken    = "ya29.tok-9Zr-secret-oauth"
	// imapTestDeadline is how long a test waits for something to happen;
	// generous, it never decides a test on timing.
	imapTestDeadline = 30 * time.Second
)

type imapTestServerOptions struct {
	// caps of the server; default IMAP4rev1 NAMESPACE UIDPLUS MOVE.
	caps imap.CapSet
	// mechs are the SASL mechanisms offered (PLAIN, LOGIN, XOAUTH2);
	// default PLAIN. An empty non-nil list offers none (LOGIN command).
	mechs []string
	// implicitTLS serves TLS on the port; startTLS offers STARTTLS (and
	// then refuses to authenticate without it).
	implicitTLS, startTLS *tls.Config
	// hideIdle puts a proxy in front that removes IDLE from the
	// capabilities and answers BAD to an IDLE command.
	hideIdle bool
	// refuseIdle keeps IDLE in the capabilities but answers it BAD (a
	// server that advertises more than it does).
	refuseIdle bool
	// dropOnSelect names a mailbox whose SELECT closes the connection.
	dropOnSelect string
}

type imapTestServer struct {
	t    testing.TB
	addr string
	host string
	port int
	mem  *imapmemserver.Server
	user *imapmemserver.User
	ln   *imapTestListener

	logins   atomic.Int32 // successful and failed Login calls
	selects  atomic.Int32
	idles    atomic.Int32
	idleSeen chan struct{} // signalled on every IDLE
	proxy    *imapTestProxy

	mu         sync.Mutex
	bodyFetchs []string      // UID sets of fetches that asked for a body section
	changed    chan struct{} // closed (and replaced) by appendMail
}

func newIMAPTestServer(t testing.TB, opts imapTestServerOptions) *imapTestServer {
	t.Helper()
	s := &imapTestServer{t: t, mem: imapmemserver.New(), idleSeen: make(chan struct{}, 1), changed: make(chan struct{})}
	s.user = imapmemserver.NewUser(imapTestUser, imapTestPassword)
	s.mem.AddUser(s.user)
	if err := s.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	caps := opts.caps
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {}}
	}
	mechs := opts.mechs
	if mechs == nil {
		mechs = []string{"PLAIN"}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			inner := s.mem.NewSession().(imapserver.SessionIMAP4rev2)
			return &imapTestSession{SessionIMAP4rev2: inner, srv: s, conn: conn, mechs: mechs, dropOnSelect: opts.dropOnSelect}, nil, nil
		},
		Caps:         caps,
		TLSConfig:    opts.startTLS,
		InsecureAuth: opts.startTLS == nil,
		Logger:       imapTestDiscardLogger{},
	})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = raw
	if opts.implicitTLS != nil {
		ln = tls.NewListener(raw, opts.implicitTLS)
	}
	s.ln = &imapTestListener{Listener: ln}
	go srv.Serve(s.ln)
	t.Cleanup(func() { srv.Close() })
	s.addr = raw.Addr().String()
	if opts.hideIdle || opts.refuseIdle {
		s.proxy = newIMAPTestProxy(t, s.addr, opts.hideIdle)
		s.addr = s.proxy.addr
	}
	host, port, _ := net.SplitHostPort(s.addr)
	s.host = host
	s.port, _ = strconv.Atoi(port)
	return s
}

// settings returns IMAP settings for this server with quick polling and
// IDLE restarts left at their defaults.
func (s *imapTestServer) settings() IMAPSettings {
	return IMAPSettings{
		Host:         s.host,
		Port:         s.port,
		Security:     SecurityPlain,
		Username:     imapTestUser,
		Auth:         "plain",
		Mailboxes:    []string{"INBOX"},
		AfterFetch:   "seen",
		PollInterval: Duration(20 * time.Millisecond),
		IdleRestart:  Duration(DefaultIdleRestart),
		InitialSync:  InitialSyncAll,
	}
}

// appendMail puts raw into mailbox directly (not over the wire).
func (s *imapTestServer) appendMail(mailbox string, raw []byte, flags ...imap.Flag) imap.UID {
	s.t.Helper()
	data, err := s.user.Append(mailbox, imapTestLiteral{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Flags: flags})
	if err != nil {
		s.t.Fatalf("append to %s: %v", mailbox, err)
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return data.UID
}

func (s *imapTestServer) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *imapTestServer) bodyFetches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodyFetchs...)
}

// messages lists mailbox over a fresh client connection: UID → flags.
func (s *imapTestServer) messages(mailbox string) map[imap.UID][]imap.Flag {
	s.t.Helper()
	out, err := s.list(mailbox)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// list is messages for use outside the test goroutine.
func (s *imapTestServer) list(mailbox string) (map[imap.UID][]imap.Flag, error) {
	c, err := imapclient.DialInsecure(s.addr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(imapTestUser, imapTestPassword).Wait(); err != nil {
		return nil, err
	}
	data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", mailbox, err)
	}
	out := map[imap.UID][]imap.Flag{}
	if data.NumMessages == 0 {
		return out, nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch flags: %w", err)
	}
	for _, m := range msgs {
		out[m.UID] = m.Flags
	}
	return out, nil
}

func imapTestHasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

type imapTestLiteral struct {
	*bytes.Reader
	n int64
}

func (l imapTestLiteral) Size() int64 { return l.n }

type imapTestDiscardLogger struct{}

func (imapTestDiscardLogger) Printf(string, ...any) {}

// imapTestSession wraps the memory server's session to count calls and
// offer further SASL mechanisms.
type imapTestSession struct {
	imapserver.SessionIMAP4rev2
	srv          *imapTestServer
	conn         *imapserver.Conn
	mechs        []string
	dropOnSelect string
}

func (s *imapTestSession) Login(username, password string) error {
	s.srv.logins.Add(1)
	return s.SessionIMAP4rev2.Login(username, password)
}

func (s *imapTestSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.srv.selects.Add(1)
	if name != "" && name == s.dropOnSelect {
		s.conn.NetConn().Close()
		return nil, errors.New("dropped")
	}
	return s.SessionIMAP4rev2.Select(name, options)
}

// Idle reports pending changes when IDLE begins, as Dovecot does (the
// memory server reports only changes made after IDLE began, which would
// make a mail appended just before IDLE wait for the next restart).
func (s *imapTestSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.srv.idles.Add(1)
	select {
	case s.srv.idleSeen <- struct{}{}:
	default:
	}
	for {
		changed := s.srv.changes()
		if err := s.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-changed:
		}
	}
}

func (s *imapTestSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if len(options.BodySection) > 0 {
		s.srv.mu.Lock()
		s.srv.bodyFetchs = append(s.srv.bodyFetchs, numSet.String())
		s.srv.mu.Unlock()
	}
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

func (s *imapTestSession) AuthenticateMechanisms() []string { return s.mechs }

func (s *imapTestSession) Authenticate(mech string) (sasl.Server, error) {
	for _, m := range s.mechs {
		if m != mech {
			continue
		}
		switch mech {
		case "PLAIN":
			return sasl.NewPlainServer(func(identity, username, password string) error {
				return s.Login(username, password)
			}), nil
		case "LOGIN":
			return &imapTestLoginServer{login: s.Login}, nil
		case "XOAUTH2":
			return &imapTestXOAuth2Server{login: func(user string) error { return s.Login(user, imapTestPassword) }}, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// imapTestLoginServer is the server side of SASL LOGIN.
type imapTestLoginServer struct {
	login    func(user, pass string) error
	step     int
	username string
}

func (l *imapTestLoginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.login(l.username, string(resp))
	}
}

// imapTestXOAuth2Server is the server side of XOAUTH2: it accepts
// imapTestToken only, answering others with Google's JSON error.
type imapTestXOAuth2Server struct {
	login  func(user string) error
	failed bool
}

func (x *imapTestXOAuth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	fields := strings.Split(string(resp), "\x01")
	var user, auth string
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(f, "auth="); ok {
			auth = v
		}
	}
	if auth != "Bearer "+imapTestToken || len(fields) != 4 {
		x.failed = true
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	return nil, true, x.login(user)
}

// imapTestListener is a listener whose open connections a test can drop.
type imapTestListener struct {
	net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted atomic.Int32
}

func (l *imapTestListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// dropAll closes every connection accepted so far, as a server restart or
// a network failure would.
func (l *imapTestListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// imapTestProxy stands for a server without IDLE: it removes IDLE from the
// capabilities the server sends and answers an IDLE command with BAD
// itself (recording it as a violation).
type imapTestProxy struct {
	addr     string
	hideIdle bool
	idleSent atomic.Int32
	noops    atomic.Int32
	noopSeen chan struct{}
}

func newIMAPTestProxy(t testing.TB, backend string, hideIdle bool) *imapTestProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &imapTestProxy{addr: ln.Addr().String(), hideIdle: hideIdle, noopSeen: make(chan struct{}, 1)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, backend)
		}
	}()
	return p
}

func (p *imapTestProxy) serve(client net.Conn, backend string) {
	defer client.Close()
	server, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer server.Close()
	var wmu sync.Mutex // both directions write to the client
	go func() {
		defer client.Close()
		r := bufio.NewReader(server)
		for {
			line, err := r.ReadString('\n')
			if p.hideIdle && strings.Contains(line, "CAPABILITY") {
				line = strings.ReplaceAll(line, " IDLE", "")
			}
			wmu.Lock()
			_, werr := io.WriteString(client, line)
			wmu.Unlock()
			if err != nil || werr != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(client)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(cmd) {
		case "IDLE":
			p.idleSent.Add(1)
			wmu.Lock()
			io.WriteString(client, tag+" BAD Error in IMAP command IDLE: Unknown command.\r\n")
			wmu.Unlock()
			continue
		case "NOOP":
			p.noops.Add(1)
			select {
			case p.noopSeen <- struct{}{}:
			default:
			}
		}
		if _, err := io.WriteString(server, line); err != nil {
			return
		}
	}
}

// imapTestCursors is an in-memory cursorStore that reports every save.
type imapTestCursors struct {
	mu      sync.Mutex
	cursors map[string]Cursor
	saves   chan Cursor
	loadErr error
}

func newIMAPTestCursors() *imapTestCursors {
	return &imapTestCursors{cursors: map[string]Cursor{}, saves: make(chan Cursor, 1000)}
}

func (c *imapTestCursors) LoadCursor(_ context.Context, mailbox string) (Cursor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursors[mailbox], c.loadErr
}

func (c *imapTestCursors) SaveCursor(_ context.Context, mailbox string, cur Cursor) error {
	c.mu.Lock()
	c.cursors[mailbox] = cur
	c.mu.Unlock()
	select {
	case c.saves <- cur:
	default:
	}
	return nil
}

func (c *imapTestCursors) get(mailbox string) Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursors[mailbox]
}

// waitFor waits until the cursor of mailbox is want.
func (c *imapTestCursors) waitFor(t *testing.T, mailbox string, want Cursor) {
	t.Helper()
	deadline := time.NewTimer(imapTestDeadline)
	defer deadline.Stop()
	for c.get(mailbox) != want {
		select {
		case <-c.saves:
		case <-deadline.C:
			t.Fatalf("cursor of %s is %+v, want %+v", mailbox, c.get(mailbox), want)
		}
	}
}

// imapTestDelivery is one Ingest call.
type imapTestDelivery struct {
	raw []byte
	src Source
}

// imapTestSink records Ingest calls; fail, when set, decides the result.
type imapTestSink struct {
	ch   chan imapTestDelivery
	fail func(raw []byte, src Source) error
}

func newIMAPTestSink() *imapTestSink { return &imapTestSink{ch: make(chan imapTestDelivery, 1000)} }

func (s *imapTestSink) ingest(_ context.Context, raw []byte, src Source) error {
	if s.fail != nil {
		if err := s.fail(raw, src); err != nil {
			return err
		}
	}
	s.ch <- imapTestDelivery{raw: append([]byte(nil), raw...), src: src}
	return nil
}

// next waits for the next stored mail.
func (s *imapTestSink) next(t *testing.T) imapTestDelivery {
	t.Helper()
	select {
	case d := <-s.ch:
		return d
	case <-time.After(imapTestDeadline):
		t.Fatal("no mail was delivered")
		return imapTestDelivery{}
	}
}

// imapTestLog captures the watcher's log as JSON lines.
type imapTestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *imapTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *imapTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns the log records whose message contains msg.
func (l *imapTestLog) records(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(fmt.Sprint(rec["msg"]), msg) {
			out = append(out, rec)
		}
	}
	return out
}

func (l *imapTestLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// imapTestConfig is a watcher config for srv delivering into sink.
func imapTestConfig(srv *imapTestServer, sink *imapTestSink, cursors *imapTestCursors, log *imapTestLog) imapConfig {
	return imapConfig{
		Settings:        srv.settings(),
		Password:        imapTestPassword,
		OAuthToken:      imapTestToken,
		MaxMessageBytes: DefaultMaxMessageBytes,
		Cursors:         cursors,
		Ingest:          sink.ingest,
		Logger:          log.logger(),
		Parallel:        1, // the tests check UID order; TestIMAPParallelIngest the rest
		Retry:           imapRetry{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond, AuthMin: time.Hour, AuthMax: time.Hour},
	}
}

// imapTestRun runs a watcher until the test ends; the cleanup checks that
// Run returns once its context is cancelled.
func imapTestRun(t *testing.T, cfg imapConfig) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		newIMAPWatcher(cfg).Run(ctx)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(imapTestDeadline):
			t.Error("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return stop
}

// imapTestMail is a small generated mail with CRLF line endings.
func imapTestMail(n int, subject string) []byte {
	return []byte(fmt.Sprintf("From: Customer %d <customer%d@example.org>\r\n"+
		"To: support@example.com\r\n"+
		"Subject: %s\r\n"+
		"Date: Mon, 15 Apr 2024 09:00:00 +0200\r\n"+
		"Message-ID: <gen-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"\r\n"+
		"Message number %d.\r\n", n, n, subject, n, n))
}

// imapTestCert is a test certificate for 127.0.0.1, localhost and
// imap.test.
func imapTestCert(t *testing.T) (server, client *tls.Config) { return testenv.TLSCert(t, "imap.test") }

// imapTestWaitUntil waits for cond, re-checking whenever tick fires (or
// every few milliseconds when tick is nil, for conditions nothing
// signals, such as a log line).
func imapTestWaitUntil(t *testing.T, what string, tick <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(imapTestDeadline)
	defer deadline.Stop()
	var poll <-chan time.Time
	if tick == nil {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		poll = tk.C
	}
	for !cond() {
		select {
		case <-tick:
		case <-poll:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
