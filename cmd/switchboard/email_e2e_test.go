package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// importMailbox is an in-memory IMAP server holding n mails in INBOX of
// support/imap-secret-password.
func importMailbox(t *testing.T, n int) (string, *imapmemserver.User) {
	t.Helper()
	var mails [][]byte
	for i := range n {
		mails = append(mails, fmt.Appendf(nil, "From: Customer %d <customer%d@example.org>\r\nTo: support@example.com\r\n"+
			"Subject: Import %d\r\nMessage-ID: <import-%d@example.org>\r\nDate: Mon, 15 Apr 2024 09:00:00 +0200\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nMail number %d of the import.\r\n", i%50, i%50, i, i, i))
	}
	return testenv.IMAPMemory(t, "support", "imap-secret-password", mails)
}

// seedMailChannel adds an email channel reading the IMAP server at addr.
func seedMailChannel(t *testing.T, dsn, addr string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	settings, _ := json.Marshal(map[string]any{
		"address":      "support@example.com",
		"sender_limit": map[string]any{"disabled": true},
		"imap":         map[string]any{"host": host, "port": p, "security": "plain", "username": "support", "poll_interval": "5s"},
	})
	secrets, _ := json.Marshal(map[string]string{"imap_password": "imap-secret-password"})
	if err := st.CreateChannel(ctx, &store.Channel{ID: "acme-mail", InstanceID: "acme", Kind: "email", Name: "Support mail",
		Settings: string(settings), Secrets: string(secrets), Enabled: true}); err != nil {
		t.Fatal(err)
	}
}

// countMail returns how many inbound messages the mail channel holds and
// how many distinct Message-IDs among them.
func countMail(t *testing.T, dsn string) (total, distinct int) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	if err := st.DB.NewSelect().Model((*store.Message)(nil)).Column("external_id").
		Where("channel_id = ? AND direction = ?", "acme-mail", store.DirIn).Scan(ctx, &ids); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(ids), len(seen)
}

// Kill -9 during an import of 1,000 mails over IMAP, restart: every mail
// stored exactly once, none missing, and every one marked \Seen only after
// it was stored.
func TestKill9DuringMailImport(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	for _, stack := range []string{"sqlite", "postgres+redis"} {
		t.Run(stack, func(t *testing.T) {
			const total = 1000
			addr, user := importMailbox(t, total)
			data := t.TempDir()
			p := newSQLiteSetup(t, data)
			if stack != "sqlite" {
				p = newProdSetup(t)
			}
			seedMailChannel(t, p.dsn, addr)
			n := startNode(t, p.env(), "--data", data)

			deadline := time.Now().Add(2 * time.Minute)
			for {
				stored, _ := countMail(t, p.dsn)
				if stored >= 50 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the import did not start:\n%s", n.logs())
				}
				time.Sleep(20 * time.Millisecond)
			}
			n.kill(syscall.SIGKILL)
			before, _ := countMail(t, p.dsn)
			t.Logf("%d of %d mails stored before kill -9", before, total)
			if before == total {
				t.Log("the import finished before the kill; the restart still must add nothing")
			}

			n.start()
			deadline = time.Now().Add(3 * time.Minute)
			for {
				stored, _ := countMail(t, p.dsn)
				if stored >= total {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("only %d of %d mails after the restart:\n%s", stored, total, n.logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Let the watcher finish marking and go idle, then check.
			unseen := func() uint32 {
				sd, err := user.Status("INBOX", &imap.StatusOptions{NumUnseen: true})
				if err != nil {
					t.Fatal(err)
				}
				return *sd.NumUnseen
			}
			for deadline := time.Now().Add(time.Minute); unseen() > 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			stored, distinct := countMail(t, p.dsn)
			if stored != total || distinct != total {
				t.Fatalf("stored %d mails with %d distinct Message-IDs, want %d once each", stored, distinct, total)
			}
			if u := unseen(); u != 0 {
				t.Errorf("%d mails still unseen after the import", u)
			}
		})
	}
}
