package email

import (
	"bytes"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cention-sany/utf7"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Charsets. Mail in a support inbox comes labelled with every charset
// name (and misspelling) mail clients ever wrote, and sometimes with a
// label that does not match the bytes. The rules here:
//
//   - a label is looked up case-insensitively with its aliases, first in
//     the WHATWG index (the names browsers accept), then in the IANA
//     registry;
//   - GB2312 and GBK labels decode as GB18030, their superset: Chinese
//     mailers label GBK text GB2312 (C01);
//   - ISO-8859-1 decodes as Windows-1252, its superset in practice (what
//     browsers do): Outlook's curly quotes and € live in 0x80–0x9F;
//   - no label, us-ascii and unknown labels: UTF-8 when the bytes are
//     valid UTF-8, else Windows-1252 (never U+FFFD for a byte a decoder
//     could read);
//   - a label whose decoder cannot read the bytes, when they are valid
//     UTF-8, is taken for a mislabelled UTF-8 text.

// charsetKind tells how a label is decoded.
type charsetKind int

const (
	charsetUnknown charsetKind = iota // not a label we know: guess
	charsetASCII                      // us-ascii or none: guess from the bytes
	charsetUTF8
	charsetOther // a real decoder
)

type charsetInfo struct {
	kind charsetKind
	name string // canonical lower-case name, for messages and comparisons
	enc  encoding.Encoding
}

// charsetAliases are labels the indexes do not know or map to a subset.
var charsetAliases = map[string]string{
	"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
	"ms936": "gb18030", "windows-936": "gb18030", "chinese": "gb18030", "csgb2312": "gb18030",
	"euc-cn": "gb18030", "x-euc-cn": "gb18030", "gb_2312-80": "gb18030", "gb_2312": "gb18030",
	"iso-ir-58": "gb18030", "csiso58gb231280": "gb18030", "gb2312-80": "gb18030",
	"cp949": "euc-kr", "windows-949": "euc-kr", "ks_c_5601": "euc-kr", "uhc": "euc-kr",
	"cp932": "shift_jis", "ms932": "shift_jis", "windows-932": "shift_jis", "sjis-open": "shift_jis",
	"cp950": "big5", "ms950": "big5", "windows-950": "big5",
	"iso-2022-jp-1": "iso-2022-jp", "iso-2022-jp-2": "iso-2022-jp", "iso-2022-jp-3": "iso-2022-jp",
	"cp50220": "iso-2022-jp", "cp50221": "iso-2022-jp", "cp50222": "iso-2022-jp",
	"x-user-defined": "windows-1252", "latin-1": "windows-1252", "cp65001": "utf-8",
	"utf8mb4": "utf-8", "x-utf8": "utf-8", "x-unicode20utf8": "utf-8",
}

var asciiLabels = map[string]bool{
	"": true, "us-ascii": true, "ascii": true, "ansi_x3.4-1968": true, "iso646-us": true,
	"us": true, "7bit": true, "8bit": true, "none": true, "unknown": true, "unknown-8bit": true,
	"x-unknown": true, "default": true, "csascii": true, "iso-ir-6": true, "cp367": true,
	"ibm367": true, "ansi_x3.4-1986": true, "iso_646.irv:1991": true, "x-ascii": true,
}

var utf7Labels = map[string]bool{
	"utf-7": true, "utf7": true, "unicode-1-1-utf-7": true, "x-utf-7": true, "csunicode11utf7": true,
}

var (
	isoLabel     = regexp.MustCompile(`^(?:iso)?[-_ ]?8859[-_ ]?([0-9]{1,2})(?:[-:].*)?$`)
	windowsLabel = regexp.MustCompile(`^(?:windows|win|cp|x-cp|ms|ms-ansi)[-_ ]?(125[0-8]|874|866|850|437)$`)
)

// normalizeCharsetLabel cleans a label as mailers write it: quoted, with
// "charset=" inside the value, with trailing junk.
func normalizeCharsetLabel(label string) string {
	l := strings.ToLower(strings.TrimSpace(label))
	l = strings.Trim(l, `"' `)
	if i := strings.LastIndex(l, "charset="); i >= 0 {
		l = l[i+len("charset="):]
	}
	if i := strings.IndexAny(l, `;,"' `); i >= 0 {
		l = l[:i]
	}
	// RFC 2231 allows a language after the charset in encoded words.
	if i := strings.IndexByte(l, '*'); i >= 0 {
		l = l[:i]
	}
	if m := isoLabel.FindStringSubmatch(l); m != nil {
		l = "iso-8859-" + strings.TrimLeft(m[1], "0")
	}
	if m := windowsLabel.FindStringSubmatch(l); m != nil {
		l = "windows-" + m[1]
		if m[1] == "866" || m[1] == "850" || m[1] == "437" {
			l = "ibm" + m[1]
		}
	}
	if a, ok := charsetAliases[l]; ok {
		l = a
	}
	if strings.HasPrefix(l, "ks_c_5601") {
		l = "euc-kr"
	}
	return l
}

// lookupCharset finds the decoder for a MIME charset label.
func lookupCharset(label string) charsetInfo {
	l := normalizeCharsetLabel(label)
	switch {
	case asciiLabels[l]:
		return charsetInfo{kind: charsetASCII, name: "us-ascii"}
	case utf7Labels[l]:
		return charsetInfo{kind: charsetOther, name: "utf-7", enc: utf7.UTF7}
	case l == "gb18030":
		return charsetInfo{kind: charsetOther, name: "gb18030", enc: simplifiedchinese.GB18030}
	case l == "iso-2022-jp":
		return charsetInfo{kind: charsetOther, name: "iso-2022-jp", enc: japanese.ISO2022JP}
	}
	if e, err := htmlindex.Get(l); err == nil && e != nil && e != encoding.Replacement {
		name, _ := htmlindex.Name(e)
		if name == "utf-8" {
			return charsetInfo{kind: charsetUTF8, name: "utf-8"}
		}
		return charsetInfo{kind: charsetOther, name: name, enc: e}
	}
	for _, idx := range []*ianaindex.Index{ianaindex.MIME, ianaindex.IANA} {
		if e, err := idx.Encoding(l); err == nil && e != nil && e != encoding.Replacement {
			name, _ := idx.Name(e)
			return charsetInfo{kind: charsetOther, name: strings.ToLower(name), enc: e}
		}
	}
	return charsetInfo{kind: charsetUnknown, name: l}
}

// decodeCharset converts b from the charset label to UTF-8. It always
// returns valid UTF-8; warning is non-empty when the label was wrong or
// unknown or some bytes could not be read.
func decodeCharset(label string, b []byte) (text, warning string) {
	cs := lookupCharset(label)
	switch cs.kind {
	case charsetASCII:
		if allASCII(b) {
			if looksISO2022JP(b) {
				if s, ok := decodeWithEncoding(japanese.ISO2022JP, b); ok {
					return s, ""
				}
			}
			return string(b), ""
		}
		s, w := guessCharset(b)
		if label == "" {
			return s, ""
		}
		return s, "charset " + quoteCharsetLabel(label) + " holds 8-bit bytes: read as " + w
	case charsetUTF8:
		if utf8.Valid(b) {
			return string(b), ""
		}
		return utf8OrWindows1252(b), "text labelled utf-8 is not valid UTF-8: invalid bytes read as windows-1252"
	case charsetOther:
		// Valid UTF-8 with 8-bit bytes is almost never legacy text by
		// chance: it is UTF-8 under a wrong label.
		if !allASCII(b) && utf8.Valid(b) && cs.name != "utf-16le" && cs.name != "utf-16be" && cs.name != "utf-16" {
			return string(b), "text labelled " + cs.name + " is UTF-8: read as UTF-8"
		}
		if cs.name == "windows-1252" {
			// Also the five bytes the decoder leaves undefined.
			return decodeWindows1252(b), ""
		}
		s, ok := decodeWithEncoding(cs.enc, b)
		if ok {
			return s, ""
		}
		return s, "some bytes are not valid " + cs.name + " and were replaced"
	}
	s, w := guessCharset(b)
	return s, "unknown charset " + quoteCharsetLabel(label) + ": read as " + w
}

// guessCharset reads unlabelled 8-bit text: UTF-8 if it is valid UTF-8,
// else Windows-1252 (the commonest legacy charset of Western mail).
func guessCharset(b []byte) (text, name string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return utf8OrWindows1252(b), "windows-1252"
}

// decodeWithEncoding decodes b and reports whether every byte was readable (no
// U+FFFD appeared that was not in the input).
func decodeWithEncoding(enc encoding.Encoding, b []byte) (string, bool) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return utf8OrWindows1252(b), false
	}
	if !utf8.Valid(out) {
		out = []byte(strings.ToValidUTF8(string(out), "\uFFFD"))
	}
	ok := bytes.Count(out, []byte("\uFFFD")) <= bytes.Count(b, []byte("\uFFFD"))
	return string(out), ok
}

