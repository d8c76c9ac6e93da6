package email

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// parseCharsetSample is one mail of the charset corpus under
// testdata/parse/charset-*.eml. The files are written by
// TestParseCorpusGenerate with the encoders of golang.org/x/text, so each
// holds the bytes a real mailer of that charset sends; the test reads
// them back and expects the Unicode text it started from.
type parseCharsetSample struct {
	file  string // testdata/parse/charset-<file>.eml
	label string // the charset label written in the mail
	enc   string // the charset the bytes are really in ("" = label)
	cte   string // body transfer encoding
	// subjectLabel is the charset label of the Subject's encoded word
	// ("" = label; "raw" = the bytes unencoded in the header).
	subjectLabel  string
	subject, name string
	body          string
}

var parseCharsetSamples = []parseCharsetSample{
	{file: "iso-8859-1", label: "ISO-8859-1", cte: "quoted-printable", subject: "Réclamation commande 4411", name: "Hélène Dubois",
		body: "Bonjour,\n\nje n'ai pas reçu ma commande n° 4411.\nMerci d'avance,\nHélène"},
	{file: "latin1-alias", label: "latin1", enc: "iso-8859-1", cte: "8bit", subject: "Garantía del producto", name: "José Núñez",
		body: "Hola, ¿cuánto dura la garantía? Gracias, José"},
	{file: "iso-8859-2", label: "iso_8859-2", enc: "iso-8859-2", cte: "quoted-printable", subject: "Poškozená zásilka", name: "Jiří Novák",
		body: "Dobrý den,\nobjednávka č. 5120 dorazila poškozená.\nDěkuji, Jiří"},
	{file: "iso-8859-7", label: "ISO-8859-7", cte: "base64", subject: "Παραγγελία 7781", name: "Γιώργος Παπαδόπουλος",
		body: "Καλημέρα,\nη παραγγελία 7781 δεν έφτασε ακόμα."},
	{file: "iso-8859-15", label: "ISO-8859-15", cte: "quoted-printable", subject: "Facture à 25 €", name: "Zoé Lefèvre",
		body: "Le total est de 25 € TTC, œuvre comprise."},
	{file: "windows-1250", label: "cp1250", enc: "windows-1250", cte: "quoted-printable", subject: "Zamówienie 3310", name: "Łukasz Wójcik",
		body: "Dzień dobry,\nzamówienie 3310 nie dotarło.\nPozdrawiam, Łukasz"},
	{file: "windows-1251", label: "windows-1251", cte: "base64", subject: "Заказ 9021", name: "Ольга Смирнова",
		body: "Здравствуйте!\nЗаказ 9021 не пришёл.\nСпасибо, Ольга"},
	{file: "windows-1252", label: "Windows-1252", cte: "quoted-printable", subject: "Invoice “final” – 30 €", name: "Seán O’Brien",
		body: "Thank you – the “new” invoice costs 30 € … see you."},
	{file: "koi8-r", label: "KOI8-R", cte: "8bit", subject: "Проблема со входом", name: "Игорь Петров",
		body: "Добрый день!\nНе могу войти в личный кабинет.\nИгорь"},
	{file: "gb2312", label: "gb2312", enc: "gb18030", cte: "base64", subject: "镕铸件报价", name: "王芳",
		body: "您好，请报价镕铸件 200 件。"},
	{file: "gbk", label: "GBK", enc: "gb18030", cte: "base64", subject: "订单查询", name: "李娜",
		body: "您好，我的订单 8812 还没有到。"},
	{file: "gb18030", label: "GB18030", cte: "base64", subject: "退货申请 😀", name: "张伟",
		body: "你好，我想退货 😀 订单 7723，𠀀字也要。"},
	{file: "big5", label: "Big5", cte: "base64", subject: "訂單問題", name: "陳大文",
		body: "您好，我的訂單 5566 尚未收到。謝謝"},
	{file: "shift_jis", label: "Shift_JIS", cte: "base64", subject: "注文について", name: "鈴木 一郎",
		body: "お問い合わせありがとうございます。\n注文番号 B-2048 について確認させてください。"},
	{file: "euc-jp", label: "EUC-JP", cte: "8bit", subject: "パスワード再設定", name: "佐藤 花子",
		body: "パスワードを忘れました。再設定をお願いします。"},
	{file: "iso-2022-jp", label: "ISO-2022-JP", cte: "7bit", subject: "請求書の再発行", name: "高橋 健",
		body: "請求書の再発行をお願いします。\n高橋"},
	{file: "euc-kr", label: "ks_c_5601-1987", enc: "euc-kr", cte: "base64", subject: "배송 문의", name: "김민수",
		body: "안녕하세요, 주문 번호 6543 배송 문의드립니다."},
	{file: "utf-7", label: "UTF-7", cte: "7bit", subjectLabel: "utf-8", subject: "Grüße aus München", name: "Jörg Schäfer",
		body: "Grüße aus München – Bestellung 1200"},
	{file: "ascii-utf8", label: "us-ascii", enc: "utf-8", cte: "8bit", subject: "Café crème", name: "Renée Faure",
		body: "Café crème, naïve résumé."},
	{file: "ascii-cp1252", label: "us-ascii", enc: "windows-1252", cte: "8bit", subject: "He said “hello”", name: "Chloé Martin",
		body: "He said “hello” at the café – 12 €."},
	{file: "unknown-label", label: "x-unknown-charset", enc: "utf-8", cte: "quoted-printable", subject: "Überweisung", name: "Jürgen Groß",
		body: "Die Überweisung über 120 € ist fehlgeschlagen."},
	{file: "utf8-invalid", label: "utf-8", enc: "windows-1252", cte: "8bit", subject: "Réponse", name: "Anaïs Roux",
		body: "Merci beaucoup, à bientôt."},
}

