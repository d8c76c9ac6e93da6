package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

const wait = 20 * time.Second

// agentClient signs an agent in over /agent/ws.
func agentClient(t *testing.T, n *node, name, token string) *wsClient {
	t.Helper()
	c := dial(t, name, n.ws("/agent/ws"), nil)
	c.send(map[string]any{"type": "auth", "id": "auth", "token": token, "protocol": 1})
	c.waitFor(0, "ready", wait, typeIs("ready"))
	return c
}

func (c *wsClient) request(id string, frame map[string]any) map[string]any {
	c.t.Helper()
	frame["id"] = id
	c.send(frame)
	f, _ := c.waitFor(0, "reply to "+id, wait, func(f map[string]any) bool {
		return str(f["id"]) == id && (f["type"] == "result" || f["type"] == "error")
	})
	if f["type"] == "error" {
		c.t.Fatalf("%s: %s failed: %v", c.name, id, f)
	}
	return f
}

// visitorClient starts a live-chat session; token "" starts a new visitor.
func visitorClient(t *testing.T, n *node, name, channel, token string) (*wsClient, map[string]any) {
	t.Helper()
	c := dial(t, name, n.ws("/channels/"+channel+"/ws"), nil)
	start := map[string]any{"type": "session.start", "v": 1}
	if token != "" {
		start["token"] = token
	}
	c.send(start)
	ready, _ := c.waitFor(0, "session.ready", wait, typeIs("session.ready"))
	return c, ready
}

func messageFrom(from, text string) func(map[string]any) bool {
	return func(f map[string]any) bool {
		return f["type"] == "message.new" && str(field(f, "message", "from")) == from && str(field(f, "message", "text")) == text
	}
}

func agentSees(text string) func(map[string]any) bool {
	return func(f map[string]any) bool {
		return f["type"] == "message.new" && str(field(f, "message", "text")) == text
	}
}

// conversation runs the round trip every deployment must carry: a visitor
// writes, the agent is offered the ticket, accepts and answers, the
// visitor sees the answer (M1).
func conversation(t *testing.T, visitorNode, agentNode *node, channel, token string) (agent, visitor *wsClient, ticketID int64) {
	t.Helper()
	agent = agentClient(t, agentNode, "agent", token)
	agent.request("presence", map[string]any{"type": "presence", "status": "available"})
	visitor, ready := visitorClient(t, visitorNode, "visitor", channel, "")
	ticketID = num(ready["conversation_id"])
	visitor.send(map[string]any{"type": "message.send", "client_id": "v-1", "text": "Hello, is anyone there?"})
	visitor.waitFor(0, "ack", wait, func(f map[string]any) bool { return f["type"] == "message.ack" && f["client_id"] == "v-1" })
	offer, _ := agent.waitFor(0, "offer", wait, func(f map[string]any) bool { return f["type"] == "ticket.offered" && num(f["ticket_id"]) == ticketID })
	agent.request("accept", map[string]any{"type": "ticket.accept", "ticket_id": num(offer["ticket_id"])})
	agent.waitFor(0, "the visitor's message", wait, agentSees("Hello, is anyone there?"))
	agent.request("reply", map[string]any{"type": "message.reply", "ticket_id": ticketID, "text": "Yes! How can I help?", "idempotency_key": "r-1"})
	visitor.waitFor(0, "the agent's reply", wait, messageFrom("agent", "Yes! How can I help?"))
	return agent, visitor, ticketID
}

func TestEmbeddedDefaultRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	data := t.TempDir()
	n := startNode(t, nil, "--data", data)
	token := strings.TrimSpace(string(must2(os.ReadFile(filepath.Join(data, "demo-agent-token")))))
	conversation(t, n, n, "demo-chat", token)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/channels/demo-chat/demo", "/channels/demo-form/form", "/console/",
		"/admin/v1/openapi.json", "/api/v1/openapi.json"} {
		resp, err := http.Get(n.url(path))
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", path, resp.StatusCode, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	// The start-up log names the URLs and the demo login.
	logs := n.logs()
	for _, want := range []string{"switchboard is running", "/console/", "login_token=" + token, "/channels/demo-chat/demo"} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q", want)
		}
	}
	// A graceful stop drains and exits 0.
	n.kill(syscall.SIGTERM)
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d\n%s", code, n.logs())
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// prodSetup prepares a database: an instance, agents Ravi and Mia, and a
// live-chat channel whose rate limit lets a test burst through.
type prodSetup struct {
	dsn, redis, prefix string
	ravi, mia          string
}

