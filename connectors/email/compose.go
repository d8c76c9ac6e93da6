package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime"
	"net/mail"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/idna"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Bounds of what composeReply writes. Long values are cut rather than
// refused: a reply must always leave (nothing is dropped), and no header
// line may pass 998 octets (RFC 5322 2.1.1).
const (
	composeMaxReferences = 20  // References kept: the root and the newest others
	composeMaxNameRunes  = 200 // display names
	composeMaxSubject    = 400 // subject runes, before the reply prefix and tag
	composeMaxFilename   = 120 // attachment file names, extension kept
	composeMaxMsgIDLen   = 250
)

// composeReply turns an agent's reply (or an automatic acknowledgement)
// into a complete RFC 5322 message, ready for smtpSender.Send, and
// returns it with its Message-ID (without angle brackets).
//
// The result is a pure function of its arguments: the Message-ID comes
// from newMessageID and the MIME boundaries from the Message-ID, so a
// retry of the same outbound message sends the same bytes and the same id
// (recipients' clients and our own dedup see one message).
//
// Everything is written as 7-bit ASCII: headers with RFC 2047 encoded
// words, bodies in quoted-printable (text) or base64 (files), so any relay
// takes it without 8BITMIME. Names and subjects are cleaned of control
// characters first, so no input can add a header line.
func composeReply(s Settings, out connectors.Outbound, now time.Time) (raw []byte, messageID string, err error) {
	from, err := normalizeAddress(s.Address)
	if err != nil {
		return nil, "", connectors.NewError(connectors.Permanent, "email_config",
			"The email channel has no valid support address", err)
	}
	to, err := composeRecipient(s, out.To)
	if err != nil {
		return nil, "", err
	}
	if out.MessageID == 0 && out.IdempotencyKey == "" {
		// Without either, every such message would get the same
		// Message-ID and mail clients would hide all but the first.
		return nil, "", connectors.NewError(connectors.Permanent, "email_no_id",
			"The reply has no message id to build a Message-ID from", nil)
	}

	idDomain := s.MessageIDDomain
	if idDomain == "" {
		idDomain = domainOf(from)
	}
	messageID = newMessageID(idDomain, out.TicketNumber, out.MessageID, out.IdempotencyKey)
	seed := sha256.Sum256([]byte(messageID))
	boundary := "=_sb-" + hex.EncodeToString(seed[:8])

	tag := s.SubjectTag == nil || *s.SubjectTag
	refs := composeReferences(out.References)

	// go-message writes header fields in the reverse order of Add; this
	// list is in the order they appear on the wire.
	fields := [][2]string{
		{"Date", now.Format("Mon, 02 Jan 2006 15:04:05 -0700")},
		{"From", (&mail.Address{Name: composeFromName(s.FromName, out.AuthorName), Address: from}).String()},
		{"To", to.String()},
	}
	if s.PlusAddressing && out.TicketNumber > 0 {
		local, domain, _ := strings.Cut(from, "@")
		plus := local + "+t" + strconv.FormatInt(out.TicketNumber, 10) + "@" + domain
		fields = append(fields, [2]string{"Reply-To", (&mail.Address{Address: plus}).String()})
	}
	fields = append(fields,
		[2]string{"Subject", composeEncodeText(composeSubject(out.Subject, out.TicketNumber, tag))},
		[2]string{"Message-ID", "<" + messageID + ">"},
	)
	if len(refs) > 0 {
		fields = append(fields,
			[2]string{"In-Reply-To", "<" + refs[len(refs)-1] + ">"},
			[2]string{"References", "<" + strings.Join(refs, "> <") + ">"},
		)
	}
	if out.Automatic {
		// RFC 3834, and Exchange's own switch: no out-of-office or
		// read receipt should answer our acknowledgement (C07).
		fields = append(fields,
			[2]string{"Auto-Submitted", "auto-replied"},
			[2]string{"X-Auto-Response-Suppress", "All"},
		)
	}
	fields = append(fields, [2]string{"MIME-Version", "1.0"})

	var files []connectors.Attachment
	var links []connectors.Attachment
	for _, a := range out.Attachments {
		if len(a.Data) == 0 && a.URL != "" {
			links = append(links, a)
			continue
		}
		files = append(files, a)
	}
	text, htmlBody := composeBodies(out.Text, out.HTML, links)

	var buf bytes.Buffer
	if len(files) == 0 {
		fields = append(fields, [2]string{"Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": boundary + "-alt"})})
		err = composeAlternative(&buf, composeHeader(fields), text, htmlBody)
	} else {
		fields = append(fields, [2]string{"Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary + "-mix"})})
		err = composeMixed(&buf, composeHeader(fields), boundary, text, htmlBody, files)
	}
	if err != nil {
		// Only a bug can get here: every value was cleaned above.
		return nil, "", connectors.NewError(connectors.Permanent, "email_compose",
			"The reply could not be written as an email", err)
	}
	return buf.Bytes(), messageID, nil
}

// composeHeader builds a header whose fields are written in the order of
// fields.
func composeHeader(fields [][2]string) message.Header {
	var h message.Header
	for i := len(fields) - 1; i >= 0; i-- {
		h.Add(fields[i][0], fields[i][1])
	}
	return h
}

func composeAlternative(w io.Writer, h message.Header, text, htmlBody string) error {
	mw, err := message.CreateWriter(w, h)
	if err != nil {
		return err
	}
	if err := composeTextParts(mw, text, htmlBody); err != nil {
		return err
	}
	return mw.Close()
}

func composeMixed(w io.Writer, h message.Header, boundary, text, htmlBody string, files []connectors.Attachment) error {
	mw, err := message.CreateWriter(w, h)
	if err != nil {
		return err
	}
	var ah message.Header
	ah.Set("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": boundary + "-alt"}))
	alt, err := mw.CreatePart(ah)
	if err != nil {
		return err
	}
	if err := composeTextParts(alt, text, htmlBody); err != nil {
		return err
	}
	if err := alt.Close(); err != nil {
		return err
	}
	for i, a := range files {
		pw, err := mw.CreatePart(composeAttachmentHeader(a, i+1))
		if err != nil {
			return err
		}
		if _, err := pw.Write(a.Data); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return mw.Close()
}

