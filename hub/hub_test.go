package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/routing/redisroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// probe is a channel connector for tests: it records what it is asked to
// send and fails on demand.
type probe struct {
	policy connectors.Policy
	host   connectors.Host

	mu   sync.Mutex
	sent []connectors.Outbound
	fail []error // returned by the next Sends, in order
}

func (p *probe) Kind() connectors.Kind                            { return "probe" }
func (p *probe) Policy() connectors.Policy                        { return p.policy }
func (p *probe) Start(_ context.Context, h connectors.Host) error { p.host = h; return nil }
func (p *probe) Stop(context.Context) error                       { return nil }
func (p *probe) Send(_ context.Context, o connectors.Outbound) (connectors.SendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fail) > 0 {
		err := p.fail[0]
		p.fail = p.fail[1:]
		return connectors.SendResult{}, err
	}
	p.sent = append(p.sent, o)
	return connectors.SendResult{ExternalID: "ext-" + o.IdempotencyKey, State: connectors.DeliverySent}, nil
}

func (p *probe) Sent() []connectors.Outbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]connectors.Outbound(nil), p.sent...)
}

type fixture struct {
	h     *hub.Hub
	st    *store.Store
	clock *clock
	// probes by channel id
	probes map[string]*probe
	agent  *store.Agent
	token  string
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// stacks runs fn on the embedded stack (SQLite + in-process routing) and
// the production stack (Postgres + Redis).
func stacks(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Run("sqlite+memory", func(t *testing.T) {
		clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
		cfg := routing.Config{Now: clk.Now}
		fn(t, newFixture(t, testenv.SQLite(t), memroute.New(cfg), memroute.NewBus(), clk))
	})
	t.Run("postgres+redis", func(t *testing.T) {
		dsn := testenv.Postgres(t)
		rdb, prefix := testenv.Redis(t)
		clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
		cfg := redisroute.Config{Prefix: prefix, Config: routing.Config{Now: clk.Now}}
		fn(t, newFixture(t, dsn, redisroute.New(rdb, cfg), redisroute.NewBus(rdb, redisroute.BusConfig{Prefix: prefix}), clk))
	})
}

func newFixture(t *testing.T, dsn string, r routing.Router, b routing.Bus, clk *clock) *fixture {
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
	st.SetClock(clk.Now)
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, clock: clk, probes: map[string]*probe{}}
	reg := connectors.NewRegistry()
	_ = reg.Register("probe", func(c connectors.Config) (connectors.Connector, error) {
		p := &probe{}
		if len(c.Settings) > 0 {
			if err := json.Unmarshal(c.Settings, &p.policy); err != nil {
				return nil, err
			}
		}
		f.probes[c.ChannelID] = p
		return p, nil
	})
	h, err := hub.New(hub.Deps{Store: st, Router: r, Bus: b, Blobs: blobs, Connectors: reg}, hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	t.Cleanup(func() { b.Close() })
	for _, inst := range []string{"acme", "other"} {
		if err := st.CreateInstance(ctx, &store.Instance{ID: inst, Name: inst, TimeZone: "UTC"}); err != nil {
			t.Fatal(err)
		}
		tok, hash := hub.NewToken("sbag_")
		a := &store.Agent{InstanceID: inst, Name: "Ravi " + inst, Email: "ravi@" + inst, TokenHash: hash, Capacity: 2}
		if err := st.CreateAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
		if inst == "acme" {
			f.agent, f.token = a, tok
		}
		ch := store.Channel{ID: inst + "-probe", InstanceID: inst, Kind: "probe", Name: "probe", Enabled: true}
		if err := st.CreateChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
		if err := h.StartChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) deliver(t *testing.T, channel string, in connectors.Inbound) connectors.Receipt {
	t.Helper()
	p := f.probes[channel]
	r, err := p.host.Deliver(context.Background(), in)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return r
}

// updates collects the updates of an instance.
func (f *fixture) updates(t *testing.T, inst string) func(typ string) hub.Update {
	ch := make(chan hub.Update, 256)
	cancel, err := f.h.SubscribeInstance(context.Background(), inst, func(u hub.Update) { ch <- u })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return func(typ string) hub.Update {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case u := <-ch:
				if u.Type == typ {
					return u
				}
			case <-timeout:
				t.Fatalf("no %s update", typ)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		next := f.updates(t, "acme")
		if err := f.h.Heartbeat(ctx, f.agent, routing.Available); err != nil {
			t.Fatal(err)
		}
		r := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "in-1", ThreadKey: "conv-1",
			Sender: connectors.Identity{ExternalID: "u1", DisplayName: "Alice"}, Text: "Where is my parcel?"})
		if r.Duplicate || r.TicketNumber != 1 {
			t.Fatalf("receipt %+v", r)
		}
		if u := next(hub.UpdateMessage); u.Message.Text != "Where is my parcel?" {
			t.Fatalf("message update %+v", u)
		}
		offer := next(hub.UpdateOffer)
		if offer.AgentID != f.agent.ID || offer.TicketID != r.ConversationID {
			t.Fatalf("offer %+v", offer)
		}
		if err := f.h.Accept(ctx, f.agent, r.ConversationID); err != nil {
			t.Fatal(err)
		}
		if u := next(hub.UpdateTicket); u.Ticket.AssigneeID == nil || *u.Ticket.AssigneeID != f.agent.ID || u.Ticket.Status != store.StatusOpen {
			t.Fatalf("assignment %+v", u.Ticket)
		}
		// Redelivery of the same inbound item is absorbed, and its receipt
		// names the stored message as the record shows it.
		again := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "in-1", ThreadKey: "conv-1",
			Sender: connectors.Identity{ExternalID: "u1"}, Text: "Where is my parcel?"})
		if !again.Duplicate || again.MessageID != r.MessageID {
			t.Fatal("duplicate stored twice")
		}
		stored, err := f.st.Message(ctx, "acme", r.MessageID)
		if err != nil || !r.CreatedAt.Equal(stored.CreatedAt) || !again.CreatedAt.Equal(stored.CreatedAt) {
			t.Fatalf("receipts say %v and %v, the record %v (%v)", r.CreatedAt, again.CreatedAt, stored.CreatedAt, err)
		}
		m, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "On its way!", IdempotencyKey: "r1"})
		if err != nil || m.State != "queued" {
			t.Fatalf("reply %+v %v", m, err)
		}
		f.h.DispatchNow(ctx)
		sent := f.probes["acme-probe"].Sent()
		if len(sent) != 1 || sent[0].Text != "On its way!" || sent[0].To.ExternalID != "u1" || sent[0].AuthorName != "Ravi acme" {
			t.Fatalf("sent %+v", sent)
		}
		got, _ := f.st.Message(ctx, "acme", m.ID)
		if got.State != "sent" || got.ExternalID == "" {
			t.Fatalf("delivery state %+v", got)
		}
		if u := next(hub.UpdateDelivery); u.Message.State != "sent" {
			t.Fatalf("sent update %+v", u.Message)
		}
		// The provider reports it read.
		if err := f.probes["acme-probe"].host.UpdateDelivery(ctx, connectors.DeliveryUpdate{ExternalID: got.ExternalID, State: connectors.DeliveryRead}); err != nil {
			t.Fatal(err)
		}
		if u := next(hub.UpdateDelivery); u.Message.ID != m.ID || u.Message.State != "read" {
			t.Fatalf("read update %+v", u.Message)
		}
		// Feed replays everything with cursors for resume.
		feed, err := f.h.Feed(ctx, f.agent, 0, 100)
		if err != nil || len(feed) < 4 {
			t.Fatalf("feed %d %v", len(feed), err)
		}
		for i := 1; i < len(feed); i++ {
			if feed[i].Cursor <= feed[i-1].Cursor {
				t.Fatal("feed cursors not increasing")
			}
		}
	})
}

