package livechat

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
)

func TestSessionStartNewVisitor(t *testing.T) {
	e := newEnv(t, withSettings(`{"title":"Help desk","color":"#112233","ask_contact":true}`))
	c := e.nodes[0].dial(t, nil)
	r := c.start(map[string]any{"v": 1, "name": "Ann", "email": "ann@example.org", "page_url": "https://www.example.com/pricing"})
	if r.V != ProtocolVersion || !strings.HasPrefix(r.VisitorID, "vis_") || r.ConversationID == 0 || r.TicketNumber == 0 || len(r.History) != 0 || r.More {
		t.Fatalf("session.ready %s", r.raw)
	}
	if got, err := e.k().tokens.verify(r.Token); err != nil || got != r.VisitorID {
		t.Fatalf("token verifies as %q, %v", got, err)
	}
	if r.Widget != (widgetConfig{Title: "Help desk", Color: "#112233", Greeting: DefaultGreeting, AskContact: true, MaxMessageLength: 4000}) {
		t.Fatalf("widget config %+v", r.Widget)
	}
	// M3: the host learns the visitor id and what was typed in, no more.
	e.host.mu.Lock()
	contact := e.host.convs[r.ConversationID].contact
	e.host.mu.Unlock()
	if !reflect.DeepEqual(contact, connectors.Identity{ExternalID: r.VisitorID, DisplayName: "Ann", Email: "ann@example.org"}) {
		t.Fatalf("contact %+v", contact)
	}
	a := c.say("m1", "hello")
	e.host.mu.Lock()
	in := e.host.msgs[0].in
	e.host.mu.Unlock()
	if in.ExternalID != "lc:"+r.VisitorID+":m1" || in.ThreadKey != r.VisitorID || in.ConversationID != r.ConversationID ||
		in.Sender.Email != "ann@example.org" || in.Meta["page_url"] != "https://www.example.com/pricing" || a.ConversationID != r.ConversationID {
		t.Fatalf("inbound %+v, ack %s", in, a.raw)
	}
}

func TestSessionResumeAndHistory(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	r := c.start(nil)
	id1 := c.say("a1", "one").MessageID
	id2 := c.say("a2", "two").MessageID
	reply := e.host.addReply(r.ConversationID, "<script>alert(1)</script>", "Ravi")
	written := time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)
	if _, err := e.k().Send(t.Context(), connectors.Outbound{ConversationID: r.ConversationID, MessageID: reply, Text: "<script>alert(1)</script>", AuthorName: "Ravi", CreatedAt: written}); err != nil {
		t.Fatal(err)
	}
	// The live frame shows the time the record shows, not the sending's.
	if m := c.expect(typeMessageNew).msg(t); m.ID != reply || m.From != fromAgent || m.Author != "Ravi" || !m.CreatedAt.Equal(written) {
		t.Fatalf("reply %+v", m)
	}
	id3 := c.say("a3", "three").MessageID

	tests := []struct {
		name    string
		start   map[string]any
		wantIDs []int64
	}{
		{"reload: whole history", map[string]any{"token": r.Token}, []int64{id1, id2, reply, id3}},
		{"reconnect after a cursor", map[string]any{"token": r.Token, "after": id2}, []int64{reply, id3}},
		{"up to date", map[string]any{"token": r.Token, "after": id3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c2 := e.nodes[0].dial(t, nil)
			r2 := c2.start(tt.start)
			if r2.ConversationID != r.ConversationID || r2.VisitorID != r.VisitorID {
				t.Fatalf("another conversation: %s", r2.raw)
			}
			var ids []int64
			for _, m := range r2.History {
				ids = append(ids, m.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Fatalf("history ids %v, want %v", ids, tt.wantIDs)
			}
			for _, m := range r2.History {
				switch m.ID {
				case id1:
					if m.ClientID != "a1" || m.From != fromVisitor || m.Text != "one" {
						t.Fatalf("history item %+v", m)
					}
				case reply:
					if m.From != fromAgent || m.Author != "Ravi" || m.Text != "<script>alert(1)</script>" || m.State != "sent" {
						t.Fatalf("history item %+v", m)
					}
				}
			}
		})
	}

	t.Run("resume on a live session", func(t *testing.T) {
		h := c.send
		h(map[string]any{"type": "resume", "after": id1})
		f := c.expect(typeHistory)
		if len(f.Messages) != 3 || f.Messages[0].ID != id2 || f.More {
			t.Fatalf("history %s", f.raw)
		}
	})

	t.Run("a fresh token is issued each time", func(t *testing.T) {
		e.clock.advance(2 * time.Second)
		defer e.clock.advance(-2 * time.Second)
		c2 := e.nodes[0].dial(t, nil)
		if r2 := c2.start(map[string]any{"token": r.Token}); r2.Token == r.Token || r2.VisitorID != r.VisitorID {
			t.Fatalf("token not refreshed: %s", r2.raw)
		}
	})
}

