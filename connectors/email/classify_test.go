package email

import (
	"reflect"
	"strings"
	"testing"
)

func TestClassifyCaseC07(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C07.eml", func(t *testing.T, m *Mail) {
		// RFC 3834 vacation reply: Auto-Submitted, Precedence: bulk, Return-Path <>.
		c := Classify(m)
		if c.Kind != KindAutoReply || c.Reason != "Auto-Submitted: auto-replied" || c.Bounce != nil {
			t.Errorf("Classify = %+v", c)
		}
	})
}

func TestClassifyCaseC07b(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C07b.eml", func(t *testing.T, m *Mail) {
		// Another helpdesk's acknowledgement: no Auto-Submitted, only X-Autoresponder.
		c := Classify(m)
		if c.Kind != KindAutoReply || c.Reason != "X-Autoresponder header" {
			t.Errorf("Classify = %+v", c)
		}
	})
}

func TestClassifyCaseC08(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C08.eml", func(t *testing.T, m *Mail) {
		// A Postfix DSN without Auto-Submitted, from MAILER-DAEMON.
		c := Classify(m)
		if c.Kind != KindBounce || c.Bounce == nil {
			t.Fatalf("Classify = %+v", c)
		}
		want := Bounce{
			OriginalMessageID: "reply-10044-3.1712819698@support.example.com",
			Recipients: []BounceRecipient{{
				Address:    "dave.kline@example.org",
				Action:     "failed",
				Status:     "5.1.1",
				Diagnostic: "550 5.1.1 <dave.kline@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
			}},
		}
		if !reflect.DeepEqual(*c.Bounce, want) {
			t.Errorf("Bounce = %+v, want %+v", *c.Bounce, want)
		}
		if c.Reason != "delivery status notification: failed" {
			t.Errorf("Reason = %q", c.Reason)
		}
		if m.Report == nil || m.Report.ReportType != "delivery-status" {
			t.Errorf("Report = %+v", m.Report)
		}
	})
}

func TestClassifyPersonCases(t *testing.T) {
	for _, f := range []string{"C01", "C02", "C03", "C05", "C05-seed", "C09", "C11", "C13"} {
		m := Parse(parseTestRead(t, "testdata/cases/"+f+".eml"))
		if c := Classify(m); c.Kind != KindPerson {
			t.Errorf("%s: Classify = %+v, want a person", f, c)
		}
	}
	if c := Classify(nil); c.Kind != KindPerson {
		t.Errorf("Classify(nil) = %+v", c)
	}
}

// parseTestMail builds a small mail from header lines and a body.
func parseTestMail(headers []string, body string) *Mail {
	h := strings.Join(headers, "\n")
	if !strings.Contains(strings.ToLower(h), "\nfrom:") && !strings.HasPrefix(strings.ToLower(h), "from:") {
		h = "From: Someone <someone@example.org>\n" + h
	}
	return Parse([]byte(h + "\n\n" + body + "\n"))
}

func TestClassifyHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		kind    MailKind
		reason  string
	}{
		{"plain person", []string{"Subject: Where is my order?"}, KindPerson, ""},
		{"Auto-Submitted: no", []string{"Auto-Submitted: no", "Subject: hello"}, KindPerson, ""},
		{"Auto-Submitted: auto-generated", []string{"Auto-Submitted: auto-generated"}, KindAutoReply, "Auto-Submitted: auto-generated"},
		{"Auto-Submitted with comment", []string{"Auto-Submitted: Auto-Replied (vacation)"}, KindAutoReply, "Auto-Submitted: auto-replied"},
		{"Auto-Submitted: auto-notified", []string{"Auto-Submitted: auto-notified; owner-email=\"x@example.org\""}, KindAutoReply, "Auto-Submitted: auto-notified"},
		{"X-Autoreply", []string{"X-Autoreply: yes"}, KindAutoReply, "X-Autoreply header"},
		{"X-Autorespond", []string{"X-Autorespond: Vacation"}, KindAutoReply, "X-Autorespond header"},
		{"X-Autoresponder (C07b)", []string{"X-Autoresponder: Will not send another autoreply"}, KindAutoReply, "X-Autoresponder header"},
		{"X-Autoreply: no", []string{"X-Autoreply: no"}, KindPerson, ""},
		{"Precedence: bulk", []string{"Precedence: bulk"}, KindAutoReply, "Precedence: bulk"},
		{"Precedence: junk", []string{"Precedence: junk"}, KindAutoReply, "Precedence: junk"},
		{"Precedence: list", []string{"Precedence: list"}, KindAutoReply, "Precedence: list"},
		{"Precedence: auto_reply", []string{"Precedence: auto_reply"}, KindAutoReply, "Precedence: auto_reply"},
		{"Precedence: first-class", []string{"Precedence: first-class"}, KindPerson, ""},
		{"X-Auto-Response-Suppress: All", []string{"X-Auto-Response-Suppress: All"}, KindAutoReply, "X-Auto-Response-Suppress: All"},
		// People's Outlook mail carries the narrower values: still a person.
		{"X-Auto-Response-Suppress: DR, RN", []string{"X-Auto-Response-Suppress: DR, RN, NRN"}, KindPerson, ""},
		{"X-Auto-Response-Suppress: OOF", []string{"X-Auto-Response-Suppress: OOF, AutoReply"}, KindPerson, ""},
		{"Out of Office subject", []string{"Subject: Out of Office: [#10042] We received your request"}, KindAutoReply, "out-of-office subject"},
		{"Automatic reply", []string{"Subject: Automatic reply: Invoice 2041"}, KindAutoReply, "out-of-office subject"},
		{"Dutch", []string{"Subject: Automatisch antwoord: Bestelling 5521"}, KindAutoReply, "out-of-office subject"},
		{"Dutch afwezig", []string{"Subject: Afwezig: Bestelling 5521"}, KindAutoReply, "out-of-office subject"},
		{"German", []string{"Subject: Abwesenheitsnotiz: Rechnung"}, KindAutoReply, "out-of-office subject"},
		{"German 2", []string{"Subject: Automatische Antwort: Rechnung"}, KindAutoReply, "out-of-office subject"},
		{"French", []string{"Subject: =?utf-8?Q?R=C3=A9ponse_automatique_:_Facture?="}, KindAutoReply, "out-of-office subject"},
		{"Spanish", []string{"Subject: =?utf-8?Q?Respuesta_autom=C3=A1tica:_Pedido?="}, KindAutoReply, "out-of-office subject"},
		{"Auto: prefix (C07 subject)", []string{"Subject: Auto: [#10042] We received your request"}, KindAutoReply, "out-of-office subject"},
		// A customer's own words are not a prefix.
		{"customer mentions out of office", []string{"Subject: Out of office printer is broken"}, KindPerson, ""},
		{"customer mentions automatic reply", []string{"Subject: Your automatic reply: was confusing"}, KindPerson, ""},
		{"read receipt", []string{"Content-Type: multipart/report; report-type=disposition-notification; boundary=b"}, KindAutoReply, "read receipt (disposition-notification)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Classify(parseTestMail(tt.headers, "Hello"))
			if c.Kind != tt.kind || c.Reason != tt.reason {
				t.Errorf("Classify = %v %q, want %v %q", c.Kind, c.Reason, tt.kind, tt.reason)
			}
		})
	}
}