func composeTextParts(mw *message.Writer, text, htmlBody string) error {
	for _, p := range []struct{ typ, body string }{
		{"text/plain", text},
		{"text/html", htmlBody},
	} {
		var h message.Header
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		h.Set("Content-Type", mime.FormatMediaType(p.typ, map[string]string{"charset": "utf-8"}))
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(pw, p.body); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func composeAttachmentHeader(a connectors.Attachment, n int) message.Header {
	typ, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil || strings.HasPrefix(typ, "multipart/") || !strings.Contains(typ, "/") {
		// A multipart type would make the file's bytes look like MIME
		// structure; anything unreadable is just a file.
		typ, params = "application/octet-stream", nil
	}
	clean := map[string]string{}
	if cs, ok := params["charset"]; ok && composeIsToken(cs) {
		clean["charset"] = cs
	}
	name := composeFilename(a.Filename, typ, n)
	// Outlook and older clients read the name from Content-Type (RFC 2047
	// words), the rest from Content-Disposition (RFC 2231).
	clean["name"] = mime.QEncoding.Encode("utf-8", name)

	disp := "attachment"
	if a.Inline && a.ContentID != "" {
		disp = "inline"
	}
	var h message.Header
	h.Set("Content-Transfer-Encoding", "base64")
	if cid := strings.Trim(strings.TrimSpace(a.ContentID), "<>"); composeValidContentID(cid) {
		h.Set("Content-ID", "<"+cid+">")
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": name}))
	h.Set("Content-Type", mime.FormatMediaType(typ, clean))
	return h
}

// composeRecipient returns the address a reply goes to: the contact's
// email, else its channel id when that is an address (web-form and email
// contacts carry it there).
func composeRecipient(s Settings, to connectors.Identity) (*mail.Address, error) {
	addr := strings.TrimSpace(to.Email)
	if addr == "" {
		addr = strings.TrimSpace(to.ExternalID)
	}
	if addr == "" {
		return nil, connectors.NewError(connectors.Permanent, "email_no_recipient",
			"The ticket has no email address to send the reply to", nil)
	}
	p, err := mail.ParseAddress(addr)
	if err != nil || p.Name != "" || !strings.Contains(p.Address, "@") || strings.ContainsAny(p.Address, "\r\n\x00<>") {
		return nil, connectors.NewError(connectors.Permanent, "email_bad_recipient",
			fmt.Sprintf("The contact's address %q is not an email address", composeClean(addr, 100)), err)
	}
	at := strings.LastIndexByte(p.Address, '@')
	local, domain := p.Address[:at], p.Address[at+1:]
	// Internationalized domains go out as A-labels so every relay takes
	// them; a non-ASCII local part needs SMTPUTF8 and is left to the relay.
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return nil, connectors.NewError(connectors.Permanent, "email_bad_recipient",
			fmt.Sprintf("The contact's address %q has an invalid domain", composeClean(addr, 100)), err)
	}
	full := local + "@" + strings.ToLower(ascii)
	for _, own := range append([]string{s.Address}, s.Aliases...) {
		if strings.EqualFold(full, own) {
			// A reply to ourselves would come back in as a new mail
			// and loop.
			return nil, connectors.NewError(connectors.Permanent, "email_own_address",
				"The contact's address is the channel's own address; the reply was not sent", nil)
		}
	}
	return &mail.Address{Name: composeClean(to.DisplayName, composeMaxNameRunes), Address: full}, nil
}

// composeFromName fills the channel's display-name template. Without an
// agent name, "{agent}" and the separators around it fall away; with
// nothing left the From shows the bare address.
func composeFromName(template, agent string) string {
	if template == "" {
		template = "{agent}"
	}
	name := strings.ReplaceAll(template, "{agent}", composeClean(agent, composeMaxNameRunes))
	name = composeClean(name, composeMaxNameRunes)
	return strings.Trim(name, " -–—|,:;·/")
}

// Reply prefixes that mean "already a reply", in the languages support
// inboxes meet most (English, German, Nordic, Dutch), with the counted
// forms some clients write ("Re[2]:", "Re(2):").
var composeReplyPrefix = regexp.MustCompile(`(?i)^(re|aw|sv|antw)(\[\d+\]|\(\d+\))?\s*:`)

// composeSubject returns the reply subject: "Re: " once, and the ticket
// tag once (rule of the channel: a reply threads even when the client
// drops In-Reply-To).
func composeSubject(subject string, ticket int64, tag bool) string {
	s := composeClean(subject, composeMaxSubject)
	// Look past leading tags such as "[#10042] Re: …" or "[EXT] RE: …".
	rest := s
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		rest = strings.TrimSpace(rest[end+1:])
	}
	if !composeReplyPrefix.MatchString(rest) {
		s = strings.TrimSpace("Re: " + s)
	}
	if tag && ticket > 0 {
		t := "[#" + strconv.FormatInt(ticket, 10) + "]"
		if !strings.Contains(s, t) {
			s += " " + t
		}
	}
	return s
}

// composeReferences keeps the well-formed message ids of the thread
// (oldest first), each once, at most composeMaxReferences of them: the
// first (root) id and the newest others, as RFC 5322 3.6.4 advises when
// trimming, so a reply still finds the ticket by walking References (C05).
func composeReferences(in []string) []string {
	seen := map[string]bool{}
	var ids []string
	for _, r := range in {
		id := strings.TrimSpace(r)
		id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
		if !composeValidMsgID(id) || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if len(ids) > composeMaxReferences {
		ids = append(ids[:1:1], ids[len(ids)-(composeMaxReferences-1):]...)
	}
	return ids
}

// composeValidMsgID accepts id-left@id-right of printable ASCII without
// the characters that would break the header (angle brackets, quotes,
// comments, whitespace). Ids of other channels (form submissions, chat
// messages) do not pass and are left out.
func composeValidMsgID(id string) bool {
	if len(id) < 3 || len(id) > composeMaxMsgIDLen {
		return false
	}
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`<>()"\,`, c) >= 0 {
			return false
		}
	}
	return true
}

