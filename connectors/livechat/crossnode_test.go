package livechat

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Two nodes share the host (database) and the pub/sub (Redis): a visitor
// with a tab on each node sees everything on both, whichever node the
// hub's dispatcher calls Send on; a node leaves a conversation's topic
// when its last socket of that conversation goes.
func TestCrossNode(t *testing.T) {
	unsub := make(chan int64, 4)
	e := newEnv(t, withHooks(func(h *testHooks) { h.unsubscribed = func(id int64) { unsub <- id } }))
	n1, n2 := e.nodes[0], e.addNode()

	a := n1.dial(t, nil)
	r := a.start(nil)
	b := n2.dial(t, nil)
	if rb := b.start(map[string]any{"token": r.Token}); rb.ConversationID != r.ConversationID {
		t.Fatalf("node 2 opened another conversation: %s", rb.raw)
	}
	topic := n1.k.topic(r.ConversationID)
	if got := e.ps.subscribers(topic); got != 2 {
		t.Fatalf("subscribers of %s: %d, want one per node", topic, got)
	}

	// Visitor messages fan out across nodes.
	ida := a.say("x1", "from node 1").MessageID
	if m := b.expect(typeMessageNew).msg(t); m.ID != ida || m.ClientID != "x1" {
		t.Fatalf("node 2 tab got %+v", m)
	}
	idb := b.say("x2", "from node 2").MessageID
	if m := a.expect(typeMessageNew).msg(t); m.ID != idb {
		t.Fatalf("node 1 tab got %+v", m)
	}

	// Agent replies and signals, sent through either node, reach both.
	for i, sender := range []*node{n1, n2} {
		id := e.host.addReply(r.ConversationID, fmt.Sprint("reply ", i), "Ravi")
		if _, err := sender.k.Send(t.Context(), connectors.Outbound{ConversationID: r.ConversationID, MessageID: id, Text: fmt.Sprint("reply ", i), AuthorName: "Ravi"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, b} {
			if m := c.expect(typeMessageNew).msg(t); m.ID != id || m.Author != "Ravi" {
				t.Fatalf("reply %d: %+v", i, m)
			}
		}
	}
	if err := n2.k.SendSignal(t.Context(), connectors.Signal{ConversationID: r.ConversationID, Kind: "typing", From: "Ravi"}); err != nil {
		t.Fatal(err)
	}
	a.expect(typeTyping)
	b.expect(typeTyping)

	// Node 1's last socket of the conversation goes: node 1 leaves the
	// topic, node 2 stays.
	_ = a.ws.Close()
	if id := waitCh(t, unsub, "node 1 to unsubscribe"); id != r.ConversationID {
		t.Fatalf("unsubscribed %d", id)
	}
	if got := e.ps.subscribers(topic); got != 1 {
		t.Fatalf("subscribers after node 1 left: %d", got)
	}
	id := e.host.addReply(r.ConversationID, "still there?", "Ravi")
	if _, err := n1.k.Send(t.Context(), connectors.Outbound{ConversationID: r.ConversationID, MessageID: id, Text: "still there?"}); err != nil {
		t.Fatal(err)
	}
	b.expect(typeMessageNew)
}

// A tab that stops reading is dropped when its send queue is full; the
// other tab of the conversation gets every message, never stalled.
func TestSlowTabDropped(t *testing.T) {
	dropped := make(chan *conn, 1)
	e := newEnv(t, withSettings(`{"send_queue":8}`), withHooks(func(h *testHooks) {
		h.dropped = func(c *conn) {
			select {
			case dropped <- c:
			default:
			}
		}
	}))
	n := e.nodes[0]
	fast := n.dial(t, nil)
	r := fast.start(nil)

	// The slow tab reads nothing after session.ready and has a tiny
	// receive buffer, so the server's writes soon block.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	slow, _, err := d.Dial(n.wsURL(), http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"type": "session.start", "token": r.Token}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slow.ReadMessage(); err != nil {
		t.Fatal(err)
	}

	text := strings.Repeat("z", 4000)
	got := make(chan int64, 10000)
	go func() {
		for {
			f, ok := <-fast.frames
			if !ok {
				close(got)
				return
			}
			var m struct {
				Message wireMessage `json:"message"`
			}
			if f.Type == typeMessageNew && json.Unmarshal([]byte(f.raw), &m) == nil {
				got <- m.Message.ID
			}
		}
	}()
	var sent []int64
	for i := 0; ; i++ {
		if i == 5000 {
			t.Fatal("the slow tab was never dropped")
		}
		id := e.host.addReply(r.ConversationID, text, "Ravi")
		if _, err := n.k.Send(t.Context(), connectors.Outbound{ConversationID: r.ConversationID, MessageID: id, Text: text}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, id)
		// Keep pace with the fast tab, so that only the slow one lags.
		if gotID := waitCh(t, got, "the fast tab's message"); gotID != id {
			t.Fatalf("fast tab got %d, want %d", gotID, id)
		}
		select {
		case <-dropped:
			t.Logf("slow tab dropped after %d messages", len(sent))
			// The fast tab still works.
			fast.send(map[string]any{"type": "message.send", "client_id": "after-drop", "text": "ok"})
			return
		default:
		}
	}
}

// Widget, stylesheet and demo page: content types, caching, the CSP of
// the demo, and no HTML sinks in the widget (hostile text stays inert).
func TestAssets(t *testing.T) {
	e := newEnv(t)
	base := e.nodes[0].srv.URL + "/channels/" + testChannel + "/"
	tests := []struct {
		path, ctype string
		contains    []string
	}{
		{"widget.js", "text/javascript; charset=utf-8", []string{"textContent", "localStorage", "session.start", "message.send", "resume", "typing", "message.state"}},
		{"widget.css", "text/css; charset=utf-8", []string{".sbl-root", "--sbl-color"}},
		{"demo", "text/html; charset=utf-8", []string{`<script src="widget.js"`}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("%d %v", resp.StatusCode, resp.Header)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("%s does not contain %q", tt.path, s)
				}
			}
			// Revalidation by ETag.
			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			resp2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != http.StatusNotModified {
				t.Fatalf("revalidation: %d", resp2.StatusCode)
			}
			if tt.path == "demo" {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
					t.Fatalf("demo CSP %q", csp)
				}
			}
		})
	}
	js, _ := webFS.ReadFile("web/widget.js")
	for _, sink := range []string{".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", ".cssText"} {
		if strings.Contains(string(js), sink) {
			t.Errorf("widget.js uses %s; render network text with textContent", sink)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
