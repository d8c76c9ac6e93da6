package email

import (
	"bytes"
	"flag"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/tools/txtar"
)

// The corpus under testdata/reply/ holds one mail body per txtar file:
//
//	-- text --            the text/plain body (optional)
//	-- html --            the text/html body (optional)
//	-- want.text --       the exact new text (hand-written)
//	-- want.html --       the visible text of the new HTML part, whitespace
//	                      collapsed (hand-written)
//	-- want.quoted --     the first line of Quoted (hand-written, optional)
//	-- golden.quoted --   Quoted, HTML and QuotedHTML as produced; rewritten
//	-- golden.html --     by go test -run TestSplitReplyCorpus -update
//	-- golden.quotedhtml --
//
// The comment at the top says what the sample stands for. Text samples are
// run as written (LF) and again with CRLF line ends, as on the wire.

func init() {
	// Other files of the package may define -update too; define it only
	// once, whoever does.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata")
	}
}

func replyUpdateGolden() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

func replyCorpusFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "reply", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("the reply corpus has %d samples, want at least 25", len(files))
	}
	return files
}

// replySection returns a txtar section without the final newline txtar
// adds, and whether it exists.
func replySection(a *txtar.Archive, name string) (string, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return strings.TrimSuffix(string(f.Data), "\n"), true
		}
	}
	return "", false
}

func replySetSection(a *txtar.Archive, name, value string) {
	data := []byte(value + "\n")
	if value == "" {
		data = nil
	}
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, txtar.File{Name: name, Data: data})
}

func TestSplitReplyCorpus(t *testing.T) {
	for _, path := range replyCorpusFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			a, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text, hasText := replySection(a, "text")
			if hasText {
				text += "\n" // a body ends with a line break
			}
			htmlIn, _ := replySection(a, "html")
			wantText, checkText := replySection(a, "want.text")
			wantHTML, checkHTML := replySection(a, "want.html")
			wantQuoted, checkQuoted := replySection(a, "want.quoted")
			if hasText != checkText {
				t.Fatal("a sample with text needs want.text, and only then")
			}
			if (htmlIn != "") != checkHTML {
				t.Fatal("a sample with html needs want.html, and only then")
			}

			r := SplitReply(text, htmlIn)
			replyCheckInvariants(t, text, htmlIn, r)
			if checkText && r.Text != wantText {
				t.Errorf("Text:\n%s\nwant:\n%s", r.Text, wantText)
			}
			if checkQuoted && replyFirstLine(r.Quoted) != wantQuoted {
				t.Errorf("Quoted starts with %q, want %q", replyFirstLine(r.Quoted), wantQuoted)
			}
			if checkHTML {
				if got := replyVisibleText(t, r.HTML); got != wantHTML {
					t.Errorf("visible text of HTML:\n%s\nwant:\n%s", got, wantHTML)
				}
			}

			if checkText {
				// The same body with CRLF line ends, as on the wire, splits
				// the same and keeps its CRLFs.
				crlf := SplitReply(strings.ReplaceAll(text, "\n", "\r\n"), "")
				if want := strings.ReplaceAll(wantText, "\n", "\r\n"); crlf.Text != want {
					t.Errorf("CRLF Text: %q\nwant: %q", crlf.Text, want)
				}
				if want := strings.ReplaceAll(r.Quoted, "\n", "\r\n"); crlf.Quoted != want {
					t.Errorf("CRLF Quoted: %q\nwant: %q", crlf.Quoted, want)
				}
			}

			golden := map[string]string{
				"golden.quoted":     r.Quoted,
				"golden.html":       r.HTML,
				"golden.quotedhtml": r.QuotedHTML,
			}
			if replyUpdateGolden() {
				for _, name := range []string{"golden.quoted", "golden.html", "golden.quotedhtml"} {
					replySetSection(a, name, golden[name])
				}
				if err := os.WriteFile(path, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for name, got := range golden {
				want, _ := replySection(a, name)
				if got != want {
					t.Errorf("%s differs (go test -run TestSplitReplyCorpus -update rewrites it):\n%s\nwant:\n%s", name, got, want)
				}
			}
		})
	}
}

