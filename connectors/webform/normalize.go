package webform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the pure part of the connector: request bytes in, a validated
// submission or a typed error out. It does no I/O and keeps no state, so it
// is table- and fuzz-tested on its own (FuzzParseSubmission).

// Limits of the fields, in characters (runes), and in bytes where the hub
// keeps fewer bytes than the character limit can take: a longer value would
// be cut when stored, and texts are stored exactly as typed or not at all.
const (
	maxNameLength    = 100
	maxNameBytes     = 256 // the hub's contact display-name limit
	maxSubjectLength = 200
	maxMessageLength = 10000
	maxEmailLength   = 254 // RFC 5321 path limit
	maxKeyLength     = 200
	maxExtraBytes    = 4096 // the hub's limit for a Meta value
)

// Media types the submit endpoint reads.
const (
	mediaURLEncoded = "application/x-www-form-urlencoded"
	mediaMultipart  = "multipart/form-data"
	mediaJSON       = "application/json"
)

// requestError is a request that cannot be read as a submission at all. It
// maps to one HTTP status (400, 413, 415); Message is plain words for the
// person or developer who sent it.
type requestError struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *requestError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("webform: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("webform: %s: %s", e.Code, e.Message)
}

func (e *requestError) Unwrap() error { return e.Err }

func badRequest(code, msg string, err error) *requestError {
	return &requestError{Status: http.StatusBadRequest, Code: code, Message: msg, Err: err}
}

// fieldErrors maps a field name to what is wrong with it, in plain words.
// It is the 422 answer.
type fieldErrors map[string]string

func (e fieldErrors) Error() string {
	names := make([]string, 0, len(e))
	for n := range e {
		names = append(names, n)
	}
	slices.Sort(names)
	return "webform: invalid fields: " + strings.Join(names, ", ")
}

// submission is a validated form post.
type submission struct {
	Name    string
	Email   string // trimmed, case kept
	Subject string
	Message string // line endings normalized to \n
	// Extra holds the configured extra fields that were filled in.
	Extra map[string]string
}

// mediaType returns the media type of a Content-Type header if the submit
// endpoint reads it, or a 415 requestError.
func mediaType(contentType string) (string, map[string]string, error) {
	const msg = "Send the form as application/x-www-form-urlencoded, multipart/form-data or application/json, in UTF-8."
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", nil, &requestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: msg, Err: err}
	}
	switch mt {
	case mediaURLEncoded, mediaMultipart, mediaJSON:
	default:
		return "", nil, &requestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: msg,
			Err: fmt.Errorf("content type %q", mt)}
	}
	// Bytes are read as UTF-8; another declared charset would be misread,
	// so it is refused rather than guessed.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "", nil, &requestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_charset", Message: msg,
			Err: fmt.Errorf("charset %q", cs)}
	}
	return mt, params, nil
}

// parseForm reads body as the given content type and returns the value of
// every field it holds. Duplicate fields, bytes that are not UTF-8 and
// malformed bodies are requestErrors (400; 415 for the content type); file
// uploads are fieldErrors, returned with the text fields so the form can be
// shown again. Unknown fields are returned too; validate drops them.
func parseForm(contentType string, body []byte) (map[string]string, error) {
	mt, params, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	switch mt {
	case mediaURLEncoded:
		return parseURLEncoded(body)
	case mediaMultipart:
		return parseMultipart(body, params["boundary"])
	default:
		return parseJSON(body)
	}
}

func parseURLEncoded(body []byte) (map[string]string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed_body", "The form data is not well formed (check the %-escapes).", err)
	}
	return single(vals)
}

// single turns multi-valued form data into one value per field. A field
// sent twice is refused: which copy to believe would be a guess.
func single(vals map[string][]string) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		if !utf8.ValidString(k) {
			return nil, invalidEncoding()
		}
		if len(vs) > 1 {
			return nil, badRequest("duplicate_field", fmt.Sprintf("The field %q is sent more than once.", k), nil)
		}
		if len(vs) == 1 {
			if !utf8.ValidString(vs[0]) {
				return nil, invalidEncoding()
			}
			out[k] = vs[0]
		}
	}
	return out, nil
}