// parseTestEncode encodes s in a charset with x/text's encoders.
func parseTestEncode(t *testing.T, charset, s string) []byte {
	t.Helper()
	cs := lookupCharset(charset)
	switch cs.kind {
	case charsetUTF8, charsetASCII:
		return []byte(s)
	case charsetOther:
		b, err := cs.enc.NewEncoder().Bytes([]byte(s))
		if err != nil {
			t.Fatalf("encode %q in %s: %v", s, charset, err)
		}
		return b
	}
	t.Fatalf("no encoder for %q", charset)
	return nil
}

// parseTestBuildCharsetMail writes the mail of one charset sample.
func parseTestBuildCharsetMail(t *testing.T, s parseCharsetSample) []byte {
	enc := s.enc
	if enc == "" {
		enc = s.label
	}
	word := func(label, text string) string {
		if label == "raw" {
			return string(parseTestEncode(t, enc, text))
		}
		b := parseTestEncode(t, encFor(label, enc), text)
		return "=?" + label + "?B?" + base64.StdEncoding.EncodeToString(b) + "?="
	}
	subjLabel := s.subjectLabel
	if subjLabel == "" {
		subjLabel = s.label
	}
	var body []byte
	raw := parseTestEncode(t, enc, s.body)
	switch s.cte {
	case "base64":
		body = []byte(parseTestWrap(base64.StdEncoding.EncodeToString(raw), 76))
	case "quoted-printable":
		var buf bytes.Buffer
		w := quotedprintable.NewWriter(&buf)
		w.Write(raw)
		w.Close()
		body = buf.Bytes()
	default:
		if s.label == "UTF-7" {
			raw = parseTestEncode(t, "utf-7", s.body)
		}
		body = raw
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <%s@example.org>\n", word(subjLabel, s.name), strings.ReplaceAll(s.file, "_", "-"))
	fmt.Fprintf(&b, "To: support@example.com\n")
	fmt.Fprintf(&b, "Subject: %s\n", word(subjLabel, s.subject))
	fmt.Fprintf(&b, "Date: Tue, 16 Apr 2024 10:00:00 +0200\n")
	fmt.Fprintf(&b, "Message-ID: <charset-%s@example.org>\n", s.file)
	fmt.Fprintf(&b, "MIME-Version: 1.0\n")
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=\"%s\"\n", s.label)
	fmt.Fprintf(&b, "Content-Transfer-Encoding: %s\n\n", s.cte)
	b.Write(body)
	b.WriteString("\n")
	return b.Bytes()
}

