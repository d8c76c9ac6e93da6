package email

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// C15: a scripted IMAP server built from testdata/cases/C15.imap.txt. It
// answers each connection with the next session of the transcript: the
// greeting, the LOGIN and SELECT answers word for word, the mailbox as
// the transcript shows it (UIDVALIDITY, UIDs, flags, the message bytes).
// It fails the test on IDLE (the server does not advertise it), on any
// command it does not know, on a FETCH that would set \Seen (BODY[]
// without PEEK), on wrong credentials, and on more connections than the
// transcript has sessions (a reconnect storm).

type imapC15Message struct {
	uid          uint32
	seq          int
	flags        []string
	internalDate string
	body         []byte // CRLF line endings, as on the wire
}

type imapC15Session struct {
	greeting            string // the whole first line, "* OK ..."
	user, password      string
	loginOK             string // the tagged answer after the tag
	caps                []string
	selectLines         []string
	selectOK            string
	mailbox             string
	uidValidity         uint32
	uidNext             uint32
	idleBAD             string
	messages            []*imapC15Message
	transcriptVerbs     []string // the commands of the transcript, in order
	transcriptIdleIsBug bool
}

// parseIMAPC15Transcript reads the transcript format of C15.imap.txt.
func parseIMAPC15Transcript(t *testing.T, path string) []*imapC15Session {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var sessions []*imapC15Session
	var cur *imapC15Session
	lastVerb := ""
	literal := regexp.MustCompile(`\{(\d+)\}$`)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "=== Session"):
			cur = &imapC15Session{}
			sessions = append(sessions, cur)
			continue
		case cur == nil, strings.HasPrefix(line, "#"), strings.HasPrefix(line, "==="), line == "":
			continue
		}
		who, text, ok := strings.Cut(line, ": ")
		if !ok || (who != "S" && who != "C") {
			t.Fatalf("C15 transcript line %d: %q", i+1, line)
		}
		if who == "C" {
			f := strings.Fields(text)
			verb := strings.ToUpper(f[1])
			if verb == "UID" {
				verb += " " + strings.ToUpper(f[2])
			}
			lastVerb = verb
			cur.transcriptVerbs = append(cur.transcriptVerbs, verb)
			switch verb {
			case "LOGIN":
				cur.user, cur.password = f[2], f[3]
			case "SELECT":
				cur.mailbox = f[2]
			}
			continue
		}
		// A server line; a literal {N} swallows the next N bytes (CRLF
		// line endings) and the line after it.
		if m := literal.FindStringSubmatch(text); m != nil {
			n, _ := strconv.Atoi(m[1])
			var body bytes.Buffer
			for body.Len() < n {
				i++
				body.WriteString(lines[i] + "\r\n")
			}
			if body.Len() != n {
				t.Fatalf("C15 transcript: literal of %d bytes, found %d", n, body.Len())
			}
			i++ // the ")" closing the FETCH response
			cur.messages = append(cur.messages, parseIMAPC15Fetch(t, text, body.Bytes()))
			continue
		}
		if cur.greeting == "" {
			cur.greeting = text
			continue
		}
		tagged := !strings.HasPrefix(text, "* ")
		switch {
		case lastVerb == "LOGIN" && tagged:
			_, cur.loginOK, _ = strings.Cut(text, " ")
			if m := regexp.MustCompile(`\[CAPABILITY ([^\]]*)\]`).FindStringSubmatch(cur.loginOK); m != nil {
				cur.caps = strings.Fields(m[1])
			}
		case lastVerb == "SELECT" && tagged:
			_, cur.selectOK, _ = strings.Cut(text, " ")
		case lastVerb == "SELECT":
			cur.selectLines = append(cur.selectLines, text)
			if m := regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`).FindStringSubmatch(text); m != nil {
				v, _ := strconv.ParseUint(m[1], 10, 32)
				cur.uidValidity = uint32(v)
			}
			if m := regexp.MustCompile(`\[UIDNEXT (\d+)\]`).FindStringSubmatch(text); m != nil {
				v, _ := strconv.ParseUint(m[1], 10, 32)
				cur.uidNext = uint32(v)
			}
		case lastVerb == "IDLE" && tagged:
			_, cur.idleBAD, _ = strings.Cut(text, " ")
			cur.transcriptIdleIsBug = strings.HasPrefix(cur.idleBAD, "BAD")
		}
	}
	return sessions
}

func parseIMAPC15Fetch(t *testing.T, line string, body []byte) *imapC15Message {
	t.Helper()
	re := regexp.MustCompile(`^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE "([^"]+)" RFC822\.SIZE (\d+) BODY\[\] \{\d+\}$`)
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("C15 transcript: FETCH line %q", line)
	}
	seq, _ := strconv.Atoi(m[1])
	uid, _ := strconv.ParseUint(m[2], 10, 32)
	if size, _ := strconv.Atoi(m[5]); size != len(body) {
		t.Fatalf("C15 transcript: RFC822.SIZE %d but a literal of %d bytes", size, len(body))
	}
	return &imapC15Message{uid: uint32(uid), seq: seq, flags: strings.Fields(m[3]), internalDate: m[4], body: body}
}