func TestOutboxRetriesAndDeadLetter(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		r := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "in-1", ThreadKey: "c",
			Sender: connectors.Identity{ExternalID: "u1"}, Text: "hi"})
		p := f.probes["acme-probe"]
		p.fail = []error{
			connectors.NewError(connectors.Retryable, "timeout", "provider timed out", nil),
			errors.New("unclassified network error"),
		}
		m, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "one"})
		if err != nil {
			t.Fatal(err)
		}
		f.h.DispatchNow(ctx)
		got, _ := f.st.Message(ctx, "acme", m.ID)
		if got.State != "queued" || !strings.Contains(got.StateReason, "provider timed out") {
			t.Fatalf("after a retryable failure: %+v", got)
		}
		f.h.DispatchNow(ctx) // not due yet: nothing happens
		if len(p.fail) != 1 {
			t.Fatal("retried before the backoff elapsed")
		}
		f.clock.Add(time.Hour)
		f.h.DispatchNow(ctx) // unclassified → retried again
		f.clock.Add(time.Hour)
		f.h.DispatchNow(ctx)
		if got, _ := f.st.Message(ctx, "acme", m.ID); got.State != "sent" || len(p.Sent()) != 1 {
			t.Fatalf("after retries: %+v", got)
		}
		p.fail = []error{connectors.NewError(connectors.Permanent, "smtp_550", "mailbox unavailable", nil)}
		m2, _ := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "two"})
		f.h.DispatchNow(ctx)
		got, _ = f.st.Message(ctx, "acme", m2.ID)
		if got.State != "failed" || got.StateReason != "mailbox unavailable" {
			t.Fatalf("permanent failure must be visible: %+v", got)
		}
		if dead, _ := f.st.OutboxItems(ctx, "acme", store.OutboxDead); len(dead) != 1 {
			t.Fatalf("dead letters = %d", len(dead))
		}
	})
}

