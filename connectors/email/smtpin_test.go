package email

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// smtpTestLogger discards: server goroutines may still log after a test
// has ended, which testing.T does not allow.
func smtpTestLogger(testing.TB) *slog.Logger { return slog.New(slog.DiscardHandler) }

// smtpTestStore is a channel's ingest: it records what it stored and can
// be told to fail the next calls.
type smtpTestStore struct {
	mu       sync.Mutex
	fail     int // fail this many calls before storing
	attempts int
	stored   []smtpTestIngested
}

type smtpTestIngested struct {
	raw []byte
	src Source
}

func (st *smtpTestStore) ingest(_ context.Context, raw []byte, src Source) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.attempts++
	if st.fail > 0 {
		st.fail--
		return errors.New("database unavailable")
	}
	st.stored = append(st.stored, smtpTestIngested{raw: raw, src: src})
	return nil
}

func (st *smtpTestStore) snapshot() (attempts int, stored []smtpTestIngested) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.attempts, append([]smtpTestIngested(nil), st.stored...)
}

// smtpTestListen starts an SMTPServer on 127.0.0.1 and returns it with its
// address; it is closed when the test ends.
func smtpTestListen(t *testing.T, cfg SMTPServerConfig) (*SMTPServer, string) {
	t.Helper()
	if cfg.Domain == "" {
		cfg.Domain = "mx.support.example.com"
	}
	cfg.Logger = smtpTestLogger(t)
	s := NewSMTPServer(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, l.Addr().String()
}

func smtpTestHandle(t *testing.T, s *SMTPServer, maxBytes int64, addrs ...string) *smtpTestStore {
	t.Helper()
	st := &smtpTestStore{}
	remove, err := s.Handle(addrs, maxBytes, st.ingest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	return st
}

// smtpTestDial connects a go-smtp client, as a sending MTA would.
func smtpTestDial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mta.example.org"); err != nil {
		t.Fatal(err)
	}
	return c
}

// smtpTestSend runs one transaction and returns the first refusal.
func smtpTestSend(c *smtp.Client, from string, to []string, raw string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, raw); err != nil {
		return err
	}
	return w.Close()
}

func smtpTestCode(t *testing.T, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enhanced {
		t.Fatalf("err = %v, want %d %v", err, code, enhanced)
	}
}

const smtpTestMessage = "From: Alice <alice@example.org>\r\nTo: support@example.com\r\nSubject: Printer offline again\r\nMessage-ID: <msgA@example.org>\r\n\r\nIt is offline.\r\n"

func TestSMTPServerAccepts(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	if err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, smtpTestMessage); err != nil {
		t.Fatal(err)
	}
	_, stored := st.snapshot()
	if len(stored) != 1 {
		t.Fatalf("%d stored", len(stored))
	}
	want := "Return-Path: <alice@example.org>\r\n" + smtpTestMessage
	if string(stored[0].raw) != want {
		t.Errorf("raw = %q, want %q", stored[0].raw, want)
	}
	if src := stored[0].src; src.Via != "smtp" || !slices.Equal(src.Recipients, []string{"support@example.com"}) {
		t.Errorf("source %+v", src)
	}
	// The same connection takes a second transaction.
	if err := smtpTestSend(c, "bob@example.org", []string{"support@example.com"}, "Subject: two\r\n\r\nsecond\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, stored := st.snapshot(); len(stored) != 2 {
		t.Fatalf("%d stored after the second transaction", len(stored))
	}
}

func TestSMTPServerRecipients(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	smtpTestHandle(t, s, 0, "support@example.com", "help@example.com")
	tests := []struct {
		rcpt string
		ok   bool
	}{
		{"support@example.com", true},
		{"help@example.com", true},
		{"support@EXAMPLE.COM", true},
		{"Support@Example.com", true},
		{"support+t10042@example.com", true},
		{"support+anything+else@example.com", true},
		{"SUPPORT+X@Example.Com", true},
		{"other@example.com", false},
		{"other+support@example.com", false},
		{"support@example.org", false},
		{"support@sub.example.com", false},
		{"+support@example.com", false},
		{"supportx@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			c := smtpTestDial(t, addr)
			if err := c.Mail("alice@example.org", nil); err != nil {
				t.Fatal(err)
			}
			err := c.Rcpt(tt.rcpt, nil)
			if tt.ok && err != nil {
				t.Fatalf("RCPT %s refused: %v", tt.rcpt, err)
			}
			if !tt.ok {
				smtpTestCode(t, err, 550, smtp.EnhancedCode{5, 1, 1})
			}
		})
	}
}

