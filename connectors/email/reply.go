package email

import (
	"regexp"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Reply is a mail body split into what the sender wrote now and what they
// quoted or signed. Agents are shown Text (or HTML); Quoted and QuotedHTML
// are kept with the message and shown collapsed (C05). Nothing is lost
// (M2: every message is kept whole): Text and Quoted together hold every
// word of the plain-text body, HTML and QuotedHTML every word of the HTML
// body.
type Reply struct {
	// Text is the new plain text, without surrounding blank lines; its
	// inner line breaks are those of the input.
	Text string
	// Quoted is the quoted history and the signature, in input order.
	Quoted string
	// HTML is the new part of the HTML body, a well-formed fragment.
	HTML string
	// QuotedHTML is the quoted history and signature of the HTML body, a
	// well-formed fragment.
	QuotedHTML string
}

// SplitReply splits the decoded (UTF-8) text and HTML bodies of a mail into
// new and quoted parts. Either may be empty; an empty input gives empty
// outputs. The two bodies are split independently.
//
// It is conservative: when in doubt a line stays new text, and when
// everything would be quoted (a forward with nothing added, a false
// positive) the whole body is kept as new.
func SplitReply(text, html string) Reply {
	var r Reply
	r.Text, r.Quoted = splitReplyText(text)
	r.HTML, r.QuotedHTML = splitReplyHTML(html)
	return r
}

// ---------------------------------------------------------------------------
// Patterns shared by the text and HTML splitters. They match a line that
// was trimmed and had its no-break spaces turned into spaces.

// replyAttribution matches the "On … wrote:" line mail clients put above a
// quote, in the languages of our customers (English and Dutch first).
// Openers are case-sensitive on purpose: a quote header starts a line with
// a capital; "on Monday we wrote:" inside a sentence does not.
var replyAttribution = []*regexp.Regexp{
	// Gmail, Apple Mail, Thunderbird, Yahoo: "On Mon, 8 Apr 2024 at 15:40, Ben <b@x> wrote:"
	regexp.MustCompile(`^On\s.+\swrote\s?:$`),
	// Gmail "Op ma 8 apr. 2024 om 15:40 schreef Ben <b@x>:", Apple Mail
	// "Op 8 apr. 2024 om 15:40 heeft Ben <b@x> het volgende geschreven:".
	regexp.MustCompile(`^Op\s.+\s(schreef\s.+|het volgende geschreven\s?)\s?:$`),
	// "Am Mo., 8. Apr. 2024 um 15:40 Uhr schrieb Ben <b@x>:"
	regexp.MustCompile(`^Am\s.+\sschrieb\s.+:$`),
	// "Le lun. 8 avr. 2024 à 15:40, Ben <b@x> a écrit :"
	regexp.MustCompile(`^Le\s.+\sa\sécrit\s?:$`),
	// "El lun, 8 abr 2024 a las 15:40, Ben (<b@x>) escribió:"
	regexp.MustCompile(`^El\s.+\sescribió\s?:$`),
}

// replyAttributionOpener is how a wrapped attribution starts: Gmail wraps
// the line at 80 columns, often inside the address.
var replyAttributionOpener = regexp.MustCompile(`^(On|Op|Am|Le|El)\s`)

// replyAttributionStrong marks an attribution that is certainly one even
// without ">" lines after it: it names a time of day or an address.
var replyAttributionStrong = regexp.MustCompile(`[0-9]{1,2}[:.h][0-9]{2}|@`)

// replySeparator matches the lines Outlook, Thunderbird, Gmail and Apple
// Mail put above a quoted or forwarded message.
var replySeparator = regexp.MustCompile(`(?i)^(-{2,}\s*(original message|ursprüngliche nachricht|oorspronkelijk bericht|origineel bericht|message d'origine|mensaje original|forwarded message|doorgestuurd bericht|weitergeleitete nachricht|message transféré|mensaje reenviado)\s*-{2,}|begin forwarded message\s?:|begin doorgestuurd bericht\s?:|anfang der weitergeleiteten nachricht\s?:|début du message (réexpédié|transféré)\s?:|inicio del mensaje reenviado\s?:)$`)

// replyHeaderFrom and replyHeaderOther match the header block of a quoted
// Outlook message (From:/Sent:/To:/Subject:), localized, optionally in
// bold as "*From:*" when HTML was turned into text. French puts a space
// before the colon.
var (
	replyHeaderFrom    = regexp.MustCompile(`^\*{0,2}(From|Van|Von|De|Da)\*{0,2} ?:\*{0,2}(\s|$)`)
	replyHeaderSubject = regexp.MustCompile(`^\*{0,2}(Subject|Onderwerp|Betreff|Objet|Asunto)\*{0,2} ?:`)
	replyHeaderOther   = regexp.MustCompile(`^\*{0,2}(Sent|Date|To|Cc|CC|Subject|Verzonden|Datum|Aan|Onderwerp|Gesendet|An|Betreff|Envoyé|Date d'envoi|À|Objet|Enviado|Enviado el|Fecha|Para|Asunto)\*{0,2} ?:`)
)

// replyFooter matches the one-line footers mobile and desktop mail apps
// add under the text. Devices and their model words are listed, not
// guessed: "Sent from my office" and "Sent from my phone, the file is
// attached" are new text.
var replyFooter = regexp.MustCompile(`(?i)^(` +
	`sent from my (iphone|ipad|ipod|android|blackberry|mobile|phone|smartphone|samsung|galaxy|huawei|xiaomi|pixel)` + replyDeviceTail +
	`|sent from (mail|outlook|yahoo mail|gmail)( for (windows( 10| 11)?|ios|iphone|ipad|android|mac))?( on android)?` +
	`|get outlook for (ios|android)` +
	`|(verstuurd|verzonden) (vanaf|van|met) mijn (iphone|ipad|android|samsung|galaxy|telefoon|mobiel|smartphone)` + replyDeviceTail +
	`|verzonden (vanuit|met) (mail|outlook) voor windows( 10| 11)?` +
	`|outlook voor (ios|android) downloaden` +
	`|von meinem (iphone|ipad|android|samsung|galaxy|smartphone|handy|mobiltelefon)` + replyDeviceTail + ` gesendet` +
	`|gesendet von (meinem (iphone|ipad|android|samsung|galaxy|smartphone|handy)` + replyDeviceTail + `|mail für windows( 10| 11)?)` +
	`|outlook für (ios|android) beziehen` +
	`|envoyé (de|depuis) mon (iphone|ipad|android|samsung|galaxy|smartphone|mobile|téléphone)` + replyDeviceTail +
	`|envoyé à partir de (courrier|mail|outlook) pour windows( 10| 11)?` +
	`|(obtenir|télécharger) outlook pour (ios|android)` +
	`|enviado desde mi (iphone|ipad|android|samsung|galaxy|smartphone|móvil|celular|teléfono)` + replyDeviceTail +
	`|enviado desde (correo|outlook) para windows( 10| 11)?` +
	`|obtener outlook para (ios|android)` +
	`)\s*(<[^<>]*>)?[.!]?$`)

// replyDeviceTail is what may follow a device name in a footer: a model
// ("iPhone 15 Pro", "Samsung Galaxy S23 Ultra smartphone"), nothing else.
const replyDeviceTail = `( (\w*[0-9]\w*|pro|max|plus|mini|ultra|lite|edge|note|se|xr|xs|galaxy|phone|smartphone|tablet|device|telefoon|handy))*`

// replyHeaderLines is how many lines a header block is looked for in: To
// and Cc lists may wrap.
const replyHeaderLines = 9

// replyMaxHeaderLen bounds the lines the patterns above are tried on: a
// quote header is one line (two when wrapped), never a paragraph.
const replyMaxHeaderLen = 400

func replyIsAttribution(s string) bool {
	if len(s) > replyMaxHeaderLen || !strings.ContainsAny(s, "0123456789") {
		return false // every client writes the date; "On Monday we wrote:" has none
	}
	for _, re := range replyAttribution {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func replyIsFooter(s string) bool {
	return len(s) <= 120 && replyFooter.MatchString(s)
}

func replyIsSeparator(s string) bool {
	return len(s) <= replyMaxHeaderLen && replySeparator.MatchString(s)
}

func replyIsUnderscoreLine(s string) bool {
	return len(s) >= 10 && strings.Trim(s, "_") == ""
}

// replyNorm is a line as the patterns see it.
func replyNorm(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\u00a0", " "))
}

// replyHeaderBlock tells whether lines (normalized) start with a quoted
// message's header block: a From line, then at least `more` further header
// lines, one of them the Subject, before a blank line. Every client writes
// the Subject; a customer's "From: old address / To: new address" has
// none.
func replyHeaderBlock(lines []string, more int) bool {
	if len(lines) == 0 || len(lines[0]) > replyMaxHeaderLen || !replyHeaderFrom.MatchString(lines[0]) {
		return false
	}
	n, subject := 0, false
	for _, l := range lines[1:min(len(lines), replyHeaderLines)] {
		if l == "" {
			break
		}
		if replyHeaderOther.MatchString(l) {
			n++
			subject = subject || replyHeaderSubject.MatchString(l)
		}
	}
	return n >= more && subject
}

// ---------------------------------------------------------------------------
// Plain text.

type replyClass uint8

const (
	replyBlank replyClass = iota
	replyNew
	replyQuoted
)

type replyLine struct {
	raw   string // as in the input, without "\n"; a "\r" of CRLF is kept
	norm  string
	blank bool
}

func splitReplyText(text string) (newText, quoted string) {
	text = strings.ToValidUTF8(text, "\uFFFD")
	raws := strings.Split(text, "\n")
	lines := make([]replyLine, len(raws))
	for i, raw := range raws {
		lines[i] = replyLine{raw: raw, norm: replyNorm(raw), blank: strings.TrimSpace(raw) == ""}
	}
	cls := replyClassifyLines(lines)

	eol := "\n"
	if strings.Contains(text, "\r\n") {
		eol = "\r\n"
	}
	newText = replyJoin(lines, cls, replyNew, eol)
	quoted = replyJoin(lines, cls, replyQuoted, eol)
	if newText == "" {
		// Nothing new: a forward with nothing added, a signature alone, or
		// a false positive. Keep it all as new text.
		all := make([]replyClass, len(lines))
		for i, l := range lines {
			if !l.blank {
				all[i] = replyNew
			}
		}
		return replyJoin(lines, all, replyNew, eol), ""
	}
	return newText, quoted
}

// replyClassifyLines marks each line new, quoted (quote, quote header or
// signature) or blank.
func replyClassifyLines(lines []replyLine) []replyClass {
	cls := make([]replyClass, len(lines))
	markTo := func(from, to int) {
		for j := from; j < to; j++ {
			if !lines[j].blank {
				cls[j] = replyQuoted
			}
		}
	}
	for i := 0; i < len(lines); {
		l := lines[i]
		paragraphStart := i == 0 || lines[i-1].blank || cls[i-1] == replyQuoted
		switch {
		case l.blank:
			i++
			continue
		case replyIsQuotedLine(l.raw):
			cls[i] = replyQuoted
			i++
			continue
		}
		n, toEnd := replyQuoteHeader(lines, i, paragraphStart)
		if toEnd {
			markTo(i, len(lines))
			return cls
		}
		if n > 0 {
			markTo(i, i+n)
			i += n
			continue
		}
		if end := replySignatureEnd(lines, i); end > i {
			markTo(i, end)
			i = end
			continue
		}
		if replyIsFooter(l.norm) {
			cls[i] = replyQuoted
		} else {
			cls[i] = replyNew
		}
		i++
	}
	return cls
}

func replyIsQuotedLine(raw string) bool {
	return strings.HasPrefix(strings.TrimLeft(raw, " \t"), ">")
}

// replyNextNonBlank returns the index of the first non-blank line at or
// after i, or len(lines).
func replyNextNonBlank(lines []replyLine, i int) int {
	for i < len(lines) && lines[i].blank {
		i++
	}
	return i
}

// replyQuoteHeader looks for a quote header at line i. It returns how many
// lines the header takes when ">" lines follow it (what comes after them
// may be new text again), or toEnd when the quoted message follows
// unprefixed and everything from line i on is quoted.
func replyQuoteHeader(lines []replyLine, i int, paragraphStart bool) (n int, toEnd bool) {
	s := lines[i].norm
	if replyIsSeparator(s) {
		return 0, true
	}
	if replyIsUnderscoreLine(s) {
		if j := replyNextNonBlank(lines, i+1); j < len(lines) && replyHeaderBlock(replyNorms(lines, j, replyHeaderLines), 1) {
			return 0, true // Outlook: "____" over From:/Sent:/To:/Subject: (C05)
		}
		return 0, false
	}
	if paragraphStart && replyHeaderBlock(replyNorms(lines, i, replyHeaderLines), 2) {
		return 0, true
	}

	// "On … wrote:", on one line or wrapped over two.
	attr := 0
	joined := s
	if replyIsAttribution(s) {
		attr = 1
	} else if replyAttributionOpener.MatchString(s) && i+1 < len(lines) && !lines[i+1].blank {
		joined = s + " " + lines[i+1].norm
		if replyIsAttribution(joined) {
			attr = 2
		}
	}
	if attr == 0 {
		return 0, false
	}
	if j := replyNextNonBlank(lines, i+attr); j < len(lines) && replyIsQuotedLine(lines[j].raw) {
		return attr, false
	}
	// No ">" lines follow (Yahoo, text made from HTML): only a header that
	// starts a paragraph and names a time or an address counts, so that a
	// sentence like "On 8 April we wrote:" stays new text.
	if paragraphStart && replyAttributionStrong.MatchString(joined) {
		return 0, true
	}
	return 0, false
}

func replyNorms(lines []replyLine, from, n int) []string {
	var out []string
	for _, l := range lines[from:min(len(lines), from+n)] {
		out = append(out, l.norm)
	}
	return out
}

// replySignatureEnd returns the end (exclusive) of a signature that starts
// at line i with the RFC 3676 delimiter "-- ", or i when there is none. A
// signature runs to the next quote, or to the end. A bare "--" (clients
// that strip trailing spaces) counts only for a short block, so that a
// "--" used as a divider does not hide the rest of a message.
func replySignatureEnd(lines []replyLine, i int) int {
	rfc := strings.TrimSuffix(lines[i].raw, "\r") == "-- "
	if !rfc && lines[i].norm != "--" {
		return i
	}
	const maxBare = 10 // lines of a signature under a bare "--"
	j, n := i+1, 0
	for ; j < len(lines); j++ {
		if lines[j].blank {
			continue
		}
		if replyIsQuotedLine(lines[j].raw) {
			break
		}
		if k, toEnd := replyQuoteHeader(lines, j, true); k > 0 || toEnd {
			break
		}
		if n++; !rfc && n > maxBare {
			return i // stop here: scanning on would make many "--" lines quadratic
		}
	}
	if !rfc && n == 0 {
		return i
	}
	return j
}

// replyJoin returns the lines of class want. Within a run of them the
// blank lines and line breaks are kept as they were; runs (with lines of
// the other class taken out between them) are joined by one line break, or
// by a blank line where what was taken out was set off by one. Surrounding
// blank lines are dropped.
func replyJoin(lines []replyLine, cls []replyClass, want replyClass, eol string) string {
	// term is the line break that ended line k in the input.
	term := func(k int) string {
		if strings.HasSuffix(lines[k].raw, "\r") {
			return "\r\n"
		}
		return "\n"
	}
	var b strings.Builder
	last := -1 // the last line written
	for i := range lines {
		if cls[i] != want {
			continue
		}
		if last >= 0 {
			run, gap := true, false
			for _, c := range cls[last+1 : i] {
				if c == replyBlank {
					gap = true
				} else {
					run = false
				}
			}
			switch {
			case run:
				for k := last; k < i; k++ {
					b.WriteString(term(k))
					if k+1 < i {
						b.WriteString(strings.TrimSuffix(lines[k+1].raw, "\r"))
					}
				}
			case gap:
				b.WriteString(eol + eol)
			default:
				b.WriteString(eol)
			}
		}
		b.WriteString(strings.TrimSuffix(lines[i].raw, "\r"))
		last = i
	}
	return strings.TrimRightFunc(b.String(), unicode.IsSpace)
}

// ---------------------------------------------------------------------------
// HTML.
//
// The body is parsed as a fragment inside <body> and walked in document
// order. Quote and signature markers (class, id, Outlook's border style,
// or a quote header's text) make the nodes from there quoted: a
// self-contained block (a blockquote, a signature) only itself, a quoted
// message's header everything after it. Blank nodes (whitespace, <br>,
// <hr>, empty <div>s) go with what follows them, so the new part does not
// end in the quote's separator. The new and the quoted part are then two
// projections of the one tree: an element holding both is cloned into
// each with its attributes, so both are well-formed and keep structure
// and inline styles.

// replyPart says which part a node belongs to; an element holding both has
// both bits.
type replyPart uint8

const (
	replyPartNew replyPart = 1 << iota
	replyPartQuoted
)

type replyMark uint8

const (
	replyMarkNone replyMark = iota
	// replyMarkBlock is a self-contained quote or signature; what follows
	// it may be new again (bottom-posting, interleaved answers).
	replyMarkBlock
	// replyMarkOpen is a quote container whose blockquotes and attribution
	// are quoted but whose other content is new: Gmail keeps answers typed
	// between quoted paragraphs inside div.gmail_quote.
	replyMarkOpen
	// replyMarkToEnd is the header of a quoted or forwarded message that
	// follows unprefixed (Outlook): everything from here on is quoted.
	replyMarkToEnd
)

type replyHTMLSplit struct {
	content map[*html.Node]bool // the subtree holds something to read
	part    map[*html.Node]replyPart
	cite    map[*html.Node]bool // blockquotes under an "On … wrote:" line
	open    map[*html.Node]bool // replyMarkOpen containers
	pending []*html.Node        // blank nodes waiting for the next part
	last    replyPart           // the part of the last unit
	units   int                 // units placed so far
	toEnd   bool
	sawNew  bool
	sawQuot bool
}

func splitReplyHTML(src string) (newHTML, quotedHTML string) {
	if strings.TrimSpace(src) == "" {
		return "", ""
	}
	src = strings.ToValidUTF8(src, "\uFFFD")
	context := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(strings.NewReader(src), context)
	if err != nil {
		// Only a failing reader makes the parser fail, and a strings.Reader
		// does not fail; should it ever, keep the body whole as text.
		return html.EscapeString(src), ""
	}
	root := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	for _, n := range nodes {
		root.AppendChild(n)
	}
	wrap := replyBodyAttrs(src)

	s := &replyHTMLSplit{
		content: map[*html.Node]bool{},
		part:    map[*html.Node]replyPart{},
		cite:    map[*html.Node]bool{},
		open:    map[*html.Node]bool{},
	}
	s.computeContent(root)
	for c := range root.ChildNodes() {
		s.visit(c, false)
	}
	s.resolve(s.last) // trailing blank nodes stay with what they follow
	if !s.sawNew || !s.sawQuot {
		return replyRender(replyCloneChildren(root), wrap), ""
	}
	newRoot := s.project(root, replyPartNew)
	quotedRoot := s.project(root, replyPartQuoted)
	return replyRender(replyDetachChildren(newRoot), wrap), replyRender(replyDetachChildren(quotedRoot), wrap)
}

func (s *replyHTMLSplit) computeContent(n *html.Node) bool {
	c := false
	switch n.Type {
	case html.TextNode:
		c = !replyHTMLBlank(n.Data)
	case html.ElementNode:
		switch {
		case replyHTMLOpaque(n):
		case replyHTMLMedia(n):
			c = true
		default:
			for ch := range n.ChildNodes() {
				if s.computeContent(ch) {
					c = true
				}
			}
		}
	}
	s.content[n] = c
	return c
}

func (s *replyHTMLSplit) visit(n *html.Node, inQuote bool) {
	if s.toEnd {
		s.unit(n, replyPartQuoted)
		return
	}
	switch s.mark(n, inQuote) {
	case replyMarkToEnd:
		s.toEnd = true
		s.unit(n, replyPartQuoted)
		return
	case replyMarkBlock:
		s.unit(n, replyPartQuoted)
		return
	case replyMarkOpen:
		if !s.content[n] {
			s.unit(n, replyPartQuoted) // an empty quote container is still quote
			return
		}
		s.open[n] = true
		for c := range n.ChildNodes() {
			s.visit(c, true)
		}
		return
	}
	if !s.content[n] {
		s.pending = append(s.pending, n)
		return
	}
	if n.Type != html.ElementNode || n.FirstChild == nil || replyHTMLMedia(n) {
		s.unit(n, replyPartNew)
		return
	}
	units := s.units
	for c := range n.ChildNodes() {
		s.visit(c, inQuote)
	}
	if s.units != units && s.last == replyPartNew && !s.toEnd {
		// Blank nodes closing an element whose content ended new stay in
		// it, rather than splitting it in two for a trailing <br>.
		s.resolve(replyPartNew)
	}
}

// unit puts the whole subtree of n, and the blank nodes before it, in part p.
func (s *replyHTMLSplit) unit(n *html.Node, p replyPart) {
	s.resolve(p)
	s.part[n] = p
	s.last = p
	s.units++
	if p == replyPartNew {
		s.sawNew = true
	} else {
		s.sawQuot = true
	}
}

// resolve puts the pending blank nodes in part p.
func (s *replyHTMLSplit) resolve(p replyPart) {
	for _, b := range s.pending {
		s.part[b] = p
	}
	s.pending = s.pending[:0]
}

// partOf returns the parts the subtree of a visited node belongs to.
func (s *replyHTMLSplit) partOf(n *html.Node) replyPart {
	if p, ok := s.part[n]; ok {
		return p
	}
	var p replyPart
	for c := range n.ChildNodes() {
		p |= s.partOf(c)
	}
	s.part[n] = p
	return p
}

// project returns a copy of the subtree of n holding only the nodes of
// part want, or nil when it holds none.
func (s *replyHTMLSplit) project(n *html.Node, want replyPart) *html.Node {
	p := s.partOf(n)
	if p&want == 0 {
		return nil
	}
	if p == want {
		return replyDeepClone(n)
	}
	c := replyShallowClone(n)
	if want == replyPartNew && s.open[n] {
		// Answers typed inside Gmail's quote container: without its class
		// they are not styled or collapsed as a quote.
		c.Attr = slices.DeleteFunc(c.Attr, func(a html.Attribute) bool { return a.Key == "class" })
	}
	for ch := range n.ChildNodes() {
		if pc := s.project(ch, want); pc != nil {
			c.AppendChild(pc)
		}
	}
	return c
}

// mark tells whether n starts a quote or a signature.
func (s *replyHTMLSplit) mark(n *html.Node, inQuote bool) replyMark {
	switch n.Type {
	case html.TextNode:
		return s.markText(n)
	case html.ElementNode:
	default:
		return replyMarkNone
	}
	if replyHTMLOpaque(n) {
		return replyMarkNone
	}
	if s.cite[n] {
		return replyMarkBlock
	}
	id := replyAttr(n, "id")
	class := strings.Fields(replyAttr(n, "class"))
	switch {
	case n.DataAtom == atom.Blockquote && (strings.EqualFold(replyAttr(n, "type"), "cite") || inQuote):
		return replyMarkBlock // Apple Mail, Thunderbird; any blockquote inside a quote
	case replyHasClass(class, "gmail_quote", "gmail_quote_container"):
		if n.DataAtom == atom.Blockquote {
			return replyMarkBlock
		}
		return replyMarkOpen
	case replyHasClass(class, "gmail_attr"):
		if lines, _ := replyHTMLLines(n); len(lines) > 0 && replyIsSeparator(lines[0]) {
			return replyMarkToEnd // Gmail forward: the message follows unquoted
		}
		return replyMarkBlock
	case replyHasClass(class, "moz-cite-prefix", "moz-signature", "moz-forward-container",
		"gmail_signature", "gmail_signature_prefix", "protonmail_quote", "protonmail_signature_block"),
		strings.Contains(replyAttr(n, "class"), "yahoo_quoted"):
		return replyMarkBlock
	case id == "Signature", id == "AppleMailSignature", strings.HasSuffix(id, "mobile-signature"):
		// Outlook and iOS Mail name the signature block by id, but text
		// typed into it lands there too: only a short one is a signature.
		if lines, complete := replyHTMLLines(n); complete && len(lines) <= 12 {
			return replyMarkBlock
		}
		return replyMarkNone
	case strings.HasSuffix(id, "divRplyFwdMsg"), strings.HasSuffix(id, "appendonsend"),
		strings.HasPrefix(id, "divRpF"), id == "OLK_SRC_BODY_SECTION",
		id == "mail-editor-reference-message-container",
		replyOutlookBorder(replyAttr(n, "style")):
		return replyMarkToEnd // Outlook desktop, web and Mac
	}
	return s.markByText(n)
}

// markByText recognizes an element by what it says: an element that is
// nothing but a quote header, or that starts with a quoted message's
// header block or a signature delimiter.
func (s *replyHTMLSplit) markByText(n *html.Node) replyMark {
	lines, complete := replyHTMLLines(n)
	if len(lines) == 0 {
		return replyMarkNone
	}
	if replyIsSeparator(lines[0]) || replyHeaderBlock(lines, 2) || replyIsSigLine(lines[0]) {
		return replyMarkToEnd
	}
	if !complete {
		return replyMarkNone
	}
	return s.markLine(n, strings.Join(lines, " "))
}

func (s *replyHTMLSplit) markText(n *html.Node) replyMark {
	if len(n.Data) > 2*replyMaxHeaderLen || replyHTMLBlank(n.Data) {
		return replyMarkNone
	}
	line := replyNewlinesToSpaces.Replace(n.Data)
	if replyIsSigLine(line) {
		return replyMarkToEnd
	}
	norm := strings.Join(strings.Fields(line), " ")
	if replyIsSeparator(norm) {
		return replyMarkToEnd
	}
	return s.markLine(n, norm)
}

// markLine handles the one-line markers: a mobile footer, and an
// attribution, which counts when a blockquote follows it or when it is
// certainly one (it names a time or an address).
func (s *replyHTMLSplit) markLine(n *html.Node, line string) replyMark {
	if replyIsFooter(line) {
		return replyMarkBlock
	}
	if !replyIsAttribution(line) {
		return replyMarkNone
	}
	if bq := s.nextBlockquote(n); bq != nil {
		s.cite[bq] = true
		return replyMarkBlock
	}
	if replyAttributionStrong.MatchString(line) {
		return replyMarkToEnd
	}
	return replyMarkNone
}

// replyNewlinesToSpaces turns line breaks of HTML source into the spaces
// a browser shows for them.
var replyNewlinesToSpaces = strings.NewReplacer("\r", " ", "\n", " ")

// replyIsSigLine tells whether a line of HTML text is the "-- " signature
// delimiter (with its space: a bare "--" is too common as a divider).
func replyIsSigLine(line string) bool {
	line = strings.ReplaceAll(line, "\u00a0", " ")
	return strings.TrimSpace(line) == "--" && strings.HasPrefix(strings.TrimLeft(line, " \t"), "-- ")
}

// nextBlockquote returns the blockquote that comes next after n in
// document order, skipping blank nodes, or nil when something else does.
func (s *replyHTMLSplit) nextBlockquote(n *html.Node) *html.Node {
	next := replyNextNode(n)
	for steps := 0; next != nil && steps < 64; steps++ {
		switch {
		case !s.content[next]:
			next = replyNextNode(next)
		case next.Type != html.ElementNode:
			return nil
		case next.DataAtom == atom.Blockquote:
			return next
		case next.FirstChild != nil && !replyHTMLMedia(next):
			next = next.FirstChild
		default:
			return nil
		}
	}
	return nil
}

// replyNextNode returns the node after the subtree of n in document order.
func replyNextNode(n *html.Node) *html.Node {
	for ; n != nil; n = n.Parent {
		if n.NextSibling != nil {
			return n.NextSibling
		}
	}
	return nil
}

// replyHTMLLines returns the first lines of text of n as a reader sees
// them (split at <br> and block elements, whitespace collapsed, blank lines
// left out), and whether that is all of its text. It reads a bounded part
// of the subtree: every element is asked, so this must stay cheap.
func replyHTMLLines(n *html.Node) (lines []string, complete bool) {
	const maxChars, maxNodes = 600, 300
	var b strings.Builder
	nodes := 0
	var walk func(n *html.Node) bool
	walk = func(n *html.Node) bool {
		if nodes++; nodes > maxNodes || b.Len() > maxChars {
			return false
		}
		switch n.Type {
		case html.TextNode:
			b.WriteString(replyNewlinesToSpaces.Replace(n.Data))
		case html.ElementNode:
			if replyHTMLOpaque(n) {
				return true
			}
			if n.DataAtom == atom.Br {
				b.WriteByte('\n')
				return true
			}
			block := replyHTMLBlock(n)
			if block {
				b.WriteByte('\n')
			}
			for c := range n.ChildNodes() {
				if !walk(c) {
					return false
				}
			}
			if block {
				b.WriteByte('\n')
			}
		}
		return true
	}
	complete = walk(n)
	for l := range strings.SplitSeq(b.String(), "\n") {
		if strings.TrimSpace(strings.ReplaceAll(l, "\u00a0", " ")) == "" {
			continue
		}
		if len(lines) == 0 && replyIsSigLine(l) {
			lines = append(lines, "-- ") // keep the delimiter's space for the check
			continue
		}
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return lines, complete
}

// replyOutlookBorder recognizes the top border Outlook draws above the
// header block of the message it quotes.
func replyOutlookBorder(style string) bool {
	if style == "" {
		return false
	}
	s := strings.ToLower(strings.Join(strings.Fields(style), ""))
	return strings.Contains(s, "border-top:solid#e1e1e1") ||
		strings.Contains(s, "border-top:solid#b5c4df") ||
		strings.Contains(s, "border-top:1ptsolidrgb(225,225,225)")
}

func replyAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val
		}
	}
	return ""
}

func replyHasClass(classes []string, names ...string) bool {
	for _, c := range classes {
		for _, name := range names {
			if c == name {
				return true
			}
		}
	}
	return false
}

// replyHTMLBlank tells whether text shows nothing: whitespace, no-break
// and zero-width spaces.
func replyHTMLBlank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && r != '\u200b' && r != '\u200c' && r != '\u200d' && r != '\u2060' && r != '\ufeff' {
			return false
		}
	}
	return true
}

