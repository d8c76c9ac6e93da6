package email

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/jhillyerd/enmime/v2"
)

// enmime reads a multipart body one byte at a time, and again for each
// level of nesting, looking for its boundaries: most of the time of a
// parse goes there, and most of the bytes of a mailbox are base64
// attachments. Lines of base64 cannot hold a boundary ("--" is not in the
// base64 alphabet), so enmime reads the middle of a long run of them
// without a decision to make: it only copies them into the content of
// their part. readPartsElided lets enmime read a copy of the mail in which
// the middle of each such run is replaced by one marker line, then puts
// the lines back in place of the marker in the content of the parts.
//
// The result is the tree enmime builds from the mail itself:
//
//   - A boundary reader decides at each line break whether a delimiter
//     follows, looking at most len(boundary)+6 bytes ahead; in the first
//     read of a part (at most 4096 bytes, its bufio buffer) it decides so
//     at every byte. A delimiter starts with "--", and a part starts
//     after a line that holds one, so never inside a run of base64 lines.
//     The lines left out come after at least elideHead bytes of the run
//     and before at least elideMargin more: no window that sees them (or
//     the marker) reaches a "-", in the mail or in the copy. The same
//     bytes go to the same parts and every boundary is found at the same
//     place. Runs are cut at whole lines, so line reads see the same
//     lines around the cut.
//   - Boundaries longer than elideMaxBoundary would need a wider margin:
//     such a mail is read again without elision.
//   - The marker is a line of base64 characters that the mail does not
//     contain. Where the left-out lines could reach anything other than
//     the content of a part (a header block without its blank line, a
//     parse error quoting a line, a media type handed to our parser),
//     the marker shows instead, and the mail is read again without
//     elision.
const (
	elideMargin      = 256                // base64 bytes kept before the end of a run
	elideHead        = 4096 + elideMargin // and after its start
	elideMaxBoundary = 200                // longest boundary elideMargin covers
	elideMin         = 4096               // shortest cut worth making
)

// elideStem starts every marker line; a mail that contains it outside the
// lines left out is read without elision.
const elideStem = "SwitchboardElidedBase64Lines"

type elision struct {
	marker []byte // the marker line, its line break included
	lines  []byte // the lines it stands for (a part of the source)
}

// isBase64Line reports whether line (without its line break) is not
// empty and holds only characters of the base64 alphabet (no padding).
func isBase64Line(line []byte) bool {
	if len(line) == 0 {
		return false
	}
	for _, c := range line {
		if base64Value[c] >= 64 {
			return false
		}
	}
	return true
}

// elideBase64Runs returns src with the middle of each long run of base64
// lines replaced by a marker line, and what each marker stands for; nil
// when there is nothing worth cutting.
func elideBase64Runs(src []byte) ([]byte, []elision) {
	var cuts []elision
	var out []byte
	copied := 0 // src[:copied] is in out
	cut := func(runStart, runEnd int) {
		// Keep whole lines: at least elideHead bytes at the start of the
		// run and elideMargin bytes at its end.
		first, last := runStart+elideHead, runEnd-elideMargin
		if last-first < elideMin {
			return
		}
		i := bytes.IndexByte(src[first:last], '\n')
		if i < 0 {
			return
		}
		first += i + 1
		last = first + bytes.LastIndexByte(src[first:last], '\n') + 1
		if last-first < elideMin {
			return
		}
		marker := strconv.AppendInt([]byte(elideStem), int64(len(cuts)), 10)
		marker = append(marker, 'x')
		if src[last-2] == '\r' {
			marker = append(marker, '\r')
		}
		marker = append(marker, '\n')
		out = append(out, src[copied:first]...)
		out = append(out, marker...)
		copied = last
		cuts = append(cuts, elision{marker: marker, lines: src[first:last]})
	}
	runStart, off := -1, 0
	for off < len(src) {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			break // a last line without a line break is in no run
		}
		line := src[off : off+i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if isBase64Line(line) {
			if runStart < 0 {
				runStart = off
			}
		} else if runStart >= 0 {
			cut(runStart, off)
			runStart = -1
		}
		off += i + 1
	}
	if runStart >= 0 {
		cut(runStart, off)
	}
	if cuts == nil {
		return nil, nil
	}
	out = append(out, src[copied:]...)
	// The lines left out are put back, never read for markers: only the
	// copy, less its own markers, must not hold the stem. (It holds no
	// line break, so it cannot straddle a cut.)
	if bytes.Count(out, []byte(elideStem)) != len(cuts) {
		return nil, nil
	}
	return out, cuts
}

// readPartsElided builds the MIME tree of src with the middle of long
// base64 runs elided (see above); ok is false when src has nothing worth
// eliding or the result is not certain to be the tree of src, and then
// nothing was changed.
func (p *mailParser) readPartsElided(src []byte) (root *enmime.Part, ok bool) {
	elided, cuts := elideBase64Runs(src)
	if cuts == nil {
		return nil, false
	}
	warnings := len(p.m.Warnings)
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
		if !ok {
			p.m.Warnings = p.m.Warnings[:warnings]
			root = nil
		}
		p.eliding, p.elideLeak = false, false
	}()
	p.eliding = true
	root, err := p.enmimeParser().ReadParts(bytes.NewReader(elided))
	if err != nil || root == nil || p.elideLeak {
		return nil, false
	}
	used := make([]bool, len(cuts))
	ok = true
	root.DepthMatchAll(func(part *enmime.Part) bool {
		if !ok {
			return false
		}
		if len(part.Boundary) > elideMaxBoundary || partMentionsStem(part) {
			ok = false
			return false
		}
		if bytes.Contains(part.Content, []byte(elideStem)) {
			part.Content, ok = restoreElided(part.Content, cuts, used)
		}
		return false
	})
	return root, ok
}

// partMentionsStem reports whether a marker shows in a part anywhere
// other than its content.
func partMentionsStem(part *enmime.Part) bool {
	for k, values := range part.Header {
		if strings.Contains(k, elideStem) {
			return true
		}
		for _, v := range values {
			if strings.Contains(v, elideStem) {
				return true
			}
		}
	}
	for _, e := range part.Errors {
		if e != nil && strings.Contains(e.Detail, elideStem) {
			return true
		}
	}
	return bytes.Contains(part.Epilogue, []byte(elideStem))
}

// restoreElided replaces each marker line in content with the lines it
// stands for; false when a marker is not whole or shows twice.
func restoreElided(content []byte, cuts []elision, used []bool) ([]byte, bool) {
	var out []byte
	for {
		i := bytes.Index(content, []byte(elideStem))
		if i < 0 {
			return append(out, content...), true
		}
		rest := content[i+len(elideStem):]
		j := bytes.IndexByte(rest, 'x')
		if j < 0 {
			return nil, false
		}
		n, err := strconv.Atoi(string(rest[:j]))
		if err != nil || n < 0 || n >= len(cuts) || used[n] || !bytes.HasPrefix(content[i:], cuts[n].marker) {
			return nil, false
		}
		used[n] = true
		if out == nil {
			size := len(content)
			for _, c := range cuts {
				size += len(c.lines)
			}
			out = make([]byte, 0, size)
		}
		out = append(out, content[:i]...)
		out = append(out, cuts[n].lines...)
		content = content[i+len(cuts[n].marker):]
	}
}