func newProdSetup(t *testing.T) *prodSetup {
	t.Helper()
	_, prefix := testenv.Redis(t)
	p := &prodSetup{dsn: testenv.Postgres(t), redis: testenv.RedisURL(), prefix: prefix}
	p.seed(t)
	return p
}

func newSQLiteSetup(t *testing.T, data string) *prodSetup {
	t.Helper()
	p := &prodSetup{dsn: "sqlite://" + filepath.Join(data, "switchboard.db")}
	p.seed(t)
	return p
}

func (p *prodSetup) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateInstance(ctx, &store.Instance{ID: "acme", Name: "Acme", TimeZone: "Europe/Amsterdam"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		name string
		tok  *string
	}{{"Ravi", &p.ravi}, {"Mia", &p.mia}} {
		tok, hash := hub.NewToken("sbag_")
		*a.tok = tok
		if err := st.CreateAgent(ctx, &store.Agent{InstanceID: "acme", Name: a.name, Email: strings.ToLower(a.name) + "@acme.test", TokenHash: hash, Capacity: 3}); err != nil {
			t.Fatal(err)
		}
	}
	secrets, _ := json.Marshal(map[string]string{"visitor_secret": "a-long-enough-visitor-secret"})
	if err := st.CreateChannel(ctx, &store.Channel{ID: "acme-chat", InstanceID: "acme", Kind: "livechat", Name: "Chat",
		Settings: `{"rate_limit":{"per_minute":60000,"burst":1000}}`, Secrets: string(secrets), Enabled: true}); err != nil {
		t.Fatal(err)
	}
}

func (p *prodSetup) env() []string {
	env := []string{"SWITCHBOARD_DATABASE=" + p.dsn}
	if p.redis != "" {
		env = append(env, "SWITCHBOARD_REDIS="+p.redis, "SWITCHBOARD_REDIS_PREFIX="+p.prefix)
	}
	return env
}

func TestProductionRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	p := newProdSetup(t)
	n := startNode(t, p.env(), "--data", t.TempDir())
	conversation(t, n, n, "acme-chat", p.ravi)
}

// Two nodes share Postgres and Redis: the visitor is on A, the agent on B,
// and messages travel both ways. When B is killed, Ravi's unanswered
// ticket goes back to the queue once his presence lapses and is offered to
// Mia on A.
func TestTwoNodesAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	p := newProdSetup(t)
	args := []string{"--presence-ttl", "3s", "--offer-timeout", "30s"}
	a := startNode(t, p.env(), append(args, "--data", t.TempDir())...)
	b := startNode(t, p.env(), append(args, "--data", t.TempDir())...)

	ravi, visitor, ticketID := conversation(t, a, b, "acme-chat", p.ravi)

	// A follow-up from the visitor on A reaches Ravi on B and stays his.
	visitor.send(map[string]any{"type": "message.send", "client_id": "v-2", "text": "My order never arrived."})
	ravi.waitFor(0, "the follow-up", wait, agentSees("My order never arrived."))

	mia := agentClient(t, a, "mia", p.mia)
	mia.request("presence", map[string]any{"type": "presence", "status": "available"})
	if n := mia.count(func(f map[string]any) bool { return f["type"] == "ticket.offered" }); n != 0 {
		t.Fatalf("Mia was offered a ticket Ravi holds")
	}

	b.kill(syscall.SIGKILL)
	killed := time.Now()
	offer, _ := mia.waitFor(0, "the re-queued ticket", 30*time.Second, func(f map[string]any) bool {
		return f["type"] == "ticket.offered" && num(f["ticket_id"]) == ticketID
	})
	if waited := time.Since(killed); waited < 2*time.Second {
		t.Errorf("re-queued after %s, before the 3s presence TTL could lapse", waited)
	}
	mia.request("accept", map[string]any{"type": "ticket.accept", "ticket_id": num(offer["ticket_id"])})
	mia.request("reply", map[string]any{"type": "message.reply", "ticket_id": ticketID, "text": "Mia here, I'll check.", "idempotency_key": "m-1"})
	visitor.waitFor(0, "Mia's reply", wait, messageFrom("agent", "Mia here, I'll check."))
}