func TestHistoryPaging(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	r := c.start(nil)
	for i := range historyPage + 50 {
		e.host.addReply(r.ConversationID, fmt.Sprint("m", i), "Ravi")
	}
	c2 := e.nodes[0].dial(t, nil)
	r2 := c2.start(map[string]any{"token": r.Token})
	if len(r2.History) != historyPage || !r2.More {
		t.Fatalf("first page: %d items, more %v", len(r2.History), r2.More)
	}
	c2.send(map[string]any{"type": "resume", "after": r2.History[historyPage-1].ID})
	h := c2.expect(typeHistory)
	if len(h.Messages) != 50 || h.More || h.Messages[49].Text != fmt.Sprint("m", historyPage+49) {
		t.Fatalf("second page: %d items, more %v", len(h.Messages), h.More)
	}
}

// Ack-after-commit: while Host.Deliver has not returned, no message.ack
// is sent; the ack comes after Deliver returned, and only then.
func TestAckOnlyAfterDeliverReturns(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	c.start(nil)
	e.host.deliverEntered = make(chan connectors.Inbound)
	e.host.deliverGate = make(chan struct{})

	c.send(map[string]any{"type": "message.send", "client_id": "x1", "text": "is this stored?"})
	in := waitCh(t, e.host.deliverEntered, "Deliver to be called")
	if e.host.hasReturned(in.ExternalID) {
		t.Fatal("Deliver returned before the gate opened")
	}
	c.quiet(150 * time.Millisecond) // Deliver is blocked: nothing may arrive
	close(e.host.deliverGate)
	ack := c.expect(typeMessageAck)
	if !e.host.hasReturned(in.ExternalID) {
		t.Fatal("ack arrived before Deliver returned")
	}
	if ack.ClientID != "x1" || ack.MessageID == 0 {
		t.Fatalf("ack %s", ack.raw)
	}
}

// A message whose ack was lost is sent again with the same client id,
// after a reconnect; the host stores it once and the ack says duplicate.
// A failed commit gets no ack, and its resend goes through.
func TestResendDeduplicated(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	r := c.start(nil)
	first := c.say("dup-1", "only once please")
	_ = c.ws.Close()

	c2 := e.nodes[0].dial(t, nil)
	c2.start(map[string]any{"token": r.Token, "after": first.MessageID})
	again := c2.say("dup-1", "only once please")
	if !again.Duplicate || again.MessageID != first.MessageID || again.ConversationID != r.ConversationID {
		t.Fatalf("resend ack %s, first %s", again.raw, first.raw)
	}
	if got := e.host.texts(r.ConversationID); len(got) != 1 {
		t.Fatalf("stored %q", got)
	}

	e.host.deliverFail.Store(1)
	c2.send(map[string]any{"type": "message.send", "client_id": "f-1", "text": "commit fails"})
	if f := c2.expectError(codeDeliverFailed); f.ClientID != "f-1" || f.RetryAfterMS == 0 {
		t.Fatalf("error %s", f.raw)
	}
	if a := c2.say("f-1", "commit fails"); a.Duplicate {
		t.Fatalf("the failed message was stored: %s", a.raw)
	}
	if got := e.host.texts(r.ConversationID); fmt.Sprint(got) != "[only once please commit fails]" {
		t.Fatalf("stored %q", got)
	}
}

