package email

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gomail "github.com/emersion/go-message/mail"

	"github.com/switchboard-hub/switchboard/connectors"
)

var composeUpdate = flag.Bool("update-smtp", false, "rewrite the golden files under testdata/smtp")

// composeTestClock is the fixed clock of the golden file.
var composeTestClock = time.Date(2024, 4, 11, 9, 30, 0, 0, time.FixedZone("CEST", 2*3600))

func composeTestSettings() Settings {
	yes := true
	return Settings{
		Address:         "support@example.com",
		Aliases:         []string{"help@example.com"},
		FromName:        "{agent} – Example Support",
		MessageIDDomain: "support.example.com",
		SubjectTag:      &yes,
	}
}

func composeTestOutbound() connectors.Outbound {
	return connectors.Outbound{
		MessageID:      3,
		IdempotencyKey: "out-10044-3",
		TicketNumber:   10044,
		To:             connectors.Identity{ExternalID: "dave.kline@example.org", Email: "dave.kline@example.org", DisplayName: "Dave Kline"},
		Subject:        "Parcel arrived damaged",
		References:     []string{"CAF3x9qL7pT0seed5521@mail.example.org"},
		Text:           "Hi Dave,\n\nsorry to hear that. A new parcel leaves today.\n\nRavi",
		AuthorName:     "Ravi Patel",
	}
}

// composeTestParse reads a composed mail back the way a recipient's client
// would, failing the test if it is not well-formed.
func composeTestParse(t testing.TB, raw []byte) *mail.Message {
	t.Helper()
	composeTestWire(t, raw)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("composed mail does not parse: %v\n%s", err, raw)
	}
	return m
}

// composeTestWire checks the wire form: 7-bit, CRLF only, lines ≤ 998.
func composeTestWire(t testing.TB, raw []byte) {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		for _, c := range line {
			if c >= 0x80 || c == 0 {
				t.Fatalf("line %d has the octet %#x: %q", i+1, c, line)
			}
		}
	}
}

// composeTestParts returns the decoded text, the HTML and the attachments
// of a composed mail, read with go-message.
func composeTestParts(t testing.TB, raw []byte) (text, html string, files map[string][]byte) {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("go-message cannot read the mail: %v", err)
	}
	files = map[string][]byte{}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		switch h := p.Header.(type) {
		case *gomail.InlineHeader:
			ct, _, _ := h.ContentType()
			switch ct {
			case "text/plain":
				text = string(body)
			case "text/html":
				html = string(body)
			default:
				files["inline:"+ct] = body
			}
		case *gomail.AttachmentHeader:
			name, err := h.Filename()
			if err != nil {
				t.Fatalf("attachment name: %v", err)
			}
			files[name] = body
		}
	}
	return text, html, files
}

func TestComposeReplyGolden(t *testing.T) {
	out := composeTestOutbound()
	out.References = []string{"CAF3x9qL7pT0seed5521@mail.example.org", "sb-10044-1.0a1b2c3d4e@support.example.com", "form-77", "<CAF3x9qL7pT0reply5522@mail.example.org>"}
	out.Subject = "Paket beschädigt"
	out.Attachments = []connectors.Attachment{
		{Filename: "label.txt", ContentType: "text/plain; charset=utf-8", Data: []byte("Return label: RL-10044\n")},
		{Filename: "photo.jpg", URL: "https://files.example.com/photo.jpg"},
	}
	s := composeTestSettings()
	s.PlusAddressing = true
	raw, id, err := composeReply(s, out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	if id != newMessageID("support.example.com", 10044, 3, "out-10044-3") {
		t.Fatalf("message id %q", id)
	}
	// The wire form is CRLF; the golden file is kept with LF so it reads
	// and diffs like every other text file.
	got := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	golden := filepath.Join("testdata", "smtp", "reply.golden.eml")
	if *composeUpdate {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-smtp to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("composed reply differs from %s (run with -update-smtp after checking the change):\n%s", golden, got)
	}
	composeTestParse(t, raw)
}

// A retry of the same outbound message must send the same bytes and the
// same Message-ID (the outbox may resend after a crash).
func TestComposeReplyDeterministic(t *testing.T) {
	out := composeTestOutbound()
	out.Attachments = []connectors.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Data: []byte("%PDF")}}
	a, ida, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	b, idb, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	if ida != idb || !bytes.Equal(a, b) {
		t.Fatalf("two composes of one message differ: %s / %s", ida, idb)
	}
	if n, ok := parseOwnMessageID(ida, "support.example.com"); !ok || n.TicketNumber != 10044 {
		t.Fatalf("parseOwnMessageID(%q) = %+v, %v", ida, n, ok)
	}
	out.IdempotencyKey = "another"
	_, idc, _ := composeReply(composeTestSettings(), out, composeTestClock)
	if idc == ida {
		t.Fatal("another idempotency key gave the same Message-ID")
	}
}

