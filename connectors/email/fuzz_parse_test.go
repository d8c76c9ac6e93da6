package email

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseFuzzSeeds adds every test mail of the package (LF and CRLF) to f.
func parseFuzzSeeds(f *testing.F) {
	for _, file := range parseTestMailFiles(f) {
		raw := parseTestRead(f, file)
		f.Add(raw)
		f.Add(parseTestCRLF(raw))
	}
}

// parseFuzzCheckText fails on text that is not valid UTF-8 or holds NUL.
func parseFuzzCheckText(t *testing.T, field, s string) {
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", field, s)
	}
	if strings.ContainsRune(s, 0) {
		t.Fatalf("%s holds NUL: %q", field, s)
	}
}

func parseFuzzCheckMail(t *testing.T, raw []byte, m *Mail) {
	if m == nil {
		t.Fatal("Parse returned nil")
	}
	check := func(field, s string) { parseFuzzCheckText(t, field, s) }
	check("Subject", m.Subject)
	check("Text", m.Text)
	check("HTML", m.HTML)
	check("MessageID", m.MessageID)
	for _, a := range append(append(append([]Address{m.From}, m.To...), m.Cc...), m.ReplyTo...) {
		check("address name", a.Name)
		check("address", a.Addr)
	}
	for _, list := range [][]string{m.InReplyTo, m.References, m.DeliveredTo, m.Warnings} {
		for _, s := range list {
			check("list entry", s)
		}
	}
	total := 0
	for _, a := range m.Attachments {
		check("Filename", a.Filename)
		check("ContentType", a.ContentType)
		check("ContentID", a.ContentID)
		if a.Filename == "" {
			t.Fatalf("attachment without a name: %+v", a)
		}
		total += len(a.Data)
	}
	// Decoding only shrinks content; TNEF files share winmail.dat's
	// bytes and original.eml is the input once: a bound, not a leak.
	if total > 3*len(raw)+1024 {
		t.Fatalf("%d attachment bytes from %d input bytes", total, len(raw))
	}
	// Readable input never gives an empty mail: something of it shows.
	if len(bytes.TrimSpace(raw)) > 0 && m.Text == "" && m.HTML == "" && m.Subject == "" &&
		m.From.Addr == "" && len(m.Attachments) == 0 && len(m.Warnings) == 0 && len(m.Header) == 0 {
		t.Fatalf("empty Mail for %q", raw)
	}
}

func FuzzParse(f *testing.F) {
	parseFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		parseFuzzCheckMail(t, raw, Parse(raw))
	})
}

func FuzzClassify(f *testing.F) {
	parseFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := Classify(Parse(raw))
		if c.Kind != KindPerson && c.Kind != KindAutoReply && c.Kind != KindBounce {
			t.Fatalf("kind %d", c.Kind)
		}
		parseFuzzCheckText(t, "Reason", c.Reason)
		if (c.Kind == KindBounce) != (c.Bounce != nil) {
			t.Fatalf("kind %v with bounce %+v", c.Kind, c.Bounce)
		}
		if c.Bounce != nil {
			parseFuzzCheckText(t, "OriginalMessageID", c.Bounce.OriginalMessageID)
			for _, r := range c.Bounce.Recipients {
				for _, s := range []string{r.Address, r.Action, r.Status, r.Diagnostic} {
					parseFuzzCheckText(t, "bounce recipient", s)
				}
			}
		}
	})
}

func FuzzDecodeTNEF(f *testing.F) {
	f.Add(tnefTestC09(f))
	f.Add(tnefTestStream(
		tnefTestAttr{level: 1, id: attMAPIProps, data: tnefTestProps(tnefTestProp{ptUnicode, prBody, tnefTestUTF16("body")})},
		tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
		tnefTestAttr{level: 2, id: attAttachment, data: tnefTestProps(tnefTestProp{ptBinary, prAttachDataBin, []byte("x")})},
	))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, _ := decodeTNEF(b)
		if msg == nil {
			return
		}
		total := 0
		for _, a := range msg.Attachments {
			parseFuzzCheckText(t, "name", a.Name)
			total += len(a.Data)
		}
		if total > len(b) {
			t.Fatalf("%d attachment bytes from %d input bytes", total, len(b))
		}
		if !utf8.ValidString(msg.Body) {
			t.Fatalf("body %q", msg.Body)
		}
	})
}

func FuzzDecodeHeaderText(f *testing.F) {
	for _, s := range []string{
		"=?GB2312?B?udjT2ulG1v28/raptaW1xNfJ0a8=?=",
		"=?UTF-8?B?UsM=?= =?UTF-8?B?qWNsYW1hdGlvbg==?=",
		"=?utf-8?Q?M=C3=BC?==?utf-8?Q?ller?=",
		"=?iso-2022-jp?B?GyRCRURDZhsoQiAbJEJNWztSGyhC?=",
		"J\xfcrgen <j@example.org>, \"Doe, John\" <d@example.org>",
	} {
		f.Add(s, "iso-8859-1")
	}
	f.Fuzz(func(t *testing.T, s, fallback string) {
		parseFuzzCheckText(t, "decoded", decodeHeaderText(s, fallback))
		for _, a := range parseAddresses(s, fallback) {
			parseFuzzCheckText(t, "name", a.Name)
			parseFuzzCheckText(t, "addr", a.Addr)
		}
		parseMessageIDs(s, true)
		parseMailDate(s)
		mimeParamValue(s, "filename")
	})
}