func TestReplyViaOtherChannelWaitsVisibly(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		ch := store.Channel{ID: "acme-form", InstanceID: "acme", Kind: "probe", Name: "form", Enabled: true,
			Settings: `{"ReplyVia":"email","Threading":"none"}`}
		if err := f.st.CreateChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		r := f.deliver(t, "acme-form", connectors.Inbound{ExternalID: "sub-1", NewTicket: true,
			Sender: connectors.Identity{ExternalID: "a@example.org", Email: "a@example.org", DisplayName: "A"}, Text: "help"})
		m, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "answer"})
		if err != nil {
			t.Fatal(err)
		}
		f.h.DispatchNow(ctx)
		got, _ := f.st.Message(ctx, "acme", m.ID)
		if got.State != "queued" || !strings.Contains(got.StateReason, "no email channel") {
			t.Fatalf("reply must stay visibly queued: %+v", got)
		}
		if items, _ := f.st.OutboxItems(ctx, "acme", store.OutboxPending); len(items) != 1 || items[0].Attempts != 0 {
			t.Fatalf("waiting must not burn attempts: %+v", items)
		}
	})
}

func TestSanitizesAndKeepsNamesVerbatim(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		name := `"<script>alert("x")</script>`
		r := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "x1", NewTicket: true,
			Sender:  connectors.Identity{ExternalID: "evil@example.org", DisplayName: name},
			Subject: `<img src=x onerror=alert(1)>`,
			HTML: `<p onclick="alert(1)">Order number: 8812</p><script>alert(2)</script><iframe src="https://evil"></iframe>` +
				`<svg onload=alert(3)></svg><a href="javascript:alert(4)">link</a>`,
			Text: "bad\x00 bytes \xff here"})
		v, err := f.h.Ticket(ctx, f.agent, r.ConversationID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Contact.Name != name {
			t.Fatalf("name must be stored verbatim: %q", v.Contact.Name)
		}
		html := v.Messages[0].HTML
		for _, bad := range []string{"<script", "<iframe", "<svg", "onclick", "onload", "javascript:"} {
			if strings.Contains(strings.ToLower(html), bad) {
				t.Errorf("sanitized HTML still has %q: %s", bad, html)
			}
		}
		if !strings.Contains(html, "Order number: 8812") {
			t.Errorf("content lost: %s", html)
		}
		if txt := v.Messages[0].Text; txt != "bad bytes \uFFFD here" {
			t.Errorf("text not cleaned: %q", txt)
		}
	})
}

