package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// smtpTestCerts is a test certificate for 127.0.0.1 and localhost.
func smtpTestCerts(t testing.TB) (server, client *tls.Config) { return testenv.TLSCert(t) }

// smtpTestSink is a relay that records what it is sent, with knobs for
// the failures a relay produces.
type smtpTestSink struct {
	mechs    []string // AUTH mechanisms offered
	user     string
	password string
	rcpt     func(to string) error // nil: accept
	data     error                 // returned at the end of DATA

	mu    sync.Mutex
	helos []string // EHLO names, one per session (a new one after STARTTLS)
	auths []string // "MECH user"
	mails []smtpTestMail
}

type smtpTestMail struct {
	from  string
	to    []string
	raw   []byte
	tls   bool
	authd bool
}

type smtpTestSinkSession struct {
	sink  *smtpTestSink
	tls   bool
	authd bool
	mail  smtpTestMail
}

func (k *smtpTestSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	k.mu.Lock()
	k.helos = append(k.helos, c.Hostname())
	k.mu.Unlock()
	return &smtpTestSinkSession{sink: k, tls: isTLS}, nil
}

func (s *smtpTestSinkSession) AuthMechanisms() []string { return s.sink.mechs }

func (s *smtpTestSinkSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		s.sink.mu.Lock()
		s.sink.auths = append(s.sink.auths, mech+" "+user)
		s.sink.mu.Unlock()
		if user != s.sink.user || pass != s.sink.password {
			return smtp.ErrAuthFailed
		}
		s.authd = true
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &smtpTestLoginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpTestSinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if len(s.sink.mechs) > 0 && !s.authd {
		return smtp.ErrAuthRequired
	}
	s.mail = smtpTestMail{from: from, tls: s.tls, authd: s.authd}
	return nil
}

func (s *smtpTestSinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.sink.rcpt != nil {
		if err := s.sink.rcpt(to); err != nil {
			return err
		}
	}
	s.mail.to = append(s.mail.to, to)
	return nil
}

func (s *smtpTestSinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.sink.data != nil {
		return s.sink.data
	}
	s.mail.raw = raw
	s.sink.mu.Lock()
	s.sink.mails = append(s.sink.mails, s.mail)
	s.sink.mu.Unlock()
	return nil
}

func (s *smtpTestSinkSession) Reset()        { s.mail = smtpTestMail{} }
func (s *smtpTestSinkSession) Logout() error { return nil }

// smtpTestLoginServer is the server side of AUTH LOGIN, which go-sasl
// has only as a client.
type smtpTestLoginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *smtpTestLoginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

func (k *smtpTestSink) snapshot() (helos, auths []string, mails []smtpTestMail) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.helos...), append([]string(nil), k.auths...), append([]smtpTestMail(nil), k.mails...)
}

// smtpTestStartSink serves sink on 127.0.0.1: with STARTTLS when
// starttls is set, behind implicit TLS when implicitTLS is set.
func smtpTestStartSink(t *testing.T, sink *smtpTestSink, serverTLS *tls.Config, mode string) SMTPSettings {
	t.Helper()
	srv := smtp.NewServer(sink)
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = mode == SecurityPlain
	srv.ErrorLog = smtpErrorLog{log: smtpTestLogger(t)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case SecurityStartTLS:
		srv.TLSConfig = serverTLS
	case SecurityTLS:
		l = tls.NewListener(l, serverTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		// Closing l as well: Close may run before Serve registered it.
		srv.Close()
		l.Close()
		<-done
	})
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	s := SMTPSettings{Host: host, Port: p, Security: mode, Username: sink.user, HelloName: "node1.support.example.com"}
	if err := s.normalize("example.com"); err != nil {
		t.Fatal(err)
	}
	return s
}

func smtpTestClassified(t *testing.T, err error, class connectors.Class, code string) *connectors.Error {
	t.Helper()
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *connectors.Error", err, err)
	}
	if ce.Class != class || ce.Code != code {
		t.Fatalf("err = %v, want class %s code %s", err, class, code)
	}
	if ce.Msg == "" {
		t.Fatal("no message for the agent")
	}
	return ce
}