func TestClassifyBounces(t *testing.T) {
	qmail := parseTestMail([]string{
		"Return-Path: <>",
		"From: MAILER-DAEMON@mail.example.net",
		"Subject: failure notice",
	}, "Hi. This is the qmail-send program at mail.example.net.\n"+
		"I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"+
		"<ghost@example.org>:\n192.0.2.9 does not like recipient.\nRemote host said: 550 5.1.1 No such user\n\n"+
		"--- Below this line is a copy of the message.\n\n"+
		"Return-Path: <support@example.com>\nMessage-ID: <sb-10060-4.0a1b2c3d4e@support.example.com>\nSubject: Re: [#10060] Refund\n")
	c := Classify(qmail)
	if c.Kind != KindBounce || c.Bounce == nil {
		t.Fatalf("qmail bounce: %+v", c)
	}
	if c.Bounce.OriginalMessageID != "sb-10060-4.0a1b2c3d4e@support.example.com" {
		t.Errorf("qmail OriginalMessageID = %q", c.Bounce.OriginalMessageID)
	}
	if len(c.Bounce.Recipients) != 1 || c.Bounce.Recipients[0].Address != "ghost@example.org" ||
		c.Bounce.Recipients[0].Status != "5.1.1" || c.Bounce.Recipients[0].Action != "failed" {
		t.Errorf("qmail recipients = %+v", c.Bounce.Recipients)
	}

	// A DSN with two recipients and the original attached whole; the
	// ids come from the attached message.
	dsn := parseTestMail([]string{
		"Return-Path: <>",
		"From: Mail Delivery Subsystem <mailer-daemon@googlemail.example.com>",
		"Subject: Delivery Status Notification (Failure)",
		"Auto-Submitted: auto-replied",
		"MIME-Version: 1.0",
		`Content-Type: multipart/report; boundary="r1"; report-type=delivery-status`,
	}, "--r1\nContent-Type: text/plain\n\nDelivery to some recipients failed.\n"+
		"--r1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; googlemail.example.com\n\n"+
		"Final-Recipient: rfc822; full@example.org\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552-5.2.2 The recipient's inbox is out of storage space.\n\n"+
		"Final-Recipient: rfc822;<late@example.org>\nAction: delayed\nStatus: 4.4.1 (connection timed out)\n\n"+
		"--r1\nContent-Type: message/rfc822\n\nFrom: support@example.com\nMessage-ID: <sb-10061-7.9f8e7d6c5b@support.example.com>\nSubject: Re: [#10061]\n\nhello\n--r1--\n")
	c = Classify(dsn)
	want := Bounce{
		OriginalMessageID: "sb-10061-7.9f8e7d6c5b@support.example.com",
		Recipients: []BounceRecipient{
			{Address: "full@example.org", Action: "failed", Status: "5.2.2", Diagnostic: "552-5.2.2 The recipient's inbox is out of storage space."},
			{Address: "late@example.org", Action: "delayed", Status: "4.4.1"},
		},
	}
	if c.Kind != KindBounce || c.Bounce == nil || !reflect.DeepEqual(*c.Bounce, want) {
		t.Errorf("DSN: %+v, bounce %+v", c, c.Bounce)
	}
	if c.Reason != "delivery status notification: failed, delayed" {
		t.Errorf("DSN Reason = %q", c.Reason)
	}

	// A DSN that names the original only in its per-message fields.
	dsn2 := parseTestMail([]string{
		"From: postmaster@example.net",
		`Content-Type: multipart/report; report-type="delivery-status"; boundary="r2"`,
	}, "--r2\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\nOriginal-Message-ID: <orig-1@support.example.com>\n\n"+
		"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.0.0\n--r2--\n")
	if c := Classify(dsn2); c.Kind != KindBounce || c.Bounce.OriginalMessageID != "orig-1@support.example.com" {
		t.Errorf("DSN with Original-Message-ID: %+v %+v", c, c.Bounce)
	}

	// A postmaster writing as a person is not a bounce.
	if c := Classify(parseTestMail([]string{"From: postmaster@example.org", "Subject: Question about your SPF record"}, "Hi")); c.Kind != KindPerson {
		t.Errorf("postmaster person: %+v", c)
	}
	// Empty Return-Path with a bounce subject and an ordinary sender.
	c = Classify(parseTestMail([]string{"Return-Path: <>", "From: Exchange <no-reply@corp.example.org>", "Subject: Undeliverable: Re: [#10070] Refund"}, "Delivery has failed to these recipients"))
	if c.Kind != KindBounce || !strings.Contains(c.Reason, "empty Return-Path") {
		t.Errorf("Undeliverable: %+v", c)
	}
}

func TestClassifyKindString(t *testing.T) {
	for k, want := range map[MailKind]string{KindPerson: "person", KindAutoReply: "auto-reply", KindBounce: "bounce", MailKind(9): "unknown"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", k, k.String())
		}
	}
}