func TestSMTPServerPlusAddress(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	if err := smtpTestSend(c, "alice@example.org", []string{"support+t10042@Example.com"}, smtpTestMessage); err != nil {
		t.Fatal(err)
	}
	_, stored := st.snapshot()
	// The plus-address reaches the channel as given: it names the ticket.
	if len(stored) != 1 || !slices.Equal(stored[0].src.Recipients, []string{"support+t10042@Example.com"}) {
		t.Fatalf("stored %+v", stored)
	}
}

// Postmaster is accepted, as RFC 5321 requires: for a domain the server
// receives for, and bare; a domain it has no channel for stays refused.
func TestSMTPServerPostmaster(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	for _, rcpt := range []string{"postmaster@example.com", "Postmaster@EXAMPLE.com", "postmaster"} {
		if err := smtpTestSend(smtpTestDial(t, addr), "mta@example.net", []string{rcpt}, smtpTestMessage); err != nil {
			t.Errorf("%s: %v", rcpt, err)
		}
	}
	if _, stored := st.snapshot(); len(stored) != 3 {
		t.Fatalf("stored %d", len(stored))
	}
	smtpTestCode(t, smtpTestSend(smtpTestDial(t, addr), "mta@example.net", []string{"postmaster@other.example"}, smtpTestMessage), 550, smtp.EnhancedCode{5, 1, 1})
}

// One transaction for two channels (and two addresses of one of them):
// each channel ingests once, with its own envelope recipients.
func TestSMTPServerTwoChannels(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	sales := smtpTestHandle(t, s, 0, "sales@example.com", "orders@example.com")
	support := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	err := smtpTestSend(c, "alice@example.org", []string{"sales@example.com", "support+t7@example.com", "orders@example.com"}, smtpTestMessage)
	if err != nil {
		t.Fatal(err)
	}
	_, a := sales.snapshot()
	_, b := support.snapshot()
	if len(a) != 1 || !slices.Equal(a[0].src.Recipients, []string{"sales@example.com", "orders@example.com"}) {
		t.Errorf("sales got %+v", a)
	}
	if len(b) != 1 || !slices.Equal(b[0].src.Recipients, []string{"support+t7@example.com"}) {
		t.Errorf("support got %+v", b)
	}
	if len(a) == 1 && len(b) == 1 && &a[0].raw[0] == &b[0].raw[0] {
		t.Error("both channels share one buffer")
	}
}

// An ingest error answers 451 4.3.0, the sender keeps the mail and tries
// again, and the retry is stored once (ack-after-commit).
func TestSMTPServerIngestFailureThenRetry(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	st.fail = 1
	c := smtpTestDial(t, addr)
	err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, smtpTestMessage)
	smtpTestCode(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	var se *smtp.SMTPError
	if errors.As(err, &se) && strings.Contains(se.Message, "database") {
		t.Errorf("the internal error reaches the sender: %q", se.Message)
	}
	if err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, smtpTestMessage); err != nil {
		t.Fatalf("retry: %v", err)
	}
	attempts, stored := st.snapshot()
	if attempts != 2 || len(stored) != 1 {
		t.Fatalf("attempts %d, stored %d; want 2 and 1", attempts, len(stored))
	}
}

