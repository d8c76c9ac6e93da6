package email

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

func normalizeTestConnector(t *testing.T, settings string) *Connector {
	t.Helper()
	s, err := decodeSettings([]byte(settings))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2024, 4, 15, 9, 0, 0, 0, time.UTC) }
	return &Connector{channelID: "mail", settings: s, now: now, limit: newSenderLimiter(s.SenderLimit, now)}
}

func TestNormalizeInbound(t *testing.T) {
	c := normalizeTestConnector(t, `{"address":"support@example.com","aliases":["help@example.com"],"inbound_smtp":true,"sender_limit":{"per_hour":2}}`)
	mail := func(hdr string) *Mail { return Parse([]byte(hdr + "\r\n\r\nHello there.\r\n")) }
	for _, tc := range []struct {
		name, raw   string
		src         Source
		ref, sender string
		own         int64
		hints       []string
	}{
		{name: "subject tag", raw: "From: A <A@Example.ORG>\r\nSubject: Re: [#42] order\r\nMessage-ID: <m1@x>", ref: "42", sender: "a@example.org"},
		{name: "reply token beats the subject", raw: "From: a@example.org\r\nTo: support+t7@example.com\r\nSubject: [#42] x\r\nMessage-ID: <m2@x>", ref: "7", sender: "a@example.org"},
		{name: "reply token in the envelope", raw: "From: a@example.org\r\nTo: list@example.net\r\nMessage-ID: <m3@x>", src: Source{Recipients: []string{"HELP+t9@example.com"}}, ref: "9", sender: "a@example.org"},
		{name: "a token on someone else's address", raw: "From: a@example.org\r\nTo: other+t9@example.net\r\nMessage-ID: <m4@x>", sender: "a@example.org"},
		{name: "own Message-ID", raw: "From: a@example.org\r\nIn-Reply-To: <sb-12-34.0123456789@example.com>\r\nReferences: <r1@x> <r2@x>\r\nMessage-ID: <m5@x>", sender: "a@example.org", own: 34,
			hints: []string{"sb-12-34.0123456789@example.com", "r2@x", "r1@x"}},
		{name: "own id of another domain is no reference", raw: "From: a@example.org\r\nIn-Reply-To: <sb-12-34.0123456789@evil.example>\r\nMessage-ID: <m6@x>", sender: "a@example.org",
			hints: []string{"sb-12-34.0123456789@evil.example"}},
		{name: "no From: Reply-To", raw: "Reply-To: Bo <bo@example.org>\r\nMessage-ID: <m7@x>", sender: "bo@example.org"},
		{name: "no sender at all", raw: "Subject: who?\r\nMessage-ID: <m8@x>", sender: "unknown-sender@invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mail(tc.raw)
			in := c.inbound(m, nil, Classify(m), tc.src)
			if in.TicketRef != tc.ref || in.Sender.ExternalID != tc.sender || in.OwnRef.MessageID != tc.own {
				t.Errorf("ref %q sender %q own %+v; want %q %q %d", in.TicketRef, in.Sender.ExternalID, in.OwnRef, tc.ref, tc.sender, tc.own)
			}
			if tc.own != 0 && in.OwnRef.TicketNumber != 12 {
				t.Errorf("own ref %+v", in.OwnRef)
			}
			if tc.hints != nil && strings.Join(in.ThreadHints, " ") != strings.Join(tc.hints, " ") {
				t.Errorf("hints %q, want %q", in.ThreadHints, tc.hints)
			}
		})
	}
	t.Run("own addresses", func(t *testing.T) {
		for addr, want := range map[string]bool{"support@example.com": true, "Support+x@Example.com": true, "help@example.com": true, "support@example.org": false, "": false} {
			if got := c.isOwn(addr); got != want {
				t.Errorf("isOwn(%q) = %v", addr, got)
			}
		}
	})
	t.Run("no Message-ID: a stable content hash", func(t *testing.T) {
		a := c.inbound(mail("From: a@example.org\r\nSubject: x"), nil, Classification{}, Source{})
		b := c.inbound(mail("Received: by mx2\r\nFrom: a@example.org\r\nSubject: x"), nil, Classification{}, Source{})
		if !strings.HasPrefix(a.ExternalID, "sha256:") || a.ExternalID != b.ExternalID {
			t.Errorf("%q vs %q", a.ExternalID, b.ExternalID)
		}
	})
	t.Run("a date in the future is taken as now", func(t *testing.T) {
		in := c.inbound(mail("From: a@example.org\r\nDate: Mon, 1 Jan 2074 00:00:00 +0000\r\nMessage-ID: <f@x>"), nil, Classification{}, Source{})
		if !in.SentAt.Equal(c.now()) {
			t.Errorf("SentAt %v", in.SentAt)
		}
	})
	t.Run("sender limit makes mail attach-only", func(t *testing.T) {
		var last bool
		for i := range 3 {
			m := mail("From: storm@example.org\r\nMessage-ID: <s" + string(rune('0'+i)) + "@x>")
			in := c.inbound(m, nil, Classify(m), Source{})
			last = in.AttachOnly && in.AutoReply && strings.Contains(in.Meta["auto_reply"], "2 mails an hour")
			if i < 2 && in.AttachOnly {
				t.Fatalf("mail %d limited already", i)
			}
		}
		if !last {
			t.Error("the third mail within the hour was not limited")
		}
	})
	t.Run("auto-reply", func(t *testing.T) {
		m := mail("From: x@example.org\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <ar@x>")
		in := c.inbound(m, nil, Classify(m), Source{})
		if !in.AttachOnly || !in.AutoReply || in.Meta["auto_reply"] == "" {
			t.Errorf("%+v", in)
		}
	})
}