// utf8OrWindows1252 keeps the valid UTF-8 sequences of b and reads every
// other byte as Windows-1252 (and the five bytes Windows-1252 leaves
// undefined as Latin-1, as browsers do), so the result is valid UTF-8
// and loses nothing.
func utf8OrWindows1252(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			sb.WriteRune(windows1252Rune(b[0]))
			b = b[1:]
			continue
		}
		sb.Write(b[:size])
		b = b[size:]
	}
	return sb.String()
}

func decodeWindows1252(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(windows1252Rune(c))
	}
	return sb.String()
}

func windows1252Rune(c byte) rune {
	r := charmap.Windows1252.DecodeByte(c)
	if r == utf8.RuneError {
		return rune(c)
	}
	return r
}

func allASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// looksISO2022JP reports whether unlabelled 7-bit text carries the JIS
// escape sequences of ISO-2022-JP (Japanese mobile mailers omit the label).
func looksISO2022JP(b []byte) bool {
	return bytes.Contains(b, []byte("\x1b$B")) || bytes.Contains(b, []byte("\x1b$@"))
}

func quoteCharsetLabel(l string) string {
	return `"` + utf8OrWindows1252([]byte(strings.TrimSpace(l))) + `"`
}

// RFC 2047 encoded words.

// encodedWord matches one encoded word. The text part may hold spaces
// (some mailers fold inside a word); neither B nor Q text ever holds "?".
var rfc2047Word = regexp.MustCompile(`=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=`)

