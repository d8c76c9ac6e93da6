package email

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inbucket/html2text"
	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Parse reads one raw mail (CRLF or LF line endings). It never fails and
// never panics: what it cannot read is named in Mail.Warnings, and when
// the structure of the mail could not be fully read the raw source is
// attached as "original.eml" (nothing is dropped).
//
// enmime builds the MIME tree (it repairs broken header blocks, C13, and
// unterminated boundaries); transfer encodings, charsets, headers and
// file names are decoded here, where we control how broken input is read.
func Parse(raw []byte) (m *Mail) {
	p := &mailParser{raw: raw, m: &Mail{Header: textproto.MIMEHeader{}}}
	defer func() {
		if r := recover(); r != nil {
			// A bug in a decoder must not lose the mail: keep what was
			// read and the source.
			p.warnf("the mail could not be fully read (internal error: %v)", r)
			p.keepOriginal = true
			p.finish()
			m = p.m
		}
	}()
	p.run()
	return p.m
}

// maxMIMEParts bounds the parts of one mail we read: enmime links
// sibling parts in a list it walks on every insert, so the work grows
// with the square of their number.
const maxMIMEParts = 1000

// limitMIMEParts cuts src before its (max+1)th line that looks like a
// MIME delimiter ("--" followed by a boundary).
func limitMIMEParts(src []byte, max int) ([]byte, bool) {
	n := 0
	for off := 0; off < len(src); {
		line := src[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if len(line) > 2 && line[0] == '-' && line[1] == '-' && line[2] > ' ' {
			if n++; n > max {
				return src[:off], true
			}
		}
		off += len(line)
	}
	return src, false
}

// maxBoundaries bounds the multipart boundaries one mail may declare:
// enmime's boundary readers nest, and a mail of a few hundred nested
// multiparts would take it minutes (a denial of service, not a mail).
// Real mail declares a handful; forwards of forwards a few dozen.
const maxBoundaries = 64

// boundaryLines calls fn for each line of src that may declare a
// multipart boundary: a Content-Type header line or a continuation line
// naming "boundary" (parameters live there; body lines such as base64 never
// start with a space or a C). fn returns false to stop.
func boundaryLines(src []byte, fn func(off int, line []byte) bool) {
	for off := 0; off < len(src); {
		line := src[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if len(line) > 0 {
			switch line[0] {
			case ' ', '\t', 'C', 'c':
				if containsFold(line, "boundary") && !fn(off, line) {
					return
				}
			}
		}
		off += len(line)
	}
}

// limitMIMEBoundaries cuts src before the line that declares boundary
// number max+1.
func limitMIMEBoundaries(src []byte, max int) ([]byte, bool) {
	n, cut := 0, -1
	boundaryLines(src, func(off int, _ []byte) bool {
		if n++; n > max {
			cut = off
			return false
		}
		return true
	})
	if cut < 0 {
		return src, false
	}
	return src[:cut], true
}

// containsFold reports whether the lower-case ASCII word occurs in b,
// ignoring case.
func containsFold(b []byte, word string) bool {
	first := word[0]
	for i := 0; i+len(word) <= len(b); i++ {
		if c := b[i] | 0x20; c == first && bytes.EqualFold(b[i:i+len(word)], []byte(word)) {
			return true
		}
	}
	return false
}

var boundaryParam = regexp.MustCompile(`(?i)boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))`)

// closeBoundaries appends the closing delimiter of every multipart that is
// opened in src but never closed. enmime's nested boundary readers take
// time exponential in the depth of unclosed multiparts (a mail of thirty
// unclosed levels would take hours); closed, the same mail reads at once.
// A mail cut short in transit is the usual cause, so the parts read the
// same as before.
func closeBoundaries(src []byte) ([]byte, bool) {
	var open []string
	seen := map[string]bool{}
	boundaryLines(src, func(_ int, line []byte) bool {
		for _, m := range boundaryParam.FindAllSubmatch(line, -1) {
			b := string(m[1])
			if b == "" {
				b = string(m[2])
			}
			if seen[b] {
				continue
			}
			seen[b] = true
			if bytes.Contains(src, []byte("\n--"+b)) && !bytes.Contains(src, []byte("--"+b+"--")) {
				open = append(open, b)
			}
		}
		return true
	})
	if len(open) == 0 {
		return src, false
	}
	out := append([]byte(nil), src...)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, "\r\n"...)
	}
	for i := len(open) - 1; i >= 0; i-- {
		out = append(out, "--"+open[i]+"--\r\n"...)
	}
	return out, true
}

// maxPartDepth bounds the nesting of multiparts and reparsed parts we
// follow; deeper parts are kept only in original.eml.
const maxPartDepth = 32

type mailParser struct {
	raw []byte // the input, for original.eml
	src []byte // the input as parsed (see trimBeforeHeader, limitMIMEParts)
	m   *Mail

	// fallback is the charset raw 8-bit header bytes are read in when
	// they are not UTF-8: the first legacy charset the body declares.
	fallback string

	keepOriginal bool // attach the raw source (something could not be read)
	eliding      bool // enmime reads a copy with base64 lines left out (elide.go)
	elideLeak    bool // a media type enmime handed us holds an elision marker
	texts        []string
	htmls        []string
	tnefBodies   []string
	attachIndex  int // numbers derived file names
}

func (p *mailParser) warnf(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	for _, have := range p.m.Warnings {
		if have == w {
			return
		}
	}
	if len(p.m.Warnings) < 50 {
		p.m.Warnings = append(p.m.Warnings, w)
	}
}

func (p *mailParser) enmimeParser() *enmime.Parser {
	return enmime.NewParser(
		// Transfer encodings and charsets are decoded by us.
		enmime.RawContent(true),
		enmime.SkipMalformedParts(true),
		enmime.MultipartWOBoundaryAsSinglePart(true),
		enmime.DisableTextConversion(true),
		enmime.MaxStoredPartErrors(20),
		enmime.SetCustomParseMediaType(p.parseMediaType),
	)
}