// A tagged address (flood+1@, flood+2@ …) counts against one sender.
func TestNormalizeSenderLimitIgnoresTags(t *testing.T) {
	c := normalizeTestConnector(t, `{"address":"support@example.com","inbound_smtp":true,"sender_limit":{"per_hour":2}}`)
	limited := 0
	for i := range 5 {
		m := Parse(fmt.Appendf(nil, "From: Flood+%d@Example.org\r\nMessage-ID: <f%d@x>\r\n\r\nhi\r\n", i, i))
		if in := c.inbound(m, nil, Classify(m), Source{}); in.AttachOnly {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("%d of 5 tagged mails limited, want 3", limited)
	}
}

// A mail longer than the hub keeps is kept whole as original.eml.
func TestNormalizeKeepsLongMailWhole(t *testing.T) {
	c := normalizeTestConnector(t, `{"address":"support@example.com","inbound_smtp":true}`)
	raw := []byte("From: a@example.org\r\nMessage-ID: <long@x>\r\n\r\n" + strings.Repeat("words and more words\r\n", 20000))
	m := Parse(raw)
	in := c.inbound(m, raw, Classify(m), Source{})
	n := 0
	for _, a := range in.Attachments {
		if a.Filename == "original.eml" && len(a.Data) == len(raw) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("original.eml attached %d times", n)
	}
}

// Control characters in names and subjects, and a byte order mark at the
// start of a body, do not reach the agent.
func TestNormalizeControlCharacters(t *testing.T) {
	c := normalizeTestConnector(t, `{"address":"support@example.com","inbound_smtp":true}`)
	m := &Mail{From: Address{Name: "Bad\u0081Name\x07", Addr: "b@example.org"}, Subject: "\ufeffHello\x1bworld", Text: "\ufeffbody", MessageID: "c@x"}
	in := c.inbound(m, nil, Classification{}, Source{})
	if in.Sender.DisplayName != "Bad Name" || in.Subject != "Hello world" || in.Text != "body" {
		t.Errorf("name %q subject %q text %q", in.Sender.DisplayName, in.Subject, in.Text)
	}
}

func TestBounceReason(t *testing.T) {
	got := bounceReason(&Bounce{Recipients: []BounceRecipient{
		{Address: "a@x", Action: "failed", Status: "5.1.1", Diagnostic: "smtp; 550 user unknown"},
		{Address: "b@x", Action: "delayed", Status: "4.4.1"},
	}})
	if got != "undeliverable to a@x: 5.1.1 smtp; 550 user unknown" {
		t.Errorf("%q", got)
	}
	if got := bounceReason(&Bounce{}); !strings.Contains(got, "undeliverable") {
		t.Errorf("%q", got)
	}
}

// HTML-only mail: the new text comes from the new part of the HTML, not
// from the whole HTML turned into text.
func TestNormalizeHTMLOnlyReply(t *testing.T) {
	c := normalizeTestConnector(t, `{"address":"support@example.com","inbound_smtp":true}`)
	raw := "From: a@example.org\r\nMessage-ID: <h1@x>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<div dir="ltr">Thanks, that fixed it.</div><br><div class="gmail_quote"><div class="gmail_attr">On Mon, Apr 15, 2024 at 9:00 AM Support &lt;support@example.com&gt; wrote:<br></div>` +
		`<blockquote class="gmail_quote">Please restart the router.</blockquote></div>`
	m := Parse([]byte(raw))
	if !m.TextFromHTML {
		t.Fatal("TextFromHTML not set")
	}
	in := c.inbound(m, nil, Classify(m), Source{})
	if in.Text != "Thanks, that fixed it." || !strings.Contains(in.Quoted, "Please restart the router.") {
		t.Errorf("text %q quoted %q", in.Text, in.Quoted)
	}
}

// Claims see one mailbox in INBOX/inbox and in a host with or without its
// trailing dot; secrets are the three the channel takes.
func TestConnectorClaims(t *testing.T) {
	claims := func(settings string) []string {
		t.Helper()
		c, err := New(connectorsConfig(settings), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Claims()
	}
	a := claims(`{"address":"s@example.com","inbound_smtp":true,"aliases":["Help@example.com"],"imap":{"host":"IMAP.example.com.","username":"U","mailboxes":["inbox","Archive"]}}`)
	want := []string{"smtp:s@example.com", "smtp:help@example.com", "imap:imap.example.com:993/u/INBOX", "imap:imap.example.com:993/u/Archive"}
	if strings.Join(a, " ") != strings.Join(want, " ") {
		t.Errorf("claims %q\nwant %q", a, want)
	}
	if b := claims(`{"address":"s@example.com","smtp":{"host":"smtp.example.com"}}`); len(b) != 0 {
		t.Errorf("a send-only channel claims %q", b)
	}
}

func connectorsConfig(settings string) connectors.Config {
	return connectors.Config{ChannelID: "c", Settings: []byte(settings), Secrets: map[string]string{SecretIMAPPassword: "pw"}}
}