// replyHTMLOpaque elements hold no text a reader sees (or none worth
// splitting); they travel with the part that follows them.
func replyHTMLOpaque(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Script, atom.Style, atom.Template, atom.Title, atom.Meta, atom.Link, atom.Base,
		atom.Head, atom.Noscript, atom.Noframes, atom.Noembed:
		return true
	}
	return false
}

// replyHTMLMedia elements are content even without text (a pasted
// screenshot is what the customer wrote).
func replyHTMLMedia(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Img, atom.Picture, atom.Video, atom.Audio, atom.Svg, atom.Math, atom.Canvas,
		atom.Iframe, atom.Object, atom.Embed:
		return true
	}
	return false
}

func replyHTMLBlock(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Address, atom.Article, atom.Aside, atom.Blockquote, atom.Center, atom.Dd, atom.Details,
		atom.Dialog, atom.Dir, atom.Div, atom.Dl, atom.Dt, atom.Fieldset, atom.Figcaption, atom.Figure,
		atom.Footer, atom.Form, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Header,
		atom.Hgroup, atom.Hr, atom.Li, atom.Main, atom.Menu, atom.Nav, atom.Ol, atom.P, atom.Pre,
		atom.Section, atom.Summary, atom.Table, atom.Caption, atom.Tbody, atom.Thead, atom.Tfoot,
		atom.Tr, atom.Td, atom.Th, atom.Ul:
		return true
	}
	return false
}