func (p *mailParser) run() {
	src := trimBeforeHeader(p.raw)
	if len(bytes.TrimSpace(src)) == 0 {
		p.warnf("the mail is empty")
		p.finish()
		return
	}
	if limited, cut := limitMIMEParts(src, maxMIMEParts); cut {
		p.warnf("the mail has more than %d MIME parts: only the first ones are read, the whole mail is in original.eml", maxMIMEParts)
		p.keepOriginal = true
		src = limited
	}
	if limited, cut := limitMIMEBoundaries(src, maxBoundaries); cut {
		p.warnf("the mail declares more than %d multipart boundaries: only the first parts are read, the whole mail is in original.eml", maxBoundaries)
		p.keepOriginal = true
		src = limited
	}
	if closed, ok := closeBoundaries(src); ok {
		if !p.keepOriginal { // a cut above leaves multiparts open by itself
			p.warnf("the mail ends before its multipart structure is closed: it may have been cut short, the whole mail is in original.eml")
		}
		p.keepOriginal = true
		src = closed
	}
	p.src = src
	root, ok := p.readPartsElided(src)
	var err error
	if !ok {
		root, err = p.enmimeParser().ReadParts(bytes.NewReader(src))
	}
	if err != nil || root == nil {
		p.warnf("the MIME structure could not be read (%v): the body is kept as plain text", err)
		p.keepOriginal = true
		p.readUnstructured(src)
		p.finish()
		return
	}
	p.m.Header = root.Header
	if p.m.Header == nil {
		p.m.Header = textproto.MIMEHeader{}
	}
	p.fallback = firstLegacyCharset(root)
	p.readHeaders()
	p.walk(root, partWalkState{}, 0)
	p.finish()
}

