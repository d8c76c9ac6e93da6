package email

import (
	"bufio"
	"bytes"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/jhillyerd/enmime/v2"
)

// MailKind says who wrote a mail: a person, or a machine answering one.
type MailKind int

const (
	// KindPerson is mail a person wrote: it may open or reopen a ticket.
	KindPerson MailKind = iota
	// KindAutoReply is machine-generated mail (out-of-office, vacation,
	// another helpdesk's acknowledgement, read receipts, bulk mail). It
	// never opens or reopens a ticket and is never answered (C07).
	KindAutoReply
	// KindBounce is a delivery report about a mail we sent (RFC 3464 DSN
	// or a non-standard bounce): it marks that message's delivery, never
	// a customer's reply (C08).
	KindBounce
)

func (k MailKind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAutoReply:
		return "auto-reply"
	case KindBounce:
		return "bounce"
	}
	return "unknown"
}

// Classification is what Classify found. Reason is a short phrase for
// logs and for the agent ("Auto-Submitted: auto-replied").
type Classification struct {
	Kind   MailKind
	Reason string
	Bounce *Bounce // set for KindBounce
}

// Bounce is the content of a delivery report.
type Bounce struct {
	// OriginalMessageID is the Message-ID (without brackets) of the mail
	// the report is about, "" when the report does not tell.
	OriginalMessageID string
	Recipients        []BounceRecipient
}

// BounceRecipient is the outcome for one recipient. Action is
// lower-case as in RFC 3464 ("failed", "delayed", "delivered",
// "relayed", "expanded"); only "failed" means the mail was not
// delivered. Status is the enhanced status code ("5.1.1").
type BounceRecipient struct {
	Address, Action, Status, Diagnostic string
}

// Classify tells a person's mail from auto-replies and bounces. Delivery
// reports are looked for first: a DSN may also carry Auto-Submitted.
// The auto-reply checks are conservative where a false positive would
// hide a customer's request (a mail taken for automatic opens no
// ticket), and follow RFC 3834 and the headers mailers actually set.
func Classify(m *Mail) Classification {
	if m == nil {
		return Classification{Kind: KindPerson}
	}
	if c, ok := classifyReport(m); ok {
		return c
	}
	if c, ok := classifyBounce(m); ok {
		return c
	}
	if reason := autoReplyReason(m); reason != "" {
		return Classification{Kind: KindAutoReply, Reason: reason}
	}
	return Classification{Kind: KindPerson}
}

// classifyReport reads multipart/report mail (RFC 6522).
func classifyReport(m *Mail) (Classification, bool) {
	r := m.Report
	if r == nil {
		return Classification{}, false
	}
	switch {
	case r.ReportType == "delivery-status" || r.ReportType == "global-delivery-status" || (r.ReportType == "" && r.DeliveryStatus != nil):
		b := &Bounce{Recipients: parseDSNRecipients(r.DeliveryStatus)}
		b.OriginalMessageID = originalMessageID(m, r.DeliveryStatus)
		return Classification{Kind: KindBounce, Reason: "delivery status notification" + actionSummary(b.Recipients), Bounce: b}, true
	case r.ReportType == "disposition-notification":
		return Classification{Kind: KindAutoReply, Reason: "read receipt (disposition-notification)"}, true
	case r.ReportType != "":
		return Classification{Kind: KindAutoReply, Reason: "machine report (" + shortenForWarning(r.ReportType, 40) + ")"}, true
	}
	return Classification{}, false
}

func actionSummary(rs []BounceRecipient) string {
	var actions []string
	for _, r := range rs {
		if r.Action != "" && !containsFoldString(actions, r.Action) {
			actions = append(actions, r.Action)
		}
	}
	if len(actions) == 0 {
		return ""
	}
	return ": " + strings.Join(actions, ", ")
}

var (
	// Local parts of the senders of bounces.
	daemonSender = regexp.MustCompile(`(?i)^(mailer-daemon|mail-daemon|maildaemon|mail\.?delivery\.?(system|subsystem)?|postmaster|mdaemon|mailerdaemon|microsoftexchange[0-9a-f]*)$`)
	// Subjects of bounces, for those sent with an empty Return-Path but
	// a normal-looking sender.
	bounceSubject = regexp.MustCompile(`(?i)^(undelivered mail|undeliverable|undelivered|delivery status notification \((failure|delay)\)|mail delivery (failed|failure|subsystem)|returned mail|failure notice|delivery failure|message not delivered|unzustellbar|nicht zustellbar|onbestelbaar|non remis|no se puede entregar|no entregado|mensaje no entregado)`)
)