// A composed reply goes out over STARTTLS with AUTH PLAIN and arrives as
// sent; its headers read back as composed.
func TestSMTPSenderStartTLSPlainAuth(t *testing.T) {
	serverTLS, clientTLS := smtpTestCerts(t)
	sink := &smtpTestSink{mechs: []string{sasl.Plain, sasl.Login}, user: "support@example.com", password: "s3cret pass"}
	s := smtpTestStartSink(t, sink, serverTLS, SecurityStartTLS)

	out := composeTestOutbound()
	raw, id, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	err = newSMTPSender(s, "s3cret pass", clientTLS).Send(context.Background(), "support@example.com", []string{"dave.kline@example.org"}, raw)
	if err != nil {
		t.Fatal(err)
	}
	helos, auths, mails := sink.snapshot()
	if len(mails) != 1 {
		t.Fatalf("%d mails at the sink", len(mails))
	}
	m := mails[0]
	if !m.tls || !m.authd || m.from != "support@example.com" || len(m.to) != 1 || m.to[0] != "dave.kline@example.org" {
		t.Errorf("envelope %+v", m)
	}
	if len(auths) != 1 || auths[0] != "PLAIN support@example.com" {
		t.Errorf("auths %v, want PLAIN (preferred when offered)", auths)
	}
	// EHLO s.HelloName before and after STARTTLS (never "localhost").
	if len(helos) != 2 || helos[0] != "node1.support.example.com" || helos[1] != "node1.support.example.com" {
		t.Errorf("EHLO names %v", helos)
	}
	if !bytes.Equal(m.raw, raw) {
		t.Errorf("the relay got other bytes than composed:\n%q\n%q", m.raw, raw)
	}
	msg := composeTestParse(t, m.raw)
	if msg.Header.Get("Message-Id") != "<"+id+">" || msg.Header.Get("In-Reply-To") != "<CAF3x9qL7pT0seed5521@mail.example.org>" {
		t.Errorf("headers at the relay: %v", msg.Header)
	}
}