// replyBodyAttrs returns the attributes of the <body> tag that matter for
// display (writing direction, language, style); parsing as a fragment
// drops the tag itself.
func replyBodyAttrs(src string) []html.Attribute {
	z := html.NewTokenizer(strings.NewReader(src))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return nil
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := z.TagName()
			if string(name) != "body" {
				continue
			}
			var attrs []html.Attribute
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				switch string(k) {
				case "dir", "lang", "style":
					attrs = append(attrs, html.Attribute{Key: string(k), Val: string(v)})
				}
			}
			return attrs
		}
	}
}

func replyShallowClone(n *html.Node) *html.Node {
	return &html.Node{
		Type:      n.Type,
		DataAtom:  n.DataAtom,
		Data:      n.Data,
		Namespace: n.Namespace,
		Attr:      append([]html.Attribute(nil), n.Attr...),
	}
}

func replyDeepClone(n *html.Node) *html.Node {
	c := replyShallowClone(n)
	for ch := range n.ChildNodes() {
		c.AppendChild(replyDeepClone(ch))
	}
	return c
}

func replyCloneChildren(n *html.Node) []*html.Node {
	var out []*html.Node
	for c := range n.ChildNodes() {
		out = append(out, replyDeepClone(c))
	}
	return out
}

func replyDetachChildren(n *html.Node) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; {
		next := c.NextSibling
		n.RemoveChild(c)
		out = append(out, c)
		c = next
	}
	return out
}

