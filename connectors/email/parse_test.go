package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// -update-parse rewrites the golden files under testdata/parse/golden and
// the generated corpus files (named apart from other -update flags of
// the package so that the test files of each area compile together).
var parseUpdate = flag.Bool("update-parse", false, "rewrite testdata/parse golden and generated files")

func parseTestRead(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// parseTestCRLF turns the LF line endings of a case file into the CRLF
// of the wire.
func parseTestCRLF(raw []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// parseTestBoth runs f on a case as stored (LF) and as on the wire (CRLF).
func parseTestBoth(t *testing.T, path string, f func(t *testing.T, m *Mail)) {
	raw := parseTestRead(t, path)
	t.Run("LF", func(t *testing.T) { f(t, Parse(raw)) })
	t.Run("CRLF", func(t *testing.T) { f(t, Parse(parseTestCRLF(raw))) })
}

func parseTestSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func parseTestAttachmentNames(m *Mail) []string {
	var names []string
	for _, a := range m.Attachments {
		names = append(names, a.Filename)
	}
	return names
}

func TestParseCaseC01(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C01.eml", func(t *testing.T, m *Mail) {
		// GB2312 label, GBK-only 镕 (U+9555): decoded as GB18030.
		if m.Subject != "关于镕铸件订单的咨询" {
			t.Errorf("Subject = %q", m.Subject)
		}
		if m.From != (Address{Name: "林伟", Addr: "lin.wei@example.org"}) {
			t.Errorf("From = %+v", m.From)
		}
		if !strings.Contains(m.Text, "订单号 DD-20240305-118") || !strings.Contains(m.Text, "镕") {
			t.Errorf("Text = %q", m.Text)
		}
		if strings.ContainsRune(m.Text+m.HTML+m.Subject, '\uFFFD') {
			t.Errorf("U+FFFD in the result")
		}
		if len(m.Warnings) != 0 {
			t.Errorf("Warnings = %q", m.Warnings)
		}
	})
}

func TestParseCaseC02(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C02.eml", func(t *testing.T, m *Mail) {
		if m.Subject != "Demande de facture détaillée" {
			t.Errorf("Subject = %q", m.Subject)
		}
		if m.From.Name != "Amélie Durand" {
			t.Errorf("From.Name = %q", m.From.Name)
		}
		// Raw 0x92 bytes beside =E9 and =80 escapes: no "invalid unescaped byte".
		want := "Bonjour,\n\nPourriez-vous m’envoyer la facture détaillée de la commande 7731 ?\nLe montant indiqué est de 149€ TTC.\n\nMerci d’avance,\nAmélie"
		if m.Text != want {
			t.Errorf("Text = %q, want %q", m.Text, want)
		}
		if len(m.Warnings) != 0 {
			t.Errorf("Warnings = %q", m.Warnings)
		}
	})
}

func TestParseCaseC03(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C03.eml", func(t *testing.T, m *Mail) {
		if m.Subject != "配送状況の確認のお願い" {
			t.Errorf("Subject = %q", m.Subject)
		}
		if m.From.Name != "田中 陽子" {
			t.Errorf("From.Name = %q", m.From.Name)
		}
		if !strings.HasPrefix(m.Text, "お世話になっております。") || !strings.Contains(m.Text, "注文番号A-1024の配送状況") {
			t.Errorf("Text = %q", m.Text)
		}
		for _, s := range []string{m.Text, m.HTML} {
			if strings.ContainsAny(s, "\x1b") || strings.Contains(s, "$B") || strings.Contains(s, "(B") {
				t.Errorf("JIS escapes left in %q", s)
			}
		}
		// The HTML part decodes to the same text.
		for _, line := range strings.Split(m.Text, "\n") {
			if !strings.Contains(m.HTML, line) {
				t.Errorf("HTML lacks %q", line)
			}
		}
	})
}

