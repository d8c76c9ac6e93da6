package email

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Authentication of the watcher. Secrets (the password, the OAuth token)
// go only to the server: they are never part of an error or a log line.

// authenticate logs in as Settings.Auth says:
//
//   - "plain": SASL PLAIN where the server offers it, else the LOGIN
//     command;
//   - "login": SASL LOGIN where the server offers it, else the LOGIN
//     command (the same user name and password exchange);
//   - "xoauth2": SASL XOAUTH2 with the bearer token (Gmail, Microsoft 365).
//
// A refusal by the server is an *imapAuthError.
func (w *imapWatcher) authenticate(c *imapclient.Client) error {
	st := w.cfg.Settings
	if st.Auth == "xoauth2" && w.cfg.OAuthToken == "" {
		return &imapAuthError{mech: "XOAUTH2", err: errors.New("the channel has no " + SecretIMAPOAuthToken + " secret")}
	}
	if st.Auth != "xoauth2" && w.cfg.Password == "" {
		return &imapAuthError{mech: st.Auth, err: errors.New("the channel has no " + SecretIMAPPassword + " secret")}
	}
	caps := c.Caps()
	if caps == nil {
		return errors.New("no capabilities from the server")
	}
	var mech string
	var err error
	switch st.Auth {
	case "xoauth2":
		mech = "XOAUTH2"
		if !caps.Has(imap.AuthCap(mech)) {
			return &imapAuthError{mech: mech, err: errors.New("the server does not offer AUTH=XOAUTH2")}
		}
		x := &imapXOAuth2Client{username: st.Username, token: w.cfg.OAuthToken}
		err = c.Authenticate(x)
	case "login":
		mech = "LOGIN"
		if caps.Has(imap.AuthCap(mech)) {
			err = c.Authenticate(&imapLoginClient{username: st.Username, password: w.cfg.Password})
		} else {
			mech, err = "LOGIN command", imapLoginCommand(c, caps, st.Username, w.cfg.Password)
		}
	default:
		mech = "PLAIN"
		if caps.Has(imap.AuthCap(mech)) {
			err = c.Authenticate(sasl.NewPlainClient("", st.Username, w.cfg.Password))
		} else {
			mech, err = "LOGIN command", imapLoginCommand(c, caps, st.Username, w.cfg.Password)
		}
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	var se *imapSASLError
	if errors.As(err, &ie) || errors.As(err, &se) {
		return &imapAuthError{mech: mech, err: err}
	}
	return fmt.Errorf("authenticate (%s): %w", mech, err)
}

func imapLoginCommand(c *imapclient.Client, caps imap.CapSet, username, password string) error {
	if caps.Has(imap.CapLoginDisabled) {
		return &imapSASLError{msg: "the server refuses the LOGIN command (LOGINDISABLED) and offers no usable SASL mechanism"}
	}
	return c.Login(username, password).Wait()
}

// imapSASLError is a SASL exchange the server ended with a refusal.
type imapSASLError struct{ msg string }

func (e *imapSASLError) Error() string { return e.msg }

// imapXOAuth2Client is the SASL XOAUTH2 mechanism (Google's and
// Microsoft's; go-sasl has only the standard OAUTHBEARER):
// base64("user=" user ^A "auth=Bearer " token ^A ^A) as the initial
// response. On failure the server sends a JSON error as a challenge.
type imapXOAuth2Client struct {
	username, token string
}

func (x *imapXOAuth2Client) Start() (string, []byte, error) {
	ir := "user=" + x.username + "\x01auth=Bearer " + x.token + "\x01\x01"
	return "XOAUTH2", []byte(ir), nil
}

// Next gets the server's error challenge. We end the exchange here rather
// than send the empty response the server waits for: the connection is
// closed after a refused login anyway, and the JSON (status, scope; never
// the token) says more than the NO that would follow.
func (x *imapXOAuth2Client) Next(challenge []byte) ([]byte, error) {
	detail := strings.TrimSpace(string(challenge))
	if len(detail) > 300 {
		detail = detail[:300]
	}
	return nil, &imapSASLError{msg: "the server refused the OAuth token: " + detail}
}

// imapLoginClient is the SASL LOGIN mechanism. Unlike go-sasl's, it sends
// no initial response and answers the server's prompts by what they ask
// for ("Username:", "Password:"), falling back to their order: servers
// word them differently.
type imapLoginClient struct {
	username, password string
	step               int
}

func (l *imapLoginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (l *imapLoginClient) Next(challenge []byte) ([]byte, error) {
	l.step++
	p := bytes.ToLower(challenge)
	switch {
	case bytes.Contains(p, []byte("user")):
		return []byte(l.username), nil
	case bytes.Contains(p, []byte("pass")):
		return []byte(l.password), nil
	case l.step == 1:
		return []byte(l.username), nil
	case l.step == 2:
		return []byte(l.password), nil
	}
	return nil, &imapSASLError{msg: "unexpected SASL LOGIN prompt from the server"}
}
