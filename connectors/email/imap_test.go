package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/switchboard-hub/switchboard/connectors"
)

func TestIMAPFirstSync(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	for i := 1; i <= 3; i++ {
		srv.appendMail("INBOX", imapTestMail(i, fmt.Sprintf("Question %d", i)))
	}
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	imapTestRun(t, imapTestConfig(srv, sink, cursors, log))

	var validity uint32
	for i := 1; i <= 3; i++ {
		d := sink.next(t)
		if d.src.Via != "imap" || d.src.Mailbox != "INBOX" || d.src.UID != uint32(i) {
			t.Fatalf("mail %d: source %+v, want imap INBOX UID %d (UID order)", i, d.src, i)
		}
		if !bytes.Equal(d.raw, imapTestMail(i, fmt.Sprintf("Question %d", i))) {
			t.Errorf("mail %d: raw differs from what was appended:\n%s", i, d.raw)
		}
		if d.src.UIDValidity == 0 || d.src.InternalDate.IsZero() || d.src.Oversize != 0 {
			t.Errorf("mail %d: source %+v: want UIDValidity and InternalDate set, no Oversize", i, d.src)
		}
		validity = d.src.UIDValidity
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: validity, UID: 3})
	for uid, flags := range srv.messages("INBOX") {
		if !imapTestHasFlag(flags, imap.FlagSeen) {
			t.Errorf("UID %d not \\Seen after it was stored: %v", uid, flags)
		}
	}
}

// Fetching alone never sets \Seen (BODY.PEEK[]), and the acknowledgement
// comes only after Ingest returned nil: an Ingest error leaves the mail
// unseen and unmoved, and the next round tries it again.
func TestIMAPAckOnlyAfterIngest(t *testing.T) {
	for _, mode := range []string{"seen", "move"} {
		t.Run(mode, func(t *testing.T) {
			srv := newIMAPTestServer(t, imapTestServerOptions{})
			if err := srv.user.Create("Processed", nil); err != nil {
				t.Fatal(err)
			}
			srv.appendMail("INBOX", imapTestMail(1, "Where is my parcel?"))
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			var calls atomic.Int32
			sink.fail = func(raw []byte, src Source) error {
				// Both times the mail is still in INBOX and unseen: nothing
				// was acknowledged before Ingest returned nil.
				msgs, err := srv.list("INBOX")
				flags, ok := msgs[imap.UID(src.UID)]
				if err != nil || !ok || imapTestHasFlag(flags, imap.FlagSeen) {
					t.Errorf("call %d: during Ingest the mail is present=%v flags=%v; want present and unseen", calls.Load()+1, ok, flags)
				}
				if calls.Add(1) == 1 {
					return errors.New("database is down")
				}
				return nil
			}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.AfterFetch = mode
			cfg.Settings.ProcessedMailbox = "Processed"
			imapTestRun(t, cfg)

			d := sink.next(t)
			cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 1})
			if n := calls.Load(); n != 2 {
				t.Errorf("Ingest called %d times, want 2 (one failure, one retry)", n)
			}
			inbox := srv.messages("INBOX")
			switch mode {
			case "seen":
				if !imapTestHasFlag(inbox[1], imap.FlagSeen) {
					t.Errorf("after the stored retry the mail is not \\Seen: %v", inbox[1])
				}
			case "move":
				if len(inbox) != 0 || len(srv.messages("Processed")) != 1 {
					t.Errorf("after the stored retry INBOX has %d and Processed %d mails; want 0 and 1", len(inbox), len(srv.messages("Processed")))
				}
			}
			if len(log.records("not stored; it stays unacknowledged")) != 1 {
				t.Errorf("want one warning about the failed Ingest; log:\n%s", log)
			}
		})
	}
}

