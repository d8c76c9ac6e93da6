package email_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime/quotedprintable"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/email"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// BenchmarkMailImport: a mailbox of realistic mails (mixed sizes and
// charsets, multipart/alternative, replies with quoted history, 10% with
// an attachment) fetched over IMAP, parsed and stored on Postgres by the
// email channel of a real hub, against the limit measured in the same run:
// the same mailbox only fetched and discarded.
//
//	go test -run '^$' -bench MailImport -benchtime 1x ./connectors/email/
//
// SWITCHBOARD_BENCH_MAILS sets the mailbox size (default 10,000);
// SWITCHBOARD_BENCH_IMAP the server: "dovecot" (the default, a real IMAP
// server reading a Maildir) or "memory" (go-imap's in-memory server, whose
// fetch costs next to nothing).
func BenchmarkMailImport(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("SWITCHBOARD_BENCH_MAILS")); err == nil && v > 0 {
		n = v
	}
	dsn := testenv.Postgres(b)
	mails, totalBytes, withAtt := benchCorpus(n)
	server := os.Getenv("SWITCHBOARD_BENCH_IMAP")
	if server == "" {
		server = "dovecot"
	}
	var host, user, password string
	var port int
	switch server {
	case "dovecot":
		d := testenv.Dovecot(b)
		benchMaildir(b, filepath.Join(d.Dir, "mail", d.User), mails)
		host, port, user, password = d.Host, d.Port, d.User, d.Password
	case "memory":
		addr, _ := testenv.IMAPMemory(b, "support", "bench-password", mails)
		h, p, _ := net.SplitHostPort(addr)
		host, user, password = h, "support", "bench-password"
		port, _ = strconv.Atoi(p)
	default:
		b.Fatalf("SWITCHBOARD_BENCH_IMAP=%q: want dovecot or memory", server)
	}
	imapSettings := email.IMAPSettings{Host: host, Port: port, Security: email.SecurityPlain, Username: user}
	// A first pass lets the server build its index, so that neither run
	// below pays for it.
	if got, _, err := email.FetchOnly(context.Background(), imapSettings, password, nil); err != nil || got != n {
		b.Fatalf("warm-up fetch: %d mails, %v", got, err)
	}
	b.Logf("mailbox on %s: %d mails, %.1f MiB, %d with an attachment", server, n, float64(totalBytes)/(1<<20), withAtt)

	for b.Loop() {
		// The limit: fetch only.
		start := time.Now()
		got, _, err := email.FetchOnly(context.Background(), imapSettings, password, nil)
		if err != nil || got != n {
			b.Fatalf("fetch only: %d mails, %v", got, err)
		}
		fetchRate := float64(n) / time.Since(start).Seconds()

		// The full path: a hub on Postgres with an email channel on the
		// same mailbox; done when every mail is stored.
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		blobs, _ := blob.NewDir(b.TempDir())
		reg := connectors.NewRegistry()
		_ = reg.Register(email.Kind, email.NewFactory(email.Options{}))
		bus := memroute.NewBus()
		h, err := hub.New(hub.Deps{Store: st, Router: memroute.New(routing.Config{}), Bus: bus, Blobs: blobs, Connectors: reg,
			Logger: slog.New(slog.DiscardHandler)}, hub.Config{})
		if err != nil {
			b.Fatal(err)
		}
		hctx, stopHub := context.WithCancel(ctx)
		if err := h.Start(hctx); err != nil {
			b.Fatal(err)
		}
		inst := fmt.Sprintf("bench%d", time.Now().UnixNano())
		if err := st.CreateInstance(ctx, &store.Instance{ID: inst, Name: "Bench", TimeZone: "UTC"}); err != nil {
			b.Fatal(err)
		}
		settings, _ := json.Marshal(map[string]any{
			"address": "support@example.com", "sender_limit": map[string]any{"disabled": true},
			"imap": map[string]any{"host": host, "port": port, "security": "plain", "username": user},
		})
		secrets, _ := json.Marshal(map[string]string{"imap_password": password})
		ch := store.Channel{ID: inst + "-mail", InstanceID: inst, Kind: "email", Name: "Mail", Settings: string(settings), Secrets: string(secrets), Enabled: true}
		if err := st.CreateChannel(ctx, &ch); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := h.StartChannel(ctx, ch); err != nil {
			b.Fatal(err)
		}
		for {
			c, err := st.DB.NewSelect().Model((*store.Message)(nil)).Where("channel_id = ?", ch.ID).Count(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if int(c) >= n {
				break
			}
			if time.Since(start) > 30*time.Minute {
				b.Fatalf("only %d of %d mails stored", c, n)
			}
			// Counting is not free for Postgres: look a few times a second.
			time.Sleep(250 * time.Millisecond)
		}
		elapsed := time.Since(start)
		h.StopChannels(ctx)
		stopHub()
		h.Wait(ctx)
		bus.Close()
		st.Close()
		rate := float64(n) / elapsed.Seconds()
		b.ReportMetric(rate, "mails/s")
		b.ReportMetric(fetchRate, "fetch-only-mails/s")
		b.ReportMetric(rate/fetchRate, "ratio")
		fmt.Printf("mail import from %s: %d mails in %s: %.0f mails/s stored; fetch only %.0f mails/s; ratio %.2f (target ≥ 0.5)\n",
			server, n, elapsed.Round(time.Millisecond), rate, fetchRate, rate/fetchRate)
	}
}

