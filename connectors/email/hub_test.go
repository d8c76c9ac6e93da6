package email_test

// The email channel end to end: a real hub (SQLite and Postgres), mail in
// over the node's SMTP listener and out through a real SMTP relay (go-smtp
// servers on loopback). These tests hold the cases of ../shared/cases that
// need the ticket model: threading (C05), loops (C07), bounces (C08).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/email"
	"github.com/switchboard-hub/switchboard/connectors/webform"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

const hubInstance = "acme"

// hubFixture is a hub with one email channel (support@example.com) that
// receives over the node's SMTP listener and sends through relay.
type hubFixture struct {
	h       *hub.Hub
	st      *store.Store
	mx      string // address of the node's SMTP listener
	relay   *relaySink
	channel string
}

func newHubFixture(t *testing.T, dsn string) *hubFixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	relay := newRelaySink(t)
	srv := email.NewSMTPServer(email.SMTPServerConfig{Domain: "mx.test", Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	reg := connectors.NewRegistry()
	if err := reg.Register(email.Kind, email.NewFactory(email.Options{SMTPServer: srv})); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(webform.Kind, webform.Factory); err != nil {
		t.Fatal(err)
	}
	bus := memroute.NewBus()
	t.Cleanup(func() { bus.Close() })
	h, err := hub.New(hub.Deps{Store: st, Router: memroute.New(routing.Config{}), Bus: bus, Blobs: blobs, Connectors: reg,
		Logger: slog.New(slog.DiscardHandler)}, hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateInstance(ctx, &store.Instance{ID: hubInstance, Name: "Acme", TimeZone: "Europe/Amsterdam"}); err != nil {
		t.Fatal(err)
	}
	settings, _ := json.Marshal(map[string]any{
		"address": "support@example.com", "inbound_smtp": true,
		"smtp": map[string]any{"host": "127.0.0.1", "port": relay.port, "security": "plain"},
	})
	ch := store.Channel{ID: "acme-mail", InstanceID: hubInstance, Kind: string(email.Kind), Name: "Support mail",
		Enabled: true, Settings: string(settings)}
	if err := st.CreateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	if err := h.StartChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.StopChannels(context.Background()) })
	return &hubFixture{h: h, st: st, mx: ln.Addr().String(), relay: relay, channel: ch.ID}
}

// hubStacks runs fn on SQLite and, when reachable, Postgres.
func hubStacks(t *testing.T, fn func(t *testing.T, f *hubFixture)) {
	testenv.Databases(t, func(t *testing.T, dsn string) { fn(t, newHubFixture(t, dsn)) })
}

// receive hands a raw mail (LF or CRLF) to the node's SMTP listener, as
// an MX would, and fails the test unless it is accepted.
func (f *hubFixture) receive(t *testing.T, raw []byte, rcpt string) {
	t.Helper()
	if err := f.send(raw, rcpt); err != nil {
		t.Fatalf("SMTP delivery to the listener: %v", err)
	}
}