func TestTokenErrorsOverSocket(t *testing.T) {
	e := newEnv(t)
	other := &signer{channelID: "ch_other", keys: [][]byte{[]byte(testSecret)}, ttl: time.Hour, now: e.clock.now}
	valid := e.k().tokens.issue("vis_abc")
	tests := []struct {
		name    string
		token   string
		advance time.Duration
		code    string
	}{
		{"garbage", "not-a-token", 0, codeTokenInvalid},
		{"other channel", other.issue("vis_abc"), 0, codeTokenInvalid},
		{"tampered", strings.Replace(valid, "vis_abc", "vis_abd", 1), 0, codeTokenInvalid},
		{"expired", valid, DefaultTokenTTL + time.Minute, codeTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.advance(tt.advance)
			defer e.clock.advance(-tt.advance)
			c := e.nodes[0].dial(t, nil)
			c.send(map[string]any{"type": "session.start", "token": tt.token})
			c.expectError(tt.code)
			// No session: nothing can be sent.
			c.send(map[string]any{"type": "message.send", "client_id": "x", "text": "hi"})
			c.expectError(codeNoSession)
			// The widget starts over without a token and gets a new visitor.
			if r := c.start(nil); r.VisitorID == "vis_abc" {
				t.Fatalf("new session resumed the old visitor: %s", r.raw)
			}
		})
	}
}

// Bad input gets an error frame (or a close with a reason); the socket and
// the server keep serving.
func TestBadInput(t *testing.T) {
	e := newEnv(t, withSettings(`{"max_message_length":20}`))
	bystander := e.nodes[0].dial(t, nil)
	br := bystander.start(nil)

	c := e.nodes[0].dial(t, nil)
	tests := []struct {
		name string
		mt   int
		data string
		code string
	}{
		{"malformed JSON", websocket.TextMessage, `{"type":`, codeBadFrame},
		{"not an object", websocket.TextMessage, `"session.start"`, codeBadFrame},
		{"unknown type", websocket.TextMessage, `{"type":"agent.reply","text":"x"}`, codeUnknownType},
		{"binary frame", websocket.BinaryMessage, `{"type":"ping"}`, codeBinary},
		{"invalid UTF-8", websocket.TextMessage, "{\"type\":\"message.send\",\"client_id\":\"u\",\"text\":\"caf\xe9\"}", codeInvalidUTF8},
		{"send before session", websocket.TextMessage, `{"type":"message.send","client_id":"a","text":"hi"}`, codeNoSession},
		{"oversized message", websocket.TextMessage, `{"type":"message.send","client_id":"big","text":"` + strings.Repeat("x", 21) + `"}`, codeTextTooLong},
		{"wrong field type", websocket.TextMessage, `{"type":"resume","after":"x"}`, codeBadField},
		{"future protocol", websocket.TextMessage, `{"type":"session.start","v":9}`, codeUnsupportedVer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw(tt.mt, []byte(tt.data))
			f := c.expectError(tt.code)
			if f.errText() == "" {
				t.Fatalf("error frame without message: %s", f.raw)
			}
			c.roundTrip() // the socket still serves
		})
	}

	t.Run("frame over the read limit closes with 1009", func(t *testing.T) {
		big := e.nodes[0].dial(t, nil)
		big.start(nil)
		big.sendRaw(websocket.TextMessage, []byte(`{"type":"message.send","client_id":"x","text":"`+strings.Repeat("x", int(e.k().readLimit))+`"}`))
		if ce := big.expectClose(); ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("close %v", ce)
		}
	})

	t.Run("a stream of garbage closes with 1008 and a reason", func(t *testing.T) {
		g := e.nodes[0].dial(t, nil)
		for range maxBadFrames + 1 {
			g.sendRaw(websocket.TextMessage, []byte("garbage"))
		}
		ce := g.expectClose()
		if ce.Code != websocket.ClosePolicyViolation || ce.Text != "too many invalid frames" {
			t.Fatalf("close %v", ce)
		}
	})

	// Everyone else is still served.
	a := bystander.say("still-ok", "still here")
	if a.ConversationID != br.ConversationID {
		t.Fatalf("ack %s", a.raw)
	}
	c.start(nil)
}