func TestPolicyRefusals(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		ch := store.Channel{ID: "acme-dm", InstanceID: "acme", Kind: "probe", Name: "dm", Enabled: true,
			Settings: `{"ReplyWindow":86400000000000,"MaxTextLength":10}`}
		if err := f.st.CreateChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
		if err := f.h.StartChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		r := f.deliver(t, "acme-dm", connectors.Inbound{ExternalID: "d1", ThreadKey: "psid-1",
			Sender: connectors.Identity{ExternalID: "psid-1"}, Text: "hi"})
		var ce *connectors.Error
		if _, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "this is far too long"}); !errors.As(err, &ce) || ce.Code != "too_long" {
			t.Fatalf("long reply: %v", err)
		}
		f.clock.Add(25 * time.Hour)
		if _, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "late"}); !errors.As(err, &ce) || ce.Code != "reply_window" {
			t.Fatalf("late reply: %v", err)
		}
		if _, err := f.h.Note(ctx, f.agent, r.ConversationID, hub.Compose{Text: "notes are always fine"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAgentTenantIsolation(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		r := f.deliver(t, "other-probe", connectors.Inbound{ExternalID: "o1", ThreadKey: "t",
			Sender: connectors.Identity{ExternalID: "u"}, Text: "private"})
		for name, op := range map[string]func() error{
			"view":     func() error { _, err := f.h.Ticket(ctx, f.agent, r.ConversationID); return err },
			"reply":    func() error { _, err := f.h.Reply(ctx, f.agent, r.ConversationID, hub.Compose{Text: "x"}); return err },
			"note":     func() error { _, err := f.h.Note(ctx, f.agent, r.ConversationID, hub.Compose{Text: "x"}); return err },
			"accept":   func() error { return f.h.Accept(ctx, f.agent, r.ConversationID) },
			"status":   func() error { _, err := f.h.SetStatus(ctx, f.agent, r.ConversationID, "closed"); return err },
			"transfer": func() error { return f.h.Transfer(ctx, f.agent, r.ConversationID, &f.agent.ID, nil) },
			"typing":   func() error { return f.h.Typing(ctx, f.agent, r.ConversationID, true) },
		} {
			if err := op(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s on another instance's ticket: %v, want not found", name, err)
			}
		}
		if ts, _ := f.h.Tickets(ctx, f.agent, store.TicketFilter{}); len(ts) != 0 {
			t.Errorf("listed another instance's tickets: %d", len(ts))
		}
		if feed, _ := f.h.Feed(ctx, f.agent, 0, 100); len(feed) != 0 {
			t.Errorf("feed crossed tenants: %d", len(feed))
		}
		if _, err := f.h.AuthenticateAgent(ctx, "sbag_wrong"); !errors.Is(err, hub.ErrUnauthorized) {
			t.Errorf("bad token: %v", err)
		}
		if a, err := f.h.AuthenticateAgent(ctx, f.token); err != nil || a.ID != f.agent.ID {
			t.Errorf("good token: %v", err)
		}
	})
}

// With the hub started, inbound messages go through the group commit:
// many conversations at once, each in order, each re-delivery absorbed.
func TestGroupCommitKeepsOrderAndDedup(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		if err := f.h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); f.h.Wait(context.Background()) }()
		const convs, per = 16, 20
		var wg sync.WaitGroup
		errs := make(chan error, convs)
		for c := range convs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					in := connectors.Inbound{ExternalID: fmt.Sprintf("c%d-m%d", c, i), ThreadKey: fmt.Sprintf("conv-%d", c),
						Sender: connectors.Identity{ExternalID: fmt.Sprintf("u%d", c)}, Text: fmt.Sprintf("%d", i)}
					for range 2 { // every item delivered twice
						if _, err := f.probes["acme-probe"].host.Deliver(ctx, in); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		ts, err := f.st.Tickets(ctx, "acme", store.TicketFilter{Limit: 100})
		if err != nil || len(ts) != convs {
			t.Fatalf("tickets = %d, %v", len(ts), err)
		}
		for _, tk := range ts {
			ms, _ := f.st.Messages(ctx, "acme", tk.ID, 0, 0, true)
			if len(ms) != per {
				t.Fatalf("ticket %d has %d messages, want %d", tk.ID, len(ms), per)
			}
			for i, m := range ms {
				if m.Text != fmt.Sprint(i) {
					t.Fatalf("ticket %d message %d is %q: out of receipt order", tk.ID, i, m.Text)
				}
			}
		}
	})
}