// invalidEncoding: non-UTF-8 input is refused, not repaired, so that what is
// stored is what was sent (M2).
func invalidEncoding() *requestError {
	return badRequest("invalid_encoding", "The form data is not valid UTF-8 text.", nil)
}

func parseMultipart(body []byte, boundary string) (map[string]string, error) {
	if boundary == "" {
		return nil, badRequest("malformed_body", "The multipart form has no boundary in its Content-Type.", nil)
	}
	// mime/multipart reports a clean io.EOF when the body ends right at a
	// part boundary, so a cut-off post would pass as complete with fields
	// missing. A complete one ends with the closing delimiter.
	if !bytes.Contains(body, []byte("--"+boundary+"--")) {
		return nil, badRequest("malformed_body", "The multipart form is not well formed: it ends before its closing boundary.", nil)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	vals := map[string][]string{}
	files := fieldErrors{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badRequest("malformed_body", "The multipart form is not well formed.", err)
		}
		name := p.FormName()
		if name == "" {
			_ = p.Close()
			return nil, badRequest("malformed_body", "A part of the multipart form has no field name.", nil)
		}
		if p.FileName() != "" {
			// Attachments are not supported yet; the part is skipped
			// unread and the whole post is refused with a field error.
			files[name] = "This form does not accept files yet. Paste the text into your message instead."
			_ = p.Close()
			continue
		}
		data, err := io.ReadAll(p)
		_ = p.Close()
		if err != nil {
			return nil, badRequest("malformed_body", "The multipart form is not well formed.", err)
		}
		vals[name] = append(vals[name], string(data))
	}
	if len(files) > 0 {
		// Return the text fields as well, so the form can be shown again
		// with them kept.
		kept := map[string]string{}
		for k, vs := range vals {
			if utf8.ValidString(k) && utf8.ValidString(vs[0]) {
				kept[k] = vs[0]
			}
		}
		return kept, files
	}
	return single(vals)
}

func parseJSON(body []byte) (map[string]string, error) {
	// encoding/json silently replaces invalid UTF-8 with U+FFFD; check
	// first so that nothing is repaired behind the sender's back.
	if !utf8.Valid(body) {
		return nil, invalidEncoding()
	}
	// A first full decode gives exact syntax error offsets (the streaming
	// decoder's are relative to its buffer) and catches trailing data.
	var probe any
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, jsonError(err)
	}
	if _, ok := probe.(map[string]any); !ok {
		return nil, badRequest("malformed_body", "The JSON body must be an object like {\"email\": \"…\", \"message\": \"…\"}.", nil)
	}
	// Then walk the object's members in order, to refuse duplicate keys
	// (json.Unmarshal keeps the last one silently) and non-string values.
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil, jsonError(err)
	}
	out := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key, _ := tok.(string) // inside an object, Token returns keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(err)
		}
		if seen[key] {
			return nil, badRequest("duplicate_field", fmt.Sprintf("The field %q is sent more than once.", key), nil)
		}
		seen[key] = true
		if string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("invalid_field_type", fmt.Sprintf("The field %q must be a JSON string.", key), err)
		}
		out[key] = s
	}
	return out, nil
}

func jsonError(err error) *requestError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if se.Error() == "unexpected end of JSON input" {
			return badRequest("malformed_body", "The JSON body ends too early.", err)
		}
		return badRequest("malformed_body", fmt.Sprintf("The JSON body is not valid: %s (at byte %d).", se.Error(), se.Offset), err)
	}
	return badRequest("malformed_body", "The JSON body is not valid.", err)
}