// A message Ingest can never store is skipped after MaxAttempts (left
// unread on the server, logged as an error), and the mailbox goes on.
func TestIMAPPoisonMessageSkipped(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	srv.appendMail("INBOX", imapTestMail(1, "poison"))
	srv.appendMail("INBOX", imapTestMail(2, "fine"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	var poisonCalls atomic.Int32
	sink.fail = func(raw []byte, src Source) error {
		if src.UID == 1 {
			poisonCalls.Add(1)
			return errors.New("cannot store this one")
		}
		return nil
	}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.MaxAttempts = 3
	imapTestRun(t, cfg)

	d := sink.next(t)
	if d.src.UID != 2 {
		t.Fatalf("delivered UID %d, want 2", d.src.UID)
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 2})
	if n := poisonCalls.Load(); n != 3 {
		t.Errorf("poison message tried %d times, want 3", n)
	}
	msgs := srv.messages("INBOX")
	if imapTestHasFlag(msgs[1], imap.FlagSeen) || !imapTestHasFlag(msgs[2], imap.FlagSeen) {
		t.Errorf("flags %v: want UID 1 left unseen, UID 2 seen", msgs)
	}
	if recs := log.records("could not be stored after repeated attempts"); len(recs) != 1 || recs[0]["level"] != "ERROR" {
		t.Errorf("want one ERROR record for the skipped message, got %v", recs)
	}
}

// While the hub cannot store anything (every Ingest fails), no message is
// counted as bad or skipped: once the hub is back, everything is stored.
func TestIMAPHubOutageSkipsNothing(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	srv.appendMail("INBOX", imapTestMail(1, "one"))
	srv.appendMail("INBOX", imapTestMail(2, "two"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	var calls atomic.Int32
	sink.fail = func([]byte, Source) error {
		if calls.Add(1) <= 8 {
			return errors.New("database is down")
		}
		return nil
	}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.MaxAttempts = 2
	imapTestRun(t, cfg)
	if d := sink.next(t); d.src.UID != 1 {
		t.Fatalf("first stored mail is UID %d", d.src.UID)
	}
	d := sink.next(t)
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 2})
	if recs := log.records("could not be stored after repeated attempts"); len(recs) != 0 {
		t.Errorf("a message was skipped during a hub outage: %v", recs)
	}
}

// A permanent error (connectors.Permanent) counts at once, even with no
// other message to show that the hub works.
func TestIMAPPermanentIngestError(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	srv.appendMail("INBOX", imapTestMail(1, "unstorable"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	var calls atomic.Int32
	sink.fail = func([]byte, Source) error {
		calls.Add(1)
		return connectors.NewError(connectors.Permanent, "bad_mail", "cannot be stored", nil)
	}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.MaxAttempts = 2
	imapTestRun(t, cfg)
	imapTestWaitUntil(t, "the message to be skipped", nil, func() bool {
		return cursors.get("INBOX").UID == 1
	})
	if n := calls.Load(); n != 2 {
		t.Errorf("Ingest called %d times, want MaxAttempts (2)", n)
	}
	if imapTestHasFlag(srv.messages("INBOX")[1], imap.FlagSeen) {
		t.Error("the skipped message was marked \\Seen")
	}
}

// IDLE delivers a new mail although the poll interval is an hour.
func TestIMAPIdleDelivery(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.Settings.PollInterval = Duration(time.Hour)
	imapTestRun(t, cfg)

	imapTestWaitUntil(t, "the watcher to IDLE", srv.idleSeen, func() bool { return srv.idles.Load() > 0 })
	srv.appendMail("INBOX", imapTestMail(1, "Arrived while idling"))
	d := sink.next(t)
	if !strings.Contains(string(d.raw), "Arrived while idling") {
		t.Errorf("delivered %q", d.raw)
	}
	// A second mail is announced to the restarted IDLE as well.
	imapTestWaitUntil(t, "IDLE again", srv.idleSeen, func() bool { return srv.idles.Load() > 1 })
	srv.appendMail("INBOX", imapTestMail(2, "Second while idling"))
	if d := sink.next(t); d.src.UID != 2 {
		t.Errorf("second delivery is UID %d", d.src.UID)
	}
}

// IDLE is ended and issued again every IdleRestart.
func TestIMAPIdleRestart(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.Settings.PollInterval = Duration(time.Hour)
	cfg.Settings.IdleRestart = Duration(10 * time.Millisecond)
	imapTestRun(t, cfg)
	imapTestWaitUntil(t, "three IDLE commands", srv.idleSeen, func() bool { return srv.idles.Load() >= 3 })
	if n := srv.ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want IDLE restarted on the one connection", n)
	}
	srv.appendMail("INBOX", imapTestMail(1, "after restarts"))
	sink.next(t)
}

// A server without IDLE is polled with NOOP and never sent IDLE (C15).
func TestIMAPPollingWithoutIdle(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{hideIdle: true})
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	imapTestRun(t, imapTestConfig(srv, sink, cursors, log))

	imapTestWaitUntil(t, "a NOOP poll", srv.proxy.noopSeen, func() bool { return srv.proxy.noops.Load() > 0 })
	srv.appendMail("INBOX", imapTestMail(1, "found by polling"))
	d := sink.next(t)
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 1})
	if n := srv.proxy.idleSent.Load(); n != 0 {
		t.Errorf("IDLE sent %d times to a server that does not advertise it", n)
	}
	if n := srv.ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections; want one (no reconnect storm)", n)
	}
}