// After a restart the in-process router knows nothing; Start reconciles it
// with the database: assigned tickets stay with their agent, waiting ones
// queue again.
func TestReconcileAfterRestart(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	dsn := testenv.SQLite(t)
	f := newFixture(t, dsn, memroute.New(routing.Config{Now: clk.Now}), memroute.NewBus(), clk)
	if err := f.h.Heartbeat(ctx, f.agent, routing.Available); err != nil {
		t.Fatal(err)
	}
	held := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "a", ThreadKey: "a", Sender: connectors.Identity{ExternalID: "ua"}, Text: "held"})
	if err := f.h.Accept(ctx, f.agent, held.ConversationID); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Heartbeat(ctx, f.agent, routing.Away); err != nil {
		t.Fatal(err)
	}
	waiting := f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: "b", ThreadKey: "b", Sender: connectors.Identity{ExternalID: "ub"}, Text: "waiting"})

	// A new node on the same database with a router that starts empty.
	router := memroute.New(routing.Config{Now: clk.Now})
	h2, err := hub.New(hub.Deps{Store: f.st, Router: router, Bus: memroute.NewBus(), Blobs: must(blob.NewDir(t.TempDir())), Connectors: connectors.NewRegistry()}, hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	if err := h2.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); h2.Wait(ctx) }()
	snap, err := router.Snapshot(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	agent := snap.Agents[fmt.Sprint(f.agent.ID)]
	if fmt.Sprint(agent.Assigned) != fmt.Sprintf("[%d]", held.ConversationID) {
		t.Errorf("assigned after restart: %v, want [%d]", agent.Assigned, held.ConversationID)
	}
	if q := fmt.Sprint(snap.Queues[hub.AllTeam]); q != fmt.Sprintf("[%d]", waiting.ConversationID) {
		t.Errorf("queue after restart: %s, want [%d]", q, waiting.ConversationID)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Every feed position reaches the bus: concurrent messages opening and
// continuing conversations (stored in group commits) publish consecutive
// cursors with no gap, so a client can resume from the highest cursor up
// to which it saw them all (docs/agent-protocol.md).
func TestEveryFeedPositionIsPublished(t *testing.T) {
	stacks(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		before, err := f.st.LastChange(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		seen := make(chan int64, 1024)
		cancel, err := f.h.SubscribeInstance(ctx, "acme", func(u hub.Update) {
			if u.Cursor != 0 {
				seen <- u.Cursor
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		var wg sync.WaitGroup
		for i := range 120 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.deliver(t, "acme-probe", connectors.Inbound{ExternalID: fmt.Sprint("burst-", i), ThreadKey: fmt.Sprint("conv-", i%30),
					Sender: connectors.Identity{ExternalID: fmt.Sprint("u", i%30)}, Text: "hello"})
			}()
		}
		wg.Wait()
		last, err := f.st.LastChange(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]bool{}
		timeout := time.After(10 * time.Second)
		for int64(len(got)) < last-before {
			select {
			case c := <-seen:
				if c > before {
					got[c] = true
				}
			case <-timeout:
				var missing []int64
				for c := before + 1; c <= last; c++ {
					if !got[c] {
						missing = append(missing, c)
					}
				}
				t.Fatalf("cursors %d..%d: never published %v", before+1, last, missing)
			}
		}
	})
}
