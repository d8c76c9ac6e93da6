package email

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Helpers for the throughput benchmark: fill a mailbox over a client
// connection, and measure the fetch loop alone (fetchOnly) beside the
// full path (fetch, Ingest, acknowledge, cursor).

// imapAppendGenerated APPENDs n generated mails of about size bytes each
// to mailbox over c, numbered from first.
func imapAppendGenerated(ctx context.Context, c *imapclient.Client, mailbox string, first, n, size int) error {
	for i := first; i < first+n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw := imapGeneratedMail(i, size)
		cmd := c.Append(mailbox, int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			return fmt.Errorf("append mail %d: %w", i, err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("append mail %d: %w", i, err)
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("append mail %d: %w", i, err)
		}
	}
	return nil
}

// imapGeneratedMail is mail number i of about size bytes (CRLF, 7-bit).
func imapGeneratedMail(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Load Test %d <load%d@example.org>\r\n"+
		"To: support@example.com\r\n"+
		"Subject: Load test mail %d\r\n"+
		"Date: Mon, 15 Apr 2024 09:00:00 +0200\r\n"+
		"Message-ID: <load-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n", i, i, i, i)
	line := strings.Repeat("lorem ipsum dolor sit amet ", 3)[:72] + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func TestIMAPGeneratedMailAppendAndFetchOnly(t *testing.T) {
	srv := newIMAPTestServer(t, imapTestServerOptions{})
	c, err := imapclient.DialInsecure(srv.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapTestUser, imapTestPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := imapAppendGenerated(context.Background(), c, "INBOX", 1, 25, 2048); err != nil {
		t.Fatal(err)
	}
	sink, cursors, log := newIMAPTestSink(), newIMAPTestCursors(), &imapTestLog{}
	cfg := imapTestConfig(srv, sink, cursors, log)
	cfg.BatchSize = 10
	stats, err := newIMAPWatcher(cfg).fetchOnly(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages != 25 || stats.Bytes < 25*2048 {
		t.Errorf("fetchOnly read %+v, want 25 mails of at least 2048 bytes", stats)
	}
	// fetchOnly acknowledges nothing and saves no cursor.
	for uid, flags := range srv.messages("INBOX") {
		if len(flags) != 0 {
			t.Errorf("UID %d has flags %v after fetchOnly", uid, flags)
		}
	}
	if len(cursors.saves) != 0 || len(sink.ch) != 0 {
		t.Error("fetchOnly saved a cursor or called Ingest")
	}
}

// BenchmarkIMAPFetch reads 500 mails of 4 KiB from the memory server:
// the fetch loop alone, and the full path with an Ingest that does
// nothing (so the difference is acknowledgement and cursor saves).
func BenchmarkIMAPFetch(b *testing.B) {
	const n, size = 500, 4096
	srv := newIMAPTestServer(b, imapTestServerOptions{})
	c, err := imapclient.DialInsecure(srv.addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapTestUser, imapTestPassword).Wait(); err != nil {
		b.Fatal(err)
	}
	if err := imapAppendGenerated(context.Background(), c, "INBOX", 1, n, size); err != nil {
		b.Fatal(err)
	}
	settings := srv.settings()
	b.Run("fetch-only", func(b *testing.B) {
		w := newIMAPWatcher(imapConfig{Settings: settings, Password: imapTestPassword, Cursors: newIMAPTestCursors()})
		for b.Loop() {
			stats, err := w.fetchOnly(context.Background(), "INBOX")
			if err != nil || stats.Messages != n {
				b.Fatalf("fetchOnly: %+v, %v", stats, err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "mails/s")
	})
	b.Run("full-path", func(b *testing.B) {
		for b.Loop() {
			cursors := newIMAPTestCursors()
			ctx, cancel := context.WithCancel(context.Background())
			var count int
			done := make(chan struct{})
			w := newIMAPWatcher(imapConfig{
				Settings: settings, Password: imapTestPassword, Cursors: cursors,
				Ingest: func(context.Context, []byte, Source) error {
					if count++; count == n {
						close(done)
					}
					return nil
				},
			})
			ran := make(chan struct{})
			go func() { defer close(ran); w.Run(ctx) }()
			<-done
			cancel()
			<-ran
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "mails/s")
	})
}
