package email

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzInbound drives the threading entry point: any bytes, parsed,
// classified and normalized into what the hub stores. It never panics,
// always names a sender and a dedup key, and every hint and reference it
// hands the hub is valid UTF-8 and bounded.
func FuzzInbound(f *testing.F) {
	for _, dir := range []string{"testdata/cases", "testdata/parse"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("From: a@example.org\r\nIn-Reply-To: <sb-12-34.0123456789@example.com>\r\nSubject: [#7] x\r\n\r\nhi"))
	s, err := decodeSettings([]byte(`{"address":"support@example.com","inbound_smtp":true}`))
	if err != nil {
		f.Fatal(err)
	}
	now := func() time.Time { return time.Date(2024, 4, 15, 9, 0, 0, 0, time.UTC) }
	c := &Connector{channelID: "fuzz", settings: s, now: now, limit: newSenderLimiter(RateLimit{Disabled: true}, now)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw)
		in := c.inbound(m, raw, Classify(m), Source{Via: "smtp", Recipients: []string{"support+t5@example.com"}})
		if in.ExternalID == "" || in.Sender.ExternalID == "" {
			t.Fatalf("no dedup key or sender: %q %q", in.ExternalID, in.Sender.ExternalID)
		}
		if len(in.ThreadHints) > 50 {
			t.Fatalf("%d thread hints", len(in.ThreadHints))
		}
		for _, h := range in.ThreadHints {
			if !utf8.ValidString(h) || h == "" {
				t.Fatalf("bad hint %q", h)
			}
		}
		for _, v := range []string{in.Text, in.HTML, in.Quoted, in.QuotedHTML, in.Subject, in.TicketRef} {
			if !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8: %q", v)
			}
		}
		if in.OwnRef.MessageID < 0 || in.OwnRef.TicketNumber < 0 {
			t.Fatalf("own ref %+v", in.OwnRef)
		}
	})
}
