package gateway

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeFrame: whatever a client sends, the decoder neither panics nor
// accepts a frame it cannot describe; refusals carry a known code, and an
// echoed id is always a small JSON string or number.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","token":"sbt_x","protocol":1}`,
		`{"type":"auth","token":"sbt_x","protocol":1,"cursor":7,"id":"a"}`,
		`{"type":"presence","status":"available","id":1}`,
		`{"type":"resume","cursor":0}`,
		`{"type":"tickets.list","status":["open","new"],"assignee":"me","query":"x","before":9,"limit":20}`,
		`{"type":"tickets.list","assignee":12}`,
		`{"type":"ticket.get","ticket_id":1}`,
		`{"type":"ticket.accept","ticket_id":1}`,
		`{"type":"message.reply","ticket_id":1,"text":"hi","idempotency_key":"k"}`,
		`{"type":"message.note","ticket_id":1,"text":"note"}`,
		`{"type":"ticket.transfer","ticket_id":1,"team_id":2}`,
		`{"type":"ticket.status","ticket_id":1,"status":"solved"}`,
		`{"type":"typing","ticket_id":1,"on":false}`,
		`{"type":"ping","id":null}`,
		`{"type":"ping"} x`,
		`{"type":"ping","id":1e999}`,
		`{"type":"\u0000"}`,
		"{\"type\":\"ping\",\"id\":\"\xff\"}",
		`[`, ``, `{}`, `{"id":{}}`, `{"type":["ping"]}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{CodeBadFrame: true, CodeUnknownType: true, CodeInvalid: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, ferr := decodeFrame(b)
		if (fr == nil) == (ferr == nil) {
			t.Fatalf("frame %v and error %v", fr, ferr)
		}
		var id json.RawMessage
		if ferr != nil {
			if !codes[ferr.code] || ferr.msg == "" {
				t.Fatalf("refusal %q %q", ferr.code, ferr.msg)
			}
			id = ferr.id
		} else {
			if body, ok := newBody(fr.typ); !ok || body == nil || fr.body == nil {
				t.Fatalf("accepted unknown type %q", fr.typ)
			}
			id = fr.id
		}
		if id != nil {
			if len(id) > maxIDBytes || !json.Valid(id) || (id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9')) {
				t.Fatalf("echoed id %q", id)
			}
			// It must encode back into a frame.
			if _, err := json.Marshal(resultFrame{Type: typeResult, ID: id}); err != nil {
				t.Fatalf("id %q does not encode: %v", id, err)
			}
		}
	})
}
