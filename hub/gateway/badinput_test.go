package gateway

import (
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// Bad frames get an error frame (the socket stays) or a close with a
// reason; another agent's socket keeps working throughout.
func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{MaxFrameBytes: 4096}})
	e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	_, other := e.agent("acme", "Mia")
	mia := e.connect("mia", other)
	bad := e.connect("bad", token)
	r := e.inbound("acme", "conv-1", "m1", "hello")

	errorFor := func(c *client, raw string, code string) msg {
		t.Helper()
		before := c.count(ofType("error", 0))
		c.sendRaw(websocket.TextMessage, []byte(raw))
		c.waitCount("error for "+raw, before+1, ofType("error", 0))
		all := c.all()
		var last msg
		for _, m := range all {
			if m.Type == "error" {
				last = m
			}
		}
		if last.Code != code {
			t.Fatalf("%s: code %q (%s), want %q", raw, last.Code, last.text(), code)
		}
		return last
	}

	for _, tc := range []struct{ raw, code string }{
		{`{`, CodeBadFrame},
		{`not json`, CodeBadFrame},
		{`[]`, CodeBadFrame},
		{`null`, CodeBadFrame},
		{`"ping"`, CodeBadFrame},
		{`{}`, CodeBadFrame},
		{`{"type":5}`, CodeBadFrame},
		{`{"type":"ping"} {"type":"ping"}`, CodeBadFrame},
		{`{"type":"ticket.get","ticket_id":"seven"}`, CodeBadFrame},
		{`{"type":"ticket.get","ticket_id":1,"tiket":2}`, CodeBadFrame},
		{`{"type":"ticket.get","Ticket_ID":1}`, CodeBadFrame},
		{`{"Type":"ping"}`, CodeBadFrame},
		{`{"type":"ticket.get","ticket_id":1,"ticket_id":2}`, CodeBadFrame},
		{`{"type":"ping","type":"ticket.close"}`, CodeBadFrame},
		{`{"type":"ping","id":1,"id":2}`, CodeBadFrame},
		{`{"type":"ping","id":{"a":1}}`, CodeBadFrame},
		{`{"type":"ping","id":"` + strings.Repeat("x", 100) + `"}`, CodeBadFrame},
		{`{"type":"launch.missiles"}`, CodeUnknownType},
		{`{"type":"ticket.get"}`, CodeInvalid},
		{`{"type":"ticket.get","ticket_id":-1}`, CodeInvalid},
		{`{"type":"message.reply","ticket_id":1}`, CodeInvalid},
		{`{"type":"message.reply","ticket_id":1,"text":"   "}`, CodeInvalid},
		{`{"type":"ticket.transfer","ticket_id":1}`, CodeInvalid},
		{`{"type":"ticket.status","ticket_id":1,"status":"archived"}`, CodeInvalid},
		{`{"type":"presence","status":"busy"}`, CodeInvalid},
		{`{"type":"resume"}`, CodeInvalid},
		{`{"type":"tickets.list","assignee":"everyone"}`, CodeInvalid},
		{`{"type":"tickets.list","limit":100000}`, CodeInvalid},
		{`{"type":"typing","ticket_id":1}`, CodeInvalid},
	} {
		errorFor(bad, tc.raw, tc.code)
	}
	// The id is echoed even when the frame is refused.
	m := errorFor(bad, `{"type":"nope","id":42}`, CodeUnknownType)
	if string(m.ID) != "42" {
		t.Fatalf("id %s", m.ID)
	}
	m = errorFor(bad, `{"type":"ping","id":"t1"} trailing`, CodeBadFrame)
	if string(m.ID) != `"t1"` || !strings.Contains(m.text(), "after the JSON object") {
		t.Fatalf("reply %+v %s", m, m.text())
	}
	m = errorFor(bad, `{"type":"ticket.get","id":"q1"}`, CodeInvalid)
	if string(m.ID) != `"q1"` || !strings.Contains(m.text(), "ticket_id") {
		t.Fatalf("reply %+v %s", m, m.text())
	}

	// Binary frames are refused, the socket stays.
	before := bad.count(ofType("error", 0))
	bad.sendRaw(websocket.BinaryMessage, []byte{0xde, 0xad, 0xbe, 0xef})
	bad.waitCount("binary refused", before+1, ofType("error", 0))
	bad.ok("ping", nil, nil)
	mia.ok("ping", nil, nil)

	// Invalid UTF-8 in a text frame fails the connection with 1007.
	utf := e.connect("utf", token)
	utf.sendRaw(websocket.TextMessage, []byte("{\"type\":\"ping\",\"id\":\"\xff\xfe\"}"))
	if ce := utf.closed(); ce.Code != websocket.CloseInvalidFramePayloadData || ce.Text == "" {
		t.Fatalf("close %v", ce)
	}

	// An oversized frame closes with 1009 and a reason.
	// The client writes it in fragments; the server may close before the
	// last one, so the write may fail: the close is what counts.
	big := e.connect("big", token)
	big.sendRawMayFail(websocket.TextMessage, []byte(`{"type":"message.note","ticket_id":1,"text":"`+strings.Repeat("a", 10000)+`"}`))
	ce := big.closed()
	if ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "4096") {
		t.Fatalf("close %v", ce)
	}
	if big.count(func(m msg) bool { return m.Type == "error" && m.Code == CodeTooLarge }) != 1 {
		t.Fatalf("no too_large error:%s", big.dump())
	}

	// An oversized frame before authentication, too.
	anon := e.dial("anon", nil)
	anon.sendRawMayFail(websocket.TextMessage, []byte(strings.Repeat(" ", 5000)))
	if ce := anon.closed(); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close %v", ce)
	}

	// A client that vanishes without a close frame.
	gone := e.connect("gone", token)
	_ = gone.ws.UnderlyingConn().Close()

	// Through all this the other agent's socket kept working, and so did
	// the socket that sent the bad frames.
	mia.ok("ping", nil, nil)
	var note struct{ Message struct{ ID int64 } }
	mia.ok("message.note", map[string]any{"ticket_id": r.ConversationID, "text": "all fine here"}, &note)
	bad.waitFor("note", isMessageNew(note.Message.ID))
	mia.waitFor("note", isMessageNew(note.Message.ID))
	if n := mia.count(ofType("error", 0)); n != 0 {
		t.Fatalf("mia got %d errors", n)
	}
}