// imapC15Server serves the transcript's sessions, one per connection.
type imapC15Server struct {
	t        *testing.T
	addr     string
	sessions []*imapC15Session

	mu       sync.Mutex
	conns    int
	verbs    [][]string // commands received, per connection
	polls    []int      // NOOP/STATUS per connection
	event    chan struct{}
	unwanted []string
}

func newIMAPC15Server(t *testing.T, sessions []*imapC15Session) *imapC15Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &imapC15Server{t: t, addr: ln.Addr().String(), sessions: sessions, event: make(chan struct{}, 1)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			n := s.conns
			s.conns++
			s.verbs = append(s.verbs, nil)
			s.polls = append(s.polls, 0)
			s.mu.Unlock()
			if n >= len(sessions) {
				s.fail("C15: connection %d, but the transcript has %d sessions (reconnect storm)", n+1, len(sessions))
				c.Close()
				continue
			}
			go s.serve(c, n, sessions[n])
		}
	}()
	return s
}

func (s *imapC15Server) fail(format string, args ...any) {
	s.mu.Lock()
	s.unwanted = append(s.unwanted, fmt.Sprintf(format, args...))
	s.mu.Unlock()
	s.t.Errorf(format, args...)
}

func (s *imapC15Server) notify() {
	select {
	case s.event <- struct{}{}:
	default:
	}
}

func (s *imapC15Server) snapshot(conn int) (verbs []string, polls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn >= len(s.verbs) {
		return nil, 0
	}
	return slices.Clone(s.verbs[conn]), s.polls[conn]
}

func (s *imapC15Server) seen(m *imapC15Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(m.flags, `\Seen`)
}