// encFor is the charset the bytes of a header word are in: the sample's
// real charset, unless the word is labelled explicitly as UTF-8.
func encFor(label, enc string) string {
	if strings.EqualFold(label, "utf-8") {
		return "utf-8"
	}
	return enc
}

func parseTestWrap(s string, n int) string {
	var sb strings.Builder
	for len(s) > n {
		sb.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	sb.WriteString(s)
	return sb.String()
}

// TestParseCharsetCorpus reads every charset sample and expects the
// exact Unicode subject, sender name and body it was made from, with no
// U+FFFD.
func TestParseCharsetCorpus(t *testing.T) {
	for _, s := range parseCharsetSamples {
		t.Run(s.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "parse", "charset-"+s.file+".eml"))
			if err != nil {
				t.Fatalf("%v (run go test -run TestParseCorpusGenerate -update-parse)", err)
			}
			m := Parse(raw)
			if m.Subject != s.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, s.subject)
			}
			if m.From.Name != s.name {
				t.Errorf("From.Name = %q, want %q", m.From.Name, s.name)
			}
			if m.Text != s.body {
				t.Errorf("Text = %q, want %q", m.Text, s.body)
			}
			if strings.ContainsRune(m.Text+m.Subject+m.From.Name, utf8.RuneError) {
				t.Errorf("U+FFFD left in the result")
			}
		})
	}
}

func TestParseCharsetLabels(t *testing.T) {
	tests := []struct {
		label string
		kind  charsetKind
		name  string
	}{
		{"", charsetASCII, "us-ascii"},
		{"US-ASCII", charsetASCII, "us-ascii"},
		{`"us-ascii"`, charsetASCII, "us-ascii"},
		{"utf-8", charsetUTF8, "utf-8"},
		{"UTF8", charsetUTF8, "utf-8"},
		{"charset=utf-8", charsetUTF8, "utf-8"},
		{"utf-8;", charsetUTF8, "utf-8"},
		{"GB2312", charsetOther, "gb18030"}, // C01: the superset
		{"gbk", charsetOther, "gb18030"},
		{"CP936", charsetOther, "gb18030"},
		{"x-gbk", charsetOther, "gb18030"},
		{"GB18030", charsetOther, "gb18030"},
		{"big5", charsetOther, "big5"},
		{"Big5-HKSCS", charsetOther, "big5"},
		{"shift_jis", charsetOther, "shift_jis"},
		{"x-sjis", charsetOther, "shift_jis"},
		{"CP932", charsetOther, "shift_jis"},
		{"euc-jp", charsetOther, "euc-jp"},
		{"ISO-2022-JP", charsetOther, "iso-2022-jp"},
		{"iso-2022-jp-2", charsetOther, "iso-2022-jp"},
		{"euc-kr", charsetOther, "euc-kr"},
		{"ks_c_5601-1987", charsetOther, "euc-kr"},
		{"KOI8-R", charsetOther, "koi8-r"},
		{"koi8-u", charsetOther, "koi8-u"},
		{"iso-8859-1", charsetOther, "windows-1252"},
		{"ISO8859-1", charsetOther, "windows-1252"},
		{"iso_8859-1:1987", charsetOther, "windows-1252"},
		{"8859-2", charsetOther, "iso-8859-2"},
		{"ISO-8859-15", charsetOther, "iso-8859-15"},
		{"cp1251", charsetOther, "windows-1251"},
		{"Windows-1250", charsetOther, "windows-1250"},
		{"win-1253", charsetOther, "windows-1253"},
		{"utf-7", charsetOther, "utf-7"},
		{"unicode-1-1-utf-7", charsetOther, "utf-7"},
		{"IBM850", charsetOther, "ibm850"},
		{"x-mac-roman", charsetOther, "macintosh"},
		{"x-no-such-charset", charsetUnknown, "x-no-such-charset"},
		{"iso-2022-kr", charsetUnknown, "iso-2022-kr"}, // WHATWG: replacement; guessed instead
	}
	for _, tt := range tests {
		cs := lookupCharset(tt.label)
		if cs.kind != tt.kind || cs.name != tt.name {
			t.Errorf("lookupCharset(%q) = %v %q, want %v %q", tt.label, cs.kind, cs.name, tt.kind, tt.name)
		}
	}
}