// benchCorpus generates the n mails of the benchmark.
func benchCorpus(n int) (mails [][]byte, total int64, withAtt int) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		raw, att := benchMail(rng, i)
		if att {
			withAtt++
		}
		total += int64(len(raw))
		mails = append(mails, raw)
	}
	return mails, total, withAtt
}

// benchMaildir puts mails into a Maildir as new, unread mail: far faster
// than APPEND for ten thousand of them, and what a delivery agent does.
func benchMaildir(b *testing.B, dir string, mails [][]byte) {
	b.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for i, raw := range mails {
		name := filepath.Join(dir, "new", fmt.Sprintf("1713164400.M%dP1.bench", i))
		if err := os.WriteFile(name, raw, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// The mail processes run as the owner of the mail directory.
	if os.Geteuid() == 0 {
		st, err := os.Stat(filepath.Dir(dir))
		if err != nil {
			b.Fatal(err)
		}
		uid, gid := int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid)
		err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, uid, gid)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

var benchWords = strings.Fields(`order invoice delivery parcel refund account password login printer offline
	please thanks hello regards since yesterday again arrived damaged tracking number customer support
	bestelling factuur levering pakket bedankt groeten commande facture livraison merci`)

func benchText(rng *rand.Rand, words int) string {
	var sb strings.Builder
	for i := range words {
		sb.WriteString(benchWords[rng.IntN(len(benchWords))])
		if i%12 == 11 {
			sb.WriteString("\r\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	return sb.String()
}

// benchMail is mail i of the corpus: about half plain text, half
// text+HTML alternatives; a third replies with quoted history; a tenth with
// an attachment of 20–200 KiB; some Latin-1 quoted-printable.
func benchMail(rng *rand.Rand, i int) ([]byte, bool) {
	var b bytes.Buffer
	from := fmt.Sprintf("Customer %d <customer%d@example.org>", i%700, i%700)
	fmt.Fprintf(&b, "From: %s\r\nTo: Support <support@example.com>\r\nSubject: Question about order %d\r\n"+
		"Date: Mon, 15 Apr 2024 09:%02d:00 +0200\r\nMessage-ID: <bench-%d@example.org>\r\nMIME-Version: 1.0\r\n", from, 1000+i, i%60, i)
	if i%3 == 1 && i > 0 {
		fmt.Fprintf(&b, "In-Reply-To: <bench-%d@example.org>\r\nReferences: <bench-%d@example.org>\r\n", i-1, i-1)
	}
	text := benchText(rng, 40+rng.IntN(600))
	if i%3 == 1 {
		text += "\r\n\r\nOn Mon, 15 Apr 2024 at 08:00, Support <support@example.com> wrote:\r\n> " +
			strings.ReplaceAll(benchText(rng, 80), "\r\n", "\r\n> ")
	}
	att := i%10 == 7
	boundary := fmt.Sprintf("b%d", i)
	if att {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s-m\"\r\n\r\n--%s-m\r\n", boundary, boundary)
	}
	switch {
	case i%7 == 3: // Latin-1, quoted-printable
		b.WriteString("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		_, _ = w.Write([]byte("Caf\xe9 cr\xe8me, r\xe9ponse: " + text))
		_ = w.Close()
		b.Write(qp.Bytes())
		b.WriteString("\r\n")
	case i%2 == 0:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		b.WriteString(text + "\r\n")
	default:
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"%s-a\"\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s-a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", boundary, text)
		html := "<html><body><div>" + strings.ReplaceAll(text, "\r\n", "<br>\r\n") + "</div></body></html>"
		fmt.Fprintf(&b, "--%s-a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n%s\r\n--%s-a--\r\n", boundary, html, boundary)
	}
	if att {
		data := make([]byte, 20<<10+rng.IntN(180<<10))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		enc := base64.StdEncoding.EncodeToString(data)
		fmt.Fprintf(&b, "--%s-m\r\nContent-Type: application/pdf; name=\"scan-%d.pdf\"\r\nContent-Disposition: attachment; filename=\"scan-%d.pdf\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n", boundary, i, i)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--" + boundary + "-m--\r\n")
	}
	return b.Bytes(), att
}

// BenchmarkParse parses the import benchmark's mails (CPU only, no I/O):
// the parser's share of the import.
//
//	go test -run '^$' -bench 'Parse$' ./connectors/email/
func BenchmarkParse(b *testing.B) {
	mails, total, _ := benchCorpus(500)
	b.SetBytes(total / int64(len(mails)))
	for i := 0; b.Loop(); i++ {
		email.Parse(mails[i%len(mails)])
	}
}