// trimBeforeHeader drops what some transports put before the header: an
// mbox "From " line, blank lines.
func trimBeforeHeader(b []byte) []byte {
	if bytes.HasPrefix(b, []byte("From ")) {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	t := bytes.TrimLeft(b, "\r\n")
	if len(t) < len(b) && looksLikeHeaderLine.Match(t) {
		return t
	}
	return b
}

var looksLikeHeaderLine = regexp.MustCompile(`^[A-Za-z0-9-]{1,76}:`)

// readUnstructured is the last resort: the header as far as it reads,
// the rest as text.
func (p *mailParser) readUnstructured(src []byte) {
	br := bufio.NewReader(bytes.NewReader(src))
	h, err := enmime.ReadHeader(br, discardMIMEErrors{})
	if err == nil && h != nil {
		p.m.Header = h
		p.readHeaders()
	}
	body, _ := io.ReadAll(br)
	if len(body) == 0 && len(p.m.Header) == 0 {
		body = src
	}
	text, _ := decodeCharset("", body)
	p.texts = append(p.texts, text)
}

type discardMIMEErrors struct{}

func (discardMIMEErrors) AddError(string, string, ...any)   {}
func (discardMIMEErrors) AddWarning(string, string, ...any) {}

// parseMediaType is enmime's tolerant parser with a last resort: a value
// it rejects still gives its type and the parameters we need, so that a
// bad Content-Type never loses a part.
func (p *mailParser) parseMediaType(v string) (string, map[string]string, []string, error) {
	if p.eliding && strings.Contains(v, elideStem) {
		p.elideLeak = true
	}
	mt, params, invalid, err := mediatype.Parse(v)
	if err == nil {
		return mt, params, invalid, nil
	}
	mt = ""
	if m := bareMediaType.FindStringSubmatch(v); m != nil {
		mt = strings.ToLower(m[1])
	}
	params = map[string]string{}
	for _, k := range []string{"boundary", "charset", "name", "filename", "report-type", "type", "start"} {
		if val, ok := mimeParamValue(v, k); ok {
			params[k] = val
		}
	}
	p.warnf("a malformed header value was read as far as possible: %q", shortenForWarning(utf8OrWindows1252([]byte(v)), 120))
	return mt, params, nil, nil
}

var bareMediaType = regexp.MustCompile(`^\s*([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)`)

// firstLegacyCharset finds the first charset of a text part that is not
// ASCII or UTF-8: the charset the mailer most likely also wrote raw
// 8-bit headers in.
func firstLegacyCharset(root *enmime.Part) string {
	var found string
	root.DepthMatchFirst(func(part *enmime.Part) bool {
		if !strings.HasPrefix(part.ContentType, "text/") && part.ContentType != "" {
			return false
		}
		if cs := lookupCharset(part.Charset); cs.kind == charsetOther {
			found = part.Charset
			return true
		}
		return false
	})
	return found
}

// Headers.

func (p *mailParser) readHeaders() {
	h := p.m.Header
	p.m.Subject = decodeHeaderText(h.Get("Subject"), p.fallback)
	if from := parseAddressList(h.Values("From"), p.fallback); len(from) > 0 {
		p.m.From = from[0]
	} else if sender := parseAddressList(h.Values("Sender"), p.fallback); len(sender) > 0 {
		p.m.From = sender[0]
	}
	if p.m.From.Addr == "" {
		if v := h.Get("From"); v != "" {
			p.warnf("the From address could not be read: %q", shortenForWarning(decodeHeaderText(v, p.fallback), 120))
		} else {
			p.warnf("the mail has no From address")
		}
	}
	p.m.To = parseAddressList(h.Values("To"), p.fallback)
	p.m.Cc = parseAddressList(h.Values("Cc"), p.fallback)
	p.m.ReplyTo = parseAddressList(h.Values("Reply-To"), p.fallback)
	var delivered []string
	for _, k := range []string{"Delivered-To", "X-Original-To"} {
		for _, a := range parseAddressList(h.Values(k), p.fallback) {
			if a.Addr != "" && !containsFoldString(delivered, a.Addr) {
				delivered = append(delivered, a.Addr)
			}
		}
	}
	p.m.DeliveredTo = delivered

	if ids := parseMessageIDs(h.Get("Message-Id"), true); len(ids) > 0 {
		p.m.MessageID = ids[0]
	}
	p.m.InReplyTo = parseMessageIDs(strings.Join(h.Values("In-Reply-To"), " "), false)
	p.m.References = capIDs(parseMessageIDs(strings.Join(h.Values("References"), " "), false))

	if v := h.Get("Date"); v != "" {
		if t, ok := parseMailDate(v); ok {
			p.m.Date = t
		} else {
			p.warnf("the Date header could not be read: %q", shortenForWarning(utf8OrWindows1252([]byte(v)), 80))
		}
	}
	if p.m.Date.IsZero() {
		// The newest Received line says when our server got it.
		if rcv := h.Get("Received"); rcv != "" {
			if i := strings.LastIndexByte(rcv, ';'); i >= 0 {
				if t, ok := parseMailDate(rcv[i+1:]); ok {
					p.m.Date = t
				}
			}
		}
	}
}

func containsFoldString(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// parseAddressList reads address headers as mailers write them. Encoded
// words are decoded first (each run re-encoded as one UTF-8 word, so a
// decoded comma cannot split a name and a character cut across two
// words is whole); net/mail then parses the list, and a list it rejects
// (unbalanced quotes, missing commas, bare names) is split by hand.
func parseAddressList(values []string, fallback string) []Address {
	var out []Address
	for _, v := range values {
		out = append(out, parseAddresses(v, fallback)...)
	}
	return out
}

func parseAddresses(v, fallback string) []Address {
	v = strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
	if v == "" {
		return nil
	}
	pre := decodeRFC2047Words(v, fallback, func(s string) string {
		return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
	})
	var out []Address
	if list, err := (&mail.AddressParser{}).ParseList(pre); err == nil && !misreadList(list, pre) {
		for _, a := range list {
			bare := normalizeMailAddr(a.Address)
			addr := Address{Name: tidyDisplayName(decodeHeaderText(a.Name, fallback), bare), Addr: bare}
			if addr.Addr != "" {
				out = append(out, addr)
			}
		}
		return out
	}
	for _, piece := range splitAddressList(pre) {
		out = append(out, looseAddresses(piece, fallback)...)
	}
	return out
}

// misreadList reports a net/mail result that took an address for a
// display name: "a@example.org b@example.org" with the comma missing.
func misreadList(list []*mail.Address, raw string) bool {
	if strings.Contains(raw, "<") {
		return false
	}
	for _, a := range list {
		if bareAddrRE.MatchString(a.Name) {
			return true
		}
	}
	return false
}

// splitAddressList splits on commas and semicolons outside quotes,
// angle brackets and comments.
func splitAddressList(s string) []string {
	var parts []string
	var quoted, escaped bool
	angle, paren, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case (c == ',' || c == ';') && angle == 0 && paren == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	parts = append(parts, s[start:])
	// An unbalanced quote swallowed the list: split on commas that are
	// followed by something with an address.
	if quoted && len(parts) == 1 && strings.Count(s, "@") > 1 {
		parts = strings.Split(s, ",")
	}
	return parts
}

var (
	angleAddrRE  = regexp.MustCompile(`<\s*([^<>\s]*)\s*>`)
	bareAddrRE   = regexp.MustCompile(`[^\s<>()",;:]+@[^\s<>()",;:]+`)
	parenComment = regexp.MustCompile(`\(([^()]*)\)`)
)

func looseAddresses(piece, fallback string) []Address {
	piece = strings.TrimSpace(piece)
	if !strings.Contains(piece, "<") {
		if all := bareAddrRE.FindAllString(piece, -1); len(all) > 1 {
			var out []Address
			for _, a := range all {
				if a = normalizeMailAddr(a); a != "" {
					out = append(out, Address{Addr: a})
				}
			}
			return out
		}
	}
	if a, ok := looseAddress(piece, fallback); ok {
		return []Address{a}
	}
	return nil
}

func looseAddress(piece, fallback string) (Address, bool) {
	// Group syntax "name: a@x" keeps the address.
	if i := strings.IndexByte(piece, ':'); i >= 0 && !strings.Contains(piece[:i], "@") && !strings.ContainsAny(piece[:i], `"<`) {
		piece = strings.TrimSpace(piece[i+1:])
	}
	if piece == "" {
		return Address{}, false
	}
	var name, addr string
	if m := angleAddrRE.FindStringSubmatchIndex(piece); m != nil {
		addr = piece[m[2]:m[3]]
		name = piece[:m[0]] + " " + piece[m[1]:]
	} else if m := bareAddrRE.FindStringIndex(piece); m != nil {
		addr = piece[m[0]:m[1]]
		name = piece[:m[0]] + " " + piece[m[1]:]
	} else {
		return Address{}, false
	}
	if name = strings.TrimSpace(name); strings.HasPrefix(name, "(") {
		name = parenComment.ReplaceAllString(name, "$1")
	}
	name = strings.ReplaceAll(name, `\"`, `"`)
	name = strings.Trim(name, ` "'`)
	addr = normalizeMailAddr(addr)
	a := Address{Name: tidyDisplayName(decodeHeaderText(name, fallback), addr), Addr: addr}
	return a, a.Addr != ""
}

// tidyDisplayName drops the quotes and the address some mailers repeat as a
// display name.
func tidyDisplayName(n, addr string) string {
	n = strings.TrimSpace(strings.Trim(strings.TrimSpace(n), `"'`))
	if strings.EqualFold(strings.Trim(n, "<>"), addr) {
		return ""
	}
	return n
}

// normalizeMailAddr lower-cases the domain of an address and drops the
// brackets, quotes and "mailto:" mailers leave around it.
func normalizeMailAddr(a string) string {
	a = strings.TrimSpace(a)
	a = strings.Trim(a, `<>"' `)
	a = strings.TrimPrefix(strings.TrimPrefix(a, "mailto:"), "MAILTO:")
	a = flattenHeaderText(decodeRaw8bit([]byte(a), ""))
	if a == "" || strings.ContainsAny(a, " \t") {
		return ""
	}
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return a
	}
	return a[:i] + "@" + strings.ToLower(a[i+1:])
}

// parseMessageIDs returns the message ids of a Message-ID, In-Reply-To or
// References value without angle brackets, in order, once each. Ids
// without brackets are accepted when they hold "@" (or, with single, when
// the value is one token); comments and junk around them are ignored.
func parseMessageIDs(v string, single bool) []string {
	v = strings.NewReplacer("\r", " ", "\n", " ", "\t", " ").Replace(v)
	v = stripHeaderComments(v)
	var ids []string
	add := func(id string) {
		id = strings.Trim(strings.TrimSpace(id), `"',;`)
		id = strings.ReplaceAll(id, " ", "")
		id = decodeRaw8bit([]byte(id), "")
		if id == "" || len(id) > 998 {
			return
		}
		for _, have := range ids {
			if have == id {
				return
			}
		}
		ids = append(ids, id)
	}
	for _, m := range bracketedMsgID.FindAllStringSubmatch(v, -1) {
		add(m[1])
	}
	if len(ids) > 0 {
		return ids
	}
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	for _, f := range fields {
		f = strings.Trim(f, "<>")
		if strings.Contains(f, "@") || (single && len(fields) == 1) {
			add(f)
		}
	}
	return ids
}

var bracketedMsgID = regexp.MustCompile(`<([^<>]*)>`)

// stripHeaderComments removes RFC 5322 comments (parenthesized, nested) that
// are outside angle brackets.
func stripHeaderComments(v string) string {
	if !strings.Contains(v, "(") {
		return v
	}
	var sb strings.Builder
	depth, angle := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case angle:
			if c == '>' {
				angle = false
			}
		case c == '<' && depth == 0:
			angle = true
		case c == '(':
			depth++
			continue
		case c == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			sb.WriteByte(c)
		} else if c == ' ' {
			continue
		}
	}
	return sb.String()
}