func TestOrigins(t *testing.T) {
	e := newEnv(t, withSettings(`{"allowed_origins":["https://shop.example.com"]}`))
	n := e.nodes[0]
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"https://shop.example.com", true},
		{"https://SHOP.example.com", true},
		{n.srv.URL, true}, // the hub's own pages (demo)
		{"https://evil.example.net", false},
		{"http://shop.example.com", false}, // another scheme is another origin
		{"null", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			c, err := n.tryDial(h)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = c.ws.Close()
				return
			}
			if de, ok := err.(*dialError); !ok || de.status != http.StatusForbidden {
				t.Fatalf("want 403, got %v", err)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, withSettings(`{"rate_limit":{"per_minute":60,"burst":2}}`))
	c := e.nodes[0].dial(t, nil)
	r := c.start(nil)
	c.say("r1", "one")
	// A second tab of the same visitor shares the bucket.
	c2 := e.nodes[0].dial(t, nil)
	c2.start(map[string]any{"token": r.Token})
	c2.say("r2", "two")
	c.expect(typeMessageNew) // r2, from the other tab
	c.send(map[string]any{"type": "message.send", "client_id": "r3", "text": "three"})
	f := c.expectError(codeRateLimited)
	if f.ClientID != "r3" || f.RetryAfterMS < 500 || f.RetryAfterMS > 1100 {
		t.Fatalf("rate limit error %s", f.raw)
	}
	e.clock.advance(time.Second)
	c.say("r3", "three")
}

func TestVisitorTypingAndReadState(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	r := c.start(nil)
	c.send(map[string]any{"type": "typing", "active": true})
	c.send(map[string]any{"type": "typing", "active": true}) // throttled
	c.send(map[string]any{"type": "typing", "active": false})
	c.send(map[string]any{"type": "typing", "active": false}) // nothing to stop
	c.roundTrip()
	got := []connectors.Signal{waitCh(t, e.host.signals, "typing"), waitCh(t, e.host.signals, "typing_stop")}
	want := []connectors.Signal{
		{ChannelID: testChannel, ConversationID: r.ConversationID, ThreadKey: r.VisitorID, Kind: "typing", From: r.VisitorID},
		{ChannelID: testChannel, ConversationID: r.ConversationID, ThreadKey: r.VisitorID, Kind: "typing_stop", From: r.VisitorID},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("signals %+v, want %+v", got, want)
	}
	if len(e.host.signals) != 0 {
		t.Fatalf("throttled signals got through: %d more", len(e.host.signals))
	}
	// A visitor who gave a name is named by it, as on their messages.
	named := e.nodes[0].dial(t, nil)
	named.start(map[string]any{"name": "Vera"})
	named.send(map[string]any{"type": "typing", "active": true})
	named.roundTrip()
	if s := waitCh(t, e.host.signals, "typing"); s.From != "Vera" {
		t.Fatalf("typing of a named visitor from %q", s.From)
	}

	reply := e.host.addReply(r.ConversationID, "hello", "Ravi")
	res, err := e.k().Send(t.Context(), connectors.Outbound{ConversationID: r.ConversationID, MessageID: reply, Text: "hello", AuthorName: "Ravi"})
	if err != nil {
		t.Fatal(err)
	}
	c.expect(typeMessageNew)
	c.send(map[string]any{"type": "message.state", "state": "read", "message_ids": []int64{reply}})
	c.roundTrip()
	e.host.mu.Lock()
	updates := e.host.updates
	e.host.mu.Unlock()
	if len(updates) != 1 || updates[0].ExternalID != res.ExternalID || updates[0].State != connectors.DeliveryRead || updates[0].Recipient != r.VisitorID {
		t.Fatalf("updates %+v, send result %+v", updates, res)
	}

	// Agent signals reach the visitor.
	for _, kind := range []string{"typing", "typing_stop", "seen"} {
		if err := e.k().SendSignal(t.Context(), connectors.Signal{ConversationID: r.ConversationID, Kind: kind, From: "Ravi"}); err != nil {
			t.Fatal(err)
		}
	}
	if f := c.expect(typeTyping); !f.Active || f.Author != "Ravi" {
		t.Fatalf("typing %s", f.raw)
	}
	if f := c.expect(typeTyping); f.Active {
		t.Fatalf("typing stop %s", f.raw)
	}
	c.expect(typeSeen)
}