func TestParseDecodeCharset(t *testing.T) {
	cp1252 := func(s string) []byte {
		b, _ := charmap.Windows1252.NewEncoder().Bytes([]byte(s))
		return b
	}
	tests := []struct {
		name, label string
		in          []byte
		want        string
		warn        bool
	}{
		{"ascii", "us-ascii", []byte("plain"), "plain", false},
		{"ascii label holding utf-8", "us-ascii", []byte("café"), "café", true},
		{"ascii label holding cp1252", "us-ascii", cp1252("“café”"), "“café”", true},
		{"no label, 8-bit", "", cp1252("naïve"), "naïve", false},
		{"utf-8 with a stray cp1252 byte", "utf-8", append([]byte("déjà "), 0x92, 's'), "déjà ’s", true},
		{"latin-1 label reads cp1252 quotes", "iso-8859-1", cp1252("l’été 5 €"), "l’été 5 €", false},
		{"gb18030 label holding utf-8", "gb2312", []byte("镕铸件"), "镕铸件", true},
		{"unknown label", "x-foo", []byte("Grüße"), "Grüße", true},
		{"undefined cp1252 bytes", "windows-1252", []byte{'a', 0x81, 'b'}, "a\u0081b", false},
		{"unlabelled iso-2022-jp", "", []byte("\x1b$B$3$s$K$A$O\x1b(B"), "こんにちは", false},
	}
	for _, tt := range tests {
		got, w := decodeCharset(tt.label, tt.in)
		if got != tt.want || (w != "") != tt.warn {
			t.Errorf("%s: decodeCharset(%q, %q) = %q, warning %q; want %q, warning %v", tt.name, tt.label, tt.in, got, w, tt.want, tt.warn)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: invalid UTF-8 %q", tt.name, got)
		}
	}
}