// capIDs keeps long References lists bounded: the first id (the root of
// the thread) and the newest ones.
func capIDs(ids []string) []string {
	const maxRefs = 100
	if len(ids) <= maxRefs {
		return ids
	}
	out := append([]string{ids[0]}, ids[len(ids)-maxRefs+1:]...)
	return out
}

var mailDateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 -0700 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 MST",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04 -0700",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Monday, 2 Jan 2006 15:04:05 -0700",
	"Monday, January 2, 2006 3:04 PM",
	"Monday, January 2, 2006 15:04",
	"Mon, Jan 2, 2006 at 3:04 PM",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
	"02.01.2006 15:04:05",
	"2 Jan 2006",
}

var runOfSpaces = regexp.MustCompile(`\s+`)

const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseMailDate reads the dates mailers write: RFC 5322 and its obsolete
// forms, zone names, comments, missing weekday or seconds, ISO 8601.
func parseMailDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(runOfSpaces.ReplaceAllString(stripHeaderComments(v), " "))
	if v == "" {
		return time.Time{}, false
	}
	ok := func(t time.Time) bool { return t.Year() >= 1970 && t.Year() <= 9999 }
	// Most mail writes the RFC 5322 form: mail.ParseDate tries 24 layouts
	// without a weekday first, each failing with an error built for
	// nothing. For a value this layout reads, those fail on the weekday
	// and ParseDate returns what this gives.
	if t, err := time.Parse(rfc5322Date, v); err == nil && ok(t) {
		return t, true
	}
	if t, err := mail.ParseDate(v); err == nil && ok(t) {
		return t, true
	}
	candidates := []string{v}
	// "Thu, 11 Apr 2024 09:15:02 +0200 CEST", "GMT+0200", a stray dot.
	v2 := strings.TrimSuffix(strings.ReplaceAll(v, "GMT+", "+"), ".")
	v2 = strings.ReplaceAll(v2, ",,", ",")
	candidates = append(candidates, v2)
	if i := strings.IndexByte(v2, ','); i >= 0 && i < 10 {
		candidates = append(candidates, strings.TrimSpace(v2[i+1:]))
	}
	for _, c := range candidates {
		for _, l := range mailDateLayouts {
			if t, err := time.Parse(l, c); err == nil && ok(t) {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// The part tree.

type partWalkState struct {
	alternative bool // inside multipart/alternative
	related     bool // inside multipart/related
	report      bool // inside multipart/report
}

func (p *mailParser) collectErrors(part *enmime.Part) {
	for _, e := range part.Errors {
		if e == nil {
			continue
		}
		switch e.Name {
		case enmime.ErrorMissingContentType:
			continue // RFC 2045 gives the default; nothing is lost
		case enmime.ErrorMalformedHeader, enmime.ErrorMissingBoundary, enmime.ErrorMalformedChildPart, enmime.ErrorDataHasBoundary:
			p.keepOriginal = true
		}
		where := "the mail"
		if part.PartID != "" && part.PartID != "0" {
			where = "part " + part.PartID
		}
		p.warnf("%s: %s: %s", where, strings.ToLower(e.Name), shortenForWarning(utf8OrWindows1252([]byte(e.Detail)), 160))
	}
}

func (p *mailParser) walk(part *enmime.Part, st partWalkState, depth int) {
	if part == nil {
		return
	}
	p.collectErrors(part)
	if depth > maxPartDepth {
		p.warnf("parts nested deeper than %d levels are kept only in the original", maxPartDepth)
		p.keepOriginal = true
		return
	}
	ct := part.ContentType
	if ct == "multipart/report" && p.m.Report == nil {
		rt, _ := mimeParamValue(part.Header.Get("Content-Type"), "report-type")
		p.m.Report = &Report{ReportType: strings.ToLower(flattenHeaderText(rt))}
	}
	if strings.HasPrefix(ct, "multipart/") {
		if part.FirstChild == nil {
			p.reparseMultipart(part, st, depth)
			return
		}
		p.walkMultipart(part, st, depth)
		return
	}
	p.leaf(part, st)
}

func (p *mailParser) walkMultipart(part *enmime.Part, st partWalkState, depth int) {
	switch part.ContentType {
	case "multipart/alternative":
		st.alternative = true
	case "multipart/related":
		st.related = true
	case "multipart/report":
		st.report = true
	}
	if part.ContentType != "multipart/alternative" {
		for c := part.FirstChild; c != nil; c = c.NextSibling {
			p.walk(c, st, depth+1)
		}
		return
	}
	// Of the alternatives we keep one plain text and one HTML (with its
	// related parts); other renderings of the same content (text/enriched,
	// Apple's text/watch-html) are left out, calendar invitations kept.
	var plain, html *enmime.Part
	for c := part.FirstChild; c != nil; c = c.NextSibling {
		switch {
		case strings.HasPrefix(c.ContentType, "multipart/"):
			p.walk(c, st, depth+1)
		case c.ContentType == "text/plain" && !isAttachmentPart(c) && plain == nil:
			plain = c
		case c.ContentType == "text/html" && !isAttachmentPart(c):
			html = c
		case c.ContentType == "text/plain" || c.ContentType == "text/html" ||
			c.ContentType == "text/enriched" || c.ContentType == "text/richtext" || c.ContentType == "text/watch-html":
			p.collectErrors(c)
		default:
			p.walk(c, st, depth+1)
		}
	}
	if plain != nil {
		p.walk(plain, st, depth+1)
	}
	if html != nil {
		p.walk(html, st, depth+1)
	}
}

// reparseMultipart reads a multipart whose boundary parameter is missing
// or wrong, with the boundary its first delimiter line shows.
func (p *mailParser) reparseMultipart(part *enmime.Part, st partWalkState, depth int) {
	content := part.Content
	if len(content) == 0 && part.Parent == nil {
		// enmime skipped the whole body looking for the boundary it was
		// given: read the body again from the source.
		content = bodyAfterHeader(p.src)
	}
	b := guessBoundary(content)
	if b == "" || b == part.Boundary {
		p.warnf("a %s part has no readable boundary: its content is kept as text", part.ContentType)
		p.keepOriginal = true
		p.addText(part, content)
		return
	}
	p.warnf("a %s part has no usable boundary parameter: read with the boundary %q found in its content", part.ContentType, shortenForWarning(b, 70))
	p.keepOriginal = true
	hdr := "Content-Type: " + part.ContentType + "; boundary=\"" + strings.ReplaceAll(b, `"`, `\"`) + "\"\r\n\r\n"
	sub, err := p.enmimeParser().ReadParts(bytes.NewReader(append([]byte(hdr), content...)))
	if err != nil || sub == nil || sub.FirstChild == nil {
		p.addText(part, content)
		return
	}
	sub.PartID = part.PartID
	p.walk(sub, st, depth+1)
}

var mimeDelimiterLine = regexp.MustCompile(`(?m)^--([^\s]{1,70})\s*$`)

// bodyAfterHeader returns what follows the header block of a mail.
func bodyAfterHeader(msg []byte) []byte {
	return msg[len(headerBlockOf(msg)):]
}

func guessBoundary(content []byte) string {
	m := mimeDelimiterLine.FindSubmatch(content)
	if m == nil {
		return ""
	}
	return strings.TrimSuffix(string(m[1]), "--")
}

func isAttachmentPart(part *enmime.Part) bool {
	return strings.EqualFold(part.Disposition, "attachment")
}

// leaf handles a part that holds content.
func (p *mailParser) leaf(part *enmime.Part, st partWalkState) {
	data := p.transferDecode(part)
	ct := part.ContentType
	if ct == "" {
		ct = "text/plain" // RFC 2045 default
	}
	name := p.partFilename(part)
	switch {
	case st.report && (ct == "message/delivery-status" || ct == "message/global-delivery-status"):
		if p.m.Report != nil && p.m.Report.DeliveryStatus == nil {
			p.m.Report.DeliveryStatus = data
			return
		}
	case st.report && (ct == "text/rfc822-headers" || ct == "message/global-headers"):
		if p.m.Report != nil && p.m.Report.OriginalHeaders == nil {
			p.m.Report.OriginalHeaders = data
			return
		}
	case ct == "text/plain" || ct == "text/html":
		// A named text part is a file, except as one rendering of an
		// alternative.
		if !isAttachmentPart(part) && (name == "" || st.alternative) {
			p.addText(part, data)
			return
		}
	}
	if (ct == "message/rfc822" || ct == "message/global") && st.report && p.m.Report != nil && p.m.Report.OriginalHeaders == nil {
		p.m.Report.OriginalHeaders = headerBlockOf(data)
	}
	if isTNEF(ct, name) {
		p.readTNEF(data)
	}
	p.addAttachment(part, ct, name, data, st)
}

// transferDecode undoes the Content-Transfer-Encoding, keeping what
// decodes of a broken base64 or quoted-printable body.
func (p *mailParser) transferDecode(part *enmime.Part) []byte {
	cte := strings.ToLower(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding")))
	if i := strings.IndexAny(cte, "; "); i >= 0 {
		cte = cte[:i]
	}
	cte = strings.Trim(cte, `"'`)
	switch cte {
	case "base64", "base-64":
		out, bad := decodeBase64Lenient(part.Content)
		if bad {
			p.warnf("%s: broken base64 was decoded as far as possible", p.partLabel(part))
			p.keepOriginal = true
		}
		return out
	case "quoted-printable", "quoted_printable", "qp":
		out, bad := decodeQPLenient(part.Content)
		if bad {
			p.warnf("%s: malformed quoted-printable escapes were kept as written", p.partLabel(part))
		}
		return out
	case "", "7bit", "8bit", "binary", "7-bit", "8-bit":
		return part.Content
	default:
		p.warnf("%s: unknown transfer encoding %q: the content is kept as received", p.partLabel(part), shortenForWarning(cte, 40))
		return part.Content
	}
}

func (p *mailParser) partLabel(part *enmime.Part) string {
	if part.PartID == "" || part.PartID == "0" {
		return "the body"
	}
	return "part " + part.PartID
}

// addText adds a text body part, converted to UTF-8.
func (p *mailParser) addText(part *enmime.Part, data []byte) {
	label := part.Charset
	isHTML := part.ContentType == "text/html"
	if label == "" && isHTML {
		label = htmlMetaCharset(data)
	}
	text, w := decodeCharset(label, data)
	if w != "" {
		p.warnf("%s: %s", p.partLabel(part), w)
	}
	if isHTML {
		p.htmls = append(p.htmls, text)
		return
	}
	ct := part.Header.Get("Content-Type")
	if f, _ := mimeParamValue(ct, "format"); strings.EqualFold(strings.TrimSpace(f), "flowed") {
		delsp, _ := mimeParamValue(ct, "delsp")
		text = unflow(text, strings.EqualFold(strings.TrimSpace(delsp), "yes"))
	}
	p.texts = append(p.texts, text)
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676), as
// Thunderbird and Apple Mail send it: a line ending in a space continues
// on the next line of the same quote depth. The signature separator
// "-- " is never joined.
func unflow(text string, delsp bool) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var out []string
	var cur strings.Builder
	open, openDepth := false, 0
	for _, line := range lines {
		depth := 0
		for depth < len(line) && line[depth] == '>' {
			depth++
		}
		content := strings.TrimPrefix(line[depth:], " ") // space-stuffing
		if open && depth != openDepth {
			out = append(out, cur.String())
			cur.Reset()
			open = false
		}
		if !open {
			cur.WriteString(line[:depth])
			if depth > 0 {
				cur.WriteByte(' ')
			}
		}
		soft := strings.HasSuffix(content, " ") && content != "-- "
		if soft && delsp {
			content = content[:len(content)-1]
		}
		cur.WriteString(content)
		if soft {
			open, openDepth = true, depth
			continue
		}
		out = append(out, cur.String())
		cur.Reset()
		open = false
	}
	if open {
		out = append(out, cur.String())
	}
	return strings.Join(out, "\n")
}

var metaCharset = regexp.MustCompile(`(?i)<meta[^>]*charset\s*=\s*["']?\s*([a-z0-9_.:-]+)`)

func htmlMetaCharset(b []byte) string {
	head := b
	if len(head) > 4096 {
		head = head[:4096]
	}
	if m := metaCharset.FindSubmatch(head); m != nil {
		return string(m[1])
	}
	return ""
}

// headerBlockOf returns the header of a message: everything up to the
// first empty line.
func headerBlockOf(msg []byte) []byte {
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(msg, sep); i >= 0 {
			return msg[:i+len(sep)/2]
		}
	}
	return msg
}

func (p *mailParser) addAttachment(part *enmime.Part, ct, name string, data []byte, st partWalkState) {
	p.attachIndex++
	if name == "" {
		name = derivedFilename(ct, data, p.attachIndex)
	}
	inline := strings.EqualFold(part.Disposition, "inline") ||
		(part.Disposition == "" && st.related && part.ContentID != "")
	p.m.Attachments = append(p.m.Attachments, connectors.Attachment{
		Filename:    name,
		ContentType: ct,
		Data:        data,
		ContentID:   tidyContentID(part.ContentID),
		Inline:      inline,
	})
}

func tidyContentID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimPrefix(strings.TrimSuffix(id, ">"), "<")
	return flattenHeaderText(decodeRaw8bit([]byte(strings.TrimSpace(id)), ""))
}

func isTNEF(ct, name string) bool {
	return ct == "application/ms-tnef" || ct == "application/vnd.ms-tnef" || strings.EqualFold(name, "winmail.dat")
}

// readTNEF adds the files and the body inside an Outlook winmail.dat (C09).
// A TNEF that cannot be read never fails the mail: winmail.dat stays.
func (p *mailParser) readTNEF(data []byte) {
	msg, err := decodeTNEF(data)
	if err != nil {
		p.warnf("winmail.dat could only be read in part: %v", err)
	}
	if msg == nil {
		return
	}
	for _, name := range msg.Lost {
		p.warnf("winmail.dat: the file %q could not be extracted (it stays inside winmail.dat)", safeAttachmentName(name))
	}
	for _, a := range msg.Attachments {
		p.attachIndex++
		name := safeAttachmentName(a.Name)
		ct := a.MIMEType
		if ct == "" {
			ct = attachmentTypeByExt(name)
		}
		if name == "" {
			name = derivedFilename(ct, a.Data, p.attachIndex)
		}
		p.m.Attachments = append(p.m.Attachments, connectors.Attachment{Filename: name, ContentType: ct, Data: a.Data})
	}
	if strings.TrimSpace(msg.Body) != "" {
		p.tnefBodies = append(p.tnefBodies, msg.Body)
	}
}

// File names.

// partFilename is the file name of a part: Content-Disposition's
// filename, else Content-Type's name (RFC 2231 continuations and
// charsets, RFC 2047 words, raw 8-bit); "" when neither is given.
func (p *mailParser) partFilename(part *enmime.Part) string {
	for _, src := range []struct{ header, mimeParam string }{
		{"Content-Disposition", "filename"},
		{"Content-Type", "name"},
		{"Content-Type", "filename"},
		{"Content-Disposition", "name"},
	} {
		if v, ok := mimeParamValue(part.Header.Get(src.header), src.mimeParam); ok {
			if n := safeAttachmentName(decodeHeaderText(v, p.fallback)); n != "" {
				return n
			}
		}
	}
	if part.FileName != "" {
		return safeAttachmentName(decodeHeaderText(part.FileName, p.fallback))
	}
	return ""
}

// mimeParamValue returns one parameter of a structured header value such as
// Content-Disposition. It reads RFC 2231 continuations (name*0, name*1)
// and charset-encoded values (name*=charset'lang'value, name*0*=…), joining the
// bytes of all segments before converting them so that a character cut
// between two segments is whole (C11). A plain value is returned as
// written (RFC 2047 words still encoded).
func mimeParamValue(header, key string) (string, bool) {
	key = strings.ToLower(key)
	var plain string
	var havePlain bool
	segs := map[int]mimeParamSeg{}
	maxSeg := -1
	for _, kv := range splitMIMEParams(header) {
		name := strings.ToLower(kv.name)
		if name == key {
			if !havePlain {
				plain, havePlain = kv.value, true
			}
			continue
		}
		if !strings.HasPrefix(name, key+"*") {
			continue
		}
		rest := name[len(key)+1:]
		encoded := strings.HasSuffix(rest, "*")
		rest = strings.TrimSuffix(rest, "*")
		n := 0
		if rest != "" {
			var err error
			if n, err = strconv.Atoi(rest); err != nil || n < 0 || n > 999 {
				continue
			}
		} else {
			encoded = true // "name*=" is one encoded segment
		}
		if _, dup := segs[n]; !dup {
			segs[n] = mimeParamSeg{value: kv.value, encoded: encoded}
		}
		if n > maxSeg {
			maxSeg = n
		}
	}
	if len(segs) == 0 {
		return plain, havePlain
	}
	var charset string
	var buf []byte
	for i := 0; i <= maxSeg; i++ {
		s, ok := segs[i]
		if !ok {
			break // a gap ends the value (RFC 2231 section 3)
		}
		v := s.value
		if s.encoded {
			if i == 0 {
				if parts := strings.SplitN(v, "'", 3); len(parts) == 3 {
					charset, v = parts[0], parts[2]
				}
			}
			buf = append(buf, rfc2231Unescape(v)...)
		} else {
			buf = append(buf, v...)
		}
	}
	if len(buf) == 0 && havePlain {
		return plain, true
	}
	text, _ := decodeCharset(charset, buf)
	if charset == "" {
		text = decodeRaw8bit(buf, "")
	}
	return text, true
}

type mimeParamSeg struct {
	value   string
	encoded bool
}

type mimeParam struct{ name, value string }

// splitMIMEParams splits "type; a=1; b="two; three"" into its parameters,
// tolerating missing quotes and semicolons inside quoted values.
func splitMIMEParams(v string) []mimeParam {
	var out []mimeParam
	i := strings.IndexByte(v, ';')
	if i < 0 {
		return nil
	}
	s := v[i+1:]
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t\r\n;")
		eq := strings.IndexAny(s, "=;")
		if eq < 0 {
			break
		}
		if s[eq] == ';' {
			s = s[eq+1:]
			continue
		}
		name := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var sb strings.Builder
			j := 1
			for ; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					sb.WriteByte(s[j])
					continue
				}
				if s[j] == '"' {
					break
				}
				sb.WriteByte(s[j])
			}
			val = sb.String()
			if j < len(s) {
				s = s[j+1:]
			} else {
				s = ""
			}
		} else {
			end := strings.IndexByte(s, ';')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		if name != "" {
			out = append(out, mimeParam{name: name, value: val})
		}
	}
	return out
}