// decodeHeaderText decodes a header value to UTF-8: RFC 2047 encoded
// words, also when a multibyte character is cut across two words (the
// bytes of adjacent words in one charset are joined before decoding),
// when words are joined without whitespace, or mislabelled; and raw 8-bit
// bytes, read as UTF-8 if valid, else in the fallback charset.
func decodeHeaderText(s, fallback string) string {
	return flattenHeaderText(decodeRFC2047Words(s, fallback, nil))
}

// decodeRFC2047Words does the work of decodeHeaderText. With wrap set, each run
// of encoded words is passed through wrap after decoding (the address
// parser quotes it so that a decoded comma or "<" cannot split a name).
func decodeRFC2047Words(s, fallback string, wrap func(string) string) string {
	if !strings.Contains(s, "=?") {
		return decodeRaw8bit([]byte(s), fallback)
	}
	var out strings.Builder
	var run []byte     // decoded bytes of the current run of words
	var runCS string   // their charset label
	inRun := false     // a run of words is open
	pendingSpace := "" // whitespace between two words, dropped if another word follows
	flush := func() {
		if !inRun {
			return
		}
		text, _ := decodeCharset(runCS, run)
		if lookupCharset(runCS).kind == charsetUnknown {
			text = decodeRaw8bit(run, fallback)
		}
		if wrap != nil {
			text = wrap(text)
		}
		out.WriteString(text)
		run, runCS, inRun = nil, "", false
	}
	rest := s
	for {
		loc := rfc2047Word.FindStringSubmatchIndex(rest)
		if loc == nil {
			break
		}
		between := rest[:loc[0]]
		if inRun && strings.Trim(between, " \t\r\n") == "" {
			pendingSpace = between
		} else {
			flush()
			out.WriteString(decodeRaw8bit([]byte(between), fallback))
			pendingSpace = ""
		}
		word := rest[loc[0]:loc[1]]
		cs, enc, text := rest[loc[2]:loc[3]], rest[loc[4]:loc[5]], rest[loc[6]:loc[7]]
		data, ok := decodeWordText(enc, text)
		rest = rest[loc[1]:]
		if !ok {
			flush()
			out.WriteString(pendingSpace)
			out.WriteString(decodeRaw8bit([]byte(word), fallback))
			pendingSpace = ""
			continue
		}
		if inRun && normalizeCharsetLabel(cs) != normalizeCharsetLabel(runCS) {
			flush()
		}
		pendingSpace = ""
		if !inRun {
			runCS, inRun = cs, true
		}
		run = append(run, data...)
	}
	flush()
	out.WriteString(decodeRaw8bit([]byte(rest), fallback))
	return out.String()
}