// With two channels, one failing: 451 for the whole transaction, and the
// retry ingests into both again (the hub's dedup by Message-ID absorbs
// the repeat in the channel that had stored it).
func TestSMTPServerTwoChannelsOneFails(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	ok := smtpTestHandle(t, s, 0, "sales@example.com")
	bad := smtpTestHandle(t, s, 0, "support@example.com")
	bad.fail = 1
	c := smtpTestDial(t, addr)
	err := smtpTestSend(c, "alice@example.org", []string{"sales@example.com", "support@example.com"}, smtpTestMessage)
	smtpTestCode(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	if err := smtpTestSend(c, "alice@example.org", []string{"sales@example.com", "support@example.com"}, smtpTestMessage); err != nil {
		t.Fatal(err)
	}
	if n, _ := ok.snapshot(); n != 2 {
		t.Errorf("sales ingested %d times, want 2", n)
	}
	if n, stored := bad.snapshot(); n != 2 || len(stored) != 1 {
		t.Errorf("support: %d attempts, %d stored", n, len(stored))
	}
}

func TestSMTPServerSizeLimits(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{MaxMessageBytes: 64 << 10})
	small := smtpTestHandle(t, s, 1000, "small@example.com")
	big := smtpTestHandle(t, s, 0, "big@example.com")
	c := smtpTestDial(t, addr)
	if ok, size := c.Extension("SIZE"); !ok || size != "65536" {
		t.Errorf("SIZE extension %v %q", ok, size)
	}
	body := "Subject: big\r\n\r\n" + strings.Repeat("0123456789\r\n", 200) // 2416 bytes

	// Over the channel's limit: 552 at the end of DATA.
	err := smtpTestSend(c, "alice@example.org", []string{"small@example.com"}, body)
	smtpTestCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	// Declared with SIZE: refused at RCPT already.
	if err := c.Mail("alice@example.org", &smtp.MailOptions{Size: 5000}); err != nil {
		t.Fatal(err)
	}
	smtpTestCode(t, c.Rcpt("small@example.com", nil), 552, smtp.EnhancedCode{5, 3, 4})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	// The transaction's limit is its smallest channel's.
	err = smtpTestSend(c, "alice@example.org", []string{"big@example.com", "small@example.com"}, body)
	smtpTestCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	// The big channel alone takes it.
	if err := smtpTestSend(c, "alice@example.org", []string{"big@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	// Over the server's cap for everyone.
	err = smtpTestSend(c, "alice@example.org", []string{"big@example.com"}, "Subject: huge\r\n\r\n"+strings.Repeat("x", 70<<10)+"\r\n")
	smtpTestCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	if _, st := small.snapshot(); len(st) != 0 {
		t.Errorf("small got %d mails", len(st))
	}
	if _, st := big.snapshot(); len(st) != 1 {
		t.Errorf("big got %d mails, want 1", len(st))
	}
}

// An empty message is refused; an unreadable one is still handed on, the
// parser keeps its raw source.
func TestSMTPServerEmptyAndUnparseable(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	smtpTestCode(t, smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, ""), 554, smtp.EnhancedCode{5, 6, 0})
	smtpTestCode(t, smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, "\r\n  \r\n"), 554, smtp.EnhancedCode{5, 6, 0})
	junk := "\x00\xff\xfe no header at all\r\n--\r\n"
	if err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, junk); err != nil {
		t.Fatal(err)
	}
	_, stored := st.snapshot()
	if len(stored) != 1 || string(stored[0].raw) != "Return-Path: <alice@example.org>\r\n"+junk {
		t.Fatalf("stored %+v", stored)
	}
}

// A line over the limit is refused permanently (the same mail would fail
// again on every retry), and a long line under it is taken.
func TestSMTPServerLongLines(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	long := "Subject: long\r\n\r\n" + strings.Repeat("y", 200000) + "\r\n"
	if err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, long); err != nil {
		t.Fatalf("a 200 KB line: %v", err)
	}
	tooLong := "Subject: too long\r\n\r\n" + strings.Repeat("z", smtpMaxLineLength+10) + "\r\n"
	smtpTestCode(t, smtpTestSend(smtpTestDial(t, addr), "alice@example.org", []string{"support@example.com"}, tooLong), 552, smtp.EnhancedCode{5, 3, 4})
	if _, stored := st.snapshot(); len(stored) != 1 {
		t.Fatalf("stored %d mails, want 1", len(stored))
	}
}

// C08 arrives by SMTP from the bouncing MTA with MAIL FROM:<>: the null
// reverse-path becomes "Return-Path: <>", which bounce detection reads.
func TestSMTPServerBounceKeepsNullReturnPath(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "cases", "C08.eml"))
	if err != nil {
		t.Fatal(err)
	}
	// On the wire the bounce has no Return-Path yet: the final delivery
	// (we) adds it.
	wire := bytes.TrimPrefix(raw, []byte("Return-Path: <>\n"))
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	c := smtpTestDial(t, addr)
	if err := smtpTestSend(c, "", []string{"support@example.com"}, string(wire)); err != nil {
		t.Fatal(err)
	}
	_, stored := st.snapshot()
	if len(stored) != 1 {
		t.Fatalf("%d stored", len(stored))
	}
	// The .eml is LF; the client sent CRLF, as on the wire.
	want := "Return-Path: <>\r\n" + strings.ReplaceAll(string(wire), "\n", "\r\n")
	if string(stored[0].raw) != want {
		t.Errorf("raw starts %q", stored[0].raw[:min(200, len(stored[0].raw))])
	}
}