func TestParseCaseC05(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C05-seed.eml", func(t *testing.T, m *Mail) {
		if m.MessageID != "CAF3x9qL7pT0seed5521@mail.example.org" {
			t.Errorf("MessageID = %q", m.MessageID)
		}
		if m.Text != "Hello,\nmy order 5521 arrived today with a cracked lid. Can you send a replacement?\nAlice" {
			t.Errorf("Text = %q", m.Text)
		}
	})
	parseTestBoth(t, "testdata/cases/C05.eml", func(t *testing.T, m *Mail) {
		if m.MessageID != "AM8PR02MB7300F00DBA5E1C2A9F3E4B61A1D82@AM8PR02MB7300.eurprd02.prod.example.net" {
			t.Errorf("MessageID = %q", m.MessageID)
		}
		if len(m.InReplyTo) != 1 || m.InReplyTo[0] != "DB9PR04MB8123A1B2C3D4E5F6A7B8C9D0E1F2A@DB9PR04MB8123.eurprd04.prod.example.net" {
			t.Errorf("InReplyTo = %q", m.InReplyTo)
		}
		// References (folded over two lines) still hold the first Message-ID.
		wantRefs := []string{"CAF3x9qL7pT0seed5521@mail.example.org", "DB9PR04MB8123A1B2C3D4E5F6A7B8C9D0E1F2A@DB9PR04MB8123.eurprd04.prod.example.net"}
		if strings.Join(m.References, " ") != strings.Join(wantRefs, " ") {
			t.Errorf("References = %q", m.References)
		}
		if !strings.HasPrefix(m.Text, "Hi Ben,\n\nthanks - the photos are below. The box was also wet on one side.\n\nAlice\n\n____") {
			t.Errorf("Text = %q", m.Text)
		}
		if !strings.Contains(m.HTML, `id="divRplyFwdMsg"`) {
			t.Errorf("HTML lost its quote marker")
		}
		if m.Subject != "RE: Order 5521 arrived damaged" || m.From.Addr != "alice.moreau@example.org" {
			t.Errorf("Subject %q From %+v", m.Subject, m.From)
		}
	})
}

func TestParseCaseC09(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C09.eml", func(t *testing.T, m *Mail) {
		if !strings.HasPrefix(m.Text, "Please find the corrected invoice attached.") {
			t.Errorf("Text = %q", m.Text)
		}
		var found bool
		for _, a := range m.Attachments {
			if a.Filename == "invoice-2041.txt" {
				found = true
				if len(a.Data) != 60 || parseTestSHA(a.Data) != "4e9805600a7ac3ec64230609344c024ed29bd08ba8537d02cf8bcf995e11208b" {
					t.Errorf("invoice-2041.txt: %d bytes, sha256 %s", len(a.Data), parseTestSHA(a.Data))
				}
			}
		}
		if !found {
			t.Errorf("attachments %q lack invoice-2041.txt", parseTestAttachmentNames(m))
		}
		if got := strings.Join(parseTestAttachmentNames(m), ","); got != "invoice-2041.txt,winmail.dat" {
			t.Errorf("attachments = %s", got)
		}
	})
}

func TestParseCaseC11(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C11.eml", func(t *testing.T, m *Mail) {
		want := []string{"Rechnung März 2024 – Übersicht.pdf", "41240612345678000199550010000123451000012345_v4.00-procNFe.xml"}
		got := parseTestAttachmentNames(m)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("attachments = %q, want %q", got, want)
		}
	})
}

func TestParseCaseC13(t *testing.T) {
	parseTestBoth(t, "testdata/cases/C13.eml", func(t *testing.T, m *Mail) {
		if !strings.HasPrefix(m.Text, "Your statement ER4411 is attached.") {
			t.Errorf("Text = %q", m.Text)
		}
		if len(m.Attachments) == 0 || m.Attachments[0].Filename != "ER4411_statement.zip" {
			t.Fatalf("attachments = %q", parseTestAttachmentNames(m))
		}
		zip := m.Attachments[0]
		if len(zip.Data) != 203 || parseTestSHA(zip.Data) != "72534e3dfb5911498f248962b1b50156869101b3e834a44a11d8aec291aa7a72" {
			t.Errorf("zip: %d bytes, sha256 %s", len(zip.Data), parseTestSHA(zip.Data))
		}
		// The header was repaired: the mail says so and keeps its source.
		if len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "not indented") {
			t.Errorf("Warnings = %q", m.Warnings)
		}
		last := m.Attachments[len(m.Attachments)-1]
		if last.Filename != "original.eml" || last.ContentType != "message/rfc822" || len(last.Data) == 0 {
			t.Errorf("last attachment = %q %q", last.Filename, last.ContentType)
		}
	})
}

