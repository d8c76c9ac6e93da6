package email

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mails of one batch are ingested concurrently, except that a mail
// answering an earlier one of the batch (In-Reply-To, References) waits
// until that one is stored: threading sees them in UID order.
func TestIMAPParallelIngest(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	mail := func(id, extra string) []byte {
		return fmt.Appendf(nil, "From: c@example.org\r\nTo: support@example.com\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n%s\r\nbody\r\n", id, id, extra)
	}
	srv.appendMail("INBOX", mail("a", ""))
	srv.appendMail("INBOX", mail("b", "In-Reply-To: <a@example.org>\r\n"))
	srv.appendMail("INBOX", mail("c", ""))
	srv.appendMail("INBOX", mail("d", "References: <x@example.org>\r\n <c@example.org>\r\n"))

	var (
		mu       sync.Mutex
		events   []string
		cStarted = make(chan struct{})
		all      = make(chan struct{})
	)
	note := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
		if len(events) == 8 {
			close(all)
		}
	}
	cfg := imapTestConfig(srv, newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{})
	cfg.Parallel = 4
	cfg.Ingest = func(_ context.Context, raw []byte, _ Source) error {
		id := strings.TrimSpace(strings.SplitN(strings.SplitN(string(raw), "Subject: ", 2)[1], "\r\n", 2)[0])
		note("start " + id)
		switch id {
		case "a":
			// a is held until c has started: c does not wait for a.
			select {
			case <-cStarted:
			case <-time.After(imapTestDeadline):
				note("c never started while a was held")
			}
		case "c":
			close(cStarted)
		}
		note("end " + id)
		return nil
	}
	imapTestRun(t, cfg)
	select {
	case <-all:
	case <-time.After(imapTestDeadline):
		t.Fatalf("not every mail was ingested: %v", events)
	}
	mu.Lock()
	defer mu.Unlock()
	at := func(e string) int { return slices.Index(events, e) }
	if at("start c") > at("end a") {
		t.Errorf("c waited for a, which it does not answer: %v", events)
	}
	if at("start b") < at("end a") {
		t.Errorf("b (In-Reply-To a) started before a was stored: %v", events)
	}
	if at("start d") < at("end c") {
		t.Errorf("d (References c) started before c was stored: %v", events)
	}
}

func TestIMAPThreadIDs(t *testing.T) {
	for _, c := range []struct {
		raw, id string
		refs    []string
	}{
		{"Message-ID: <m@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <r1@x>\r\n\t<r2@x>\r\n\r\nbody", "m@x", []string{"a@x", "r1@x", "r2@x"}},
		{"message-id:<m@x>\nreferences: <r1@x> junk <r2@x>\n\nbody", "m@x", []string{"r1@x", "r2@x"}},
		{"Subject: no ids\r\n\r\n", "", nil},
		{"garbage without a header end", "", nil},
		{"", "", nil},
	} {
		id, refs := imapThreadIDs([]byte(c.raw))
		if id != c.id || !slices.Equal(refs, c.refs) {
			t.Errorf("%q: got %q %q, want %q %q", c.raw, id, refs, c.id, c.refs)
		}
	}
}
