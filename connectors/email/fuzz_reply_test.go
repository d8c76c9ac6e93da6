package email

import (
	"testing"

	"golang.org/x/tools/txtar"
)

// FuzzSplitReply checks what must hold for any body: no panic, valid
// UTF-8 out, every word of the text in Text or Quoted, every character of
// the HTML's text in HTML or QuotedHTML, and new text whenever the body
// has content (see replyCheckInvariants). The corpus samples are the seeds.
func FuzzSplitReply(f *testing.F) {
	for _, path := range replyCorpusFiles(f) {
		a, err := txtar.ParseFile(path)
		if err != nil {
			f.Fatal(err)
		}
		text, _ := replySection(a, "text")
		htmlIn, _ := replySection(a, "html")
		f.Add(text, htmlIn)
	}
	f.Add("-- \n> x\nOn 1 a wrote:\n", "<table><tr><td><div class=gmail_quote>x</div>y</td></tr></table>")
	f.Add("a\r\n\r\n-----Original Message-----\r\nb", "<a><table><a>x<blockquote type=cite>q</blockquote>z")
	f.Add("\xff\xfe>\n", "<p>a<div id=appendonsend>b</div>c<pre>\n-- \n</pre>")
	f.Fuzz(func(t *testing.T, text, htmlIn string) {
		r := SplitReply(text, htmlIn)
		replyCheckInvariants(t, text, htmlIn, r)
	})
}