// parseCorpus is the hand-made corpus under testdata/parse: the file,
// then the exact subject and sender, a fragment of the text, and the
// attachment names in order.
var parseCorpus = []struct {
	file        string
	subject     string
	from        Address
	text        string
	attachments []string
}{
	{"broken-base64.eml", "Rapport in de bijlage", Address{"Pieter de Vries", "pieter@example.nl"},
		"het rapport van de storing. Groet, Pieter", []string{"rapport.pdf", "original.eml"}},
	{"broken-qp.eml", "Problème de connexion", Address{"André Meunier", "andre@example.fr"},
		"je n'arrive pas à me connecter depuis la mise à jour. Le message dit =ZZ erreur 100%", nil},
	{"html-only.eml", "Alleen HTML", Address{"Sanne Jansen", "sanne@example.nl"},
		"Bestelnummer: 8812", nil},
	{"inline-cid.eml", "Screenshot of the error", Address{"Tom Hendriks", "tom@example.org"},
		"The error looks like this:", []string{"image-1.png"}},
	{"nested-rfc822.eml", "Fwd: Your order confirmation", Address{"Lisa Bakker", "lisa@example.nl"},
		"the amount is wrong", []string{"Bestellbestätigung 9931.eml"}},
	{"header-split.eml", "Réclamation — délai dépassé", Address{"王芳", "wang.fang@example.cn"},
		"cut in the middle", nil},
	{"raw-8bit-header.eml", "Überweisung fehlgeschlagen", Address{"Jürgen Groß", "juergen.gross@example.de"},
		"Die Überweisung über 120 € ist fehlgeschlagen.", nil},
	{"missing-boundary.eml", "Missing boundary parameter", Address{"Noah Visser", "noah@example.nl"},
		"The invoice is attached.", []string{"factuur.pdf", "original.eml"}},
	{"wrong-boundary.eml", "Wrong boundary parameter", Address{"Daan Smit", "daan@example.nl"},
		"My contract number is 77-1204.", []string{"contract.pdf", "original.eml"}},
	{"unclosed-boundary.eml", "Unclosed boundary", Address{"Emma de Boer", "emma@example.nl"},
		"The last part has no closing boundary.", []string{"original.eml"}},
	{"gmail.eml", "Re: [#10051] Broken hinge", Address{"María García", "maria.garcia@gmail.example.com"},
		"Could you send a replacement part?\nOrder 7342", []string{"IMG_20240417_103512.jpg"}},
	{"outlook.eml", "AW: [#10052] Zahlung für Rechnung 2041", Address{"Frank Müller", "frank.mueller@corp.example.de"},
		"The amount of 1.250,00 EUR was paid", []string{"image001.png", "Überweisungsbeleg April.pdf"}},
	{"apple-mail.eml", "Facture de mars", Address{"Anaïs Lefèvre", "anais@icloud.example.com"},
		"elle est erronée.\n\nMerci d'avance,\nAnais", []string{"Facture mars électricité.pdf"}},
	{"tnef-truncated.eml", "Corrected invoice 2041", Address{"Tom Becker", "tom.becker@example.org"},
		"Please find the corrected invoice attached.", []string{"winmail.dat"}},
	{"garbage.eml", "", Address{}, "", []string{"original.eml"}},
}

func TestParseCorpus(t *testing.T) {
	for _, tt := range parseCorpus {
		t.Run(tt.file, func(t *testing.T) {
			raw := parseTestRead(t, filepath.Join("testdata", "parse", tt.file))
			for _, in := range [][]byte{raw, parseTestCRLF(raw)} {
				m := Parse(in)
				if m.Subject != tt.subject {
					t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
				}
				if m.From != tt.from {
					t.Errorf("From = %+v, want %+v", m.From, tt.from)
				}
				if !strings.Contains(m.Text, tt.text) {
					t.Errorf("Text = %q, want it to contain %q", m.Text, tt.text)
				}
				if got := parseTestAttachmentNames(m); strings.Join(got, "|") != strings.Join(tt.attachments, "|") {
					t.Errorf("attachments = %q, want %q", got, tt.attachments)
				}
			}
		})
	}
}