// Kill -9 during a burst of visitor messages: every message the server
// acknowledged is stored exactly once, and after a restart the visitor
// resends the rest (same client ids) and resumes the conversation.
func TestKill9DuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	for _, stack := range []string{"sqlite", "postgres+redis"} {
		t.Run(stack, func(t *testing.T) {
			data := t.TempDir()
			p := newSQLiteSetup(t, data)
			if stack != "sqlite" {
				p = newProdSetup(t)
			}
			channel, dsn := "acme-chat", p.dsn
			n := startNode(t, p.env(), "--data", data)
			visitor, ready := visitorClient(t, n, "visitor", channel, "")
			token := str(ready["token"])
			visitorID := str(ready["visitor_id"])
			const total = 300
			go func() {
				for i := range total {
					if visitor.conn.WriteJSON(map[string]any{"type": "message.send", "client_id": fmt.Sprintf("b-%d", i), "text": fmt.Sprintf("burst %d", i)}) != nil {
						return
					}
				}
			}()
			// Kill as soon as some, not all, are acknowledged.
			visitor.waitFor(0, "some acks", wait, func(f map[string]any) bool {
				return f["type"] == "message.ack" && visitor.count(typeIs("message.ack")) >= 20
			})
			n.kill(syscall.SIGKILL)
			<-visitor.closed
			acked := map[string]int64{}
			for _, f := range visitor.framesOf("message.ack") {
				acked[str(f["client_id"])] = num(f["message_id"])
			}
			t.Logf("%d of %d messages acknowledged before kill -9", len(acked), total)

			n.start()
			v2, ready2 := visitorClient(t, n, "visitor-again", channel, token)
			if num(ready2["conversation_id"]) != num(ready["conversation_id"]) {
				t.Fatalf("resume opened another conversation: %v vs %v", ready2["conversation_id"], ready["conversation_id"])
			}
			// Resend everything not acknowledged, with the same client ids.
			for i := range total {
				id := fmt.Sprintf("b-%d", i)
				if _, ok := acked[id]; !ok {
					v2.send(map[string]any{"type": "message.send", "client_id": id, "text": fmt.Sprintf("burst %d", i)})
				}
			}
			v2.waitFor(0, "all acks", 60*time.Second, func(map[string]any) bool {
				return v2.count(typeIs("message.ack")) >= total-len(acked)
			})
			for _, f := range v2.framesOf("message.ack") {
				if first, ok := acked[str(f["client_id"])]; ok && num(f["message_id"]) != first {
					t.Errorf("%s acknowledged twice with different ids", f["client_id"])
				}
			}

			// The record: each message exactly once, acknowledged ones
			// under the id they were acknowledged with.
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ms, err := st.Messages(context.Background(), "acme", num(ready["conversation_id"]), 0, 1000, true)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, m := range ms {
				seen[m.ExternalID]++
			}
			for i := range total {
				key := "lc:" + visitorID + ":" + fmt.Sprintf("b-%d", i)
				if seen[key] != 1 {
					t.Errorf("%s stored %d times", key, seen[key])
				}
			}
			for id, mid := range acked {
				found := false
				for _, m := range ms {
					if m.ID == mid && strings.HasSuffix(m.ExternalID, ":"+id) {
						found = true
					}
				}
				if !found {
					t.Errorf("acknowledged %s (message %d) is not stored", id, mid)
				}
			}
			// Resume returns the whole conversation from the database.
			v2.send(map[string]any{"type": "resume", "after": 0})
			h, _ := v2.waitFor(0, "history", wait, typeIs("history"))
			if msgs, _ := h["messages"].([]any); len(msgs) == 0 {
				t.Error("resume returned no history")
			}
		})
	}
}

func (c *wsClient) framesOf(typ string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, f := range c.frames {
		if f["type"] == typ {
			out = append(out, f)
		}
	}
	return out
}