func TestComposeReplyHeaders(t *testing.T) {
	raw, id, err := composeReply(composeTestSettings(), composeTestOutbound(), composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	m := composeTestParse(t, raw)
	h := m.Header
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Ravi Patel – Example Support" || from[0].Address != "support@example.com" {
		t.Errorf("From = %v, %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Dave Kline" || to[0].Address != "dave.kline@example.org" {
		t.Errorf("To = %v, %v", to, err)
	}
	dec := new(mime.WordDecoder)
	subj, _ := dec.DecodeHeader(h.Get("Subject"))
	if subj != "Re: Parcel arrived damaged [#10044]" {
		t.Errorf("Subject = %q", subj)
	}
	if got := h.Get("Message-Id"); got != "<"+id+">" {
		t.Errorf("Message-ID = %q, want <%s>", got, id)
	}
	if got := h.Get("In-Reply-To"); got != "<CAF3x9qL7pT0seed5521@mail.example.org>" {
		t.Errorf("In-Reply-To = %q", got)
	}
	if got := h.Get("References"); got != "<CAF3x9qL7pT0seed5521@mail.example.org>" {
		t.Errorf("References = %q", got)
	}
	if d, err := h.Date(); err != nil || !d.Equal(composeTestClock) {
		t.Errorf("Date = %v, %v", d, err)
	}
	if h.Get("Mime-Version") != "1.0" {
		t.Errorf("MIME-Version = %q", h.Get("Mime-Version"))
	}
	for _, k := range []string{"Reply-To", "Auto-Submitted", "X-Auto-Response-Suppress"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s = %q on a plain agent reply", k, v)
		}
	}
	ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || ct != "multipart/alternative" || params["boundary"] == "" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	text, html, files := composeTestParts(t, raw)
	if text != "Hi Dave,\r\n\r\nsorry to hear that. A new parcel leaves today.\r\n\r\nRavi" {
		t.Errorf("text = %q", text)
	}
	if !strings.Contains(html, "<div>Hi Dave,<br>\r\n<br>\r\nsorry to hear that.") || !strings.Contains(html, "<meta charset=\"utf-8\">") {
		t.Errorf("html = %q", html)
	}
	if len(files) != 0 {
		t.Errorf("files = %v", files)
	}
}

func TestComposeReplyOptions(t *testing.T) {
	no := false
	tests := []struct {
		name   string
		edit   func(*Settings, *connectors.Outbound)
		header string
		want   string // decoded; "" means absent
	}{
		{"plus addressing sets Reply-To", func(s *Settings, _ *connectors.Outbound) { s.PlusAddressing = true },
			"Reply-To", "<support+t10044@example.com>"},
		{"no Reply-To without a ticket number", func(s *Settings, o *connectors.Outbound) { s.PlusAddressing = true; o.TicketNumber = 0 },
			"Reply-To", ""},
		{"automatic acknowledgement is marked (C07)", func(_ *Settings, o *connectors.Outbound) { o.Automatic = true },
			"Auto-Submitted", "auto-replied"},
		{"automatic acknowledgement suppresses Exchange auto-replies", func(_ *Settings, o *connectors.Outbound) { o.Automatic = true },
			"X-Auto-Response-Suppress", "All"},
		{"subject tag off", func(s *Settings, _ *connectors.Outbound) { s.SubjectTag = &no },
			"Subject", "Re: Parcel arrived damaged"},
		{"subject tag defaults on when unset", func(s *Settings, _ *connectors.Outbound) { s.SubjectTag = nil },
			"Subject", "Re: Parcel arrived damaged [#10044]"},
		{"From name without the agent placeholder", func(s *Settings, _ *connectors.Outbound) { s.FromName = "Example Support" },
			"From", `"Example Support" <support@example.com>`},
		{"From name template defaults to the agent", func(s *Settings, _ *connectors.Outbound) { s.FromName = "" },
			"From", `"Ravi Patel" <support@example.com>`},
		{"no agent name: the separator falls away", func(_ *Settings, o *connectors.Outbound) { o.AuthorName = "" },
			"From", `"Example Support" <support@example.com>`},
		{"no name at all: the bare address", func(s *Settings, o *connectors.Outbound) { s.FromName = "{agent}"; o.AuthorName = " " },
			"From", "<support@example.com>"},
		{"non-ASCII agent name", func(_ *Settings, o *connectors.Outbound) { o.AuthorName = "Zoë Ødegård" },
			"From", "Zoë Ødegård – Example Support <support@example.com>"},
		{"recipient by ExternalID when Email is empty", func(_ *Settings, o *connectors.Outbound) { o.To.Email = ""; o.To.ExternalID = "lin.wei@example.org" },
			"To", `"Dave Kline" <lin.wei@example.org>`},
		{"recipient without a name", func(_ *Settings, o *connectors.Outbound) { o.To.DisplayName = "" },
			"To", "<dave.kline@example.org>"},
		{"internationalized domain goes out as A-label", func(_ *Settings, o *connectors.Outbound) { o.To.Email = "anna@bücher.example" },
			"To", `"Dave Kline" <anna@xn--bcher-kva.example>`},
		{"message id domain defaults to the address domain", func(s *Settings, _ *connectors.Outbound) { s.MessageIDDomain = "" },
			"Message-Id", "<" + newMessageID("example.com", 10044, 3, "out-10044-3") + ">"},
		{"no references: no threading headers", func(_ *Settings, o *connectors.Outbound) { o.References = nil },
			"In-Reply-To", ""},
		{"In-Reply-To is the newest well-formed id", func(_ *Settings, o *connectors.Outbound) {
			o.References = []string{"a@x", "<b@y>", "webform:77", "bad id@z"}
		},
			"In-Reply-To", "<b@y>"},
		{"References bracketed, deduplicated, others' ids left out", func(_ *Settings, o *connectors.Outbound) {
			o.References = []string{"a@x", "<b@y>", "a@x", "chat-5", "<c@z> trailing", ""}
		}, "References", "<a@x> <b@y>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out := composeTestSettings(), composeTestOutbound()
			tt.edit(&s, &out)
			raw, _, err := composeReply(s, out, composeTestClock)
			if err != nil {
				t.Fatal(err)
			}
			m := composeTestParse(t, raw)
			got := m.Header.Get(tt.header)
			if tt.header == "Subject" || tt.header == "From" && strings.Contains(got, "=?") {
				got, _ = new(mime.WordDecoder).DecodeHeader(got)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestComposeSubject(t *testing.T) {
	tests := []struct {
		in   string
		tag  bool
		want string
	}{
		{"Printer offline", true, "Re: Printer offline [#10042]"},
		{"Re: Printer offline", true, "Re: Printer offline [#10042]"},
		{"RE: Printer offline", true, "RE: Printer offline [#10042]"},
		{"AW: Drucker", true, "AW: Drucker [#10042]"},
		{"SV: Skrivare", true, "SV: Skrivare [#10042]"},
		{"Antw: Printer", true, "Antw: Printer [#10042]"},
		{"re: lower case", true, "re: lower case [#10042]"},
		{"Re[2]: counted", true, "Re[2]: counted [#10042]"},
		{"RE : French spacing", true, "RE : French spacing [#10042]"},
		{"Re: Printer offline [#10042]", true, "Re: Printer offline [#10042]"},
		{"[#10042] Re: tag first", true, "[#10042] Re: tag first"},
		{"[EXT] RE: external", true, "[EXT] RE: external [#10042]"},
		{"Fwd: forwarded", true, "Re: Fwd: forwarded [#10042]"},
		{"Reply needed", true, "Re: Reply needed [#10042]"},
		{"Printer offline", false, "Re: Printer offline"},
		{"", true, "Re: [#10042]"},
		{"", false, "Re:"},
		{"  spaced \t out  ", false, "Re: spaced out"},
		{"line\r\nBcc: victim@example.com", false, "Re: line Bcc: victim@example.com"},
		{"nul\x00byte", false, "Re: nul byte"},
		{"bidi \u202egnp.exe", false, "Re: bidi gnp.exe"},
	}
	for _, tt := range tests {
		if got := composeSubject(tt.in, 10042, tt.tag); got != tt.want {
			t.Errorf("composeSubject(%q, %v) = %q, want %q", tt.in, tt.tag, got, tt.want)
		}
	}
}

// References stay bounded, keeping the root (C05 walks References to
// find the ticket) and the newest others.
func TestComposeReferencesBounded(t *testing.T) {
	var in []string
	for i := range 50 {
		in = append(in, "id"+string(rune('A'+i%26))+strings.Repeat("x", i/26)+"@example.org")
	}
	got := composeReferences(in)
	if len(got) != composeMaxReferences {
		t.Fatalf("%d references kept, want %d", len(got), composeMaxReferences)
	}
	if got[0] != in[0] || got[len(got)-1] != in[len(in)-1] || got[1] != in[len(in)-composeMaxReferences+1] {
		t.Fatalf("kept %v", got)
	}
	out := composeTestOutbound()
	out.References = in
	raw, _, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	m := composeTestParse(t, raw)
	refs := strings.Fields(m.Header.Get("References"))
	if len(refs) != composeMaxReferences || refs[0] != "<"+in[0]+">" {
		t.Fatalf("References header: %v", refs)
	}
	if !bytes.Contains(raw, []byte("\r\n <")) {
		t.Error("a long References header is not folded")
	}
}

// No header injection: CR, LF or NUL in any name or the subject cannot add
// a header field.
func TestComposeReplyNoHeaderInjection(t *testing.T) {
	evil := "Eve\r\nBcc: victim@example.com\r\nX-Injected: 1\n\nbody\x00"
	out := composeTestOutbound()
	out.Subject = evil
	out.AuthorName = evil
	out.To.DisplayName = evil
	out.Attachments = []connectors.Attachment{{Filename: evil + ".txt", ContentType: "text/plain\r\nX-Injected: 2", Data: []byte("x")}}
	raw, _, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	m := composeTestParse(t, raw)
	for _, k := range []string{"Bcc", "X-Injected"} {
		if v, ok := m.Header[k]; ok {
			t.Errorf("injected header %s: %q", k, v)
		}
	}
	var keys []string
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"Content-Type", "Date", "From", "In-Reply-To", "Message-Id", "Mime-Version", "References", "Subject", "To"}
	if !slices.Equal(keys, want) {
		t.Errorf("header fields %v, want %v", keys, want)
	}
	if bytes.Contains(raw, []byte("\nX-Injected")) || bytes.Contains(raw, []byte("\nBcc")) {
		t.Errorf("an injected line starts a line:\n%s", raw)
	}
	_, _, files := composeTestParts(t, raw)
	if _, ok := files["Eve Bcc: victim@example.com X-Injected: 1 body .txt"]; !ok {
		t.Errorf("attachment names: %v", slices.Collect(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

func TestComposeReplyAttachments(t *testing.T) {
	out := composeTestOutbound()
	out.Attachments = []connectors.Attachment{
		{Filename: "Rechnung März 2024 – Übersicht.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\n\x00\xff binary")},
		{Filename: "../../etc/passwd", ContentType: "text/plain", Data: []byte("root")},
		{Filename: "", ContentType: "image/png", Data: []byte("\x89PNG")},
		{Filename: "bad type.bin", ContentType: "multipart/mixed; boundary=x", Data: []byte("--x\r\n")},
		{Filename: strings.Repeat("ü", 300) + ".docx", ContentType: "application/octet-stream", Data: []byte("doc")},
		{Filename: "logo.png", ContentType: "image/png", Data: []byte("png"), ContentID: "<logo@example.com>", Inline: true},
		{Filename: "image001.gif", ContentType: "image/gif", Data: []byte("gif"), ContentID: "image001", Inline: true},
		{Filename: "bad-cid.gif", ContentType: "image/gif", Data: []byte("gif2"), ContentID: "a b\r\nX-Injected: 1"},
		{Filename: "big photo.jpg", URL: "https://files.example.com/p/1.jpg?x=1&y=2"},
		{Filename: "script", URL: "javascript:alert(1)"},
	}
	raw, _, err := composeReply(composeTestSettings(), out, composeTestClock)
	if err != nil {
		t.Fatal(err)
	}
	m := composeTestParse(t, raw)
	if ct, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); ct != "multipart/mixed" {
		t.Fatalf("Content-Type %q", ct)
	}
	text, html, files := composeTestParts(t, raw)
	want := map[string]string{
		"Rechnung März 2024 – Übersicht.pdf": "%PDF-1.4\n\x00\xff binary",
		"passwd":                             "root",
		"attachment-3.png":                   "\x89PNG",
		"bad type.bin":                       "--x\r\n",
		strings.Repeat("ü", 115) + ".docx":   "doc",
		"inline:image/png":                   "png",
		"inline:image/gif":                   "gif",
		"bad-cid.gif":                        "gif2",
	}
	for name, body := range want {
		if got, ok := files[name]; !ok || string(got) != body {
			t.Errorf("attachment %q = %q, %v", name, got, ok)
		}
	}
	if len(files) != len(want) {
		t.Errorf("%d attachments, want %d", len(files), len(want))
	}
	if !bytes.Contains(raw, []byte("Content-Id: <logo@example.com>")) || !bytes.Contains(raw, []byte("Content-Id: <image001>")) || !bytes.Contains(raw, []byte("Content-Disposition: inline")) {
		t.Error("inline image lost its Content-ID or disposition")
	}
	// URL-only files are linked, never attached empty.
	if !strings.Contains(text, "- big photo.jpg: https://files.example.com/p/1.jpg?x=1&y=2") || !strings.Contains(text, "- script: javascript:alert(1)") {
		t.Errorf("text does not link the files: %q", text)
	}
	if !strings.Contains(html, `<a href="https://files.example.com/p/1.jpg?x=1&amp;y=2">big photo.jpg</a>`) {
		t.Errorf("html does not link the file: %q", html)
	}
	if strings.Contains(html, `href="javascript:`) {
		t.Errorf("html links a javascript: URL: %q", html)
	}
}

func TestComposeReplyBodies(t *testing.T) {
	tests := []struct {
		name, text, html string
		wantText         string
		wantHTML         []string
	}{
		{"text escaped into minimal HTML", "a < b & c\n> quoted", "", "a < b & c\r\n> quoted",
			[]string{"<div>a &lt; b &amp; c<br>\r\n&gt; quoted</div>"}},
		{"HTML as given, wrapped into a document", "plain", "<p>Hello <b>you</b></p>", "plain",
			[]string{"<body>\r\n<p>Hello <b>you</b></p>\r\n</body></html>"}},
		{"full HTML document kept", "plain", "<html><body><p>x</p></body></html>", "plain",
			[]string{"<html><body><p>x</p></body></html>"}},
		{"text read from HTML when missing", "", "<html><head><style>p{}</style></head><body><p>Hello&nbsp;there</p><p>Line <br>two</p><script>x()</script></body></html>",
			"Hello there\r\n\r\nLine\r\ntwo", []string{"<p>Hello&nbsp;there</p>"}},
		{"long lines stay under the limit", strings.Repeat("word ", 400) + strings.Repeat("x", 2000), "", strings.Repeat("word ", 400) + strings.Repeat("x", 2000), nil},
		{"CR and CRLF become CRLF", "a\rb\r\nc", "", "a\r\nb\r\nc", nil},
		{"invalid UTF-8 replaced", "bad \xff byte", "", "bad \uFFFD byte", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := composeTestOutbound()
			out.Text, out.HTML = tt.text, tt.html
			raw, _, err := composeReply(composeTestSettings(), out, composeTestClock)
			if err != nil {
				t.Fatal(err)
			}
			composeTestParse(t, raw)
			text, html, _ := composeTestParts(t, raw)
			if text != tt.wantText {
				t.Errorf("text = %q, want %q", text, tt.wantText)
			}
			for _, w := range tt.wantHTML {
				if !strings.Contains(html, w) {
					t.Errorf("html %q lacks %q", html, w)
				}
			}
		})
	}
}

func TestComposeReplyErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Settings, *connectors.Outbound)
		code string
	}{
		{"no recipient address", func(_ *Settings, o *connectors.Outbound) { o.To = connectors.Identity{DisplayName: "Anon"} }, "email_no_recipient"},
		{"a twitter id is not an address", func(_ *Settings, o *connectors.Outbound) { o.To = connectors.Identity{ExternalID: "123456789"} }, "email_bad_recipient"},
		{"a name and address is not a bare address", func(_ *Settings, o *connectors.Outbound) { o.To.Email = "Eve <eve@example.org>" }, "email_bad_recipient"},
		{"injection through the address", func(_ *Settings, o *connectors.Outbound) { o.To.Email = "eve@example.org\r\nBcc: x@y" }, "email_bad_recipient"},
		{"our own address (mail loop)", func(_ *Settings, o *connectors.Outbound) { o.To.Email = "Support@Example.com" }, "email_own_address"},
		{"an alias of ours", func(_ *Settings, o *connectors.Outbound) { o.To.Email = "help@example.com" }, "email_own_address"},
		{"no support address", func(s *Settings, _ *connectors.Outbound) { s.Address = "" }, "email_config"},
		{"no id to build a Message-ID from", func(_ *Settings, o *connectors.Outbound) { o.MessageID = 0; o.IdempotencyKey = "" }, "email_no_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out := composeTestSettings(), composeTestOutbound()
			tt.edit(&s, &out)
			raw, _, err := composeReply(s, out, composeTestClock)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Class != connectors.Permanent || ce.Code != tt.code {
				t.Fatalf("err = %v, want a permanent %s", err, tt.code)
			}
			if ce.Msg == "" || raw != nil {
				t.Fatalf("no message for the agent, or raw returned: %q", ce.Msg)
			}
		})
	}
}

// FuzzComposeReply: whatever the subject, names and text, the result is
// mail a client can read, with exactly our header fields, and the values
// come back as given (cleaned of control characters).
func FuzzComposeReply(f *testing.F) {
	f.Add("Printer offline", "Ravi", "Dave", "Hi\nthere", "")
	f.Add("Re: =?utf-8?q?x?= \"quoted\"", "Zoë \"Z\" <z@x>", "林伟", "\x00\r\n.\r\n", "<p>x</p>")
	f.Add("line\r\nBcc: victim@example.com", "a\nb", "c\rd", strings.Repeat("long ", 300), "")
	f.Add(strings.Repeat("ü", 500), strings.Repeat("名", 300), "\u202e\u200d", "", "<script>")
	f.Fuzz(func(t *testing.T, subject, agent, name, text, html string) {
		out := composeTestOutbound()
		out.Subject, out.AuthorName, out.To.DisplayName, out.Text, out.HTML = subject, agent, name, text, html
		s := composeTestSettings()
		s.FromName = "{agent}"
		raw, id, err := composeReply(s, out, composeTestClock)
		if err != nil {
			t.Fatal(err)
		}
		m := composeTestParse(t, raw)
		for k := range m.Header {
			switch k {
			case "Date", "From", "To", "Subject", "Message-Id", "In-Reply-To", "References", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("unexpected header field %q", k)
			}
		}
		if m.Header.Get("Message-Id") != "<"+id+">" {
			t.Fatalf("Message-ID %q", m.Header.Get("Message-Id"))
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			t.Fatalf("subject does not decode: %v", err)
		}
		if want := composeSubject(subject, out.TicketNumber, true); subj != want {
			t.Fatalf("subject = %q, want %q", subj, want)
		}
		if !utf8.ValidString(subj) {
			t.Fatalf("subject not UTF-8: %q", subj)
		}
		from, err := m.Header.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Address != "support@example.com" {
			t.Fatalf("From = %q: %v", m.Header.Get("From"), err)
		}
		if want := composeFromName("{agent}", agent); from[0].Name != want {
			t.Fatalf("From name = %q, want %q", from[0].Name, want)
		}
		to, err := m.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != "dave.kline@example.org" {
			t.Fatalf("To = %q: %v", m.Header.Get("To"), err)
		}
		if want := composeClean(name, composeMaxNameRunes); to[0].Name != want {
			t.Fatalf("To name = %q, want %q", to[0].Name, want)
		}
		gotText, _, _ := composeTestParts(t, raw)
		if strings.TrimSpace(text) != "" {
			want := strings.ReplaceAll(composeNewlines(strings.ToValidUTF8(text, "\uFFFD")), "\n", "\r\n")
			if gotText != want {
				t.Fatalf("text = %q, want %q", gotText, want)
			}
		}
	})
}