func (s *imapC15Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *imapC15Server) serve(c net.Conn, n int, sess *imapC15Session) {
	defer c.Close()
	defer s.notify()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	send := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		w.Flush()
	}
	send(sess.greeting)
	selected := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		tag, rest, _ := strings.Cut(line, " ")
		args := imapC15Tokens(rest)
		if len(args) == 0 {
			s.fail("C15 session %d: empty command %q", n+1, line)
			send(tag + " BAD empty command")
			continue
		}
		verb := strings.ToUpper(args[0])
		if verb == "UID" && len(args) > 1 {
			verb += " " + strings.ToUpper(args[1])
			args = args[1:]
		}
		s.mu.Lock()
		s.verbs[n] = append(s.verbs[n], verb)
		s.mu.Unlock()
		s.notify()
		switch verb {
		case "CAPABILITY":
			send("* CAPABILITY "+strings.Join(sess.caps, " "), tag+" OK Capability completed")
		case "LOGIN":
			if len(args) != 3 || args[1] != sess.user || args[2] != sess.password {
				s.fail("C15 session %d: LOGIN with other credentials: %q", n+1, args[1:])
				send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
				continue
			}
			send(tag + " " + sess.loginOK)
		case "AUTHENTICATE":
			want := "\x00" + sess.user + "\x00" + sess.password
			ir := ""
			if len(args) == 3 {
				ir = args[2]
			}
			got, _ := base64.StdEncoding.DecodeString(ir)
			if len(args) < 2 || !strings.EqualFold(args[1], "PLAIN") || string(got) != want {
				s.fail("C15 session %d: AUTHENTICATE %q not PLAIN with the transcript's credentials", n+1, args[1:])
				send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
				continue
			}
			send(tag + " " + sess.loginOK)
		case "SELECT":
			if len(args) != 2 || args[1] != sess.mailbox {
				s.fail("C15 session %d: SELECT %q", n+1, args[1:])
				send(tag + " NO [NONEXISTENT] Mailbox doesn't exist")
				continue
			}
			selected = true
			send(sess.selectLines...)
			send(tag + " " + sess.selectOK)
		case "UID FETCH":
			if !selected || len(args) < 3 {
				s.fail("C15 session %d: UID FETCH %q", n+1, args)
				send(tag + " BAD Error in IMAP command UID FETCH")
				continue
			}
			s.fetch(w, n, sess, args[1], strings.Join(args[2:], " "))
			send(tag + " OK Fetch completed")
		case "UID STORE":
			if !selected || len(args) != 4 || strings.ToUpper(args[2]) != "+FLAGS.SILENT" || args[3] != `(\Seen)` {
				s.fail("C15 session %d: UID STORE %q; want +FLAGS.SILENT (\\Seen)", n+1, args[1:])
				send(tag + " BAD Error in IMAP command UID STORE")
				continue
			}
			s.mu.Lock()
			for _, m := range imapC15Select(sess, args[1]) {
				if !slices.Contains(m.flags, `\Seen`) {
					m.flags = append(m.flags, `\Seen`)
				}
			}
			s.mu.Unlock()
			send(tag + " OK Store completed")
		case "NOOP":
			s.mu.Lock()
			s.polls[n]++
			s.mu.Unlock()
			send(tag + " OK NOOP completed")
		case "STATUS":
			s.mu.Lock()
			s.polls[n]++
			s.mu.Unlock()
			send(fmt.Sprintf("* STATUS %s (MESSAGES %d UIDNEXT %d UIDVALIDITY %d)", sess.mailbox, len(sess.messages), sess.uidNext, sess.uidValidity),
				tag+" OK Status completed")
		case "IDLE":
			s.fail("C15 session %d: IDLE sent to a server that does not advertise it", n+1)
			send(tag + " " + sess.idleBAD)
		case "LOGOUT":
			send("* BYE Logging out", tag+" OK Logout completed")
			return
		default:
			s.fail("C15 session %d: unexpected command %q", n+1, line)
			send(tag + " BAD Error in IMAP command " + verb + ": Unknown command.")
		}
	}
}

// fetch answers UID FETCH with the items asked for, from the transcript.
func (s *imapC15Server) fetch(w *bufio.Writer, n int, sess *imapC15Session, set, items string) {
	items = strings.ToUpper(strings.Trim(items, "()"))
	for _, m := range imapC15Select(sess, set) {
		var parts []string
		var lit []byte
		for _, it := range strings.Fields(items) {
			switch it {
			case "UID":
				parts = append(parts, fmt.Sprintf("UID %d", m.uid))
			case "FLAGS":
				s.mu.Lock()
				parts = append(parts, "FLAGS ("+strings.Join(m.flags, " ")+")")
				s.mu.Unlock()
			case "INTERNALDATE":
				parts = append(parts, `INTERNALDATE "`+m.internalDate+`"`)
			case "RFC822.SIZE":
				parts = append(parts, fmt.Sprintf("RFC822.SIZE %d", len(m.body)))
			case "BODY.PEEK[]":
				lit = m.body
				parts = append(parts, fmt.Sprintf("BODY[] {%d}", len(lit)))
			case "BODY.PEEK[HEADER]":
				i := bytes.Index(m.body, []byte("\r\n\r\n"))
				lit = m.body[:i+4]
				parts = append(parts, fmt.Sprintf("BODY[HEADER] {%d}", len(lit)))
			default:
				s.fail("C15 session %d: FETCH item %q (BODY[] without PEEK would set \\Seen)", n+1, it)
			}
		}
		if lit == nil {
			fmt.Fprintf(w, "* %d FETCH (%s)\r\n", m.seq, strings.Join(parts, " "))
			continue
		}
		// The literal ends the list, as in the transcript.
		fmt.Fprintf(w, "* %d FETCH (%s\r\n", m.seq, strings.Join(parts, " "))
		w.Write(lit)
		w.WriteString(")\r\n")
	}
	w.Flush()
}

