package email

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// The watcher against a real Dovecot: first sync, IDLE delivery (the poll
// interval is an hour), acknowledgement with \Seen, then move mode.
func TestIMAPDovecot(t *testing.T) {
	d := testenv.Dovecot(t)
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(d.User, d.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Processed", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := imapAppendGenerated(ctx, c, "INBOX", 1, 3, 1024); err != nil {
		t.Fatal(err)
	}

	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapConfig{
		Settings: IMAPSettings{
			Host: d.Host, Port: d.Port, Security: SecurityPlain, Username: d.User,
			PollInterval: Duration(time.Hour),
		},
		Password: d.Password,
		Cursors:  cursors,
		Ingest:   sink.ingest,
		Logger:   log.logger(),
		Parallel: 1,
		Retry:    imapRetry{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, AuthMin: time.Hour, AuthMax: time.Hour},
	}
	stop := imapTestRun(t, cfg)
	var validity uint32
	for i := 1; i <= 3; i++ {
		got := sink.next(t)
		if got.src.UID != uint32(i) {
			t.Fatalf("delivery %d is UID %d", i, got.src.UID)
		}
		validity = got.src.UIDValidity
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: validity, UID: 3})

	imapTestWaitUntil(t, "the watcher to IDLE", nil, func() bool { return len(log.records("IDLE")) > 0 })
	if err := imapAppendGenerated(ctx, c, "INBOX", 4, 1, 1024); err != nil {
		t.Fatal(err)
	}
	if got := sink.next(t); got.src.UID != 4 {
		t.Fatalf("IDLE delivery is UID %d", got.src.UID)
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: validity, UID: 4})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("INBOX holds %d mails", len(msgs))
	}
	for _, m := range msgs {
		if !imapTestHasFlag(m.Flags, imap.FlagSeen) {
			t.Errorf("UID %d not \\Seen after it was stored: %v", m.UID, m.Flags)
		}
	}
	stop()

	// Move mode: a new mail ends up in Processed, INBOX keeps the rest.
	if err := imapAppendGenerated(ctx, c, "INBOX", 5, 1, 1024); err != nil {
		t.Fatal(err)
	}
	cfg.Settings.AfterFetch, cfg.Settings.ProcessedMailbox = "move", "Processed"
	imapTestRun(t, cfg)
	if got := sink.next(t); got.src.UID != 5 {
		t.Fatalf("move mode delivered UID %d", got.src.UID)
	}
	cursors.waitFor(t, "INBOX", Cursor{UIDValidity: validity, UID: 5})
	st, err := c.Status("Processed", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("Processed holds %v mails, want 1", st.NumMessages)
	}
	if strings.Contains(log.String(), d.Password) {
		t.Error("the password appears in the log")
	}
}