// validate checks the parsed fields against the settings and returns the
// submission, or fieldErrors naming each bad field. Values are kept exactly
// as sent (C25): safety comes from escaping on display, never from changing
// data. The only changes are documented ones: the email is trimmed (as a
// browser's type=email field does) and message line endings become \n.
func validate(s *Settings, vals map[string]string) (submission, error) {
	errs := fieldErrors{}
	sub := submission{
		Name:    vals[fieldName],
		Email:   strings.TrimSpace(vals[fieldEmail]),
		Subject: vals[fieldSubject],
		Message: normalizeNewlines(vals[fieldMessage]),
	}

	check := func(field, value, label string, required, multiline bool, max, maxBytes int) {
		switch {
		case strings.TrimSpace(value) == "":
			if required {
				errs[field] = "Enter " + label + "."
			}
		case hasControl(value, multiline):
			errs[field] = "Remove the invisible control characters from " + label + "."
		case !multiline && strings.ContainsAny(value, "\r\n"):
			errs[field] = "Write " + label + " on one line."
		case utf8.RuneCountInString(value) > max:
			errs[field] = fmt.Sprintf("Shorten %s to %s characters or fewer (it has %s).",
				label, thousands(max), thousands(utf8.RuneCountInString(value)))
		case maxBytes > 0 && len(value) > maxBytes:
			errs[field] = "Shorten " + label + "; it is too long to store."
		}
	}

	check(fieldName, sub.Name, "your name", s.required(fieldName), false, maxNameLength, maxNameBytes)
	check(fieldSubject, sub.Subject, "a subject", s.required(fieldSubject), false, maxSubjectLength, 0)
	check(fieldMessage, sub.Message, "your message", s.required(fieldMessage), true, maxMessageLength, 0)
	switch {
	case sub.Email == "":
		errs[fieldEmail] = "Enter your email address, so that we can answer you."
	case len(sub.Email) > maxEmailLength:
		errs[fieldEmail] = fmt.Sprintf("Enter an email address of %d characters or fewer.", maxEmailLength)
	case !validEmail(sub.Email):
		errs[fieldEmail] = "Enter an email address like name@example.com."
	}

	for _, f := range s.ExtraFields {
		v := vals[f.Name]
		if f.Multiline {
			v = normalizeNewlines(v)
		}
		check(f.Name, v, "“"+f.Label+"”", f.Required, f.Multiline, f.MaxLength, maxExtraBytes)
		if strings.TrimSpace(v) != "" && errs[f.Name] == "" {
			if sub.Extra == nil {
				sub.Extra = map[string]string{}
			}
			sub.Extra[f.Name] = v
		}
	}
	if len(errs) > 0 {
		return submission{}, errs
	}
	return sub, nil
}

// validKey checks a client-supplied idempotency key: visible ASCII, so it
// can travel in a header and a log line unchanged.
func validKey(k string) error {
	if k == "" || len(k) > maxKeyLength {
		return badRequest("invalid_idempotency_key", fmt.Sprintf("The Idempotency-Key must be 1 to %d characters.", maxKeyLength), nil)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return badRequest("invalid_idempotency_key", "The Idempotency-Key may hold only visible ASCII characters (no spaces).", nil)
		}
	}
	return nil
}

// normalizeNewlines turns CRLF and lone CR into LF. Browsers send a
// textarea's line breaks as CRLF (HTML form encoding), while the value the
// person typed has LF; storing LF keeps one form whatever the client.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// hasControl reports control characters other than tab (and line feed when
// multiline). They are refused rather than stripped: a NUL cannot be stored
// in Postgres text, and the rest are never typed on purpose.
func hasControl(s string, multiline bool) bool {
	for _, r := range s {
		if r == '\t' || (multiline && r == '\n') || (r == '\r' || r == '\n') && !multiline {
			// Single-line newlines get their own, clearer message.
			continue
		}
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// validEmail is a deliberately plain check of an address as people type it:
// local@domain with a dotted domain, no display name, no quoting, no spaces.
// Non-ASCII letters are allowed on both sides (RFC 6531).
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return false
	}
	for _, r := range local {
		if r < 0x80 && !isAtext(byte(r)) && r != '.' {
			return false
		}
		if r >= 0x80 && !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r) {
			return false
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			ok := r == '-' || r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') ||
				r >= 0x80 && (unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r))
			if !ok {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return false // a bare IP address is not what people mean
	}
	return true
}

// isAtext reports RFC 5322 atext characters.
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// thousands formats n with comma separators, for messages people read.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