func TestSendErrors(t *testing.T) {
	e := newEnv(t, withSettings(`{"max_message_length":10}`))
	ok := connectors.Outbound{ConversationID: 1, MessageID: 2, Text: "hi"}
	tests := []struct {
		name   string
		mutate func(*connectors.Outbound)
		down   bool
		class  connectors.Class
		code   string
	}{
		{"no conversation", func(o *connectors.Outbound) { o.ConversationID = 0 }, false, connectors.Permanent, "no_conversation"},
		{"no message id", func(o *connectors.Outbound) { o.MessageID = 0 }, false, connectors.Permanent, "no_message_id"},
		{"too long", func(o *connectors.Outbound) { o.Text = strings.Repeat("ü", 11) }, false, connectors.Refused, "text_too_long"},
		{"empty", func(o *connectors.Outbound) { o.Text = " "; o.HTML = "<p>x</p>" }, false, connectors.Refused, "empty_text"},
		{"attachment", func(o *connectors.Outbound) { o.Attachments = []connectors.Attachment{{Filename: "a.pdf"}} }, false, connectors.Refused, "attachments_unsupported"},
		{"pub/sub down", func(o *connectors.Outbound) {}, true, connectors.Retryable, "pubsub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := ok
			tt.mutate(&msg)
			e.ps.failPublish.Store(tt.down)
			defer e.ps.failPublish.Store(false)
			_, err := e.k().Send(t.Context(), msg)
			ce, isErr := err.(*connectors.Error)
			if !isErr || ce.Class != tt.class || ce.Code != tt.code {
				t.Fatalf("got %v, want %s/%s", err, tt.class, tt.code)
			}
		})
	}
	res, err := e.k().Send(t.Context(), ok)
	if err != nil || res.State != connectors.DeliverySent || res.ExternalID != "lc-out:1:2" {
		t.Fatalf("send: %+v %v", res, err)
	}
}

// An agent closed the conversation; the visitor writes again. The hub
// opens a new conversation for the message (thread key), the writing tab
// follows it, and the other tabs are told to start the session again.
func TestConversationReplacedAfterClose(t *testing.T) {
	e := newEnv(t)
	a := e.nodes[0].dial(t, nil)
	r := a.start(nil)
	b := e.nodes[0].dial(t, nil)
	b.start(map[string]any{"token": r.Token})
	a.say("before", "first chat")
	b.expect(typeMessageNew)
	e.host.closeConv(r.ConversationID)

	ack := a.say("after", "back again")
	if ack.ConversationID == r.ConversationID || ack.ConversationID == 0 {
		t.Fatalf("ack %s", ack.raw)
	}
	if f := b.expect(typeConvChanged); f.ConversationID != ack.ConversationID {
		t.Fatalf("conversation.changed %s", f.raw)
	}
	rb := b.start(map[string]any{"token": r.Token})
	if rb.ConversationID != ack.ConversationID || len(rb.History) != 1 || rb.History[0].Text != "back again" || rb.History[0].ClientID != "after" {
		t.Fatalf("session.ready %s", rb.raw)
	}
	// Both tabs now get replies of the new conversation.
	id := e.host.addReply(ack.ConversationID, "welcome back", "Ravi")
	if _, err := e.k().Send(t.Context(), connectors.Outbound{ConversationID: ack.ConversationID, MessageID: id, Text: "welcome back"}); err != nil {
		t.Fatal(err)
	}
	a.expect(typeMessageNew)
	b.expect(typeMessageNew)
}

func TestStop(t *testing.T) {
	e := newEnv(t)
	c := e.nodes[0].dial(t, nil)
	c.start(nil)
	if err := e.k().Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ce := c.expectClose(); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close %v", ce)
	}
	if _, err := e.nodes[0].tryDial(nil); err == nil || err.(*dialError).status != http.StatusServiceUnavailable {
		t.Fatalf("dial after Stop: %v", err)
	}
	if err := e.k().Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := e.k().Start(t.Context(), e.host); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
	// Stop without Start.
	k, err := New(connectors.Config{ChannelID: "x", Secrets: map[string]string{SecretVisitor: testSecret}, PubSub: newMemPubSub()})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