// classifyBounce catches bounces that are not multipart/report: an empty
// Return-Path with a MAILER-DAEMON-like sender or a bounce subject, or a
// MAILER-DAEMON sender alone (C08 style servers without Auto-Submitted).
func classifyBounce(m *Mail) (Classification, bool) {
	local, _, _ := strings.Cut(m.From.Addr, "@")
	daemon := daemonSender.MatchString(local)
	nullPath := emptyReturnPath(m.Header)
	subject := bounceSubject.MatchString(strings.TrimSpace(m.Subject))
	isPostmaster := strings.EqualFold(local, "postmaster")
	switch {
	case daemon && !isPostmaster, (daemon || subject) && nullPath, isPostmaster && subject:
	default:
		return Classification{}, false
	}
	b := &Bounce{Recipients: textBounceRecipients(m.Text)}
	b.OriginalMessageID = originalMessageID(m, nil)
	reason := "bounce from " + m.From.Addr
	if nullPath {
		reason += " with empty Return-Path"
	}
	return Classification{Kind: KindBounce, Reason: reason, Bounce: b}, true
}

func emptyReturnPath(h textproto.MIMEHeader) bool {
	vs := h.Values("Return-Path")
	if len(vs) == 0 {
		return false
	}
	v := strings.TrimSpace(stripHeaderComments(vs[0]))
	return v == "<>" || v == "" || v == "< >"
}

// autoReplyReason returns why m looks machine-generated, or "".
func autoReplyReason(m *Mail) string {
	h := m.Header
	if v := strings.TrimSpace(h.Get("Auto-Submitted")); v != "" {
		fields := strings.FieldsFunc(v, func(r rune) bool {
			return r == ';' || r == '(' || r == ')' || r == ' ' || r == '\t'
		})
		token := "(empty)"
		if len(fields) > 0 {
			token = strings.ToLower(fields[0])
		}
		if token != "no" {
			return "Auto-Submitted: " + shortenForWarning(utf8NoNUL(token), 40)
		}
	}
	// Vendor headers of autoresponders (C07b has only X-Autoresponder).
	for _, k := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply", "X-Autogenerated", "X-Mail-Autoreply", "X-Auto-Response"} {
		if vs := h.Values(k); len(vs) > 0 {
			v := strings.ToLower(strings.TrimSpace(vs[0]))
			if v != "no" && v != "false" && v != "0" {
				return k + " header"
			}
		}
	}
	for _, k := range []string{"Precedence", "X-Precedence"} {
		switch v := strings.ToLower(strings.TrimSpace(stripHeaderComments(h.Get(k)))); v {
		case "bulk", "junk", "list", "auto_reply", "auto-reply", "autoreply":
			return k + ": " + v
		}
	}
	// Outlook asks not to be auto-answered with this header. Only "All"
	// marks a mail that is itself automatic (Exchange's own
	// out-of-office replies, ticket systems, our own acknowledgements);
	// the narrower values (DR, NDR, RN, NRN, OOF, AutoReply) also come on
	// mail people write (meeting responses, mail to lists), so they do
	// not count: a customer's request taken for an auto-reply would open
	// no ticket.
	if v := h.Get("X-Auto-Response-Suppress"); v != "" {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
			if strings.EqualFold(f, "All") {
				return "X-Auto-Response-Suppress: All"
			}
		}
	}
	if oooSubject.MatchString(strings.TrimSpace(m.Subject)) {
		return "out-of-office subject"
	}
	return ""
}

// oooSubject matches the subject prefixes mail clients put on
// out-of-office and automatic replies (English, Dutch, German, French,
// Spanish). A prefix must end in a colon (as the clients write it) so
// that a customer's subject that merely starts with the words is not
// taken for one.
var oooSubject = regexp.MustCompile(`(?i)^(?:(?:re|aw|antw|sv|fw|fwd|tr)\s*:\s*)?(?:` +
	`auto|autoreply|auto[- ]reply|automatic reply|automated reply|autosvar|out of (?:the )?office(?: autoreply| reply)?|ooo|` +
	`automatisch antwoord|automatisch bericht|afwezig|afwezigheidsbericht|niet aanwezig|` +
	`automatische antwort|abwesenheitsnotiz|abwesend|automatische abwesenheitsnotiz|` +
	`r[ée]ponse automatique|absent|absence|message d'absence|` +
	`respuesta autom[áa]tica|fuera de la oficina|ausente|fuera de oficina` +
	`)\s*:`)