func TestSMTPSenderImplicitTLSLoginAuth(t *testing.T) {
	serverTLS, clientTLS := smtpTestCerts(t)
	sink := &smtpTestSink{mechs: []string{sasl.Login}, user: "agent", password: "pw"}
	s := smtpTestStartSink(t, sink, serverTLS, SecurityTLS)
	if err := newSMTPSender(s, "pw", clientTLS).Send(context.Background(), "support@example.com", []string{"a@example.org"}, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	helos, auths, mails := sink.snapshot()
	if len(mails) != 1 || !mails[0].tls || !mails[0].authd {
		t.Fatalf("mails %+v", mails)
	}
	if len(auths) != 1 || auths[0] != "LOGIN agent" {
		t.Errorf("auths %v, want LOGIN (the only one offered)", auths)
	}
	if len(helos) != 1 || helos[0] != "node1.support.example.com" {
		t.Errorf("EHLO names %v", helos)
	}
}

func TestSMTPSenderPlainWhenConfigured(t *testing.T) {
	sink := &smtpTestSink{}
	s := smtpTestStartSink(t, sink, nil, SecurityPlain)
	if err := newSMTPSender(s, "", nil).Send(context.Background(), "", []string{"a@example.org", "b@example.org"}, []byte("Subject: x\n\nLF only\n")); err != nil {
		t.Fatal(err)
	}
	_, auths, mails := sink.snapshot()
	if len(mails) != 1 || mails[0].tls || len(auths) != 0 || mails[0].from != "" || len(mails[0].to) != 2 {
		t.Fatalf("mails %+v auths %v", mails, auths)
	}
	if string(mails[0].raw) != "Subject: x\r\n\r\nLF only\r\n" {
		t.Errorf("raw %q: LF lines must go out as CRLF", mails[0].raw)
	}
}

func TestSMTPSenderFailures(t *testing.T) {
	serverTLS, clientTLS := smtpTestCerts(t)
	userUnknown := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
	tests := []struct {
		name     string
		sink     *smtpTestSink
		mode     string
		password string
		to       []string
		client   *tls.Config
		security string // "-" for empty: what the sender is told, when not mode
		class    connectors.Class
		code     string
		msg      string // substring of Msg
	}{
		{name: "5xx at RCPT is permanent, with the relay's status for the agent",
			sink: &smtpTestSink{rcpt: func(string) error { return userUnknown }},
			to:   []string{"nobody@example.org"}, class: connectors.Permanent, code: "smtp_550",
			msg: "The recipient's server refused the mail: 5.1.1 user unknown"},
		{name: "4xx at RCPT is retryable",
			sink: &smtpTestSink{rcpt: func(string) error {
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
			}},
			to: []string{"a@example.org"}, class: connectors.Retryable, code: "smtp_450", msg: "4.2.0 mailbox busy"},
		{name: "one of two recipients refused: nothing is sent, permanent",
			sink: &smtpTestSink{rcpt: func(to string) error {
				if to == "bad@example.org" {
					return userUnknown
				}
				return nil
			}},
			to: []string{"good@example.org", "bad@example.org"}, class: connectors.Permanent, code: "smtp_550",
			msg: "bad@example.org: 5.1.1 user unknown"},
		{name: "one refused 4xx, one 5xx: permanent",
			sink: &smtpTestSink{rcpt: func(to string) error {
				if to == "busy@example.org" {
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "later"}
				}
				return userUnknown
			}},
			to: []string{"busy@example.org", "bad@example.org"}, class: connectors.Permanent, code: "smtp_550", msg: "busy@example.org: 4.3.0 later"},
		{name: "5xx after DATA is permanent",
			sink: &smtpTestSink{data: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message rejected as spam"}},
			to:   []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_554", msg: "The recipient's server refused the mail: 5.7.1 message rejected as spam"},
		{name: "4xx after DATA is retryable",
			sink: &smtpTestSink{data: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "try again later"}},
			to:   []string{"a@example.org"}, class: connectors.Retryable, code: "smtp_421", msg: "4.7.0 try again later"},
		{name: "wrong password is a permanent auth failure",
			sink:     &smtpTestSink{mechs: []string{sasl.Plain}, user: "support@example.com", password: "right"},
			password: "wrong-Pa55word", to: []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_auth", msg: "5.7.8"},
		{name: "wrong password over LOGIN too",
			sink:     &smtpTestSink{mechs: []string{sasl.Login}, user: "support@example.com", password: "right"},
			password: "wrong-Pa55word", to: []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_auth", msg: "refused the login"},
		{name: "a username but the relay offers no login",
			sink:     &smtpTestSink{user: "support@example.com"},
			password: "wrong-Pa55word", to: []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_auth", msg: "offers no login"},
		{name: "only mechanisms we do not speak",
			sink:     &smtpTestSink{mechs: []string{"CRAM-MD5", "XOAUTH2"}, user: "u"},
			password: "wrong-Pa55word", to: []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_auth", msg: "CRAM-MD5 XOAUTH2"},
		{name: "relay requires a login we were not configured for",
			sink: &smtpTestSink{mechs: []string{sasl.Plain}},
			to:   []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_auth", msg: "5.7.0"},
		{name: "STARTTLS required but not offered",
			sink: &smtpTestSink{}, mode: SecurityPlain, client: clientTLS,
			to: []string{"a@example.org"}, class: connectors.Retryable, code: "smtp_tls", msg: "does not offer STARTTLS"},
		{name: "security left empty means STARTTLS, never plain",
			sink: &smtpTestSink{}, mode: SecurityPlain, client: clientTLS, security: "-",
			to: []string{"a@example.org"}, class: connectors.Retryable, code: "smtp_tls", msg: "does not offer STARTTLS"},
		{name: "unknown security mode",
			sink: &smtpTestSink{}, mode: SecurityPlain, security: "ssl",
			to: []string{"a@example.org"}, class: connectors.Permanent, code: "smtp_config", msg: "ssl"},
		{name: "untrusted certificate",
			sink: &smtpTestSink{}, client: &tls.Config{},
			to: []string{"a@example.org"}, class: connectors.Retryable, code: "smtp_tls", msg: "TLS"},
		{name: "a CR in an address never reaches the wire",
			sink: &smtpTestSink{}, to: []string{"a@example.org\r\nRCPT TO:<b@example.org>"}, class: connectors.Permanent, code: "smtp_bad_address", msg: "not a recipient address"},
		{name: "a non-ASCII address through a relay without SMTPUTF8",
			sink: &smtpTestSink{}, to: []string{"josé@example.org"}, class: connectors.Permanent, code: "smtp_utf8", msg: "non-ASCII"},
		{name: "no recipient",
			sink: &smtpTestSink{}, to: nil, class: connectors.Permanent, code: "smtp_no_recipient", msg: "no recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := SecurityStartTLS
			if tt.mode != "" {
				mode = tt.mode
			}
			s := smtpTestStartSink(t, tt.sink, serverTLS, mode)
			switch {
			case tt.security == "-":
				s.Security = ""
			case tt.security != "":
				s.Security = tt.security
			case tt.mode == SecurityPlain && tt.client != nil:
				s.Security = SecurityStartTLS // the relay speaks plain, we insist on STARTTLS
			}
			cl := clientTLS
			if tt.client != nil {
				cl = tt.client
			}
			err := newSMTPSender(s, tt.password, cl).Send(context.Background(), "support@example.com", tt.to, []byte("Subject: x\r\n\r\nbody\r\n"))
			ce := smtpTestClassified(t, err, tt.class, tt.code)
			if !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", ce.Msg, tt.msg)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("the password shows in the error: %v", err)
			}
			if _, _, mails := tt.sink.snapshot(); len(mails) != 0 {
				t.Errorf("%d mails reached the sink", len(mails))
			}
		})
	}
}

// smtpTestRawServer accepts connections and runs serve on each, for
// relays that misbehave below what go-smtp's server can be told to do.
func smtpTestRawServer(t *testing.T, serve func(net.Conn)) SMTPSettings {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	return SMTPSettings{Host: host, Port: p, Security: SecurityPlain, HelloName: "node1.support.example.com"}
}

func TestSMTPSenderGreeting421(t *testing.T) {
	s := smtpTestRawServer(t, func(c net.Conn) {
		io.WriteString(c, "421 4.3.2 relay.test shutting down\r\n")
		io.Copy(io.Discard, c)
	})
	err := newSMTPSender(s, "", nil).Send(context.Background(), "support@example.com", []string{"a@example.org"}, []byte("x"))
	ce := smtpTestClassified(t, err, connectors.Retryable, "smtp_421")
	if !strings.Contains(ce.Msg, "4.3.2 relay.test shutting down") {
		t.Errorf("Msg %q", ce.Msg)
	}
}

// A relay that accepts the connection and then says nothing: the
// context's deadline ends the attempt, retryable.
func TestSMTPSenderTimeout(t *testing.T) {
	s := smtpTestRawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := newSMTPSender(s, "", nil).Send(ctx, "support@example.com", []string{"a@example.org"}, []byte("x"))
	smtpTestClassified(t, err, connectors.Retryable, "smtp_timeout")
}

// Cancelling mid-DATA (the relay never answers the final dot) stops the
// send, retryable.
func TestSMTPSenderCanceledInData(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := smtpTestRawServer(t, func(c net.Conn) {
		io.WriteString(c, "220 relay.test ESMTP\r\n")
		buf := make([]byte, 4096)
		var seen []byte
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			seen = append(seen, buf[:n]...)
			for {
				i := bytes.Index(seen, []byte("\r\n"))
				if i < 0 {
					break
				}
				line := string(seen[:i])
				seen = seen[i+2:]
				switch {
				case strings.HasPrefix(line, "EHLO"):
					io.WriteString(c, "250-relay.test\r\n250 8BITMIME\r\n")
				case strings.HasPrefix(line, "MAIL"), strings.HasPrefix(line, "RCPT"):
					io.WriteString(c, "250 2.0.0 ok\r\n")
				case line == "DATA":
					io.WriteString(c, "354 go ahead\r\n")
				case line == ".":
					cancel() // and never answer
				}
			}
		}
	})
	err := newSMTPSender(s, "", nil).Send(ctx, "support@example.com", []string{"a@example.org"}, []byte("Subject: x\r\n\r\nbody\r\n"))
	smtpTestClassified(t, err, connectors.Retryable, "smtp_canceled")
}

func TestSMTPSenderConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	for _, mode := range []string{SecurityStartTLS, SecurityTLS, SecurityPlain} {
		s := SMTPSettings{Host: "127.0.0.1", Port: addr.Port, Security: mode, HelloName: "node1"}
		err := newSMTPSender(s, "", nil).Send(context.Background(), "support@example.com", []string{"a@example.org"}, []byte("x"))
		smtpTestClassified(t, err, connectors.Retryable, "smtp_connection")
	}
}

// go-smtp says "EHLO localhost" before STARTTLS; the wrapper gives the
// configured name instead, and passes everything else through.
func TestSMTPSenderHelloConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	hc := &smtpHelloConn{Conn: a, name: "node1.example.com"}
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		var all []byte
		for len(all) < len("EHLO node1.example.com\r\nSTARTTLS\r\nEHLO localhost\r\n") {
			n, err := b.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- string(all)
	}()
	hc.Write([]byte("EHLO localhost\r\n"))
	hc.Write([]byte("STARTTLS\r\n"))
	hc.Write([]byte("EHLO localhost\r\n")) // inside TLS in real life: untouched
	if g := <-got; g != "EHLO node1.example.com\r\nSTARTTLS\r\nEHLO localhost\r\n" {
		t.Fatalf("wire %q", g)
	}
}