// imapC15Select returns the messages a UID set names. Like a real server
// it answers "n:*" with the last message even when n is past it.
func imapC15Select(sess *imapC15Session, set string) []*imapC15Message {
	maxUID := uint32(0)
	for _, m := range sess.messages {
		maxUID = max(maxUID, m.uid)
	}
	var out []*imapC15Message
	for _, m := range sess.messages {
		for part := range strings.SplitSeq(set, ",") {
			lo, hi, isRange := strings.Cut(part, ":")
			num := func(s string) uint32 {
				if s == "*" {
					return maxUID
				}
				v, _ := strconv.ParseUint(s, 10, 32)
				return uint32(v)
			}
			a, b := num(lo), num(lo)
			if isRange {
				b = num(hi)
			}
			if a > b {
				a, b = b, a
			}
			if m.uid >= a && m.uid <= b {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// imapC15Tokens splits a command into atoms, quoted strings and
// parenthesised lists (kept whole).
func imapC15Tokens(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		switch s[0] {
		case '"':
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			out = append(out, b.String())
			s = s[min(i+1, len(s)):]
		case '(':
			depth, i := 0, 0
			for ; i < len(s); i++ {
				if s[i] == '(' {
					depth++
				} else if s[i] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			out = append(out, s[:min(i+1, len(s))])
			s = s[min(i+1, len(s)):]
		default:
			tok, rest, _ := strings.Cut(s, " ")
			out = append(out, tok)
			s = rest
		}
	}
	return out
}

// C15: the mailbox is re-created between two sessions, so UIDVALIDITY
// changes, message B takes UID 1 and A comes back at UID 2 without \Seen;
// the server has no IDLE. Session 1 hands over A once and polls (no IDLE,
// no BAD loop, no reconnect storm). Session 2 hands over B and A again
// (not skipped as "UID 1 already processed"; the hub's dedup on
// <msgA-20240415090000@example.org> keeps A to one ticket) and ends with
// the cursor (1713860000, 2).
func TestIMAPCaseC15(t *testing.T) {
	for _, auth := range []string{"login", "plain"} {
		t.Run("auth "+auth, func(t *testing.T) {
			sessions := parseIMAPC15Transcript(t, "testdata/cases/C15.imap.txt")
			if len(sessions) != 2 || len(sessions[0].messages) != 1 || len(sessions[1].messages) != 2 {
				t.Fatalf("C15 transcript parsed into %d sessions", len(sessions))
			}
			if slices.Contains(sessions[0].caps, "IDLE") || !sessions[0].transcriptIdleIsBug {
				t.Fatal("C15 transcript: the server must not advertise IDLE and must answer it BAD")
			}
			srv := newIMAPC15Server(t, sessions)
			host, port, _ := net.SplitHostPort(srv.addr)
			portN, _ := strconv.Atoi(port)
			cursors := newIMAPTestCursors()
			run := func(sink *imapTestSink, log *imapTestLog) func() {
				return imapTestRun(t, imapConfig{
					Settings: IMAPSettings{
						Host: host, Port: portN, Security: SecurityPlain,
						Username: sessions[0].user, Auth: auth,
						PollInterval: Duration(10 * time.Millisecond),
					},
					Password: sessions[0].password,
					Cursors:  cursors,
					Ingest:   sink.ingest,
					Logger:   log.logger(),
					Parallel: 1,
					Retry:    imapRetry{Min: time.Millisecond, Max: 10 * time.Millisecond, AuthMin: time.Hour, AuthMax: time.Hour},
				})
			}

			// Session 1.
			sink1, log1 := newIMAPTestSink(), &imapTestLog{}
			stop1 := run(sink1, log1)
			a := sink1.next(t)
			if a.src.UID != 1 || !bytes.Equal(a.raw, sessions[0].messages[0].body) ||
				!bytes.Contains(a.raw, []byte("Subject: Printer offline again\r\n")) {
				t.Fatalf("session 1 delivered UID %d:\n%s", a.src.UID, a.raw)
			}
			cursors.waitFor(t, "INBOX", Cursor{UIDValidity: 1713160000, UID: 1})
			imapTestWaitUntil(t, "a poll in session 1", srv.event, func() bool {
				_, polls := srv.snapshot(0)
				return polls >= 2
			})
			stop1()
			verbs1, _ := srv.snapshot(0)
			imapC15CheckVerbs(t, 1, verbs1)
			if !srv.seen(sessions[0].messages[0]) {
				t.Error("session 1: message A was not marked \\Seen")
			}
			if len(sink1.ch) != 0 {
				t.Errorf("session 1 delivered %d more mails; want one ticket only", len(sink1.ch))
			}

			// Session 2: the next poll after the re-creation.
			sink2, log2 := newIMAPTestSink(), &imapTestLog{}
			stop2 := run(sink2, log2)
			b, a2 := sink2.next(t), sink2.next(t)
			if b.src.UID != 1 || b.src.UIDValidity != 1713860000 || !bytes.Equal(b.raw, sessions[1].messages[0].body) ||
				!bytes.Contains(b.raw, []byte("Subject: Cannot log in to the portal\r\n")) {
				t.Fatalf("session 2 first delivery: UID %d under %d:\n%s", b.src.UID, b.src.UIDValidity, b.raw)
			}
			if a2.src.UID != 2 || !bytes.Contains(a2.raw, []byte("Message-ID: <msgA-20240415090000@example.org>\r\n")) {
				t.Fatalf("session 2 second delivery: UID %d:\n%s", a2.src.UID, a2.raw)
			}
			cursors.waitFor(t, "INBOX", Cursor{UIDValidity: 1713860000, UID: 2})
			stop2()
			verbs2, _ := srv.snapshot(1)
			imapC15CheckVerbs(t, 2, verbs2)
			t.Logf("session 1: %q", verbs1)
			t.Logf("session 2: %q", verbs2)
			for _, m := range sessions[1].messages {
				if !srv.seen(m) {
					t.Errorf("session 2: UID %d not marked \\Seen", m.uid)
				}
			}
			if n := srv.connCount(); n != 2 {
				t.Errorf("%d connections for two sessions", n)
			}
			if len(log2.records("new UIDVALIDITY")) != 1 {
				t.Errorf("session 2 did not log the UIDVALIDITY change:\n%s", log2)
			}
		})
	}
}

// imapC15CheckVerbs checks the shape of a session: log in, select, then
// only fetches, stores and polls, and LOGOUT at the end.
func imapC15CheckVerbs(t *testing.T, session int, verbs []string) {
	t.Helper()
	if len(verbs) < 4 || (verbs[0] != "LOGIN" && verbs[0] != "AUTHENTICATE") || verbs[1] != "SELECT" || verbs[len(verbs)-1] != "LOGOUT" {
		t.Errorf("session %d commands %q: want LOGIN, SELECT, …, LOGOUT", session, verbs)
	}
	for _, v := range verbs {
		if v == "IDLE" {
			t.Errorf("session %d sent IDLE: %q", session, verbs)
		}
	}
	if !slices.Contains(verbs, "UID STORE") {
		t.Errorf("session %d never acknowledged: %q", session, verbs)
	}
}