func TestSMTPServerReturnPathLineEndings(t *testing.T) {
	if got := string(smtpWithReturnPath([]byte("Subject: x\n\nbody\n"), "a@b")); got != "Return-Path: <a@b>\nSubject: x\n\nbody\n" {
		t.Errorf("LF mail: %q", got)
	}
	if got := string(smtpWithReturnPath([]byte("Subject: x\r\n\r\nbody\r\n"), "")); got != "Return-Path: <>\r\nSubject: x\r\n\r\nbody\r\n" {
		t.Errorf("CRLF mail: %q", got)
	}
	if got := string(smtpWithReturnPath([]byte("x"), "a>\r\nX-Evil: 1<@b")); got != "Return-Path: <aX-Evil: 1@b>\r\nx" {
		t.Errorf("odd sender: %q", got)
	}
}

func TestSMTPServerStartTLS(t *testing.T) {
	serverTLS, clientTLS := smtpTestCerts(t)
	s, addr := smtpTestListen(t, SMTPServerConfig{TLSConfig: serverTLS})
	st := smtpTestHandle(t, s, 0, "support@example.com")
	cfg := clientTLS.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, smtpTestMessage); err != nil {
		t.Fatal(err)
	}
	if state, ok := c.TLSConnectionState(); !ok || !state.HandshakeComplete {
		t.Fatal("the mail went without TLS")
	}
	if _, stored := st.snapshot(); len(stored) != 1 {
		t.Fatalf("%d stored", len(stored))
	}

	// Without a TLS config there is no STARTTLS to offer.
	_, plainAddr := smtpTestListen(t, SMTPServerConfig{})
	pc := smtpTestDial(t, plainAddr)
	if ok, _ := pc.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered without a certificate")
	}
	if ok, _ := pc.Extension("AUTH"); ok {
		t.Error("AUTH offered by an MX")
	}
}

func TestSMTPServerLimits(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{MaxRecipients: 2, MaxConnections: 1})
	smtpTestHandle(t, s, 0, "a@example.com", "b@example.com", "c@example.com")
	c := smtpTestDial(t, addr)
	if err := c.Mail("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a@example.com", "b@example.com"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	smtpTestCode(t, c.Rcpt("c@example.com", nil), 452, smtp.EnhancedCode{4, 5, 3})

	// c holds the only connection slot: the next one is told to come back.
	c2, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	smtpTestCode(t, c2.Hello("mta2.example.org"), 421, smtp.EnhancedCode{4, 7, 0})
}

// One client cannot take every connection: past its own limit it is told
// to come back, while the server still has room for others.
func TestSMTPServerConnectionsPerClient(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{MaxConnectionsPerIP: 2})
	smtpTestHandle(t, s, 0, "a@example.com")
	for range 2 {
		smtpTestDial(t, addr) // greeted and held open
	}
	c3, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	smtpTestCode(t, c3.Hello("mta.example.org"), 421, smtp.EnhancedCode{4, 7, 0})
	if got := smtpClientNet(&net.TCPAddr{IP: net.ParseIP("2001:db8::1:2:3:4")}); got != "2001:db8::/64" {
		t.Errorf("IPv6 client network %q", got)
	}
}

func TestSMTPServerConnectionCount(t *testing.T) {
	s := NewSMTPServer(SMTPServerConfig{Logger: smtpTestLogger(t)})
	a, b := net.Pipe()
	defer b.Close()
	s.conns = 1
	cc := &smtpCountedConn{Conn: a, s: s}
	cc.Close()
	cc.Close()
	if s.conns != 0 {
		t.Fatalf("conns = %d after closing twice, want 0", s.conns)
	}
}

func TestSMTPServerHandle(t *testing.T) {
	s := NewSMTPServer(SMTPServerConfig{Logger: smtpTestLogger(t)})
	defer s.Close()
	nop := func(context.Context, []byte, Source) error { return nil }
	remove, err := s.Handle([]string{"support@example.com", "help@Example.com"}, 0, nop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handle([]string{"new@example.com", "HELP@example.com"}, 0, nop); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Fatalf("taken address: err = %v", err)
	}
	// The failed Handle registered nothing.
	if s.lookup("new@example.com") != nil {
		t.Fatal("a failed Handle left an address behind")
	}
	for _, bad := range [][]string{nil, {""}, {"not an address"}, {"Name <x@example.com>"}} {
		if _, err := s.Handle(bad, 0, nop); err == nil {
			t.Errorf("Handle(%q) accepted", bad)
		}
	}
	if _, err := s.Handle([]string{"x@example.com"}, 0, nil); err == nil {
		t.Error("nil ingest accepted")
	}
	remove()
	remove()
	if s.lookup("support@example.com") != nil {
		t.Fatal("removed address still routed")
	}
	if _, err := s.Handle([]string{"help@example.com"}, 0, nop); err != nil {
		t.Fatalf("address free again after remove: %v", err)
	}
}