func (f *hubFixture) send(raw []byte, rcpt string) error {
	c, err := smtp.Dial(f.mx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail("mta@relay.test", []string{rcpt}, bytes.NewReader(crlf(raw)))
}

func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

func readHubCase(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/cases/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *hubFixture) tickets(t *testing.T) []store.Ticket {
	t.Helper()
	ts, err := f.st.Tickets(context.Background(), hubInstance, store.TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func (f *hubFixture) messages(t *testing.T, ticketID int64) []*store.Message {
	t.Helper()
	ms, err := f.st.Messages(context.Background(), hubInstance, ticketID, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// reply stores an agent's reply to a ticket and sends it out.
func (f *hubFixture) reply(t *testing.T, ticketID int64, text string) *store.Message {
	t.Helper()
	m, err := f.h.ClientReply(context.Background(), hubInstance, ticketID, "Ben", hub.Compose{Text: text})
	if err != nil {
		t.Fatal(err)
	}
	f.h.DispatchNow(context.Background())
	got, err := f.st.Message(context.Background(), hubInstance, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// setTicketSeq makes the next ticket number n+1, so the cases' ticket
// numbers (#10042 …) can be reproduced.
func (f *hubFixture) setTicketSeq(t *testing.T, n int64) {
	t.Helper()
	if _, err := f.st.DB.NewRaw("UPDATE instances SET ticket_seq = ? WHERE id = ?", n, hubInstance).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// outboundWithID stores an outbound message of ticketID as sent under the
// given Message-ID, as if the hub had sent it earlier (the cases' ack-… and
// reply-… ids).
func (f *hubFixture) outboundWithID(t *testing.T, ticketID int64, id string) *store.Message {
	t.Helper()
	ctx := context.Background()
	m, _, err := f.st.AddAgentMessage(ctx, store.AgentMessage{InstanceID: hubInstance, TicketID: ticketID, AuthorName: "Ben", Text: "earlier reply", OutChannelID: f.channel})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.SetDelivery(ctx, hubInstance, f.channel, m.ID, id, "sent", ""); err != nil {
		t.Fatal(err)
	}
	// Not for the dispatcher: it was "sent" long ago.
	if _, err := f.st.DB.NewRaw("DELETE FROM outbox WHERE message_id = ?", m.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// Case C05: the customer answers an agent who wrote from Outlook, outside
// the gateway; In-Reply-To is unknown, References still names the first
// mail. It threads by References, and the agent sees only the new text.
func TestHubC05ThreadsByReferences(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		f.receive(t, readHubCase(t, "C05-seed.eml"), "support@example.com")
		f.receive(t, readHubCase(t, "C05.eml"), "support@example.com")
		ts := f.tickets(t)
		if len(ts) != 1 {
			t.Fatalf("tickets = %d, want 1", len(ts))
		}
		ms := f.messages(t, ts[0].ID)
		if len(ms) != 2 {
			t.Fatalf("messages = %d, want 2", len(ms))
		}
		want := "Hi Ben,\n\nthanks - the photos are below. The box was also wet on one side.\n\nAlice"
		if got := ms[1].Text; got != want {
			t.Errorf("new text = %q\nwant %q", got, want)
		}
		if !strings.HasPrefix(strings.TrimSpace(ms[1].Quoted), "____") || !strings.Contains(ms[1].Quoted, "Could you send us a photo") {
			t.Errorf("quoted history not kept: %q", ms[1].Quoted)
		}
		if strings.Contains(ms[1].HTML, "divRplyFwdMsg") || !strings.Contains(ms[1].QuotedHTML, "divRplyFwdMsg") {
			t.Errorf("HTML split at #divRplyFwdMsg: new %q / quoted %q", ms[1].HTML, ms[1].QuotedHTML)
		}
		// Delivered again (an MX retry): stored once.
		f.receive(t, readHubCase(t, "C05.eml"), "support@example.com")
		if n := len(f.messages(t, ts[0].ID)); n != 2 {
			t.Fatalf("after redelivery: %d messages", n)
		}
	})
}

// Case C07: an RFC 3834 vacation reply (a) and another helpdesk's
// acknowledgement marked only by X-Autoresponder (b) open no ticket, send
// nothing back, and leave tickets #10042 and #10043 as they were; each is
// at most attached to the ticket its In-Reply-To names, flagged.
func TestHubC07AutoRepliesNeverLoop(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		ctx := context.Background()
		f.setTicketSeq(t, 10041)
		type seedTicket struct {
			from, ack string
		}
		var tickets []store.Ticket
		for i, s := range []seedTicket{
			{"Carla Nunes <carla.nunes@example.org>", "ack-10042.1712750570@support.example.com"},
			{"Vendor Support Desk <corporatesupport@vendor.example.net>", "ack-10043.1712757800@support.example.com"},
		} {
			raw := fmt.Sprintf("From: %s\nTo: support@example.com\nSubject: Request %d\nMessage-ID: <req-%d@example.org>\nDate: Wed, 10 Apr 2024 12:00:00 +0200\n\nPlease help.\n", s.from, i, i)
			f.receive(t, []byte(raw), "support@example.com")
			ts := f.tickets(t)
			tk := ts[0]
			for _, x := range ts {
				if x.Number == int64(10042+i) {
					tk = x
				}
			}
			if tk.Number != int64(10042+i) {
				t.Fatalf("ticket numbers: %+v", ts)
			}
			f.outboundWithID(t, tk.ID, s.ack)
			pending := store.StatusPending
			if _, err := f.st.UpdateTicket(ctx, hubInstance, tk.ID, store.TicketUpdate{Status: &pending}); err != nil {
				t.Fatal(err)
			}
			tickets = append(tickets, tk)
		}
		relayed := f.relay.count()
		for i, name := range []string{"C07.eml", "C07b.eml"} {
			f.receive(t, readHubCase(t, name), "support@example.com")
			if n := len(f.tickets(t)); n != 2 {
				t.Fatalf("%s: %d tickets, want 2 (no new ticket)", name, n)
			}
			tk, err := f.st.Ticket(ctx, hubInstance, tickets[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			if tk.Status != store.StatusPending || tk.AssigneeID != nil {
				t.Errorf("%s: ticket #%d changed: status %s", name, tk.Number, tk.Status)
			}
			ms := f.messages(t, tk.ID)
			last := ms[len(ms)-1]
			if last.Direction != store.DirIn || !last.AutoReply {
				t.Errorf("%s: not attached as an auto-reply: %+v", name, last)
			}
		}
		f.h.DispatchNow(ctx)
		if n := f.relay.count(); n != relayed {
			t.Fatalf("%d mails sent in answer to auto-replies", n-relayed)
		}
		// An auto-reply that names no ticket of ours is not stored at all.
		stray := "From: someone@example.net\nTo: support@example.com\nSubject: Out of Office: hello\nAuto-Submitted: auto-replied\nMessage-ID: <stray@example.net>\n\nAway.\n"
		f.receive(t, []byte(stray), "support@example.com")
		if n := len(f.tickets(t)); n != 2 {
			t.Fatalf("stray auto-reply opened a ticket")
		}
	})
}

// Case C08: a DSN for one of our replies marks that reply failed, with the
// recipient and status an agent can read; no ticket or contact for
// MAILER-DAEMON, no answer, and ticket #10044 is not reopened.
func TestHubC08BounceMarksReplyFailed(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		ctx := context.Background()
		f.setTicketSeq(t, 10043)
		f.receive(t, []byte("From: Dave Kline <dave.kline@example.org>\nTo: support@example.com\nSubject: Invoice\nMessage-ID: <dave-1@example.org>\n\nWhere is my invoice?\n"), "support@example.com")
		tk := f.tickets(t)[0]
		if tk.Number != 10044 {
			t.Fatalf("ticket number %d", tk.Number)
		}
		out := f.outboundWithID(t, tk.ID, "reply-10044-3.1712819698@support.example.com")
		solved := store.StatusSolved
		if _, err := f.st.UpdateTicket(ctx, hubInstance, tk.ID, store.TicketUpdate{Status: &solved}); err != nil {
			t.Fatal(err)
		}
		relayed := f.relay.count()
		f.receive(t, readHubCase(t, "C08.eml"), "support@example.com")

		m, err := f.st.Message(ctx, hubInstance, out.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.State != "failed" || !strings.Contains(m.StateReason, "dave.kline@example.org") || !strings.Contains(m.StateReason, "5.1.1") {
			t.Errorf("outbound state = %q (%q), want failed naming dave.kline@example.org and 5.1.1", m.State, m.StateReason)
		}
		if ts := f.tickets(t); len(ts) != 1 || ts[0].Status != store.StatusSolved {
			t.Errorf("tickets after the bounce: %+v", ts)
		}
		if n := len(f.messages(t, tk.ID)); n != 2 {
			t.Errorf("the bounce was stored as a message (%d messages)", n)
		}
		n, err := f.st.DB.NewSelect().Model((*store.Identity)(nil)).Where("lower(external_id) LIKE ?", "%mailer-daemon%").Count(ctx)
		if err != nil || n != 0 {
			t.Errorf("contact for MAILER-DAEMON: %d %v", n, err)
		}
		f.h.DispatchNow(ctx)
		if f.relay.count() != relayed {
			t.Error("something was sent in answer to a bounce")
		}
	})
}

// An agent's reply leaves as proper mail through the relay, and the
// customer's answer to it threads back into the ticket by our Message-ID.
func TestHubReplyRoundTrip(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		f.receive(t, []byte("From: Amélie Durand <amelie@example.fr>\nTo: support@example.com\nSubject: Facture\nMessage-ID: <am-1@example.fr>\n\nBonjour, où est ma facture ?\n"), "support@example.com")
		tk := f.tickets(t)[0]
		out := f.reply(t, tk.ID, "Bonjour Amélie,\nla voici.")
		if out.State != "sent" || out.ExternalID == "" {
			t.Fatalf("reply state %q id %q (%s)", out.State, out.ExternalID, out.StateReason)
		}
		got := f.relay.last(t)
		if got.from != "support@example.com" || len(got.to) != 1 || got.to[0] != "amelie@example.fr" {
			t.Fatalf("envelope %s -> %v", got.from, got.to)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(got.data))
		if err != nil {
			t.Fatal(err)
		}
		if id := strings.Trim(msg.Header.Get("Message-ID"), "<>"); id != out.ExternalID {
			t.Errorf("Message-ID %q, stored %q", id, out.ExternalID)
		}
		if irt := msg.Header.Get("In-Reply-To"); irt != "<am-1@example.fr>" {
			t.Errorf("In-Reply-To %q", irt)
		}
		dec := new(mime.WordDecoder)
		subj, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
		if subj != fmt.Sprintf("Re: Facture [#%d]", tk.Number) && subj != fmt.Sprintf("Re: [#%d] Facture", tk.Number) {
			t.Errorf("Subject %q", subj)
		}
		// Her answer carries only our Message-ID.
		answer := fmt.Sprintf("From: amelie@example.fr\nTo: support@example.com\nSubject: Re: Facture\nMessage-ID: <am-2@example.fr>\nIn-Reply-To: <%s>\n\nMerci !\n", out.ExternalID)
		f.receive(t, []byte(answer), "support@example.com")
		if ts := f.tickets(t); len(ts) != 1 {
			t.Fatalf("the answer opened a new ticket")
		}
		if ms := f.messages(t, tk.ID); len(ms) != 3 || ms[2].Text != "Merci !" {
			t.Fatalf("answer not threaded: %d messages", len(ms))
		}
	})
}

// Web-form tickets have no channel of their own to answer on: the reply
// leaves by the instance's email channel, is recorded there, and the
// customer's answer (or a bounce) finds it by its Message-ID.
func TestHubWebFormRepliesByEmail(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		ctx := context.Background()
		form := store.Channel{ID: "acme-form", InstanceID: hubInstance, Kind: string(webform.Kind), Name: "Contact form", Enabled: true}
		if err := f.st.CreateChannel(ctx, &form); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, form); err != nil {
			t.Fatal(err)
		}
		// A receive-only email channel, first by id: replies must not pick it.
		recv := store.Channel{ID: "acme-a-recv", InstanceID: hubInstance, Kind: string(email.Kind), Name: "Receive only", Enabled: true,
			Settings: `{"address":"intake@example.com","inbound_smtp":true}`}
		if err := f.st.CreateChannel(ctx, &recv); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, recv); err != nil {
			t.Fatal(err)
		}
		res, err := f.st.Ingest(ctx, &store.InboundRecord{InstanceID: hubInstance, ChannelID: form.ID, ExternalID: "sub-1", NewTicket: true,
			Contact: store.ContactInput{ExternalID: "lin.wei@example.org", Email: "lin.wei@example.org", DisplayName: "林伟"},
			Subject: "Order DD-118", Text: "Where is my order?"})
		if err != nil {
			t.Fatal(err)
		}
		out := f.reply(t, res.Ticket.ID, "It ships today.")
		if out.State != "sent" || out.ChannelID != f.channel {
			t.Fatalf("reply: state %q on channel %q (%s)", out.State, out.ChannelID, out.StateReason)
		}
		if got := f.relay.last(t); len(got.to) != 1 || got.to[0] != "lin.wei@example.org" {
			t.Fatalf("sent to %v", got.to)
		}
		answer := fmt.Sprintf("From: lin.wei@example.org\nTo: support@example.com\nSubject: Re: Order DD-118\nMessage-ID: <lw-2@example.org>\nIn-Reply-To: <%s>\n\nThank you.\n", out.ExternalID)
		f.receive(t, []byte(answer), "support@example.com")
		if ts := f.tickets(t); len(ts) != 1 {
			t.Fatalf("the answer opened a new ticket (%d tickets)", len(ts))
		}
		bounce := fmt.Sprintf("From: MAILER-DAEMON@mx.example.org\nTo: support@example.com\nReturn-Path: <>\nSubject: Undelivered Mail\n"+
			"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nFailed.\n"+
			"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; lin.wei@example.org\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 mailbox full\n"+
			"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <%s>\nTo: lin.wei@example.org\n--b--\n", out.ExternalID)
		f.receive(t, []byte(bounce), "support@example.com")
		m, err := f.st.Message(ctx, hubInstance, out.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.State != "failed" || !strings.Contains(m.StateReason, "5.2.2") {
			t.Fatalf("after the bounce: %q %q", m.State, m.StateReason)
		}
		// An internationalized domain goes into the envelope as its A-label.
		idn, err := f.st.Ingest(ctx, &store.InboundRecord{InstanceID: hubInstance, ChannelID: form.ID, ExternalID: "sub-2", NewTicket: true,
			Contact: store.ContactInput{ExternalID: "x@exämple.org", Email: "x@exämple.org"}, Subject: "IDN", Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		if out := f.reply(t, idn.Ticket.ID, "Hello."); out.State != "sent" {
			t.Fatalf("reply to an IDN address: %q (%s)", out.State, out.StateReason)
		}
		if got := f.relay.last(t); len(got.to) != 1 || got.to[0] != "x@xn--exmple-cua.org" {
			t.Fatalf("envelope recipient %v", got.to)
		}
	})
}

// Case C15 through the hub: the mailbox is re-created between two
// sessions (a new UIDVALIDITY, UIDs restart, message A comes back unread at
// UID 2 and the new B takes UID 1). B opens its ticket; A, read again,
// opens no second one, because dedup is on the Message-ID; the cursor ends
// at (new UIDVALIDITY, 2).
func TestHubC15MailboxRecreated(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		ctx := context.Background()
		mailA := []byte("From: Kofi Mensah <kofi.mensah@example.org>\r\nTo: support@example.com\r\nSubject: Printer offline again\r\n" +
			"Date: Mon, 15 Apr 2024 09:00:00 +0200\r\nMessage-ID: <msgA-20240415090000@example.org>\r\n\r\nThe printer on floor 2 shows offline again.\r\n")
		mailB := []byte("From: Ines Garcia <ines.garcia@example.org>\r\nTo: support@example.com\r\nSubject: Cannot log in to the portal\r\n" +
			"Date: Tue, 23 Apr 2024 10:15:00 +0200\r\nMessage-ID: <msgB-20240423101500@example.org>\r\n\r\nSession expired right after login.\r\n")
		addr, user := testenv.IMAPMemory(t, "support", "imap-pw", [][]byte{mailA})
		host, port, _ := net.SplitHostPort(addr)
		settings := fmt.Sprintf(`{"address":"support@example.com","imap":{"host":%q,"port":%s,"security":"plain","username":"support"}}`, host, port)
		ch := store.Channel{ID: "acme-imap", InstanceID: hubInstance, Kind: string(email.Kind), Name: "IMAP", Enabled: true,
			Settings: settings, Secrets: `{"imap_password":"imap-pw"}`}
		if err := f.st.CreateChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
		subjects := func() []string {
			var out []string
			for _, tk := range f.tickets(t) {
				out = append(out, tk.Subject)
			}
			return out
		}
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: tickets %q", what, subjects())
				}
			}
		}
		// Session 1.
		if err := f.h.StartChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		waitFor("session 1", func() bool { return len(f.tickets(t)) == 1 })
		f.h.StopChannel(ctx, ch.ID)

		// The operator re-creates INBOX: B first, then A restored unread.
		if err := user.Delete("INBOX"); err != nil {
			t.Fatal(err)
		}
		if err := user.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range [][]byte{mailB, mailA} {
			if _, err := user.Append("INBOX", testenv.IMAPLiteral(m), &imap.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sd, err := user.Status("INBOX", &imap.StatusOptions{UIDValidity: true})
		if err != nil {
			t.Fatal(err)
		}
		// Session 2.
		if err := f.h.StartChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%d:2", sd.UIDValidity)
		waitFor("session 2", func() bool {
			v, _ := f.st.ChannelStateValue(ctx, ch.ID, "imap-cursor:INBOX")
			return v == want
		})
		got := subjects()
		if len(got) != 2 || !slices.Contains(got, "Printer offline again") || !slices.Contains(got, "Cannot log in to the portal") {
			t.Fatalf("tickets %q, want one each for A and B", got)
		}
		for _, tk := range f.tickets(t) {
			if n := len(f.messages(t, tk.ID)); n != 1 {
				t.Errorf("ticket %q has %d messages", tk.Subject, n)
			}
		}
	})
}

// A web-form reply written before the instance had an email channel waits
// visibly; an email channel that only receives (no relay yet, as in the
// README's walkthrough) does not end the wait, and the reply leaves as
// soon as the channel is given a relay.
func TestHubWaitingReplyLeavesWhenEmailChannelStarts(t *testing.T) {
	hubStacks(t, func(t *testing.T, f *hubFixture) {
		ctx := context.Background()
		if err := f.st.CreateInstance(ctx, &store.Instance{ID: "late", Name: "Late", TimeZone: "UTC"}); err != nil {
			t.Fatal(err)
		}
		form := store.Channel{ID: "late-form", InstanceID: "late", Kind: string(webform.Kind), Name: "Form", Enabled: true}
		if err := f.st.CreateChannel(ctx, &form); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, form); err != nil {
			t.Fatal(err)
		}
		res, err := f.st.Ingest(ctx, &store.InboundRecord{InstanceID: "late", ChannelID: form.ID, ExternalID: "s1", NewTicket: true,
			Contact: store.ContactInput{ExternalID: "kim@example.org", Email: "kim@example.org"}, Subject: "Hi", Text: "Hello"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := f.h.ClientReply(ctx, "late", res.Ticket.ID, "Ben", hub.Compose{Text: "Hello Kim"})
		if err != nil {
			t.Fatal(err)
		}
		f.h.DispatchNow(ctx)
		if got, _ := f.st.Message(ctx, "late", m.ID); got.State != "queued" || !strings.Contains(got.StateReason, "waiting") {
			t.Fatalf("before the email channel: %q %q", got.State, got.StateReason)
		}
		receiveOnly, _ := json.Marshal(map[string]any{"address": "help@late.example", "inbound_smtp": true})
		mailCh := store.Channel{ID: "late-mail", InstanceID: "late", Kind: string(email.Kind), Name: "Mail", Enabled: true, Settings: string(receiveOnly)}
		if err := f.st.CreateChannel(ctx, &mailCh); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, mailCh); err != nil {
			t.Fatal(err)
		}
		f.h.DispatchNow(ctx)
		if got, _ := f.st.Message(ctx, "late", m.ID); got.State != "queued" || !strings.Contains(got.StateReason, "receives only") {
			t.Fatalf("with a receive-only email channel: %q %q", got.State, got.StateReason)
		}
		if items, _ := f.st.OutboxItems(ctx, "late", store.OutboxPending); len(items) != 1 || items[0].Attempts != 0 {
			t.Fatalf("waiting must not burn attempts: %+v", items)
		}
		settings, _ := json.Marshal(map[string]any{"address": "help@late.example", "inbound_smtp": true, "smtp": map[string]any{"host": "127.0.0.1", "port": f.relay.port, "security": "plain"}})
		mailCh.Settings = string(settings)
		if err := f.st.UpdateChannel(ctx, &mailCh); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, mailCh); err != nil {
			t.Fatal(err)
		}
		f.h.DispatchNow(ctx)
		if got, _ := f.st.Message(ctx, "late", m.ID); got.State != "sent" {
			t.Fatalf("after the email channel started: %q %q", got.State, got.StateReason)
		}
	})
}

// relaySink is an SMTP relay that keeps what it is given.
type relaySink struct {
	port int
	mu   sync.Mutex
	msgs []relayed
	// reject, when set, is the error RCPT answers with.
	reject *smtp.SMTPError
}

type relayed struct {
	from string
	to   []string
	data []byte
}

func newRelaySink(t *testing.T) *relaySink {
	t.Helper()
	r := &relaySink{}
	s := smtp.NewServer(r)
	s.Domain = "relay.test"
	s.AllowInsecureAuth = true
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return r
}

func (r *relaySink) NewSession(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }

func (r *relaySink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *relaySink) last(t *testing.T) relayed {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) == 0 {
		t.Fatal("the relay received nothing")
	}
	return r.msgs[len(r.msgs)-1]
}

type relaySession struct {
	r   *relaySink
	cur relayed
}

func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.r.reject != nil {
		return s.r.reject
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, s.cur)
	s.r.mu.Unlock()
	return nil
}
func (s *relaySession) Reset()        { s.cur = relayed{} }
func (s *relaySession) Logout() error { return nil }
