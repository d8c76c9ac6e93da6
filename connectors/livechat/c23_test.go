package livechat

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
)

// c23Script is the part of ../shared/cases/inputs/C23.json this test reads.
type c23Script struct {
	VisitorToken string `json:"visitor_token"`
	Steps        []struct {
		TMS   int            `json:"t_ms"`
		Conn  string         `json:"conn"`
		Op    string         `json:"op"`
		Frame map[string]any `json:"frame"`
	} `json:"steps"`
}

// TestC23TwoTabsRace runs case C23 at the connector level.
//
// The visitor vis_3c8e1f5a opens two tabs that send session.start at the
// same moment; the host is made to hold both OpenThread calls until both
// are in flight. Mapping to this protocol: the case's visitor_token (a
// cookie) is the visitor id inside our signed token; client_msg_id is
// client_id; the agent's reply R-1 is the hub storing a message and
// calling Connector.Send; the agent's typing is SendSignal.
//
// Covered here: one open conversation and the same conversation_id in
// both session.ready frames; messages stored in server receipt order A-1,
// B-1, R-1, A-2; each visitor tab sees every message exactly once,
// including those typed in the other tab (its own through message.ack,
// the others through message.new); R-1 reaches each visitor tab once, as
// sent by Ravi; closing tab B does not close the conversation.
//
// Left to the hub's end-to-end test: the two agent tabs (R-1 reaching
// both, agentTab2 showing it as sent by Ravi rather than as a new message
// to answer), which live in the agent gateway, not in this connector.
func TestC23TwoTabsRace(t *testing.T) {
	raw, err := os.ReadFile("testdata/C23.json")
	if err != nil {
		t.Fatal(err)
	}
	var script c23Script
	if err := json.Unmarshal(raw, &script); err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{} // client_msg_id -> text, from the case
	for _, s := range script.Steps {
		if s.Op == "send" {
			if id, ok := s.Frame["client_msg_id"].(string); ok {
				texts[id] = s.Frame["text"].(string)
			}
		}
	}
	if script.VisitorToken != "vis_3c8e1f5a" || len(texts) != 4 {
		t.Fatalf("unexpected case input: %q %v", script.VisitorToken, texts)
	}

	closed := make(chan *conn, 4)
	e := newEnv(t, withHooks(func(h *testHooks) { h.connClosed = func(c *conn) { closed <- c } }))
	e.host.openBarrier = newBarrier(2) // both OpenThread calls in flight at once
	token := e.k().tokens.issue(script.VisitorToken)
	tabs := map[string]*client{
		"visitorTabA": e.nodes[0].dial(t, nil),
		"visitorTabB": e.nodes[0].dial(t, nil),
	}
	pages := map[string]string{"visitorTabA": "https://www.example.com/pricing", "visitorTabB": "https://www.example.com/invoices"}

	// t=20: both tabs send session.start concurrently.
	var wg sync.WaitGroup
	for name, c := range tabs {
		wg.Go(func() {
			if err := c.ws.WriteJSON(map[string]any{"type": "session.start", "token": token, "page_url": pages[name]}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ra, rb := tabs["visitorTabA"].expect(typeSessionReady), tabs["visitorTabB"].expect(typeSessionReady)
	if ra.ConversationID == 0 || ra.ConversationID != rb.ConversationID {
		t.Fatalf("two conversations: A %d, B %d", ra.ConversationID, rb.ConversationID)
	}
	if open := e.host.openConvs(script.VisitorToken); len(open) != 1 {
		t.Fatalf("open conversations of the visitor: %v", open)
	}
	conv := ra.ConversationID

	// seen[tab] counts each message id a tab was shown: acks of its own
	// messages and message.new of everything else.
	seen := map[string]map[int64]int{"visitorTabA": {}, "visitorTabB": {}}
	texts2 := map[int64]string{}
	record := func(tab string, f frame) {
		switch f.Type {
		case typeMessageAck:
			seen[tab][f.MessageID]++
		case typeMessageNew:
			m := f.msg(t)
			seen[tab][m.ID]++
			texts2[m.ID] = m.Text
			if m.From == fromAgent && m.Author != "Ravi" {
				t.Errorf("reply shown as from %q", m.Author)
			}
		}
	}
	// expectNew waits for a message.new on tab and records it.
	expectNew := func(tab string) wireMessage {
		t.Helper()
		f := tabs[tab].expect(typeMessageNew)
		record(tab, f)
		return f.msg(t)
	}
	say := func(tab, id string) int64 {
		t.Helper()
		f := tabs[tab].say(id, texts[id])
		record(tab, f)
		return f.MessageID
	}

	// t=200, 205: A-1 from tab A, B-1 from tab B; each tab sees the
	// other's message.
	a1 := say("visitorTabA", "A-1")
	if m := expectNew("visitorTabB"); m.ID != a1 || m.ClientID != "A-1" || m.From != fromVisitor {
		t.Fatalf("tab B got %+v", m)
	}
	b1 := say("visitorTabB", "B-1")
	if m := expectNew("visitorTabA"); m.ID != b1 || m.ClientID != "B-1" {
		t.Fatalf("tab A got %+v", m)
	}

	// t=900: the agent's reply R-1; t=901: the agent's other tab types.
	r1 := e.host.addReply(conv, texts["R-1"], "Ravi")
	if _, err := e.k().Send(t.Context(), connectors.Outbound{ConversationID: conv, MessageID: r1, Text: texts["R-1"], AuthorName: "Ravi"}); err != nil {
		t.Fatal(err)
	}
	if err := e.k().SendSignal(t.Context(), connectors.Signal{ConversationID: conv, Kind: "typing", From: "Ravi"}); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []string{"visitorTabA", "visitorTabB"} {
		if m := expectNew(tab); m.ID != r1 || m.From != fromAgent {
			t.Fatalf("%s got %+v", tab, m)
		}
		if f := tabs[tab].expect(typeTyping); !f.Active || f.Author != "Ravi" {
			t.Fatalf("%s typing %s", tab, f.raw)
		}
	}

	// t=2000: tab B closes. The conversation stays open, and tab B's
	// connection is gone from the node before A writes again.
	_ = tabs["visitorTabB"].ws.Close()
	waitCh(t, closed, "tab B's connection to end")
	if open := e.host.openConvs(script.VisitorToken); len(open) != 1 || open[0] != conv {
		t.Fatalf("open conversations after closing tab B: %v", open)
	}

	// t=2100: A-2 from tab A, into the same conversation.
	a2 := tabs["visitorTabA"].say("A-2", texts["A-2"])
	record("visitorTabA", a2)
	if a2.ConversationID != conv {
		t.Fatalf("A-2 went to conversation %d", a2.ConversationID)
	}

	// Stored in server receipt order.
	want := []string{texts["A-1"], texts["B-1"], texts["R-1"], texts["A-2"]}
	if got := e.host.texts(conv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	// Nothing further is queued for tab A (a pong ends the stream).
	for _, f := range tabs["visitorTabA"].roundTrip() {
		record("visitorTabA", f)
	}
	wantSeen := map[string]map[int64]int{
		"visitorTabA": {a1: 1, b1: 1, r1: 1, a2.MessageID: 1},
		"visitorTabB": {a1: 1, b1: 1, r1: 1},
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Fatalf("messages seen per tab %v, want %v", seen, wantSeen)
	}
}