// A configured address with a '+' of its own wins over the plain one for
// its plus-addressed forms: the most specific address routes.
func TestSMTPServerLookupMostSpecific(t *testing.T) {
	s := NewSMTPServer(SMTPServerConfig{Logger: smtpTestLogger(t)})
	defer s.Close()
	nop := func(context.Context, []byte, Source) error { return nil }
	if _, err := s.Handle([]string{"support@example.com"}, 0, nop); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handle([]string{"support+sales@example.com"}, 0, nop); err != nil {
		t.Fatal(err)
	}
	plain, sales := s.lookup("support@example.com"), s.lookup("support+sales@example.com")
	if plain == nil || sales == nil || plain == sales {
		t.Fatal("two channels expected")
	}
	for rcpt, want := range map[string]*smtpRoute{
		"support+t1@example.com":       plain,
		"support+sales@example.com":    sales,
		"Support+Sales+t9@example.com": sales,
		"support+salesx@example.com":   plain,
	} {
		if got := s.lookup(rcpt); got != want {
			t.Errorf("lookup(%s) routes to the wrong channel", rcpt)
		}
	}
}

// Removed while a transaction is open: the mail is deferred, never
// ingested into a channel that is gone.
func TestSMTPServerRemovedMidTransaction(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	st := &smtpTestStore{}
	remove, err := s.Handle([]string{"support@example.com"}, 0, st.ingest)
	if err != nil {
		t.Fatal(err)
	}
	c := smtpTestDial(t, addr)
	if err := c.Mail("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("support@example.com", nil); err != nil {
		t.Fatal(err)
	}
	remove()
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, smtpTestMessage)
	smtpTestCode(t, w.Close(), 451, smtp.EnhancedCode{4, 3, 0})
	if n, _ := st.snapshot(); n != 0 {
		t.Fatalf("ingested %d times into a removed channel", n)
	}
	smtpTestCode(t, c.Rcpt("support@example.com", nil), 502, smtp.EnhancedCode{5, 5, 1}) // no MAIL after the reset
}

// An ingest that panics answers 451 and the server goes on.
func TestSMTPServerIngestPanic(t *testing.T) {
	s, addr := smtpTestListen(t, SMTPServerConfig{})
	if _, err := s.Handle([]string{"support@example.com"}, 0, func(context.Context, []byte, Source) error { panic("bug") }); err != nil {
		t.Fatal(err)
	}
	c := smtpTestDial(t, addr)
	smtpTestCode(t, smtpTestSend(c, "alice@example.org", []string{"support@example.com"}, smtpTestMessage), 451, smtp.EnhancedCode{4, 3, 0})
	if err := c.Noop(); err != nil {
		t.Fatalf("connection gone after a panicking ingest: %v", err)
	}
}

func TestSMTPServerCloseBeforeServe(t *testing.T) {
	s := NewSMTPServer(SMTPServerConfig{Logger: smtpTestLogger(t)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("listener still open after Serve on a closed server")
	}
}

// Both directions together: a composed reply, sent by smtpSender to our own
// listener, is ingested unchanged.
func TestSMTPServerReceivesComposedReply(t *testing.T) {
	serverTLS, clientTLS := smtpTestCerts(t)
	s, addr := smtpTestListen(t, SMTPServerConfig{TLSConfig: serverTLS})
	st := smtpTestHandle(t, s, 0, "dave.kline@example.org")
	raw, _, err := composeReply(composeTestSettings(), composeTestOutbound(), composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ss := SMTPSettings{Host: host, Port: p, Security: SecurityStartTLS, HelloName: "node1.example.com"}
	if err := newSMTPSender(ss, "", clientTLS).Send(context.Background(), "support@example.com", []string{"dave.kline@example.org"}, raw); err != nil {
		t.Fatal(err)
	}
	_, stored := st.snapshot()
	if len(stored) != 1 || string(stored[0].raw) != "Return-Path: <support@example.com>\r\n"+string(raw) {
		t.Fatalf("stored %d", len(stored))
	}
}
