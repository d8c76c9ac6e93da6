package email

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// elideTestMail is a multipart mail with base64 bodies in the shapes that
// matter to elision: runs shorter and longer than the margins, boundaries
// in and right after runs, within the first bytes of a part, header
// blocks without their blank line, long boundaries, nesting, LF and CRLF.
func elideTestMail(rng *rand.Rand) []byte {
	nl := "\r\n"
	if rng.IntN(3) == 0 {
		nl = "\n"
	}
	bounds := []string{"b", "AAAA", "xyz", "QUFB", "b-1", strings.Repeat("Q", 190), strings.Repeat("R", 205)}
	outer := bounds[rng.IntN(len(bounds))]
	inner := outer + "i"
	var b bytes.Buffer
	b.WriteString("From: a@example.org" + nl + "Subject: s" + nl)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"%s%s", outer, nl, nl)
	for range 1 + rng.IntN(3) {
		b.WriteString("--" + outer + nl)
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%s%s%s", inner, nl, nl)
			for range 1 + rng.IntN(2) {
				b.WriteString("--" + inner + nl)
				elideTestBody(rng, &b, nl, []string{outer, inner})
			}
			if rng.IntN(4) != 0 {
				b.WriteString("--" + inner + "--" + nl)
			}
			continue
		}
		elideTestBody(rng, &b, nl, []string{outer, inner})
	}
	if rng.IntN(4) != 0 {
		b.WriteString("--" + outer + "--" + nl)
	}
	return b.Bytes()
}

func elideTestBody(rng *rand.Rand, b *bytes.Buffer, nl string, bounds []string) {
	b.WriteString("Content-Type: application/pdf" + nl + "Content-Transfer-Encoding: base64" + nl)
	if rng.IntN(8) != 0 {
		b.WriteString(nl)
	}
	data := make([]byte, 3000+rng.IntN(20000))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	s := base64.StdEncoding.EncodeToString(data)
	width := []int{76, 64, 4, 1000, 6000}[rng.IntN(5)]
	bound := bounds[rng.IntN(len(bounds))]
	for len(s) > 0 {
		line := s[:min(width, len(s))]
		s = s[len(line):]
		switch rng.IntN(300) {
		case 0:
			line += "-"
		case 1:
			line += "--" + bound
		case 2:
			line = "QUFB--" + bound + nl + line
		case 3:
			line = "--" + bound + "--" + nl + line
		case 4:
			line = "X-Header: v" + nl + line
		case 5:
			line += "\r"
		case 6:
			line = ""
		}
		b.WriteString(line + nl)
	}
}

func elideTestTree(t *testing.T, src []byte) (used bool) {
	t.Helper()
	plain := &mailParser{raw: src, m: &Mail{}}
	want, wantErr := plain.enmimeParser().ReadParts(bytes.NewReader(src))
	p := &mailParser{raw: src, m: &Mail{}}
	got, ok := p.readPartsElided(src)
	if !ok {
		if len(p.m.Warnings) > 0 || got != nil {
			t.Fatalf("a failed elision left warnings %q", p.m.Warnings)
		}
		return false
	}
	if wantErr != nil {
		t.Fatalf("elided read succeeded, plain read failed: %v", wantErr)
	}
	all := func(*enmime.Part) bool { return true }
	gp, wp := got.DepthMatchAll(all), want.DepthMatchAll(all)
	if len(gp) != len(wp) {
		t.Fatalf("%d parts, want %d", len(gp), len(wp))
	}
	for i := range gp {
		g, w := gp[i], wp[i]
		if g.PartID != w.PartID || g.ContentType != w.ContentType || g.Boundary != w.Boundary ||
			!reflect.DeepEqual(g.Header, w.Header) || !bytes.Equal(g.Content, w.Content) ||
			!reflect.DeepEqual(g.Errors, w.Errors) || !bytes.Equal(g.Epilogue, w.Epilogue) {
			t.Fatalf("part %s differs:\n got  %q %q %q\n want %q %q %q", w.PartID,
				g.Header, g.Errors, shortenForWarning(string(g.Content), 300),
				w.Header, w.Errors, shortenForWarning(string(w.Content), 300))
		}
	}
	if !reflect.DeepEqual(p.m.Warnings, plain.m.Warnings) {
		t.Fatalf("warnings %q, want %q", p.m.Warnings, plain.m.Warnings)
	}
	return true
}

func TestReadPartsElided(t *testing.T) {
	used := 0
	const n = 300
	for i := range n {
		src := elideTestMail(rand.New(rand.NewPCG(uint64(i), 1)))
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if elideTestTree(t, src) {
				used++
			}
		})
	}
	// The generator must exercise elision, not only its fallbacks.
	if used < n/4 {
		t.Fatalf("elision used for %d of %d mails", used, n)
	}
}

// TestReadPartsElidedFallback: what elision cannot be sure of is read
// without it.
func TestReadPartsElidedFallback(t *testing.T) {
	run := strings.Repeat(strings.Repeat("QUFB", 19)+"\r\n", 300)
	for name, src := range map[string]string{
		// The part's header block has no blank line: the base64 lines
		// are read as header lines.
		"header": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n" + run + "\r\n--b--\r\n",
		"long boundary": "Content-Type: multipart/mixed; boundary=" + strings.Repeat("R", 205) + "\r\n\r\n--" + strings.Repeat("R", 205) +
			"\r\nContent-Type: application/pdf\r\n\r\n" + run + "--" + strings.Repeat("R", 205) + "--\r\n",
		"stem": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n" + run + elideStem + "\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if elideTestTree(t, []byte(src)) {
				t.Fatal("elided")
			}
		})
	}
}

// TestReadPartsElidedStemInCut: the marker text within the lines left out
// is put back as it was.
func TestReadPartsElidedStemInCut(t *testing.T) {
	half := strings.Repeat(strings.Repeat("QUFB", 19)+"\r\n", 150)
	src := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n" +
		half + elideStem + "0x\r\n" + half + "--b--\r\n"
	if !elideTestTree(t, []byte(src)) {
		t.Fatal("not elided")
	}
}

func FuzzReadPartsElided(f *testing.F) {
	for i := range 20 {
		f.Add(elideTestMail(rand.New(rand.NewPCG(uint64(i), 1))))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		elideTestTree(t, src)
	})
}