// replyCheckInvariants checks what holds for every input: valid UTF-8,
// nothing of the input lost, well-formed HTML, empty outputs for an empty
// input.
func replyCheckInvariants(t testing.TB, text, htmlIn string, r Reply) {
	t.Helper()
	for name, s := range map[string]string{"Text": r.Text, "Quoted": r.Quoted, "HTML": r.HTML, "QuotedHTML": r.QuotedHTML} {
		if !utf8.ValidString(s) {
			t.Errorf("%s is not valid UTF-8: %q", name, s)
		}
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	if got, want := replyWords(r.Text+"\n"+r.Quoted), replyWords(text); !maps.Equal(got, want) {
		t.Errorf("words of Text+Quoted differ from the input's:\n got %v\nwant %v", got, want)
	}
	if strings.TrimSpace(text) != "" && strings.TrimSpace(r.Text) == "" {
		t.Errorf("empty new text for a text with content")
	}
	if strings.TrimSpace(text) == "" && (r.Text != "" || r.Quoted != "") {
		t.Errorf("text outputs %q, %q for a blank text", r.Text, r.Quoted)
	}
	if strings.TrimSpace(htmlIn) == "" {
		if r.HTML != "" || r.QuotedHTML != "" {
			t.Errorf("HTML outputs %q, %q for no HTML", r.HTML, r.QuotedHTML)
		}
		return
	}
	in := replyHTMLRunes(t, strings.ToValidUTF8(htmlIn, "\uFFFD"))
	out := replyHTMLRunes(t, r.HTML)
	for r, n := range replyHTMLRunes(t, r.QuotedHTML) {
		out[r] += n
	}
	for r, n := range in {
		if out[r] < n {
			t.Errorf("the HTML outputs hold %d of %q, the input %d", out[r], r, n)
		}
	}
	if replyHasVisible(t, htmlIn) && !replyHasVisible(t, r.HTML) {
		t.Errorf("empty new HTML for an HTML body with content")
	}
}

// replyWords counts the words of s.
func replyWords(s string) map[string]int {
	m := map[string]int{}
	for _, w := range strings.Fields(s) {
		m[w]++
	}
	return m
}

func replyParseTest(t testing.TB, s string) []*html.Node {
	t.Helper()
	nodes, err := html.ParseFragment(strings.NewReader(s), &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// replyHTMLRunes counts the non-space characters of the text of an HTML
// fragment. Counting characters, not words, because taking a node out
// from between two text nodes may join them into one word.
func replyHTMLRunes(t testing.TB, s string) map[rune]int {
	m := map[rune]int{}
	for _, n := range replyParseTest(t, s) {
		replyEachText(n, false, func(text string) {
			for _, r := range text {
				if !replyHTMLBlank(string(r)) {
					m[r]++
				}
			}
		})
	}
	return m
}

// replyEachText calls f with each text node under n; with visible, only
// those a reader sees, and a space for each line break and block edge.
func replyEachText(n *html.Node, visible bool, f func(string)) {
	if n.Type == html.TextNode {
		f(n.Data)
		return
	}
	if visible && n.Type == html.ElementNode {
		switch {
		case replyHTMLOpaque(n):
			return
		case n.DataAtom == atom.Br || replyHTMLBlock(n):
			f(" ")
			defer f(" ")
		}
	}
	for c := range n.ChildNodes() {
		replyEachText(c, visible, f)
	}
}

// replyVisibleText is the text a reader sees in an HTML fragment, with
// whitespace collapsed.
func replyVisibleText(t testing.TB, s string) string {
	var b strings.Builder
	for _, n := range replyParseTest(t, s) {
		replyEachText(n, true, func(text string) { b.WriteString(text) })
		b.WriteString(" ")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func replyHasVisible(t testing.TB, s string) bool {
	for _, n := range replyParseTest(t, s) {
		if replyVisibleText(t, s) != "" {
			return true
		}
		for d := range n.Descendants() {
			if d.Type == html.ElementNode && replyHTMLMedia(d) {
				return true
			}
		}
		if n.Type == html.ElementNode && replyHTMLMedia(n) {
			return true
		}
	}
	return false
}

func replyFirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r")
}

// replyReRender parses and renders an HTML fragment again: a well-formed
// fragment comes back unchanged.
func replyReRender(t testing.TB, s string) string {
	var b strings.Builder
	for _, n := range replyParseTest(t, s) {
		if err := html.Render(&b, n); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestSplitReplyWellFormedHTML(t *testing.T) {
	for _, path := range replyCorpusFiles(t) {
		a, err := txtar.ParseFile(path)
		if err != nil {
			t.Fatal(err)
		}
		htmlIn, ok := replySection(a, "html")
		if !ok {
			continue
		}
		r := SplitReply("", htmlIn)
		for name, s := range map[string]string{"HTML": r.HTML, "QuotedHTML": r.QuotedHTML} {
			if again := replyReRender(t, s); again != s {
				t.Errorf("%s: %s is not well-formed: it renders back as\n%s\nnot\n%s", filepath.Base(path), name, again, s)
			}
		}
	}
}

// replyCaseParts returns the decoded text/plain and text/html parts of a
// case mail. It uses the standard library only: parse.go is the real MIME
// parser, and this test must not depend on it.
func replyCaseParts(t *testing.T, raw []byte) (text, htmlBody string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	decode := func(h map[string][]string, body io.Reader) (string, string) {
		ct, params, err := mime.ParseMediaType(mail.Header(h).Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "us-ascii" && cs != "utf-8" {
			t.Fatalf("charset %q: this helper reads ASCII and UTF-8 only", cs)
		}
		if strings.EqualFold(mail.Header(h).Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		return ct, string(b)
	}
	ct, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct, "multipart/") {
		ct, body := decode(msg.Header, msg.Body)
		if ct == "text/html" {
			return "", body
		}
		return body, ""
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		// NextRawPart: the part is decoded here, with quotedprintable.
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return text, htmlBody
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ct, body := decode(p.Header, p); ct {
		case "text/plain":
			text = body
		case "text/html":
			htmlBody = body
		}
	}
}

func replyReadCase(t *testing.T, name string, crlf bool) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "cases", name))
	if err != nil {
		t.Fatal(err)
	}
	if crlf {
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	return raw
}

// C05: the customer answered an agent who replied from Outlook. The new
// text is what Alice wrote above Outlook's "____" header block; the quoted
// history starts at that line in the text and at Outlook's reply header
// (#appendonsend, the <hr>, #divRplyFwdMsg) in the HTML.
func TestSplitReplyC05(t *testing.T) {
	// The README writes the text as "Hi Ben, / thanks - … / Alice"; the
	// .eml has a blank line between the three paragraphs, kept as is.
	const wantText = "Hi Ben,\n\nthanks - the photos are below. The box was also wet on one side.\n\nAlice"
	for _, crlf := range []bool{false, true} {
		name := "LF"
		if crlf {
			name = "CRLF"
		}
		t.Run(name, func(t *testing.T) {
			text, htmlBody := replyCaseParts(t, replyReadCase(t, "C05.eml", crlf))
			if text == "" || htmlBody == "" {
				t.Fatal("C05 has a text and an HTML part")
			}
			r := SplitReply(text, htmlBody)
			replyCheckInvariants(t, text, htmlBody, r)

			want := wantText
			if crlf {
				want = strings.ReplaceAll(want, "\n", "\r\n")
			}
			if r.Text != want {
				t.Errorf("Text = %q, want %q", r.Text, want)
			}
			if got := replyFirstLine(r.Quoted); got != "________________________________" {
				t.Errorf("Quoted starts with %q, want the ____ line", got)
			}
			for _, s := range []string{"From: Example Support <support@example.com>", "Hello Alice,", "cracked lid"} {
				if !strings.Contains(r.Quoted, s) {
					t.Errorf("Quoted lacks %q", s)
				}
			}

			if got, want := replyVisibleText(t, r.HTML), "Hi Ben, thanks - the photos are below. The box was also wet on one side. Alice"; got != want {
				t.Errorf("visible text of HTML = %q, want %q", got, want)
			}
			for _, s := range []string{"divRplyFwdMsg", "appendonsend", "<hr", "Hello Alice"} {
				if strings.Contains(r.HTML, s) {
					t.Errorf("the new HTML holds %q:\n%s", s, r.HTML)
				}
			}
			// The body's dir="ltr" is kept on a wrapping div, and the quoted
			// part opens with Outlook's reply header.
			const quotedStart = `<div dir="ltr"><div id="appendonsend"></div>` + "\n" + `<hr style="display:inline-block;width:98%" tabindex="-1"/>` + "\n" + `<div id="divRplyFwdMsg" dir="ltr">`
			if !strings.HasPrefix(r.QuotedHTML, quotedStart) {
				t.Errorf("QuotedHTML does not start at Outlook's reply header:\n%s", r.QuotedHTML)
			}
			if got := replyVisibleText(t, r.QuotedHTML); !strings.HasPrefix(got, "From: Example Support <support@example.com> Sent: Monday, April 8, 2024 3:40 PM") ||
				!strings.HasSuffix(got, "Can you send a replacement? Alice") {
				t.Errorf("visible text of QuotedHTML = %q", got)
			}
		})
	}
}

// The seed mail of C05 quotes nothing: all of it is new text.
func TestSplitReplyC05Seed(t *testing.T) {
	text, htmlBody := replyCaseParts(t, replyReadCase(t, "C05-seed.eml", false))
	r := SplitReply(text, htmlBody)
	replyCheckInvariants(t, text, htmlBody, r)
	want := "Hello,\nmy order 5521 arrived today with a cracked lid. Can you send a replacement?\nAlice"
	if r != (Reply{Text: want}) {
		t.Errorf("SplitReply = %+v, want only Text %q", r, want)
	}
}

// Edge inputs of each body on its own: empty, blank, one side only.
func TestSplitReplyEdges(t *testing.T) {
	tests := []struct {
		name       string
		text, html string
		want       Reply
	}{
		{name: "empty", want: Reply{}},
		{name: "blank", text: " \n\r\n\t\n", html: " \n ", want: Reply{}},
		{name: "text only", text: "\n\nHello\n\n", want: Reply{Text: "Hello"}},
		{name: "html only", html: "<p>Hello</p>", want: Reply{HTML: "<p>Hello</p>"}},
		{name: "inner blank lines kept", text: "a\n\n\n  b  \nc\n\n", want: Reply{Text: "a\n\n\n  b  \nc"}},
		{
			name: "only a quote is kept whole",
			text: "On Mon, Apr 8, 2024 at 3:40 PM Ben <ben@example.com> wrote:\n> Hello\n",
			want: Reply{Text: "On Mon, Apr 8, 2024 at 3:40 PM Ben <ben@example.com> wrote:\n> Hello"},
		},
		{
			name: "only a signature is kept whole",
			text: "-- \nAlice\n",
			want: Reply{Text: "-- \nAlice"},
		},
		{
			name: "only a footer is kept whole",
			html: `<div>Sent from my iPhone</div>`,
			want: Reply{HTML: `<div>Sent from my iPhone</div>`},
		},
		{
			name: "invalid UTF-8 is replaced, not dropped",
			text: "caf\xe9\n\n> quoted \xff\n",
			want: Reply{Text: "caf\uFFFD", Quoted: "> quoted \uFFFD"},
		},
		{
			name: "a quote line break inside the new text is not a header",
			text: "I asked:\nOn Monday we wrote to you:\nplease call me.\n",
			want: Reply{Text: "I asked:\nOn Monday we wrote to you:\nplease call me."},
		},
		{
			name: "a bare -- over a long block is a divider, not a signature",
			text: "Hello\n--\n" + strings.Repeat("line\n", 11),
			want: Reply{Text: "Hello\n--\n" + strings.TrimSuffix(strings.Repeat("line\n", 11), "\n")},
		},
		{
			name: "a bare -- over a short block is a signature",
			text: "Hello\n\n--\nAlice\n",
			want: Reply{Text: "Hello", Quoted: "--\nAlice"},
		},
		{
			name: "a forward header in the middle of a line is text",
			text: "Hello, the -----Original Message----- line is gone\n",
			want: Reply{Text: "Hello, the -----Original Message----- line is gone"},
		},
		{
			name: "html: an attribution without a blockquote and without a time stays",
			html: `<p>Hello</p><p>On 12 March I wrote:</p><p>please call me.</p>`,
			want: Reply{HTML: `<p>Hello</p><p>On 12 March I wrote:</p><p>please call me.</p>`},
		},
		{
			name: "html: a plain blockquote under an attribution is a quote",
			html: `<p>Yes.</p><p>On 8 April 2024 Ben wrote:</p><blockquote><p>Is it 5521?</p></blockquote>`,
			want: Reply{HTML: `<p>Yes.</p>`, QuotedHTML: `<p>On 8 April 2024 Ben wrote:</p><blockquote><p>Is it 5521?</p></blockquote>`},
		},
		{
			name: "html: a plain blockquote alone is the customer's own",
			html: `<p>The error says:</p><blockquote>Access denied (code 41)</blockquote><p>What now?</p>`,
			want: Reply{HTML: `<p>The error says:</p><blockquote>Access denied (code 41)</blockquote><p>What now?</p>`},
		},
		{
			name: "html: a bottom-posted answer after the quote is new",
			html: `<div class="moz-cite-prefix">On 08/04/2024 15:40, Ben wrote:<br></div><blockquote type="cite">Which size?</blockquote><p>Size 42.</p>`,
			want: Reply{
				HTML:       `<p>Size 42.</p>`,
				QuotedHTML: `<div class="moz-cite-prefix">On 08/04/2024 15:40, Ben wrote:<br/></div><blockquote type="cite">Which size?</blockquote>`,
			},
		},
		{
			name: "html: a split inside an element reopens it on both sides",
			html: `<div style="color:red"><p>New</p><div class="gmail_quote"><blockquote class="gmail_quote">Old</blockquote></div></div>`,
			want: Reply{
				HTML:       `<div style="color:red"><p>New</p></div>`,
				QuotedHTML: `<div style="color:red"><div class="gmail_quote"><blockquote class="gmail_quote">Old</blockquote></div></div>`,
			},
		},
		{
			name: "html: the body's writing direction is kept",
			html: `<html><body dir="rtl" onload="x()"><p>שלום</p><div class="gmail_quote"><blockquote class="gmail_quote">ישן</blockquote></div></body></html>`,
			want: Reply{
				HTML:       `<div dir="rtl"><p>שלום</p></div>`,
				QuotedHTML: `<div dir="rtl"><div class="gmail_quote"><blockquote class="gmail_quote">ישן</blockquote></div></div>`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := SplitReply(tt.text, tt.html)
			replyCheckInvariants(t, tt.text, tt.html, r)
			if r != tt.want {
				t.Errorf("SplitReply =\n%#v\nwant\n%#v", r, tt.want)
			}
		})
	}
}

// One-line footers of mail apps go to Quoted; lines that only look like
// one stay new.
func TestSplitReplyFooters(t *testing.T) {
	tests := []struct {
		line   string
		footer bool
	}{
		{"Sent from my iPhone", true},
		{"Sent from my iPad", true},
		{"Sent from my iPhone 15 Pro", true},
		{"Sent from my Samsung Galaxy S23 Ultra smartphone.", true},
		{"Sent from my BlackBerry 10 smartphone.", true},
		{"Sent from Mail for Windows", true},
		{"Sent from Mail for Windows 10", true},
		{"Sent from Yahoo Mail on Android", true},
		{"Get Outlook for iOS", true},
		{"Get Outlook for Android<https://aka.ms/ghei36>", true},
		{"Verstuurd vanaf mijn iPhone", true},
		{"Verzonden vanaf mijn Samsung Galaxy smartphone.", true},
		{"Outlook voor iOS downloaden", true},
		{"Von meinem iPhone gesendet", true},
		{"Gesendet von Mail für Windows", true},
		{"Envoyé de mon iPhone", true},
		{"Obtenir Outlook pour Android", true},
		{"Enviado desde mi iPhone", true},
		{"Obtener Outlook para iOS", true},
		{"Sent from my office", false},
		{"Sent from my phone, the file is attached", false},
		{"Sent from my iPhone I will call you tomorrow", false},
		{"I sent it from my iPhone", false},
		{"Get Outlook for iOS and it still crashes", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := SplitReply("The order is 5521.\n\n"+tt.line+"\n", "")
			if got := r.Quoted == tt.line; got != tt.footer {
				t.Errorf("footer = %v, want %v (Reply %+v)", got, tt.footer, r)
			}
		})
	}
}

// Quote headers in each language and form split; look-alikes do not.
func TestSplitReplyQuoteHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header string // the lines between the new text and the quoted text
		split  bool
	}{
		{"en gmail", "On Mon, Apr 8, 2024 at 3:40 PM Ben <ben@example.com> wrote:", true},
		{"en wrapped", "On Mon, Apr 8, 2024 at 3:40 PM Example Support <\nsupport@example.com> wrote:", true},
		{"en wrapped before wrote", "On Mon, Apr 8, 2024 at 3:40 PM Example Support <support@example.com>\nwrote:", true},
		{"en apple", "On 8 Apr 2024, at 15:40, Ben <ben@example.com> wrote:", true},
		{"en thunderbird", "On 08/04/2024 15:40, Ben wrote:", true},
		{"nl gmail", "Op ma 8 apr. 2024 om 15:40 schreef Ben <ben@example.com>:", true},
		{"nl apple", "Op 8 apr. 2024 om 15:40 heeft Ben <ben@example.com> het volgende geschreven:", true},
		{"de gmail", "Am Mo., 8. Apr. 2024 um 15:40 Uhr schrieb Ben <ben@example.com>:", true},
		{"de thunderbird", "Am 08.04.2024 um 15:40 schrieb Ben:", true},
		{"fr gmail", "Le lun. 8 avr. 2024 à 15:40, Ben <ben@example.com> a écrit :", true},
		{"fr no-break space", "Le lun. 8 avr. 2024 à 15:40, Ben <ben@example.com> a écrit\u00a0:", true},
		{"es gmail", "El lun, 8 abr 2024 a las 15:40, Ben (<ben@example.com>) escribió:", true},
		{"outlook original", "-----Original Message-----", true},
		{"outlook original nl", "-----Oorspronkelijk bericht-----", true},
		{"outlook original fr", "-----Message d'origine-----", true},
		{"outlook original es", "-----Mensaje original-----", true},
		{"thunderbird forward", "-------- Forwarded Message --------", true},
		{"gmail forward de", "---------- Weitergeleitete Nachricht ---------", true},
		{"outlook header block", "From: Ben <ben@example.com>\nSent: Monday, April 8, 2024 3:40 PM\nTo: Alice\nSubject: RE: Order", true},
		{"outlook header block nl", "Van: Ben\nVerzonden: maandag 8 april 2024 15:40\nAan: Alice\nOnderwerp: RE: Bestelling", true},
		{"outlook header block de", "Von: Ben\nGesendet: Montag, 8. April 2024 15:40\nAn: Alice\nBetreff: AW: Bestellung", true},
		{"outlook header block fr", "De : Ben\nEnvoyé : lundi 8 avril 2024 15:40\nÀ : Alice\nObjet : RE: Commande", true},
		{"outlook header block es", "De: Ben\nEnviado el: lunes, 8 de abril de 2024 15:40\nPara: Alice\nAsunto: RE: Pedido", true},
		{"bold header block", "*From:* Ben <ben@example.com>\n*Sent:* Monday, April 8, 2024 3:40 PM\n*To:* Alice\n*Subject:* RE: Order", true},
		{"underscores over headers", "________________________________\nFrom: Ben\nSubject: RE: Order", true},
		{"header block with a wrapped To", "From: Ben\nSent: Monday, April 8, 2024 3:40 PM\nTo: Alice <a@example.org>; Bob <b@example.org>;\n Carol <c@example.org>; Dave <d@example.org>;\n Erin <e@example.org>\nCc: Frank\nSubject: RE: Order", true},
		{"no digit", "On Monday Ben wrote:", false},
		{"not at the end", "On Monday we wrote to you:", false},
		{"lower case", "on 8 Apr 2024, at 15:40, Ben wrote:", false},
		{"no time, no address", "On 3 April 2024 my colleague wrote:", false},
		{"one header line", "From: Ben\nI have a question.", false},
		{"A is not a header", "From: Ben\nA: yes\nB: no", false},
		{"no subject", "From: Keizersgracht 12\nTo: Oudegracht 40\nDate: Friday 12 April", false},
		{"underscores alone", "________________________________\nThanks again.", false},
		{"separator inside a line", "I deleted the -----Original Message----- part.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "Thanks, that works.\n\n" + tt.header + "\nthe quoted message\n"
			r := SplitReply(text, "")
			if got := r.Text == "Thanks, that works."; got != tt.split {
				t.Errorf("split = %v, want %v (Reply %+v)", got, tt.split, r)
			}
		})
	}
}

// Outlook names its signature block by id, but what a customer types into
// it is new text: a long block under that id is not taken for a signature.
func TestSplitReplySignatureIDGuard(t *testing.T) {
	long := strings.Repeat("<div>The scanner still fails after the update, see the steps below.</div>", 14)
	in := `<div>Hello,</div><div id="Signature">` + long + `</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">From: Ben</div><div>old</div>`
	r := SplitReply("", in)
	if !strings.Contains(r.HTML, "The scanner still fails") || strings.Contains(r.HTML, "divRplyFwdMsg") {
		t.Errorf("HTML = %s", r.HTML)
	}
	short := `<div>Hello,</div><div id="Signature"><div>Ben Smit</div><div>Example B.V.</div></div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">From: Ben</div><div>old</div>`
	if r := SplitReply("", short); r.HTML != "<div>Hello,</div>" {
		t.Errorf("HTML = %s, want only Hello", r.HTML)
	}
}