// replyRender renders nodes as one fragment, inside a <div> carrying the
// body's attributes when it had any (so a right-to-left mail stays so).
func replyRender(nodes []*html.Node, wrap []html.Attribute) string {
	// Whitespace between the fragment's top-level nodes and its edges
	// shows nothing; leaving it out keeps the wrapping div tidy.
	for len(nodes) > 0 && replyHTMLSpaceText(nodes[0]) {
		nodes = nodes[1:]
	}
	for len(nodes) > 0 && replyHTMLSpaceText(nodes[len(nodes)-1]) {
		nodes = nodes[:len(nodes)-1]
	}
	if len(nodes) == 0 {
		return ""
	}
	if len(wrap) > 0 {
		div := &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div, Attr: wrap}
		for _, n := range nodes {
			div.AppendChild(n)
		}
		nodes = []*html.Node{div}
	}
	var b strings.Builder
	for _, n := range nodes {
		if err := html.Render(&b, n); err != nil {
			// A strings.Builder does not fail and the parser makes no
			// ErrorNode; should rendering fail anyway, keep the text.
			b.WriteString(html.EscapeString(replyNodeText(n)))
		}
	}
	return strings.TrimSpace(b.String())
}

func replyHTMLSpaceText(n *html.Node) bool {
	return n.Type == html.TextNode && strings.Trim(n.Data, " \t\r\n\f") == ""
}

func replyNodeText(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}
