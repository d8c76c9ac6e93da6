package hub

import (
	"html"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
)

// newHTMLPolicy is what message HTML may keep for display: bluemonday's
// user-generated-content policy (no scripts, iframes, SVG, event handlers
// or javascript: URLs), links opened safely, and inline cid: images.
func newHTMLPolicy() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.RequireNoFollowOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	return p
}

// cleanText makes text safe to store: valid UTF-8, no NUL bytes (Postgres
// refuses them), at most max bytes. It reports whether it cut the text.
func cleanText(s string, max int) (string, bool) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut], true
	}
	return s, false
}

var (
	blockTags = regexp.MustCompile(`(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>`)
	blankRuns = regexp.MustCompile(`\n{3,}`)
)

// textFromHTML derives plain text from HTML for messages that came as HTML
// only.
func textFromHTML(s string) string {
	s = blockTags.ReplaceAllString(s, "\n")
	s = bluemonday.StrictPolicy().Sanitize(s)
	s = html.UnescapeString(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}
