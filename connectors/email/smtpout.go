package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hub/switchboard/connectors"
)

// smtpDialTimeout bounds the TCP (and TLS) set-up when ctx has no
// earlier deadline.
const smtpDialTimeout = 30 * time.Second

// smtpSender sends mail through the channel's relay, one connection per
// message (a support channel sends a few replies a minute; pooling would
// only add stale-connection handling).
type smtpSender struct {
	settings SMTPSettings
	password string
	tls      *tls.Config
	addr     string
}

// newSMTPSender returns a sender for s, which must be normalized (port and
// hello name filled). tlsConfig nil checks the relay against the system's
// roots; its ServerName defaults to s.TLSServerName, else s.Host.
func newSMTPSender(s SMTPSettings, password string, tlsConfig *tls.Config) *smtpSender {
	// Settings that skipped normalize still get its defaults: above all,
	// an empty Security must mean STARTTLS, never plain.
	if s.Security == "" {
		s.Security = SecurityStartTLS
	}
	if s.Port == 0 {
		s.Port = map[string]int{SecurityTLS: 465, SecurityStartTLS: 587, SecurityPlain: 25}[s.Security]
	}
	if !smtpValidHello(s.HelloName) {
		s.HelloName = "localhost"
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsConfig != nil {
		cfg = tlsConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.TLSServerName
		if cfg.ServerName == "" {
			cfg.ServerName = s.Host
		}
	}
	return &smtpSender{
		settings: s,
		password: password,
		tls:      cfg,
		addr:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
	}
}

// Send delivers raw from the envelope sender from to every address of to.
// It returns nil only when the relay accepted the message (250 after
// DATA). Every failure is a *connectors.Error: connection, TLS and
// timeouts and 4xx replies are Retryable, 5xx replies Permanent (the
// relay's enhanced status and text in Msg, for the agent), an
// authentication failure Permanent "smtp_auth".
//
// Recipients are all or nothing: if the relay refuses any RCPT, the
// transaction is reset before DATA and nothing is sent, so a retry (after
// a 4xx) never delivers a second copy to the recipients that were fine.
// The error names each refused recipient; it is Permanent if any refusal
// was 5xx.
func (c *smtpSender) Send(ctx context.Context, from string, to []string, raw []byte) error {
	switch c.settings.Security {
	case SecurityStartTLS, SecurityTLS, SecurityPlain:
	default:
		return connectors.NewError(connectors.Permanent, "smtp_config",
			fmt.Sprintf("settings.smtp.security %q is not one of starttls, tls, plain", smtpCleanText(c.settings.Security)), nil)
	}
	if len(to) == 0 {
		return connectors.NewError(connectors.Permanent, "smtp_no_recipient", "The mail has no recipient", nil)
	}
	// from may be empty: MAIL FROM:<> (the null reverse-path).
	if from != "" && !smtpValidPath(from) {
		return connectors.NewError(connectors.Permanent, "smtp_bad_address",
			fmt.Sprintf("%q is not a sender address the relay can be given", smtpCleanText(from)), nil)
	}
	for _, a := range to {
		if !smtpValidPath(a) {
			return connectors.NewError(connectors.Permanent, "smtp_bad_address",
				fmt.Sprintf("%q is not a recipient address the relay can be given", smtpCleanText(a)), nil)
		}
	}

	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	// Closing the connection is what unblocks a read or write in the
	// middle of a command when ctx ends: go-smtp resets the deadline on
	// each command, so a deadline alone would not hold.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var client *smtp.Client
	if c.settings.Security == SecurityStartTLS {
		client, err = smtp.NewClientStartTLS(c.withHelloName(conn), c.tls)
		if err != nil {
			return c.classifyStartTLS(ctx, err)
		}
	} else {
		client = smtp.NewClient(conn)
	}
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			client.CommandTimeout = min(client.CommandTimeout, d)
			client.SubmissionTimeout = min(client.SubmissionTimeout, d)
		}
	}
	if err := client.Hello(c.settings.HelloName); err != nil {
		if st, ok := client.TLSConnectionState(); ok && !st.HandshakeComplete {
			// After STARTTLS the handshake runs on the first write, the
			// EHLO: its failure is a TLS failure.
			return c.classify(ctx, "starttls", err)
		}
		return c.classify(ctx, "hello", err)
	}
	if c.settings.Username != "" {
		if err := c.auth(ctx, client); err != nil {
			return err
		}
	}

	opts := &smtp.MailOptions{Size: int64(len(raw))}
	if !smtpIsASCII(from) || !smtpAllASCII(to) {
		opts.UTF8 = true
	}
	if err := client.Mail(from, opts); err != nil {
		return c.classify(ctx, "mail", err)
	}
	if err := c.recipients(ctx, client, to); err != nil {
		return err
	}

	w, err := client.Data()
	if err != nil {
		return c.classify(ctx, "data", err)
	}
	if _, err := w.Write(raw); err != nil {
		return c.classify(ctx, "data", err)
	}
	if err := w.Close(); err != nil {
		return c.classify(ctx, "data", err)
	}
	// The relay has the message: a failed QUIT changes nothing.
	_ = client.Quit()
	return nil
}

