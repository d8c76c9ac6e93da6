package email

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

const imapTestNote = "This message is 30000000 bytes, more than this channel's limit of 26214400 bytes, so only its header was fetched.%[1]s" +
	"The full message is still on the mail server, in the mailbox \"INBOX\" (UID 42).%[1]s"

// The oversize stub keeps the header as received, renames the top-level
// content fields (folded lines included) so the note is read as the body,
// and keeps the input's line endings (LF in the .eml cases, CRLF on the
// wire).
func TestIMAPOversizeStub(t *testing.T) {
	ours := "Content-Type: text/plain; charset=utf-8%[1]sContent-Transfer-Encoding: 8bit%[1]sX-Switchboard-Oversize: 30000000%[1]s%[1]s"
	for _, tc := range []struct{ name, header, want string }{
		{
			"crlf",
			"From: a@example.org\r\nSubject: Big\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"x\"\r\nMIME-Version: 1.0\r\ncontent-transfer-encoding: base64\r\nContent-Disposition: inline\r\n\r\nbody\r\n",
			"From: a@example.org\r\nSubject: Big\r\nX-Switchboard-Original-Content-Type: multipart/mixed;\r\n\tboundary=\"x\"\r\nMIME-Version: 1.0\r\n" +
				"X-Switchboard-Original-content-transfer-encoding: base64\r\nX-Switchboard-Original-Content-Disposition: inline\r\n" +
				fmt.Sprintf(ours+imapTestNote, "\r\n"),
		},
		{
			"lf",
			"From: a@example.org\nSubject: Big\nContent-Type: multipart/mixed;\n boundary=\"x\"\nX-Note: kept\n\n",
			"From: a@example.org\nSubject: Big\nX-Switchboard-Original-Content-Type: multipart/mixed;\n boundary=\"x\"\nX-Note: kept\n" +
				fmt.Sprintf(ours+imapTestNote, "\n"),
		},
		{
			"no blank line at the end",
			"From: a@example.org\r\nSubject: cut",
			"From: a@example.org\r\nSubject: cut\r\n" + fmt.Sprintf(ours+imapTestNote, "\r\n"),
		},
		{"empty header", "\r\n\r\n", fmt.Sprintf(ours+imapTestNote, "\r\n")},
		{"nothing", "", fmt.Sprintf(ours+imapTestNote, "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(imapOversizeStub([]byte(tc.header), 30000000, 26214400, "INBOX", 42))
			if got != tc.want {
				t.Errorf("stub:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

func FuzzIMAPOversizeStub(f *testing.F) {
	f.Add([]byte("From: a@example.org\r\nContent-Type: multipart/mixed;\r\n boundary=x\r\n\r\n"))
	f.Add([]byte("Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n"))
	f.Add([]byte(" leading continuation\r\n:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, header []byte) {
		out := imapOversizeStub(header, 100, 10, "INBOX", 1)
		head, body, ok := bytes.Cut(out, []byte("\n\n"))
		if !ok {
			head, body, ok = bytes.Cut(out, []byte("\r\n\r\n"))
		}
		if !ok || !bytes.Contains(body, []byte("only its header was fetched")) {
			t.Fatalf("no note body in %q", out)
		}
		// Exactly one top-level Content-Type: ours.
		n := 0
		for line := range bytes.Lines(head) {
			name, _, found := bytes.Cut(line, []byte(":"))
			if found && len(line) > 0 && line[0] != ' ' && line[0] != '\t' && strings.EqualFold(strings.TrimRight(string(name), " \t"), "Content-Type") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d Content-Type fields in %q", n, out)
		}
	})
}