func TestParseHeaderWords(t *testing.T) {
	tests := []struct {
		name, in, fallback, want string
	}{
		{"C01 GB2312 word", "=?GB2312?B?udjT2ulG1v28/raptaW1xNfJ0a8=?=", "", "关于镕铸件订单的咨询"},
		{"C02 windows-1252 Q", "=?windows-1252?Q?Demande_de_facture_d=E9taill=E9e?=", "", "Demande de facture détaillée"},
		{"C03 ISO-2022-JP", "=?iso-2022-jp?B?GyRCRURDZhsoQiAbJEJNWztSGyhC?=", "", "田中 陽子"},
		// "é" is C3 A9: the first word ends with C3, the second starts with A9.
		{"utf-8 char cut across words", "=?UTF-8?B?UsM=?= =?UTF-8?B?qWNsYW1hdGlvbg==?=", "", "Réclamation"},
		{"utf-8 char cut, Q words", "=?utf-8?Q?R=C3?= =?utf-8?Q?=A9sum=C3=A9?=", "", "Résumé"},
		// 镕 is E9 46 in GBK: cut between the two bytes.
		{"gb18030 char cut across words", "=?gb2312?Q?=E9?= =?gb2312?Q?F=D6=FD?=", "", "镕铸"},
		{"words joined without space", "=?utf-8?Q?M=C3=BC?==?utf-8?Q?ller?=", "", "Müller"},
		{"space between words dropped", "=?utf-8?Q?a?= \t =?utf-8?Q?b?=", "", "ab"},
		{"text between words kept", "=?utf-8?Q?a?= and =?utf-8?Q?b?=", "", "a and b"},
		{"different charsets in a row", "=?iso-8859-1?Q?caf=E9?= =?utf-8?Q?_cr=C3=A8me?=", "", "café crème"},
		{"lower-case encoding, language", "=?utf-8*fr?q?caf=C3=A9?=", "", "café"},
		{"mislabelled word", "=?us-ascii?Q?caf=C3=A9?=", "", "café"},
		{"latin-1 label on utf-8 bytes", "=?iso-8859-1?Q?Gr=C3=BC=C3=9Fe?=", "", "Grüße"},
		{"unknown charset", "=?x-unknown?Q?Gr=C3=BC=C3=9Fe?=", "", "Grüße"},
		{"broken base64 kept as written", "=?utf-8?B?!!!?=", "", "=?utf-8?B?!!!?="},
		{"base64 without padding", "=?utf-8?B?w6k?=", "", "é"},
		{"space inside a word", "=?utf-8?Q?hello world?=", "", "hello world"},
		{"raw utf-8", "Überweisung", "", "Überweisung"},
		{"raw latin-1 with fallback", "J\xfcrgen", "iso-8859-1", "Jürgen"},
		{"raw koi8-r with fallback", "\xf0\xd2\xc9\xd7\xc5\xd4", "koi8-r", "Привет"},
		{"raw bytes without fallback", "caf\xe9", "", "café"},
		{"line breaks", "a\r\n b", "", "a   b"},
		{"not a word", "100% =? sure ?=", "", "100% =? sure ?="},
	}
	for _, tt := range tests {
		got := decodeHeaderText(tt.in, tt.fallback)
		if got != tt.want {
			t.Errorf("%s: decodeHeaderText(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestParseBase64Lenient(t *testing.T) {
	tests := []struct {
		in   string
		want string
		bad  bool
	}{
		{"SGVsbG8=", "Hello", false},
		{"SGVs\nbG8=\n", "Hello", false},
		{"SGVsbG8", "Hello", false},                 // no padding
		{"SGVsbG8=V29ybGQ=", "HelloWorld", false},   // concatenated blocks
		{"SGVs!!bG8=", "Hello", true},               // stray characters skipped
		{"SGVsbG8gd29ybGQ", "Hello world", false},   // cut at a quantum edge
		{"SGVsbG8gd29ybGQhA", "Hello world!", true}, // a lone last character
		{"", "", false},
	}
	for _, tt := range tests {
		got, bad := decodeBase64Lenient([]byte(tt.in))
		if string(got) != tt.want || bad != tt.bad {
			t.Errorf("decodeBase64Lenient(%q) = %q, %v; want %q, %v", tt.in, got, bad, tt.want, tt.bad)
		}
	}
}

func TestParseQPLenient(t *testing.T) {
	tests := []struct {
		in   string
		want string
		bad  bool
	}{
		{"caf=E9", "caf\xe9", false},
		{"caf=e9", "caf\xe9", false}, // lower-case hex
		{"soft=\r\nbreak", "softbreak", false},
		{"soft=\nbreak", "softbreak", false},
		{"trailing   \nspace", "trailing\nspace", false},
		{"raw \x92 byte", "raw \x92 byte", false}, // C02
		{"100% = sure", "100% = sure", true},
		{"=ZZ", "=ZZ", true},
		{"cut =A\nnext", "cut \nnext", true},
		{"a=3D=3Db", "a==b", false},
	}
	for _, tt := range tests {
		got, bad := decodeQPLenient([]byte(tt.in))
		if string(got) != tt.want || bad != tt.bad {
			t.Errorf("decodeQPLenient(%q) = %q, %v; want %q, %v", tt.in, got, bad, tt.want, tt.bad)
		}
	}
}
