package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// Bad input: every mistake a client can make gets a precise 4xx that
// names what is wrong (never a 5xx), and changes nothing.

func TestBadInput(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "hello")
		msgs := ticketPath(id, "/messages")
		status := ticketPath(id, "/status")
		cases := []struct {
			name         string
			method, path string
			body         any
			opts         []reqOpt
			status       int
			code, field  string
		}{
			// Bodies.
			{name: "broken JSON", method: "POST", path: msgs, body: `{"text": `, status: 400, code: "invalid_json"},
			{name: "not JSON at all", method: "POST", path: msgs, body: `text=hello`, status: 400, code: "invalid_json"},
			{name: "empty body", method: "POST", path: msgs, body: ``, status: 400, code: "invalid_json"},
			{name: "array body", method: "POST", path: msgs, body: `[{"text": "hi"}]`, status: 400, code: "invalid_json"},
			{name: "two objects", method: "POST", path: msgs, body: `{"text": "hi"} {"text": "again"}`, status: 400, code: "invalid_json"},
			{name: "unknown field", method: "POST", path: msgs, body: `{"text": "hi", "html": "<b>hi</b>"}`, status: 400, code: "unknown_field", field: "html"},
			{name: "misspelt field", method: "POST", path: status, body: `{"state": "solved"}`, status: 400, code: "unknown_field", field: "state"},
			{name: "text not a string", method: "POST", path: msgs, body: `{"text": 42}`, status: 400, code: "invalid_type", field: "text"},
			{name: "note not a boolean", method: "POST", path: msgs, body: `{"text": "hi", "note": "yes"}`, status: 400, code: "invalid_type", field: "note"},
			{name: "key not a string", method: "POST", path: msgs, body: `{"text": "hi", "idempotency_key": 7}`, status: 400, code: "invalid_type", field: "idempotency_key"},
			{name: "status not a string", method: "POST", path: status, body: `{"status": ["solved"]}`, status: 400, code: "invalid_type", field: "status"},
			{name: "oversized body", method: "POST", path: msgs, body: `{"text": "` + strings.Repeat("x", MaxBodyBytes) + `"}`, status: 413, code: "too_large"},
			{name: "no content type", method: "POST", path: msgs, body: `{"text": "hi"}`, opts: []reqOpt{withoutHeader("Content-Type")}, status: 415, code: "unsupported_media_type"},
			{name: "form content type", method: "POST", path: msgs, body: `{"text": "hi"}`, opts: []reqOpt{withHeader("Content-Type", "application/x-www-form-urlencoded")}, status: 415, code: "unsupported_media_type"},
			{name: "text/plain", method: "POST", path: status, body: `{"status": "solved"}`, opts: []reqOpt{withHeader("Content-Type", "text/plain")}, status: 415, code: "unsupported_media_type"},
			// Values.
			{name: "no text", method: "POST", path: msgs, body: `{"note": true}`, status: 422, code: "invalid", field: "text"},
			{name: "null text", method: "POST", path: msgs, body: `{"text": null}`, status: 422, code: "invalid", field: "text"},
			{name: "blank text", method: "POST", path: msgs, body: `{"text": " \n\t "}`, status: 422, code: "invalid", field: "text"},
			{name: "text over the hub's limit", method: "POST", path: msgs, body: map[string]string{"text": strings.Repeat("é", maxText)}, status: 422, code: "invalid", field: "text"},
			{name: "text only NUL bytes", method: "POST", path: msgs, body: `{"text": "\u0000\u0000"}`, status: 422, code: "invalid", field: "text"},
			{name: "idempotency key too long", method: "POST", path: msgs, body: map[string]string{"text": "hi", "idempotency_key": strings.Repeat("k", 201)}, status: 422, code: "invalid", field: "idempotency_key"},
			{name: "idempotency key with a newline", method: "POST", path: msgs, body: `{"text": "hi", "idempotency_key": "a\nb"}`, status: 422, code: "invalid", field: "idempotency_key"},
			{name: "no status", method: "POST", path: status, body: `{}`, status: 422, code: "invalid", field: "status"},
			{name: "status new", method: "POST", path: status, body: `{"status": "new"}`, status: 422, code: "invalid", field: "status"},
			{name: "unknown status", method: "POST", path: status, body: `{"status": "done"}`, status: 422, code: "invalid", field: "status"},
			{name: "status in capitals", method: "POST", path: status, body: `{"status": "SOLVED"}`, status: 422, code: "invalid", field: "status"},
			// Path ids.
			{name: "id not a number", method: "GET", path: v1 + "/tickets/abc", status: 400, code: "bad_id", field: "ticket"},
			{name: "id zero", method: "GET", path: v1 + "/tickets/0", status: 400, code: "bad_id", field: "ticket"},
			{name: "id negative", method: "POST", path: v1 + "/tickets/-3/status", body: `{"status": "solved"}`, status: 400, code: "bad_id", field: "ticket"},
			{name: "id fraction", method: "POST", path: v1 + "/tickets/1.5/messages", body: `{"text": "hi"}`, status: 400, code: "bad_id", field: "ticket"},
			{name: "id overflows", method: "GET", path: v1 + "/tickets/99999999999999999999", status: 400, code: "bad_id", field: "ticket"},
			{name: "id hex", method: "GET", path: v1 + "/tickets/0x10", status: 400, code: "bad_id", field: "ticket"},
			{name: "id unknown", method: "GET", path: v1 + "/tickets/987654321", status: 404, code: "not_found"},
			{name: "reply to unknown id", method: "POST", path: v1 + "/tickets/987654321/messages", body: `{"text": "hi"}`, status: 404, code: "not_found"},
			// Query parameters.
			{name: "unknown parameter", method: "GET", path: v1 + "/tickets?stauts=open", status: 400, code: "unknown_parameter", field: "stauts"},
			{name: "unknown status filter", method: "GET", path: v1 + "/tickets?status=opened", status: 400, code: "bad_parameter", field: "status"},
			{name: "empty status filter", method: "GET", path: v1 + "/tickets?status=", status: 400, code: "bad_parameter", field: "status"},
			{name: "limit zero", method: "GET", path: v1 + "/tickets?limit=0", status: 400, code: "bad_parameter", field: "limit"},
			{name: "limit too big", method: "GET", path: v1 + "/tickets?limit=501", status: 400, code: "bad_parameter", field: "limit"},
			{name: "limit a word", method: "GET", path: v1 + "/tickets?limit=ten", status: 400, code: "bad_parameter", field: "limit"},
			{name: "limit twice", method: "GET", path: v1 + "/tickets?limit=1&limit=2", status: 400, code: "bad_parameter", field: "limit"},
			{name: "before negative", method: "GET", path: v1 + "/tickets?before=-1", status: 400, code: "bad_parameter", field: "before"},
			{name: "assignee a name", method: "GET", path: v1 + "/tickets?assignee=ravi", status: 400, code: "bad_parameter", field: "assignee"},
			{name: "query too long", method: "GET", path: v1 + "/tickets?query=" + strings.Repeat("q", 201), status: 400, code: "bad_parameter", field: "query"},
			{name: "malformed query string", method: "GET", path: v1 + "/tickets?query=%zz", status: 400, code: "bad_parameter"},
			{name: "after negative", method: "GET", path: v1 + "/changes?after=-1", status: 400, code: "bad_parameter", field: "after"},
			{name: "after a word", method: "GET", path: v1 + "/changes?after=latest", status: 400, code: "bad_parameter", field: "after"},
			{name: "changes limit too big", method: "GET", path: v1 + "/changes?limit=1001", status: 400, code: "bad_parameter", field: "limit"},
			{name: "changes unknown parameter", method: "GET", path: v1 + "/changes?since=3", status: 400, code: "unknown_parameter", field: "since"},
			// Routes.
			{name: "no such endpoint", method: "GET", path: v1 + "/contacts", status: 404, code: "not_found"},
			{name: "double slash", method: "GET", path: v1 + "//tickets", status: 404, code: "not_found"},
			{name: "trailing slash", method: "POST", path: msgs + "/", body: `{"text": "hi"}`, status: 404, code: "not_found"},
			{name: "dot segments", method: "GET", path: v1 + "/changes/../tickets", status: 404, code: "not_found"},
			{name: "outside the API", method: "GET", path: "/api/v2/tickets", status: 404, code: "not_found"},
			{name: "wrong method", method: "DELETE", path: ticketPath(id, ""), status: 405, code: "method_not_allowed"},
			{name: "GET on a POST endpoint", method: "GET", path: msgs, status: 405, code: "method_not_allowed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				r := e.do(e.acme.key, c.method, c.path, c.body, c.opts...)
				d := wantError(t, r, c.status, c.code, c.field)
				if c.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
					t.Errorf("405 without Allow")
				}
				if strings.Contains(d.Message, "store:") || strings.Contains(d.Message, "hub:") {
					t.Errorf("message leaks internals: %q", d.Message)
				}
			})
		}
		e.t = t
		// None of it changed the ticket.
		if ms, _ := e.st.Messages(ctx, "acme", id, 0, 0, true); len(ms) != 1 {
			t.Errorf("bad requests stored %d messages", len(ms)-1)
		}
		if tk, _ := e.st.Ticket(ctx, "acme", id); tk.Status != "new" {
			t.Errorf("a bad request changed the status to %s", tk.Status)
		}
		// Text at the hub's limit is taken whole: the limit is not off by one.
		m := into[Message](t, e.do(e.acme.key, "POST", msgs, map[string]string{"text": strings.Repeat("a", maxText)}), http.StatusCreated)
		if len(m.Text) != maxText {
			t.Errorf("text of %d bytes stored as %d", maxText, len(m.Text))
		}
	})
}