// composeValidContentID is composeValidMsgID without the '@', which many
// mail programs leave out of Content-IDs ("image001", "part1.2").
func composeValidContentID(id string) bool {
	if id == "" || len(id) > composeMaxMsgIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`<>()"\,`, c) >= 0 {
			return false
		}
	}
	return true
}

// composeClean makes s safe for a header: valid UTF-8, every control or
// line-separator character turned into a space (so CR, LF or NUL can never
// start a new header line), spaces collapsed, at most max runes.
func composeClean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d' {
			// Invisible format characters (bidi overrides, BOM, zero
			// width space) can disguise a name; joiners are kept for
			// emoji and scripts that need them.
			continue
		}
		if n >= max {
			break
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			n++
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// composeEncodeText encodes a cleaned header text. mime's encoder leaves
// printable ASCII alone, but a literal "=?" would then be decoded by the
// reader as an encoded word: such text is encoded in full.
func composeEncodeText(s string) string {
	if !strings.Contains(s, "=?") {
		return mime.QEncoding.Encode("utf-8", s)
	}
	// Encoded words of at most 75 octets (RFC 2047 2): 45 bytes of text
	// make 60 base64 characters plus the 12 of "=?utf-8?b??=".
	var words []string
	for len(s) > 0 {
		n := min(len(s), 45)
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// composeFilename returns a file name a mail client shows and saves
// safely: no directories, no control characters, never empty, not longer
// than composeMaxFilename runes with the extension kept.
func composeFilename(name, typ string, n int) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(composeClean(name, 1000))
	name = strings.Trim(name, " .")
	if name == "" || name == "/" {
		ext, ok := composeExtensions[typ]
		if !ok {
			ext = ".bin"
		}
		name = "attachment-" + strconv.Itoa(n) + ext
	}
	if utf8.RuneCountInString(name) > composeMaxFilename {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 20 {
			ext = ""
		}
		stem := []rune(strings.TrimSuffix(name, ext))
		name = string(stem[:composeMaxFilename-utf8.RuneCountInString(ext)]) + ext
	}
	return name
}

// composeExtensions names unnamed files by type. A fixed table, not
// mime.ExtensionsByType, whose answer depends on the machine's mime.types.
var composeExtensions = map[string]string{
	"application/pdf": ".pdf", "application/zip": ".zip", "image/jpeg": ".jpg",
	"image/png": ".png", "image/gif": ".gif", "text/plain": ".txt", "text/html": ".html",
	"text/csv": ".csv", "message/rfc822": ".eml",
}

func composeIsToken(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// composeBodies returns the text and HTML alternatives: the HTML as given
// or the text escaped into minimal HTML, the text as given or read out of
// the HTML. Files known only by URL are linked at the end of both.
func composeBodies(text, htmlIn string, links []connectors.Attachment) (string, string) {
	text = composeNewlines(strings.ToValidUTF8(text, "\uFFFD"))
	htmlIn = composeNewlines(strings.ToValidUTF8(htmlIn, "\uFFFD"))
	if strings.TrimSpace(text) == "" && strings.TrimSpace(htmlIn) != "" {
		text = composeHTMLToText(htmlIn)
	}
	var htmlBody string
	if strings.TrimSpace(htmlIn) != "" {
		htmlBody = htmlIn
	} else {
		htmlBody = composeTextToHTML(text)
	}
	if len(links) > 0 {
		var tl, hl strings.Builder
		tl.WriteString("\n\nAttachments:\n")
		hl.WriteString("\n<p>Attachments:</p>\n<ul>\n")
		for i, a := range links {
			url := composeClean(a.URL, 2000)
			name := composeFilename(a.Filename, a.ContentType, i+1)
			if strings.TrimSpace(a.Filename) == "" {
				name = url
			}
			fmt.Fprintf(&tl, "- %s: %s\n", name, url)
			if strings.HasPrefix(strings.ToLower(url), "https://") || strings.HasPrefix(strings.ToLower(url), "http://") {
				fmt.Fprintf(&hl, "<li><a href=\"%s\">%s</a></li>\n", html.EscapeString(url), html.EscapeString(name))
			} else {
				fmt.Fprintf(&hl, "<li>%s: %s</li>\n", html.EscapeString(name), html.EscapeString(url))
			}
		}
		hl.WriteString("</ul>\n")
		text = strings.TrimRight(text, "\n") + tl.String()
		htmlBody = composeInsertBeforeBodyEnd(htmlBody, hl.String())
	}
	if !strings.Contains(strings.ToLower(htmlBody), "<html") {
		htmlBody = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n" + htmlBody + "\n</body></html>\n"
	}
	return text, htmlBody
}

func composeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func composeTextToHTML(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = html.EscapeString(l)
	}
	return "<div>" + strings.Join(lines, "<br>\n") + "</div>"
}

func composeInsertBeforeBodyEnd(doc, frag string) string {
	if i := strings.LastIndex(strings.ToLower(doc), "</body>"); i >= 0 {
		return doc[:i] + frag + doc[i:]
	}
	return doc + frag
}

var composeBlankLines = regexp.MustCompile(`\n{3,}`)

// composeHTMLToText reads the text out of an HTML reply that came without
// a text version: block elements and <br> become line breaks, scripts and
// styles are left out, entities decoded.
func composeHTMLToText(h string) string {
	z := xhtml.NewTokenizer(strings.NewReader(h))
	var b strings.Builder
	skip := 0
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			return strings.TrimSpace(composeBlankLines.ReplaceAllString(b.String(), "\n\n"))
		case xhtml.TextToken:
			if skip == 0 {
				b.WriteString(strings.Join(strings.Fields(string(z.Text())), " "))
			}
		case xhtml.StartTagToken, xhtml.EndTagToken, xhtml.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				if tt == xhtml.StartTagToken {
					skip++
				} else if tt == xhtml.EndTagToken && skip > 0 {
					skip--
				}
			case "br":
				b.WriteString("\n")
			case "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol":
				b.WriteString("\n")
			}
		}
	}
}