// A server that advertises IDLE but answers it BAD is sent IDLE once and
// then polled: no BAD loop, no reconnect.
func TestIMAPIdleRefused(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{refuseIdle: true})
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	imapTestRun(t, imapTestConfig(srv, sink, cursors, log))
	imapTestWaitUntil(t, "NOOP polls", srv.proxy.noopSeen, func() bool { return srv.proxy.noops.Load() >= 3 })
	srv.appendMail("INBOX", imapTestMail(1, "found by polling"))
	sink.next(t)
	if n := srv.proxy.idleSent.Load(); n != 1 {
		t.Errorf("IDLE sent %d times; want once, then polling", n)
	}
	if n := srv.ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections; want one", n)
	}
	if len(log.records("refused IDLE")) != 1 {
		t.Errorf("want one warning about the refused IDLE:\n%s", log)
	}
}

// C15 on the memory server: the mailbox is deleted and re-created, so
// UIDVALIDITY changes and UIDs start at 1 again. Both mails are handed
// over again (dedup on Message-ID is the hub's), and the cursor is set
// under the new UIDVALIDITY.
func TestIMAPUIDValidityChange(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	mailA, mailB := imapTestMail(1, "Printer offline again"), imapTestMail(2, "Cannot log in to the portal")
	srv.appendMail("INBOX", mailA)
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	imapTestRun(t, imapTestConfig(srv, sink, cursors, log))
	first := sink.next(t)
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: first.src.UIDValidity, UID: 1})

	if err := srv.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv.appendMail("INBOX", mailB)
	srv.appendMail("INBOX", mailA) // restored without \Seen
	srv.ln.dropAll()

	b, a := sink.next(t), sink.next(t)
	if b.src.UID != 1 || !bytes.Equal(b.raw, mailB) || a.src.UID != 2 || !bytes.Equal(a.raw, mailA) {
		t.Fatalf("after the re-creation got UID %d %q and UID %d %q; want B at 1, A at 2", b.src.UID, b.raw, a.src.UID, a.raw)
	}
	if b.src.UIDValidity == first.src.UIDValidity {
		t.Fatal("UIDVALIDITY did not change")
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: b.src.UIDValidity, UID: 2})
	if len(log.records("new UIDVALIDITY")) != 1 {
		t.Errorf("want one warning about the new UIDVALIDITY; log:\n%s", log)
	}
}

func TestIMAPInitialSyncUnseen(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	srv.appendMail("INBOX", imapTestMail(1, "old, read"), imap.FlagSeen)
	srv.appendMail("INBOX", imapTestMail(2, "new, unread"))
	srv.appendMail("INBOX", imapTestMail(3, "old, read"), imap.FlagSeen)
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.Settings.InitialSync = InitialSyncUnseen
	imapTestRun(t, cfg)

	d := sink.next(t)
	if d.src.UID != 2 {
		t.Fatalf("delivered UID %d, want only the unseen UID 2", d.src.UID)
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 3})
	// After the first sync a new mail is taken even if already \Seen.
	srv.appendMail("INBOX", imapTestMail(4, "read on the phone first"), imap.FlagSeen)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(log)
		}
	})
	if d := sink.next(t); d.src.UID != 4 {
		t.Fatalf("delivered UID %d, want 4\n%s", d.src.UID, log)
	}
	select {
	case d := <-sink.ch:
		t.Errorf("unexpected delivery of UID %d", d.src.UID)
	default:
	}
}