// decodeWordText decodes the text of one encoded word to bytes.
func decodeWordText(enc, text string) ([]byte, bool) {
	if enc == "b" || enc == "B" {
		data, bad := decodeBase64Lenient([]byte(text))
		if bad && len(data) == 0 {
			return nil, false
		}
		return data, true
	}
	var out []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(text) && isHexDigit(text[i+1]) && isHexDigit(text[i+2]):
			out = append(out, hexDigitValue(text[i+1])<<4|hexDigitValue(text[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// decodeRaw8bit reads header bytes that are not encoded words: raw 8-bit
// text is UTF-8 when valid (RFC 6532), else in the fallback charset.
func decodeRaw8bit(b []byte, fallback string) string {
	if allASCII(b) || utf8.Valid(b) {
		return string(b)
	}
	if fallback != "" {
		cs := lookupCharset(fallback)
		if cs.kind == charsetOther {
			if s, ok := decodeWithEncoding(cs.enc, b); ok {
				return s
			}
		}
	}
	return utf8OrWindows1252(b)
}

// flattenHeaderText turns line breaks, tabs and other control characters
// into spaces and trims the ends.
func flattenHeaderText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// decodeBase64Lenient decodes base64 as mailers break it: lines of any
// length, missing padding, padding in the middle (concatenated blocks),
// stray characters. It keeps everything it can decode; bad reports that
// something was skipped.
func decodeBase64Lenient(in []byte) (out []byte, bad bool) {
	out = make([]byte, 0, len(in)*3/4+3)
	// Decoding by hand instead of collecting the characters of each
	// segment for encoding/base64: attachments are most of the bytes of
	// a mailbox, and this reads each of them once.
	var acc uint32 // the sextets of the quantum being read
	n := 0         // how many
	endSegment := func() {
		switch n {
		case 1:
			// A lone last character carries too few bits for a byte.
			bad = true
		case 2:
			out = append(out, byte(acc>>4))
		case 3:
			out = append(out, byte(acc>>10), byte(acc>>2))
		}
		acc, n = 0, 0
	}
	for i := 0; i < len(in); i++ {
		// Whole quanta, the bulk of a body, in one step.
		for n == 0 && i+4 <= len(in) {
			a, b, c, d := base64Value[in[i]], base64Value[in[i+1]], base64Value[in[i+2]], base64Value[in[i+3]]
			if a|b|c|d >= 64 {
				break
			}
			q := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
			out = append(out, byte(q>>16), byte(q>>8), byte(q))
			i += 4
		}
		if i == len(in) {
			break
		}
		v := base64Value[in[i]]
		if v < 64 {
			acc = acc<<6 | uint32(v)
			if n++; n == 4 {
				out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
				acc, n = 0, 0
			}
			continue
		}
		switch v {
		case base64Pad:
			endSegment()
		case base64Space:
		default:
			bad = true
		}
	}
	endSegment()
	return out, bad
}

// base64Value maps a byte to its value in the standard base64 alphabet,
// or to one of the marks below.
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = base64Junk
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	t['='] = base64Pad
	for _, c := range []byte(" \t\r\n") {
		t[c] = base64Space
	}
	return t
}()

const (
	base64Pad   = 0xfd // '=' ends a segment
	base64Space = 0xfe // line breaks and blanks are skipped
	base64Junk  = 0xff // anything else is skipped and reported
)

// decodeQPLenient decodes quoted-printable as mailers write it: raw 8-bit
// bytes kept (C02: Outlook leaves 0x92 unescaped), lower-case hex
// accepted, a "=" that starts no escape kept as written. Line breaks
// become "\n". bad reports a malformed escape.
func decodeQPLenient(in []byte) (out []byte, bad bool) {
	out = make([]byte, 0, len(in))
	lines := bytes.Split(in, []byte("\n"))
	for li, line := range lines {
		line = bytes.TrimRight(line, "\r")
		// Trailing whitespace is transport padding (RFC 2045 6.7).
		line = bytes.TrimRight(line, " \t")
		soft := false
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c != '=' {
				out = append(out, c)
				continue
			}
			if i == len(line)-1 {
				soft = true
				break
			}
			if i+2 < len(line) && isHexDigit(line[i+1]) && isHexDigit(line[i+2]) {
				out = append(out, hexDigitValue(line[i+1])<<4|hexDigitValue(line[i+2]))
				i += 2
				continue
			}
			if i+2 == len(line) && isHexDigit(line[i+1]) {
				// "=A" at the end of a line: a cut escape.
				bad = true
				break
			}
			bad = true
			out = append(out, c)
		}
		if !soft && li < len(lines)-1 {
			out = append(out, '\n')
		}
	}
	return out, bad
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexDigitValue(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