// recipients gives every RCPT and fails if the relay refuses any of them
// (all or nothing, see Send), naming each refused recipient when there is
// more than one.
func (c *smtpSender) recipients(ctx context.Context, client *smtp.Client, to []string) error {
	var refused []string
	var worst *smtp.SMTPError
	for _, rcpt := range to {
		err := client.Rcpt(rcpt, nil)
		if err == nil {
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return c.classify(ctx, "rcpt", err) // the connection broke
		}
		refused = append(refused, rcpt+": "+smtpReplyText(se))
		if worst == nil || se.Code >= 500 && worst.Code < 500 {
			worst = se
		}
	}
	if worst == nil {
		return nil
	}
	_ = client.Reset()
	_ = client.Quit()
	detail := smtpReplyText(worst)
	if len(to) > 1 {
		detail = strings.Join(refused, "; ")
	}
	code := "smtp_" + strconv.Itoa(worst.Code)
	if worst.Code >= 500 {
		return connectors.NewError(connectors.Permanent, code,
			"The recipient's server refused the mail: "+detail, worst)
	}
	return connectors.NewError(connectors.Retryable, code,
		"The mail relay deferred the mail: "+detail+"; it will be tried again", worst)
}

func (c *smtpSender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: smtpDialTimeout}
	var conn net.Conn
	var err error
	if c.settings.Security == SecurityTLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: c.tls}).DialContext(ctx, "tcp", c.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, c.classify(ctx, "connect", err)
	}
	return conn, nil
}

// auth logs in with PLAIN, or LOGIN when the relay offers only that.
func (c *smtpSender) auth(ctx context.Context, client *smtp.Client) error {
	ok, mechs := client.Extension("AUTH")
	if !ok {
		return connectors.NewError(connectors.Permanent, "smtp_auth",
			"The mail relay offers no login, but a username is configured (check settings.smtp)", nil)
	}
	var mech sasl.Client
	for _, m := range strings.Fields(strings.ToUpper(mechs)) {
		if m == sasl.Plain {
			mech = sasl.NewPlainClient("", c.settings.Username, c.password)
			break
		}
		if m == sasl.Login && mech == nil {
			mech = sasl.NewLoginClient(c.settings.Username, c.password)
		}
	}
	if mech == nil {
		return connectors.NewError(connectors.Permanent, "smtp_auth",
			"The mail relay offers neither PLAIN nor LOGIN login (it offers "+smtpCleanText(mechs)+")", nil)
	}
	err := client.Auth(mech)
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		return connectors.NewError(connectors.Permanent, "smtp_auth",
			"The mail relay refused the login of "+smtpCleanText(c.settings.Username)+": "+smtpReplyText(se)+" (check settings.smtp.username and the secret smtp_password)", c.scrub(err))
	}
	if errors.As(err, &se) {
		return c.classify(ctx, "auth", err)
	}
	if ctx.Err() != nil || smtpIsNetErr(err) {
		return c.classify(ctx, "auth", err)
	}
	// A SASL exchange the client could not follow (an unexpected
	// challenge): the relay and we do not agree, retrying will not help.
	return connectors.NewError(connectors.Permanent, "smtp_auth",
		"The login to the mail relay failed", c.scrub(err))
}

func (c *smtpSender) classifyStartTLS(ctx context.Context, err error) error {
	var se *smtp.SMTPError
	if ctx.Err() == nil && !errors.As(err, &se) && !smtpIsNetErr(err) && strings.Contains(err.Error(), "STARTTLS") {
		// go-smtp's "server doesn't support STARTTLS": a relay that does
		// not offer it (or a path that strips it) gets no password and
		// no mail in the clear.
		return connectors.NewError(connectors.Retryable, "smtp_tls",
			"The mail relay does not offer STARTTLS; the mail was not sent unencrypted (use security \"tls\" or \"plain\" if that is intended)", err)
	}
	return c.classify(ctx, "starttls", err)
}