// TestParseCorpusDetails checks what the table above cannot say.
func TestParseCorpusDetails(t *testing.T) {
	parse := func(name string) *Mail {
		return Parse(parseTestRead(t, filepath.Join("testdata", "parse", name)))
	}
	t.Run("html-only", func(t *testing.T) {
		m := parse("html-only.eml")
		for _, bad := range []string{"<", "alert", "color: red"} {
			if strings.Contains(m.Text, bad) {
				t.Errorf("Text holds %q: %q", bad, m.Text)
			}
		}
		if !strings.Contains(m.Text, "Goedemiddag,\n\nMijn pakket") || !strings.Contains(m.Text, "\nBestelnummer: 8812") {
			t.Errorf("Text lacks its line breaks: %q", m.Text)
		}
		if !strings.HasPrefix(m.HTML, "<html>") {
			t.Errorf("HTML = %q", m.HTML)
		}
	})
	t.Run("inline-cid", func(t *testing.T) {
		m := parse("inline-cid.eml")
		a := m.Attachments[0]
		if !a.Inline || a.ContentID != "shot1@example.org" || a.ContentType != "image/png" || len(a.Data) != 67 {
			t.Errorf("inline image = %+v", a)
		}
		if !strings.Contains(m.HTML, "cid:shot1@example.org") {
			t.Errorf("HTML lost its cid reference")
		}
	})
	t.Run("outlook inline and attachment", func(t *testing.T) {
		m := parse("outlook.eml")
		if !m.Attachments[0].Inline || m.Attachments[0].ContentID != "image001.png@01DA9011.2B3C4D50" {
			t.Errorf("image001.png = %+v", m.Attachments[0])
		}
		if m.Attachments[1].Inline || string(m.Attachments[1].Data) != "%PDF-1.4 transfer receipt" {
			t.Errorf("pdf = %+v", m.Attachments[1])
		}
		if !strings.Contains(m.HTML, "1.250,00 €") {
			t.Errorf("HTML not decoded from windows-1252: %q", m.HTML)
		}
		if len(m.Cc) != 1 || m.Cc[0] != (Address{"Buchhaltung", "buchhaltung@corp.example.de"}) {
			t.Errorf("Cc = %+v", m.Cc)
		}
		if len(m.To) != 1 || m.To[0] != (Address{"", "support@example.com"}) {
			t.Errorf("To = %+v", m.To)
		}
	})
	t.Run("nested message", func(t *testing.T) {
		m := parse("nested-rfc822.eml")
		a := m.Attachments[0]
		if a.ContentType != "message/rfc822" || !bytes.Contains(a.Data, []byte("Message-ID: <order-9931@shop.example.com>")) {
			t.Errorf("forwarded message = %q %q", a.ContentType, a.Data)
		}
		if strings.Contains(m.Text, "49.00") {
			t.Errorf("the forwarded body leaked into Text: %q", m.Text)
		}
	})
	t.Run("header split", func(t *testing.T) {
		m := parse("header-split.eml")
		wantTo := []Address{{"Jürgen Müller", "juergen@example.de"}, {"", "support@example.com"}}
		if len(m.To) != 2 || m.To[0] != wantTo[0] || m.To[1] != wantTo[1] {
			t.Errorf("To = %+v", m.To)
		}
		// A decoded comma inside an encoded name does not split it.
		if len(m.Cc) != 1 || m.Cc[0] != (Address{"Martín, José", "jose@example.es"}) {
			t.Errorf("Cc = %+v", m.Cc)
		}
	})
	t.Run("broken base64 keeps what decodes", func(t *testing.T) {
		m := parse("broken-base64.eml")
		if !strings.HasPrefix(string(m.Attachments[0].Data), "%PDF-1.4") {
			t.Errorf("pdf = %q", m.Attachments[0].Data)
		}
		if !parseTestHasWarning(m, "broken base64") {
			t.Errorf("Warnings = %q", m.Warnings)
		}
	})
	t.Run("broken quoted-printable is noted", func(t *testing.T) {
		m := parse("broken-qp.eml")
		if !parseTestHasWarning(m, "quoted-printable") {
			t.Errorf("Warnings = %q", m.Warnings)
		}
	})
	t.Run("truncated TNEF", func(t *testing.T) {
		m := parse("tnef-truncated.eml")
		if !parseTestHasWarning(m, "winmail.dat") {
			t.Errorf("Warnings = %q", m.Warnings)
		}
	})
	t.Run("gmail threading", func(t *testing.T) {
		m := parse("gmail.eml")
		if m.MessageID != "CAKx7Jb3Q9vYz1mN+5pRt0Lw2sHq8dUeFgXo4aC6bNm1r2s3t4A@mail.gmail.com" ||
			len(m.InReplyTo) != 1 || m.InReplyTo[0] != "sb-10051-88.1a2b3c4d5e@support.example.com" {
			t.Errorf("ids = %q %q", m.MessageID, m.InReplyTo)
		}
		if !m.Date.Equal(time.Date(2024, 4, 17, 8, 41, 27, 0, time.UTC)) {
			t.Errorf("Date = %v", m.Date)
		}
	})
}