// parseDSNRecipients reads the per-recipient fields of a
// message/delivery-status body (RFC 3464 section 2.3).
func parseDSNRecipients(ds []byte) []BounceRecipient {
	var out []BounceRecipient
	for _, block := range dsnBlocks(ds) {
		h, _ := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(block)), discardMIMEErrors{})
		if h == nil {
			continue
		}
		addr := dsnAddress(h.Get("Final-Recipient"))
		if addr == "" {
			addr = dsnAddress(h.Get("Original-Recipient"))
		}
		if addr == "" {
			continue // the per-message block, or junk
		}
		diag := h.Get("Diagnostic-Code")
		if _, rest, ok := strings.Cut(diag, ";"); ok {
			diag = rest
		}
		diag = flattenHeaderText(decodeHeaderText(runOfSpaces.ReplaceAllString(diag, " "), ""))
		status := enhancedStatusCode.FindString(stripHeaderComments(h.Get("Status")))
		if status == "" {
			status = enhancedStatusCode.FindString(diag)
		}
		out = append(out, BounceRecipient{
			Address:    addr,
			Action:     strings.ToLower(strings.TrimSpace(stripHeaderComments(h.Get("Action")))),
			Status:     status,
			Diagnostic: shortenForWarning(diag, 500),
		})
		if len(out) >= 100 {
			break
		}
	}
	return out
}

var (
	enhancedStatusCode = regexp.MustCompile(`\b[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)
	dsnBlankLine       = regexp.MustCompile(`\n[ \t]*\n`)
)

// dsnBlocks splits a delivery-status body into its field groups.
func dsnBlocks(ds []byte) [][]byte {
	ds = bytes.ReplaceAll(ds, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	for _, b := range dsnBlankLine.Split(string(ds), -1) {
		if strings.TrimSpace(b) != "" {
			out = append(out, []byte(strings.TrimLeft(b, "\n")+"\n\n"))
		}
	}
	return out
}

// dsnAddress reads "rfc822; user@example.org" (the address type is
// optional in the wild).
func dsnAddress(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if _, rest, ok := strings.Cut(v, ";"); ok {
		v = rest
	}
	return normalizeMailAddr(strings.TrimSpace(stripHeaderComments(v)))
}

// textBounceRecipients finds failed recipients in the text of a
// non-standard bounce: lines such as "<user@example.org>: host … said:
// 550 5.1.1 …" (Postfix, qmail), with the paragraph as the diagnostic.
func textBounceRecipients(text string) []BounceRecipient {
	var out []BounceRecipient
	for _, para := range dsnBlankLine.Split(text, -1) {
		m := bounceLine.FindStringSubmatch(para)
		if m == nil {
			continue
		}
		addr := normalizeMailAddr(m[1])
		diag := strings.TrimSpace(runOfSpaces.ReplaceAllString(para, " "))
		out = append(out, BounceRecipient{Address: addr, Action: "failed", Status: enhancedStatusCode.FindString(diag), Diagnostic: shortenForWarning(diag, 500)})
		if len(out) >= 100 {
			break
		}
	}
	return out
}

var bounceLine = regexp.MustCompile(`(?m)^\s*<?([^\s<>@]+@[^\s<>:]+)>?:\s`)

// originalMessageID finds the Message-ID of the mail a report is about:
// in the returned headers, the DSN's Original-Message-ID (or the
// X-Original-Message-ID some servers add), an attached original, or a
// Message-ID line quoted in the bounce text.
func originalMessageID(m *Mail, ds []byte) string {
	if m.Report != nil && len(m.Report.OriginalHeaders) > 0 {
		if id := headerMessageID(m.Report.OriginalHeaders, "Message-Id"); id != "" {
			return id
		}
	}
	for _, block := range dsnBlocks(ds) {
		for _, k := range []string{"Original-Message-Id", "X-Original-Message-Id"} {
			if id := headerMessageID(block, k); id != "" {
				return id
			}
		}
	}
	for _, k := range []string{"X-Original-Message-Id", "Original-Message-Id"} {
		if ids := parseMessageIDs(m.Header.Get(k), true); len(ids) > 0 {
			return ids[0]
		}
	}
	for _, a := range m.Attachments {
		if a.Filename == "original.eml" {
			continue // our own copy of this mail
		}
		if a.ContentType == "message/rfc822" || a.ContentType == "message/global" || a.ContentType == "text/rfc822-headers" {
			if id := headerMessageID(headerBlockOf(a.Data), "Message-Id"); id != "" {
				return id
			}
		}
	}
	if mm := quotedMessageID.FindStringSubmatch(m.Text); mm != nil {
		if ids := parseMessageIDs(mm[1], true); len(ids) > 0 {
			return ids[0]
		}
	}
	return ""
}

var quotedMessageID = regexp.MustCompile(`(?im)^\s*(?:>\s*)*message-id:\s*(.+)$`)

func headerMessageID(block []byte, key string) string {
	h, _ := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(block)), discardMIMEErrors{})
	if h == nil {
		return ""
	}
	if ids := parseMessageIDs(h.Get(key), true); len(ids) > 0 {
		return ids[0]
	}
	return ""
}