// classify turns a failure of one SMTP step into a *connectors.Error.
func (c *smtpSender) classify(ctx context.Context, step string, err error) error {
	err = c.scrub(err)
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return ce
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		code := "smtp_timeout"
		if errors.Is(ctxErr, context.Canceled) {
			code = "smtp_canceled"
		}
		return connectors.NewError(connectors.Retryable, code,
			"Sending to the mail relay was interrupted ("+step+"); it will be tried again", errors.Join(ctxErr, err))
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		code := "smtp_" + strconv.Itoa(se.Code)
		text := smtpReplyText(se)
		switch {
		case smtpIsAuthReply(se):
			return connectors.NewError(connectors.Permanent, "smtp_auth",
				"The mail relay requires a working login: "+text+" (check settings.smtp.username and the secret smtp_password)", err)
		case se.Code >= 400 && se.Code < 500:
			return connectors.NewError(connectors.Retryable, code,
				"The mail relay deferred the mail: "+text+"; it will be tried again", err)
		case se.Code >= 500:
			switch step {
			case "mail":
				return connectors.NewError(connectors.Permanent, code,
					"The mail relay refused the sender address: "+text, err)
			case "hello", "connect", "starttls":
				return connectors.NewError(connectors.Permanent, code,
					"The mail relay refused the connection: "+text, err)
			}
			return connectors.NewError(connectors.Permanent, code,
				"The recipient's server refused the mail: "+text, err)
		}
	}
	var recErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	if errors.As(err, &recErr) || errors.As(err, &certErr) || errors.As(err, &alert) || step == "starttls" || (step == "connect" && c.settings.Security == SecurityTLS && !smtpIsDialErr(err)) {
		return connectors.NewError(connectors.Retryable, "smtp_tls",
			"The TLS connection to the mail relay failed ("+smtpCleanText(err.Error())+")", err)
	}
	if smtpIsTimeout(err) {
		return connectors.NewError(connectors.Retryable, "smtp_timeout",
			"The mail relay did not answer in time ("+step+")", err)
	}
	if strings.Contains(err.Error(), "SMTPUTF8") {
		return connectors.NewError(connectors.Permanent, "smtp_utf8",
			"The mail relay cannot take addresses with non-ASCII characters", err)
	}
	return connectors.NewError(connectors.Retryable, "smtp_connection",
		"The connection to the mail relay failed ("+step+": "+smtpCleanText(err.Error())+")", err)
}

// scrub guarantees the password never leaves in an error text: relays do
// not echo it, but a proxy or a library message might.
func (c *smtpSender) scrub(err error) error {
	if err == nil || c.password == "" || !strings.Contains(err.Error(), c.password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.password, "[password]"))
}

// withHelloName works around go-smtp saying "EHLO localhost" before
// STARTTLS (its Hello may only come first, and STARTTLS has no method of
// its own): some relays, Google's smtp-relay among them, close the
// connection on it. The first EHLO/HELO line written is given the
// configured name; after that the connection is passed through untouched.
func (c *smtpSender) withHelloName(conn net.Conn) net.Conn {
	if c.settings.Security != SecurityStartTLS || !smtpValidHello(c.settings.HelloName) {
		return conn
	}
	return &smtpHelloConn{Conn: conn, name: c.settings.HelloName}
}

type smtpHelloConn struct {
	net.Conn
	name string
	mu   sync.Mutex
	n    int // writes seen
}

func (h *smtpHelloConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	first := h.n < 2 // EHLO, and HELO when EHLO was refused
	h.n++
	h.mu.Unlock()
	if first {
		for _, verb := range []string{"EHLO", "HELO"} {
			if string(b) == verb+" localhost\r\n" {
				if _, err := io.WriteString(h.Conn, verb+" "+h.name+"\r\n"); err != nil {
					return 0, err
				}
				return len(b), nil
			}
		}
	}
	return h.Conn.Write(b)
}

// smtpIsAuthReply tells the replies that mean "log in (properly)": 530,
// 534 and 535 (RFC 4954), and the enhanced codes of authentication (5.7.8
// bad credentials, 5.7.9 mechanism too weak, 5.7.14 log in via the web
// first, 5.7.0 with the word "authenticat" as some relays answer MAIL).
func smtpIsAuthReply(se *smtp.SMTPError) bool {
	switch se.Code {
	case 530, 534, 535:
		return true
	}
	if se.Code < 500 {
		return false
	}
	switch se.EnhancedCode {
	case smtp.EnhancedCode{5, 7, 8}, smtp.EnhancedCode{5, 7, 9}, smtp.EnhancedCode{5, 7, 14}:
		return true
	case smtp.EnhancedCode{5, 7, 0}:
		return strings.Contains(strings.ToLower(se.Message), "authenticat")
	}
	return false
}

// smtpReplyText is the relay's answer as an agent reads it:
// "5.1.1 user unknown", on one line, not too long.
func smtpReplyText(se *smtp.SMTPError) string {
	text := smtpCleanText(se.Message)
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		e := se.EnhancedCode
		text = fmt.Sprintf("%d.%d.%d %s", e[0], e[1], e[2], text)
	} else {
		text = strconv.Itoa(se.Code) + " " + text
	}
	return strings.TrimSpace(text)
}

func smtpCleanText(s string) string {
	return composeClean(s, 300)
}

func smtpValidPath(a string) bool {
	if a == "" || len(a) > 320 || !strings.Contains(a, "@") {
		return false
	}
	return !strings.ContainsAny(a, "<>\r\n\x00 \t")
}

func smtpValidHello(n string) bool {
	return n != "" && len(n) < 256 && !strings.ContainsAny(n, " \t\r\n\x00")
}

func smtpIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func smtpAllASCII(ss []string) bool {
	for _, s := range ss {
		if !smtpIsASCII(s) {
			return false
		}
	}
	return true
}

func smtpIsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func smtpIsNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

func smtpIsDialErr(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