// C23 over the whole stack: a returning visitor's two tabs race to start
// the chat, the agent has two tabs too.
func TestC23TwoTabsEachSide(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	p := newProdSetup(t)
	n := startNode(t, p.env(), "--data", t.TempDir())
	tab1 := agentClient(t, n, "agentTab1", p.ravi)
	tab2 := agentClient(t, n, "agentTab2", p.ravi)
	tab1.request("presence", map[string]any{"type": "presence", "status": "available"})

	// The visitor was here before (their token is stored) and wrote; that
	// earlier conversation is closed, so the racing tabs must open a new
	// one.
	first, ready := visitorClient(t, n, "earlier", "acme-chat", "")
	token := str(ready["token"])
	first.send(map[string]any{"type": "message.send", "client_id": "e-1", "text": "Hello from last week"})
	first.waitFor(0, "ack", wait, func(f map[string]any) bool { return f["type"] == "message.ack" && f["client_id"] == "e-1" })
	first.conn.Close()
	tab1.request("close-old", map[string]any{"type": "ticket.status", "ticket_id": num(ready["conversation_id"]), "status": "closed"})

	a := dial(t, "visitorTabA", n.ws("/channels/acme-chat/ws"), nil)
	b := dial(t, "visitorTabB", n.ws("/channels/acme-chat/ws"), nil)
	go a.send(map[string]any{"type": "session.start", "v": 1, "token": token, "page_url": "https://www.example.com/pricing"})
	go b.send(map[string]any{"type": "session.start", "v": 1, "token": token, "page_url": "https://www.example.com/invoices"})
	ra, _ := a.waitFor(0, "session.ready", wait, typeIs("session.ready"))
	rb, _ := b.waitFor(0, "session.ready", wait, typeIs("session.ready"))
	conv := num(ra["conversation_id"])
	if conv != num(rb["conversation_id"]) || conv == num(ready["conversation_id"]) {
		t.Fatalf("tabs got conversations %v and %v (earlier one %v)", ra["conversation_id"], rb["conversation_id"], ready["conversation_id"])
	}

	ack := func(c *wsClient, id string) {
		c.waitFor(0, "ack of "+id, wait, func(f map[string]any) bool { return f["type"] == "message.ack" && f["client_id"] == id })
	}
	a.send(map[string]any{"type": "message.send", "client_id": "A-1", "text": "Hi, I have a question about invoice INV-3391"})
	ack(a, "A-1")
	b.send(map[string]any{"type": "message.send", "client_id": "B-1", "text": "It was charged twice"})
	ack(b, "B-1")

	offer, _ := tab1.waitFor(0, "offer", wait, func(f map[string]any) bool { return f["type"] == "ticket.offered" && num(f["ticket_id"]) == conv })
	tab1.request("accept", map[string]any{"type": "ticket.accept", "ticket_id": num(offer["ticket_id"])})
	tab1.request("R-1", map[string]any{"type": "message.reply", "ticket_id": conv, "text": "Hello! Let me look at INV-3391.", "idempotency_key": "R-1"})
	tab2.request("typing", map[string]any{"type": "typing", "ticket_id": conv, "on": true})

	for _, c := range []*wsClient{a, b} {
		c.waitFor(0, "R-1", wait, messageFrom("agent", "Hello! Let me look at INV-3391."))
	}
	isR1 := func(f map[string]any) bool {
		return f["type"] == "message.new" && str(field(f, "message", "text")) == "Hello! Let me look at INV-3391."
	}
	for _, c := range []*wsClient{tab1, tab2} {
		f, _ := c.waitFor(0, "R-1", wait, isR1)
		if field(f, "message", "direction") != "out" || field(f, "message", "author_name") != "Ravi" {
			t.Errorf("%s shows R-1 as %v by %v, want an outbound message by Ravi", c.name, field(f, "message", "direction"), field(f, "message", "author_name"))
		}
	}

	b.conn.Close()
	a.send(map[string]any{"type": "message.send", "client_id": "A-2", "text": "Still there?"})
	ack(a, "A-2")
	tab1.waitFor(0, "A-2", wait, agentSees("Still there?"))
	tab2.waitFor(0, "A-2", wait, agentSees("Still there?"))

	// Every connection saw each message once.
	for _, c := range []*wsClient{tab1, tab2} {
		if got := c.count(isR1); got != 1 {
			t.Errorf("%s got R-1 %d times", c.name, got)
		}
	}
	countNew := func(c *wsClient, text string) int {
		return c.count(func(f map[string]any) bool {
			return f["type"] == "message.new" && str(field(f, "message", "text")) == text
		})
	}
	if countNew(a, "It was charged twice") != 1 || countNew(a, "Hello! Let me look at INV-3391.") != 1 || countNew(a, "Hi, I have a question about invoice INV-3391") != 0 {
		t.Errorf("tab A did not see each message once:\n%s", a.dump())
	}
	if countNew(b, "Hi, I have a question about invoice INV-3391") != 1 || countNew(b, "Hello! Let me look at INV-3391.") != 1 || countNew(b, "It was charged twice") != 0 {
		t.Errorf("tab B did not see each message once:\n%s", b.dump())
	}

	// Stored in receipt order, one open conversation.
	st, err := store.Open(context.Background(), p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.Messages(context.Background(), "acme", conv, 0, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range ms {
		texts = append(texts, m.Text)
	}
	want := []string{"Hi, I have a question about invoice INV-3391", "It was charged twice", "Hello! Let me look at INV-3391.", "Still there?"}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("stored order %q, want %q", texts, want)
	}
	open, err := st.Tickets(context.Background(), "acme", store.TicketFilter{Statuses: []string{"new", "open", "pending"}})
	if err != nil || len(open) != 1 || open[0].ID != conv {
		t.Errorf("open conversations: %v %v", open, err)
	}
}