func rfc2231Unescape(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			out = append(out, hexDigitValue(s[i+1])<<4|hexDigitValue(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// safeAttachmentName keeps the last path element of a name (no directory
// tricks), without control characters, at most 255 bytes with its
// extension kept; placeholder names ("noname") are dropped so that a name
// with an extension is derived instead.
func safeAttachmentName(n string) string {
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, n)
	n = strings.ReplaceAll(n, `\`, "/")
	n = strings.TrimSpace(path.Base(strings.TrimRight(n, "/ ")))
	n = strings.Trim(n, " .")
	switch strings.ToLower(n) {
	case "", ".", "/", "noname", "unnamed", "untitled", "attachment", "none", "null":
		return ""
	}
	if len(n) > 255 {
		ext := path.Ext(n)
		if len(ext) > 16 || !utf8.ValidString(ext) {
			ext = ""
		}
		base := n[:255-len(ext)]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		n = base + ext
	}
	return n
}

var attachmentExtByType = map[string]string{
	"application/pdf":              ".pdf",
	"application/zip":              ".zip",
	"application/x-zip-compressed": ".zip",
	"application/msword":           ".doc",
	"application/vnd.ms-excel":     ".xls",
	"application/xml":              ".xml",
	"application/json":             ".json",
	"application/octet-stream":     ".bin",
	"application/rtf":              ".rtf",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
	"application/pkcs7-signature":                                               ".p7s",
	"application/x-pkcs7-signature":                                             ".p7s",
	"application/pgp-signature":                                                 ".asc",
	"application/pgp-encrypted":                                                 ".pgp",
	"application/ics":                                                           ".ics",
	"application/ms-tnef":                                                       ".dat",
	"application/vnd.ms-tnef":                                                   ".dat",
	"image/png":                                                                 ".png",
	"image/jpeg":                                                                ".jpg",
	"image/jpg":                                                                 ".jpg",
	"image/pjpeg":                                                               ".jpg",
	"image/gif":                                                                 ".gif",
	"image/webp":                                                                ".webp",
	"image/bmp":                                                                 ".bmp",
	"image/tiff":                                                                ".tif",
	"image/svg+xml":                                                             ".svg",
	"image/heic":                                                                ".heic",
	"text/plain":                                                                ".txt",
	"text/html":                                                                 ".html",
	"text/calendar":                                                             ".ics",
	"text/csv":                                                                  ".csv",
	"text/xml":                                                                  ".xml",
	"text/vcard":                                                                ".vcf",
	"text/x-vcard":                                                              ".vcf",
	"text/rfc822-headers":                                                       ".txt",
	"text/enriched":                                                             ".txt",
	"message/rfc822":                                                            ".eml",
	"message/global":                                                            ".eml",
	"message/delivery-status":                                                   ".txt",
	"audio/mpeg":                                                                ".mp3",
	"audio/wav":                                                                 ".wav",
	"audio/ogg":                                                                 ".ogg",
	"video/mp4":                                                                 ".mp4",
	"video/quicktime":                                                           ".mov",
}

// attachmentTypeByExt gives files from winmail.dat a type when TNEF
// names none (our own table: the system's MIME table differs between
// machines).
func attachmentTypeByExt(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".pdf":
		return "application/pdf"
	case ".txt", ".log", ".csv":
		return "text/plain"
	case ".htm", ".html":
		return "text/html"
	case ".xml":
		return "application/xml"
	case ".zip":
		return "application/zip"
	case ".doc":
		return "application/msword"
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".xls":
		return "application/vnd.ms-excel"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".rtf":
		return "application/rtf"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".eml":
		return "message/rfc822"
	case ".ics":
		return "text/calendar"
	}
	return "application/octet-stream"
}

// derivedFilename names a part that has no name, from its type: a
// forwarded mail by its subject, "winmail.dat" for TNEF, else
// "attachment-N.ext" / "image-N.ext".
func derivedFilename(ct string, data []byte, n int) string {
	switch ct {
	case "message/rfc822", "message/global":
		if subj := innerSubject(data); subj != "" {
			if name := safeAttachmentName(strings.ReplaceAll(subj, "/", "-")); name != "" {
				return shortenForWarning(name, 200) + ".eml"
			}
		}
		return "message-" + strconv.Itoa(n) + ".eml"
	case "application/ms-tnef", "application/vnd.ms-tnef":
		return "winmail.dat"
	}
	base := "attachment-"
	if strings.HasPrefix(ct, "image/") {
		base = "image-"
	}
	return base + strconv.Itoa(n) + attachmentExtByType[ct]
}

func innerSubject(msg []byte) string {
	h, err := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(headerBlockOf(msg))), discardMIMEErrors{})
	if err != nil && h == nil {
		return ""
	}
	return decodeHeaderText(h.Get("Subject"), "")
}

// shortenForWarning cuts s to at most n bytes on a character boundary.
func shortenForWarning(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Finishing.

// htmlToText is the readable text of an HTML body (no tags, scripts or
// styles), for mail that came as HTML only.
func htmlToText(html string) (string, error) {
	text, err := html2text.FromString(html)
	return tidyBody(text), err
}

func (p *mailParser) finish() {
	m := p.m
	m.Text = joinBodies(p.texts, "\n\n")
	m.HTML = joinBodies(p.htmls, "\n")
	if m.Text == "" && m.HTML != "" {
		text, err := htmlToText(m.HTML)
		if err != nil {
			p.warnf("the HTML body could not be turned into text: %v", err)
		}
		m.Text, m.TextFromHTML = text, true
	}
	if m.Text == "" && len(p.tnefBodies) > 0 {
		m.Text = joinBodies(p.tnefBodies, "\n\n")
	}
	m.Subject = utf8NoNUL(m.Subject)
	if p.keepOriginal {
		p.keepOriginal = false // once, should finish run again after a panic
		m.Attachments = append(m.Attachments, connectors.Attachment{
			Filename:    "original.eml",
			ContentType: "message/rfc822",
			Data:        bytes.Clone(p.raw),
		})
	}
	// Everything we hand on is valid UTF-8 without NUL (which no
	// database text column takes).
	m.From = tidyAddress(m.From)
	for _, list := range [][]Address{m.To, m.Cc, m.ReplyTo} {
		for i := range list {
			list[i] = tidyAddress(list[i])
		}
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		a.Filename = utf8NoNUL(a.Filename)
		a.ContentType = utf8NoNUL(a.ContentType)
		a.ContentID = utf8NoNUL(a.ContentID)
	}
	m.MessageID = utf8NoNUL(m.MessageID)
	for _, ids := range [][]string{m.InReplyTo, m.References, m.DeliveredTo, m.Warnings} {
		for i := range ids {
			ids[i] = flattenHeaderText(utf8NoNUL(ids[i]))
		}
	}
}

func tidyAddress(a Address) Address {
	return Address{Name: utf8NoNUL(a.Name), Addr: utf8NoNUL(a.Addr)}
}

// utf8NoNUL makes s valid UTF-8 without NUL bytes.
func utf8NoNUL(s string) string {
	if !utf8.ValidString(s) {
		s = utf8OrWindows1252([]byte(s))
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func joinBodies(parts []string, sep string) string {
	var kept []string
	for _, s := range parts {
		if s = tidyBody(s); s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, sep)
}

// tidyBody normalizes line endings to "\n" and trims the blank lines and
// trailing spaces around a body; inner line breaks stay as written.
func tidyBody(s string) string {
	s = utf8NoNUL(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	// Control characters other than tab and newline are binary debris.
	// s is valid UTF-8 here, so they are single bytes: look for one
	// before mapping the runes of a whole body.
	if hasDebris(s) {
		s = strings.Map(func(r rune) rune {
			if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f {
				return -1
			}
			return r
		}, s)
	}
	s = strings.TrimRight(s, " \t\n")
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 || strings.TrimSpace(s[:i]) != "" {
			return s
		}
		s = s[i+1:]
	}
}

// hasDebris reports whether s holds an ASCII control character other
// than tab and newline.
func hasDebris(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f {
			return true
		}
	}
	return false
}