func TestIMAPMove(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caps   imap.CapSet
		create bool
	}{
		{"MOVE", nil, true},
		{"COPY and UID EXPUNGE", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}, true},
		{"processed mailbox created on TRYCREATE", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newIMAPTestServer(t, imapTestServerOptions{caps: tc.caps})
			if tc.create {
				if err := srv.user.Create("Processed", nil); err != nil {
					t.Fatal(err)
				}
			}
			srv.appendMail("INBOX", imapTestMail(1, "one"))
			srv.appendMail("INBOX", imapTestMail(2, "two"))
			sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
			cfg := imapTestConfig(srv, sink, cursors, log)
			cfg.Settings.AfterFetch = "move"
			cfg.Settings.ProcessedMailbox = "Processed"
			imapTestRun(t, cfg)
			sink.next(t)
			d := sink.next(t)
			cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 2})
			if n := len(srv.messages("INBOX")); n != 0 {
				t.Errorf("INBOX still holds %d mails", n)
			}
			if n := len(srv.messages("Processed")); n != 2 {
				t.Errorf("Processed holds %d mails, want 2", n)
			}
		})
	}
}

// A message above MaxMessageBytes is fetched header-only and stored as
// its header with a note; the mail beside it is fetched whole.
func TestIMAPOversize(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	big := "From: Sender <s@example.org>\r\n" +
		"Subject: Scans\r\n" +
		"Message-ID: <big-1@example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed;\r\n boundary=\"b1\"\r\n" +
		"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nBODY-MARKER " + strings.Repeat("x", 20000) + "\r\n--b1--\r\n"
	srv.appendMail("INBOX", []byte(big))
	srv.appendMail("INBOX", imapTestMail(2, "small"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.MaxMessageBytes = 4096
	imapTestRun(t, cfg)

	d := sink.next(t)
	raw := string(d.raw)
	if d.src.Oversize != int64(len(big)) {
		t.Errorf("Source.Oversize = %d, want %d", d.src.Oversize, len(big))
	}
	for _, want := range []string{
		"Subject: Scans\r\n",
		"Message-ID: <big-1@example.org>\r\n",
		"X-Switchboard-Original-Content-Type: multipart/mixed;\r\n boundary=\"b1\"\r\n",
		"Content-Type: text/plain; charset=utf-8\r\n",
		fmt.Sprintf("X-Switchboard-Oversize: %d\r\n", len(big)),
		fmt.Sprintf("This message is %d bytes, more than this channel's limit of 4096 bytes", len(big)),
		`in the mailbox "INBOX" (UID 1)`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("stub lacks %q:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, "BODY-MARKER") {
		t.Error("the body of the oversize mail was fetched")
	}
	if d := sink.next(t); d.src.Oversize != 0 || !bytes.Equal(d.raw, imapTestMail(2, "small")) {
		t.Errorf("small mail: oversize %d, raw %q", d.src.Oversize, d.raw)
	}
}

// Bodies are fetched in bounded batches, never the whole mailbox at once.
func TestIMAPBatches(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	for i := 1; i <= 7; i++ {
		srv.appendMail("INBOX", imapTestMail(i, "batch"))
	}
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.BatchSize = 3
	imapTestRun(t, cfg)
	for i := 1; i <= 7; i++ {
		if d := sink.next(t); d.src.UID != uint32(i) {
			t.Fatalf("delivery %d is UID %d", i, d.src.UID)
		}
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: cursors.get("INBOX").UIDValidity, UID: 7})
	got := strings.Join(srv.bodyFetches(), " ")
	if got != "1:3 4:6 7" {
		t.Errorf("body fetches %q, want \"1:3 4:6 7\"", got)
	}
}

func TestIMAPBatchLen(t *testing.T) {
	m := func(sizes ...int64) []imapMeta {
		var out []imapMeta
		for i, s := range sizes {
			out = append(out, imapMeta{uid: imap.UID(i + 1), size: s})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		metas []imapMeta
		want  int
	}{
		{"count bound", m(1, 1, 1, 1, 1), 3},
		{"byte budget", m(40, 40, 40), 2},
		{"one large message still makes a batch", m(500, 1), 1},
		{"oversize costs nothing", m(5000, 5000, 5000, 5000), 3},
		{"short list", m(1), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := imapBatchLen(tc.metas, 3, 100, 1000); got != tc.want {
				t.Errorf("imapBatchLen = %d, want %d", got, tc.want)
			}
		})
	}
}

// One broken mailbox (nonexistent, or one whose SELECT makes the server
// drop the connection) never keeps another from delivering.
func TestIMAPBrokenMailboxDoesNotBlockOthers(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{dropOnSelect: "Dropper"})
	if err := srv.user.Create("Dropper", nil); err != nil {
		t.Fatal(err)
	}
	srv.appendMail("INBOX", imapTestMail(1, "still delivered"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.Settings.Mailboxes = []string{"Missing", "Dropper", "INBOX"}
	imapTestRun(t, cfg)

	d := sink.next(t)
	if d.src.Mailbox != "INBOX" {
		t.Fatalf("delivered from %q", d.src.Mailbox)
	}
	srv.appendMail("INBOX", imapTestMail(2, "and the next one"))
	if d := sink.next(t); d.src.UID != 2 {
		t.Fatalf("delivered UID %d", d.src.UID)
	}
	failed := map[string]bool{}
	imapTestWaitUntil(t, "both broken mailboxes to fail", nil, func() bool {
		for _, rec := range log.records("IMAP session ended; reconnecting") {
			failed[fmt.Sprint(rec["mailbox"])] = true
		}
		return failed["Missing"] && failed["Dropper"]
	})
	if failed["INBOX"] {
		t.Errorf("session failures logged for %v; want Missing and Dropper only", failed)
	}
}

// After the server drops the connection the watcher reconnects (with
// backoff) and delivers what arrived meanwhile.
func TestIMAPReconnect(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	srv.appendMail("INBOX", imapTestMail(1, "before"))
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	imapTestRun(t, imapTestConfig(srv, sink, cursors, log))
	d := sink.next(t)
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: d.src.UIDValidity, UID: 1})

	srv.ln.dropAll()
	srv.appendMail("INBOX", imapTestMail(2, "after"))
	if d := sink.next(t); d.src.UID != 2 {
		t.Fatalf("delivered UID %d after the reconnect", d.src.UID)
	}
	if n := srv.ln.accepted.Load(); n < 2 {
		t.Errorf("%d connections; want a reconnect", n)
	}
	select {
	case d := <-sink.ch:
		t.Errorf("UID %d delivered twice", d.src.UID)
	default:
	}
}

func TestIMAPBackoff(t *testing.T) {
	b := imapBackoff{min: 10 * time.Millisecond, max: 80 * time.Millisecond}
	for i, ceil := range []time.Duration{10, 20, 40, 80, 80, 80} {
		ceil *= time.Millisecond
		if d := b.next(); d <= 0 || d > ceil {
			t.Errorf("delay %d = %s, want in (0, %s]", i, d, ceil)
		}
	}
	b.reset()
	if d := b.next(); d > 10*time.Millisecond {
		t.Errorf("after reset delay %s, want at most the minimum", d)
	}
	slow := imapBackoff{min: time.Minute, max: 30 * time.Minute, floor: true}
	for range 10 {
		if d := slow.next(); d < time.Minute || d > 30*time.Minute {
			t.Errorf("auth delay %s, want within [1m, 30m]", d)
		}
	}
}

// Run returns soon after its context ends even while the server hangs
// (here: accepts the connection and never greets).
func TestIMAPRunReturnsWhenServerHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	cfg := imapConfig{
		Settings: IMAPSettings{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: SecurityPlain, Username: imapTestUser},
		Cursors:  newIMAPTestCursors(),
		Ingest:   newIMAPTestSink().ingest,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		newIMAPWatcher(cfg).Run(ctx)
	}()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(imapTestDeadline):
		t.Fatal("the watcher did not connect")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second): // below go-imap's own 30s greeting timeout
		t.Fatal("Run did not return after cancel while the server hung")
	}
}