func parseTestHasWarning(m *Mail, fragment string) bool {
	for _, w := range m.Warnings {
		if strings.Contains(w, fragment) {
			return true
		}
	}
	return false
}

func TestParseNeverEmpty(t *testing.T) {
	tests := []struct {
		name string
		in   string
		text string
	}{
		{"empty", "", ""},
		{"only a header", "Subject: hi\n", ""},
		{"no header", "just some words\nand more", "just some words\nand more"},
		{"mbox From line", "From someone@example.org Mon Apr 15 10:00:00 2024\nFrom: a@example.org\nSubject: x\n\nbody", "body"},
		{"blank lines first", "\n\nFrom: a@example.org\nSubject: x\n\nbody", "body"},
		{"bad content type", "From: a@example.org\nContent-Type: text/plain; charset=\"utf-8\n\nbody text", "body text"},
		{"content type junk", "From: a@example.org\nContent-Type: ;;;==\n\nbody text", "body text"},
		{"binary body", "From: a@example.org\n\n\x00\x01\xff\xfe text", "ÿþ text"},
	}
	for _, tt := range tests {
		m := Parse([]byte(tt.in))
		if m == nil {
			t.Fatalf("%s: nil", tt.name)
		}
		if m.Text != tt.text {
			t.Errorf("%s: Text = %q, want %q", tt.name, m.Text, tt.text)
		}
		if tt.in == "" && len(m.Warnings) == 0 {
			t.Errorf("%s: no warning", tt.name)
		}
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		in   string
		want []Address
	}{
		{"Alice <alice@Example.ORG>", []Address{{"Alice", "alice@example.org"}}},
		{`"Doe, John" <John.Doe@example.org>, jane@example.org`, []Address{{"Doe, John", "John.Doe@example.org"}, {"", "jane@example.org"}}},
		{"MAILER-DAEMON@mx.example.com (Mail Delivery System)", []Address{{"Mail Delivery System", "MAILER-DAEMON@mx.example.com"}}},
		{`"Broken Quote <b@example.org>`, []Address{{"Broken Quote", "b@example.org"}}},
		{`a@example.org b@example.org`, []Address{{"", "a@example.org"}, {"", "b@example.org"}}},
		{`Team: a@example.org, b@example.org;`, []Address{{"", "a@example.org"}, {"", "b@example.org"}}},
		{`undisclosed-recipients:;`, nil},
		{`=?utf-8?Q?Ren=C3=A9e?= <renee@example.org>`, []Address{{"Renée", "renee@example.org"}}},
		{`"=?utf-8?Q?Ren=C3=A9e?=" <renee@example.org>`, []Address{{"Renée", "renee@example.org"}}},
		{`Ren\xe9e Faure <renee@example.org>`, []Address{{"Renée Faure", "renee@example.org"}}},
		{`<mailto:x@example.org>`, []Address{{"", "x@example.org"}}},
		{`"x@example.org" <x@example.org>`, []Address{{"", "x@example.org"}}},
		{`Bob Smith`, nil},
		{``, nil},
	}
	for _, tt := range tests {
		in := strings.ReplaceAll(tt.in, `\xe9`, "\xe9")
		got := parseAddresses(in, "")
		if len(got) != len(tt.want) {
			t.Errorf("parseAddresses(%q) = %+v, want %+v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("parseAddresses(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParseMessageIDs(t *testing.T) {
	tests := []struct {
		in     string
		single bool
		want   []string
	}{
		{"<a@example.org>", true, []string{"a@example.org"}},
		{"a@example.org", true, []string{"a@example.org"}},
		{"  <a@example.org> (comment)", true, []string{"a@example.org"}},
		{"<a@example.org>\r\n <b@example.org>", false, []string{"a@example.org", "b@example.org"}},
		{"<a@example.org><b@example.org>", false, []string{"a@example.org", "b@example.org"}},
		{"<a@example.org> <a@example.org>", false, []string{"a@example.org"}},
		{`Your message of "Mon, 1 Apr 2024" <a@example.org>`, false, []string{"a@example.org"}},
		{"a@example.org, b@example.org", false, []string{"a@example.org", "b@example.org"}},
		{"(only a comment)", false, nil},
		{"no-at-sign-id", true, []string{"no-at-sign-id"}},
		{"junk words here", false, nil},
		{"<000a01da6e4b$1f2e3d40$5d8ab7c0$@example.net>", true, []string{"000a01da6e4b$1f2e3d40$5d8ab7c0$@example.net"}},
	}
	for _, tt := range tests {
		got := parseMessageIDs(tt.in, tt.single)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("parseMessageIDs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	ids := make([]string, 150)
	for i := range ids {
		ids[i] = "<id" + string(rune('a'+i%26)) + strings.Repeat("x", i) + "@example.org>"
	}
	got := capIDs(parseMessageIDs(strings.Join(ids, " "), false))
	if len(got) != 100 || got[0] != strings.Trim(ids[0], "<>") || got[99] != strings.Trim(ids[149], "<>") {
		t.Errorf("capIDs kept %d ids, first %q last %q", len(got), got[0], got[len(got)-1])
	}
}

func TestParseDates(t *testing.T) {
	want := time.Date(2024, 4, 11, 7, 15, 2, 0, time.UTC)
	for _, in := range []string{
		"Thu, 11 Apr 2024 09:15:02 +0200",
		"Thu, 11 Apr 2024 09:15:02 +0200 (CEST)",
		"11 Apr 2024 09:15:02 +0200",
		"Thu,  11 Apr 2024 09:15:02 +0200",
		"Thu, 11 Apr 2024 07:15:02 GMT",
		"Thu, 11 Apr 2024 07:15:02 UT",
		"Thu, 11 Apr 24 09:15:02 +0200",
		"2024-04-11T09:15:02+02:00",
		"Thu, 11 Apr 2024 09:15:02 GMT+0200",
	} {
		got, ok := parseMailDate(in)
		if !ok || !got.Equal(want) {
			t.Errorf("parseMailDate(%q) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "yesterday", "Thu, 11 Apr 1024 09:15:02 +0200"} {
		if got, ok := parseMailDate(in); ok {
			t.Errorf("parseMailDate(%q) = %v, want no date", in, got)
		}
	}
}

func TestParseFilenames(t *testing.T) {
	tests := []struct {
		header, key, want string
	}{
		{`attachment; filename="a.pdf"`, "filename", "a.pdf"},
		{`attachment; filename=a.pdf`, "filename", "a.pdf"},
		{`attachment; FILENAME="a.pdf"`, "filename", "a.pdf"},
		{`attachment; filename*=UTF-8''%E2%82%AC%20rate.pdf`, "filename", "€ rate.pdf"},
		{`attachment; filename*=iso-8859-1'de'M%E4rz.pdf`, "filename", "März.pdf"},
		{`attachment; filename*0="long"; filename*1="name.txt"`, "filename", "longname.txt"},
		{`attachment; filename*1="name.txt"; filename*0="long"`, "filename", "longname.txt"},
		{`attachment; filename*0*=UTF-8''%C3; filename*1*=%9Cber.pdf`, "filename", "Über.pdf"},
		{`attachment; filename="a;b.pdf"; size=3`, "filename", "a;b.pdf"},
		{`attachment; filename="q\"uote.pdf"`, "filename", `q"uote.pdf`},
		{`attachment; filename="=?utf-8?B?w5xiZXIucGRm?="`, "filename", "=?utf-8?B?w5xiZXIucGRm?="},
		{`attachment; size=3`, "filename", ""},
	}
	for _, tt := range tests {
		got, _ := mimeParamValue(tt.header, tt.key)
		if got != tt.want {
			t.Errorf("paramValue(%q, %q) = %q, want %q", tt.header, tt.key, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		`C:\Users\anna\Desktop\scan.pdf`:  "scan.pdf",
		"../../etc/passwd":                "passwd",
		"noname":                          "",
		" report.pdf. ":                   "report.pdf",
		"a\x00b\nc.txt":                   "abc.txt",
		strings.Repeat("x", 300) + ".pdf": strings.Repeat("x", 251) + ".pdf",
	} {
		if got := safeAttachmentName(in); got != want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tt := range []struct {
		ct   string
		data string
		want string
	}{
		{"application/pdf", "", "attachment-3.pdf"},
		{"image/png", "", "image-3.png"},
		{"application/x-unknown", "", "attachment-3"},
		{"message/rfc822", "Subject: Order / 7\n\nbody", "Order - 7.eml"},
		{"message/rfc822", "\n\nbody", "message-3.eml"},
		{"application/ms-tnef", "", "winmail.dat"},
	} {
		if got := derivedFilename(tt.ct, []byte(tt.data), 3); got != tt.want {
			t.Errorf("derivedFilename(%q) = %q, want %q", tt.ct, got, tt.want)
		}
	}
}

// Golden files: the whole parsed Mail (attachments by name, type, size
// and sha256) and its classification, for every mail under testdata.

type parseGoldenAttachment struct {
	Filename    string
	ContentType string
	Size        int
	SHA256      string
	ContentID   string `json:",omitempty"`
	Inline      bool   `json:",omitempty"`
}

type parseGoldenMail struct {
	MessageID      string
	InReplyTo      []string
	References     []string
	Subject        string
	From           Address
	To, Cc         []Address
	ReplyTo        []Address
	DeliveredTo    []string
	Date           string
	Text           string
	HTML           string
	Attachments    []parseGoldenAttachment
	Report         *parseGoldenReport `json:",omitempty"`
	Warnings       []string
	Classification string
	Reason         string  `json:",omitempty"`
	Bounce         *Bounce `json:",omitempty"`
}

type parseGoldenReport struct {
	ReportType      string
	DeliveryStatus  string
	OriginalHeaders string
}

func parseGoldenView(m *Mail) parseGoldenMail {
	g := parseGoldenMail{
		MessageID: m.MessageID, InReplyTo: m.InReplyTo, References: m.References,
		Subject: m.Subject, From: m.From, To: m.To, Cc: m.Cc, ReplyTo: m.ReplyTo, DeliveredTo: m.DeliveredTo,
		Text: m.Text, HTML: m.HTML, Warnings: m.Warnings,
	}
	if !m.Date.IsZero() {
		g.Date = m.Date.Format(time.RFC3339)
	}
	for _, a := range m.Attachments {
		g.Attachments = append(g.Attachments, parseGoldenAttachment{
			Filename: a.Filename, ContentType: a.ContentType, Size: len(a.Data), SHA256: parseTestSHA(a.Data),
			ContentID: a.ContentID, Inline: a.Inline,
		})
	}
	if m.Report != nil {
		g.Report = &parseGoldenReport{m.Report.ReportType, string(m.Report.DeliveryStatus), string(m.Report.OriginalHeaders)}
	}
	c := Classify(m)
	g.Classification, g.Reason, g.Bounce = c.Kind.String(), c.Reason, c.Bounce
	return g
}

func parseTestMailFiles(t testing.TB) []string {
	var files []string
	for _, pattern := range []string{"testdata/cases/*.eml", "testdata/parse/*.eml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d test mails found", len(files))
	}
	return files
}

func TestParseGolden(t *testing.T) {
	for _, f := range parseTestMailFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		if strings.HasPrefix(f, "testdata/cases/") {
			name = "case-" + name
		}
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(parseGoldenView(Parse(parseTestRead(t, f))), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "parse", "golden", name+".json")
			if *parseUpdate {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-parse)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed mail differs from %s (run with -update-parse and review the diff):\n%s", path, got)
			}
		})
	}
}

// TestParseCorpusGenerate writes the generated part of the corpus: the
// charset samples and the mails derived from case inputs.
func TestParseCorpusGenerate(t *testing.T) {
	if !*parseUpdate {
		t.Skip("run with -update-parse to regenerate the corpus")
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join("testdata", "parse", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range parseCharsetSamples {
		write("charset-"+s.file+".eml", parseTestBuildCharsetMail(t, s))
	}
	// C09 with its winmail.dat cut off in the middle of the attachment.
	c09 := string(parseTestRead(t, "testdata/cases/C09.eml"))
	cut := strings.Index(c09, "MS50eHQ")
	end := cut + strings.Index(c09[cut:], "\n\n")
	c09 = c09[:cut] + "MS50eHQAbwUCD4AGADwAAABJbnZv" + c09[end:]
	write("tnef-truncated.eml", []byte(c09))
	// Binary junk that is no mail at all.
	junk := make([]byte, 512)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	write("garbage.eml", junk)
}

func TestParseFlowed(t *testing.T) {
	tests := []struct {
		in    string
		delsp bool
		want  string
	}{
		{"This is a long \nparagraph that \nflows.\nNew line.", false, "This is a long paragraph that flows.\nNew line."},
		{"Spaces dropped \nwith delsp.", true, "Spaces droppedwith delsp."},
		{"> quoted and \n> flowed\nnot quoted", false, "> quoted and flowed\nnot quoted"},
		{">> deep \n> shallow", false, ">> deep \n> shallow"},
		{"Regards,\n-- \nAnna", false, "Regards,\n-- \nAnna"},
		{" >stuffed line", false, ">stuffed line"},
		{"ends soft ", false, "ends soft "},
	}
	for _, tt := range tests {
		if got := unflow(tt.in, tt.delsp); got != tt.want {
			t.Errorf("unflow(%q, %v) = %q, want %q", tt.in, tt.delsp, got, tt.want)
		}
	}
	m := Parse([]byte("From: a@example.org\nContent-Type: text/plain; charset=utf-8; format=flowed\n\nHello, this line was \nwrapped by Thunderbird.\n"))
	if m.Text != "Hello, this line was wrapped by Thunderbird." {
		t.Errorf("Text = %q", m.Text)
	}
}

func TestParseAddressHeaders(t *testing.T) {
	raw := "Delivered-To: Support@Example.COM\n" +
		"X-Original-To: support+t10042@example.com\n" +
		"Delivered-To: support@example.com\n" +
		"Sender: Helpdesk Robot <robot@example.org>\n" +
		"From: \"Vendor, Desk\" <desk@Vendor.Example.NET>\n" +
		"Reply-To: Replies <replies@vendor.example.net>, other@vendor.example.net\n" +
		"To: a@example.com\nTo: b@example.com\n" +
		"Cc: =?utf-8?Q?Jos=C3=A9?= <jose@example.es>\n\nbody"
	m := Parse([]byte(raw))
	if m.From != (Address{"Vendor, Desk", "desk@vendor.example.net"}) {
		t.Errorf("From = %+v", m.From)
	}
	if strings.Join(m.DeliveredTo, " ") != "Support@example.com support+t10042@example.com" {
		t.Errorf("DeliveredTo = %q", m.DeliveredTo)
	}
	if len(m.ReplyTo) != 2 || m.ReplyTo[0] != (Address{"Replies", "replies@vendor.example.net"}) || m.ReplyTo[1].Addr != "other@vendor.example.net" {
		t.Errorf("ReplyTo = %+v", m.ReplyTo)
	}
	if len(m.To) != 2 || m.To[1].Addr != "b@example.com" {
		t.Errorf("To = %+v", m.To)
	}
	if len(m.Cc) != 1 || m.Cc[0] != (Address{"José", "jose@example.es"}) {
		t.Errorf("Cc = %+v", m.Cc)
	}
	// Without From, Sender names the author.
	m = Parse([]byte("Sender: Helpdesk Robot <robot@example.org>\nSubject: x\n\nbody"))
	if m.From != (Address{"Helpdesk Robot", "robot@example.org"}) {
		t.Errorf("From from Sender = %+v", m.From)
	}
	// Header values stay raw.
	if got := Parse([]byte(raw)).Header.Get("Cc"); got != "=?utf-8?Q?Jos=C3=A9?= <jose@example.es>" {
		t.Errorf("raw Cc = %q", got)
	}
}

// A mail of a thousand nested multiparts is read in its first levels,
// quickly, and kept whole as original.eml: nested boundary readers must
// not turn one mail into minutes of CPU.
func TestParseDeepNesting(t *testing.T) {
	var b bytes.Buffer
	const depth = 1000
	b.WriteString("From: deep@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n", depth-1)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	done := make(chan *Mail, 1)
	go func() { done <- Parse(b.Bytes()) }()
	select {
	case m := <-done:
		if m.Subject != "deep" || !slices.ContainsFunc(m.Attachments, func(a connectors.Attachment) bool { return a.Filename == "original.eml" }) {
			t.Errorf("subject %q, attachments %d", m.Subject, len(m.Attachments))
		}
	case <-time.After(time.Minute):
		t.Fatal("parsing a deeply nested mail did not finish")
	}
}
