package email

import (
	"strings"
	"testing"
	"time"
)

func TestIMAPAuthMechanisms(t *testing.T) {
	for _, tc := range []struct {
		name  string
		auth  string
		mechs []string
	}{
		{"plain over SASL PLAIN", "plain", []string{"PLAIN"}},
		{"plain falls back to the LOGIN command", "plain", []string{}},
		{"login over SASL LOGIN", "login", []string{"PLAIN", "LOGIN"}},
		{"login as the LOGIN command", "login", []string{"PLAIN"}},
		{"xoauth2", "xoauth2", []string{"PLAIN", "XOAUTH2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newIMAPTestServer(t, imapTestServerOptions{mechs: tc.mechs})
			srv.appendMail("INBOX", imapTestMail(1, "auth"))
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.Auth = tc.auth
			if tc.auth == "xoauth2" {
				cfg.Password = "" // the token alone must do
			}
			imapTestRun(t, cfg)
			sink.next(t)
		})
	}
}

// Refused logins are logged clearly and retried slowly, and no secret
// ever reaches the log: not on failure, not on success.
func TestIMAPSecretsNeverLogged(t *testing.T) {
	for _, tc := range []struct {
		name, auth, password, token string
		mechs                       []string
		wantLogin                   bool
	}{
		{name: "wrong password", auth: "plain", password: "wrong-pw-Zz81", mechs: []string{"PLAIN"}},
		{name: "wrong password, LOGIN command", auth: "login", password: "wrong-pw-Zz82", mechs: []string{}},
		{name: "wrong password, SASL LOGIN", auth: "login", password: "wrong-pw-Zz83", mechs: []string{"LOGIN"}},
		{name: "wrong token", auth: "xoauth2", token: "ya29.wrong-Zz84", mechs: []string{"XOAUTH2"}},
		{name: "xoauth2 not offered", auth: "xoauth2", token: imapTestToken, mechs: []string{"PLAIN"}},
		{name: "right password", auth: "plain", password: imapTestPassword, mechs: []string{"PLAIN"}, wantLogin: true},
		{name: "right token", auth: "xoauth2", token: imapTestToken, mechs: []string{"XOAUTH2"}, wantLogin: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newIMAPTestServer(t, imapTestServerOptions{mechs: tc.mechs})
			srv.appendMail("INBOX", imapTestMail(1, "secret test"))
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.Auth = tc.auth
			cfg.Password, cfg.OAuthToken = tc.password, tc.token
			stop := imapTestRun(t, cfg)
			if tc.wantLogin {
				sink.next(t)
			} else {
				imapTestWaitUntil(t, "the refused login in the log", nil, func() bool {
					return len(log.records("IMAP login refused")) > 0
				})
				rec := log.records("IMAP login refused")[0]
				if rec["level"] != "ERROR" {
					t.Errorf("refused login logged at %v, want ERROR", rec["level"])
				}
				// Slow retry: the next attempt waits at least AuthMin
				// (an hour here), so there is exactly one connection.
				if ns, _ := rec["retry_in"].(float64); time.Duration(ns) < time.Hour {
					t.Errorf("retry_in = %v, want at least AuthMin (1h)", rec["retry_in"])
				}
				if n := srv.ln.accepted.Load(); n != 1 {
					t.Errorf("%d connections after a refused login, want 1", n)
				}
			}
			stop()
			out := log.String()
			for _, secret := range []string{tc.password, tc.token, imapTestPassword, imapTestToken} {
				if secret != "" && strings.Contains(out, secret) {
					t.Errorf("secret %q appears in the log:\n%s", secret, out)
				}
			}
		})
	}
}

func TestIMAPTLS(t *testing.T) {
	serverTLS, clientTLS := imapTestCert(t)
	for _, tc := range []struct {
		name     string
		security string
		opts     imapTestServerOptions
	}{
		{"implicit TLS", SecurityTLS, imapTestServerOptions{implicitTLS: serverTLS}},
		// The server refuses to authenticate before STARTTLS, so a
		// delivery proves the upgrade happened.
		{"STARTTLS", SecurityStartTLS, imapTestServerOptions{startTLS: serverTLS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newIMAPTestServer(t, tc.opts)
			srv.appendMail("INBOX", imapTestMail(1, "over TLS"))
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.Security = tc.security
			cfg.Settings.TLSServerName = "imap.test"
			cfg.TLSConfig = clientTLS
			imapTestRun(t, cfg)
			sink.next(t)
		})
	}
}

// TLS failures never fall back to plain text: no login is attempted.
func TestIMAPTLSFailures(t *testing.T) {
	serverTLS, clientTLS := imapTestCert(t)
	for _, tc := range []struct {
		name       string
		security   string
		serverName string
		opts       imapTestServerOptions
		wantLog    string
	}{
		{"STARTTLS not offered", SecurityStartTLS, "imap.test", imapTestServerOptions{}, "STARTTLS"},
		{"certificate for another name", SecurityTLS, "mail.example.com", imapTestServerOptions{implicitTLS: serverTLS}, "certificate"},
		{"implicit TLS against a plain server", SecurityTLS, "imap.test", imapTestServerOptions{}, "TLS handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newIMAPTestServer(t, tc.opts)
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.Security = tc.security
			cfg.Settings.TLSServerName = tc.serverName
			cfg.TLSConfig = clientTLS
			stop := imapTestRun(t, cfg)
			imapTestWaitUntil(t, "a failed session", nil, func() bool {
				return len(log.records("IMAP session ended")) >= 2
			})
			stop()
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log does not mention %q:\n%s", tc.wantLog, log)
			}
			if n := srv.logins.Load(); n != 0 {
				t.Errorf("%d logins reached the server without TLS", n)
			}
		})
	}
}

func TestIMAPXOAuth2InitialResponse(t *testing.T) {
	mech, ir, err := (&imapXOAuth2Client{username: "a@example.com", token: "tok"}).Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=a@example.com\x01auth=Bearer tok\x01\x01" {
		t.Fatalf("Start() = %q, %q, %v", mech, ir, err)
	}
	if _, err := (&imapXOAuth2Client{token: "tok"}).Next([]byte(`{"status":"401"}`)); err == nil || strings.Contains(err.Error(), "tok\x01") {
		t.Errorf("Next on the error challenge: %v; want an error without the token", err)
	}
}

func TestIMAPLoginClientPrompts(t *testing.T) {
	for _, prompts := range [][]string{{"Username:", "Password:"}, {"User Name", "Password"}, {"", ""}} {
		l := &imapLoginClient{username: "u", password: "p"}
		got := []string{}
		for _, p := range prompts {
			r, err := l.Next([]byte(p))
			if err != nil {
				t.Fatalf("prompts %q: %v", prompts, err)
			}
			got = append(got, string(r))
		}
		if strings.Join(got, ",") != "u,p" {
			t.Errorf("prompts %q answered %q", prompts, got)
		}
	}
}

// Settings: initial_sync has a default and is validated.
func TestIMAPSettingsInitialSync(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{"", InitialSyncAll, ""},
		{"unseen", InitialSyncUnseen, ""},
		{"recent", "", "settings.imap.initial_sync"},
	} {
		s := IMAPSettings{Host: "imap.example.com", Username: "u", InitialSync: tc.in}
		err := s.normalize()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("initial_sync %q: error %v, want one naming %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || s.InitialSync != tc.want {
			t.Errorf("initial_sync %q: got %q, %v; want %q", tc.in, s.InitialSync, err, tc.want)
		}
	}
}
