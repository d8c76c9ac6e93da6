package webform

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

var acceptJSON = map[string]string{"Accept": "application/json"}

func multipartBody(t *testing.T, fields map[string]string, file string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if file != "" {
		fw, err := mw.CreateFormFile(file, "invoice.pdf")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write([]byte("%PDF-1.4"))
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.String()
}

// TestSubmitSuccess: each encoding gives one ticket with the fields as typed.
func TestSubmitSuccess(t *testing.T) {
	want := connectors.Inbound{
		ChannelID: testChannel,
		Sender: connectors.Identity{
			ExternalID:  "ana.lopez@example.com",
			DisplayName: "Ana López",
			Email:       "Ana.Lopez@Example.com",
		},
		Subject:   "Where is my order?",
		Text:      "Hello,\nit has been two weeks.\n\nAna",
		NewTicket: true,
	}
	form := url.Values{
		"name":    {"Ana López"},
		"email":   {" Ana.Lopez@Example.com "},
		"subject": {"Where is my order?"},
		"message": {"Hello,\r\nit has been two weeks.\r\n\r\nAna"},
		"ignored": {"not a form field"},
	}
	mpType, mpBody := multipartBody(t, map[string]string{
		"name": "Ana López", "email": "Ana.Lopez@Example.com", "subject": "Where is my order?",
		"message": "Hello,\r\nit has been two weeks.\r\n\r\nAna",
	}, "")

	tests := []struct {
		name        string
		contentType string
		body        string
		header      map[string]string
		wantStatus  int
		wantJSON    bool
	}{
		{"urlencoded, browser", "application/x-www-form-urlencoded", form.Encode(), map[string]string{"Accept": "text/html,*/*"}, http.StatusOK, false},
		{"urlencoded, asks for JSON", "application/x-www-form-urlencoded", form.Encode(), acceptJSON, http.StatusCreated, true},
		{"urlencoded with charset", "application/x-www-form-urlencoded; charset=UTF-8", form.Encode(), nil, http.StatusOK, false},
		{"multipart fields", mpType, mpBody, nil, http.StatusOK, false},
		{"JSON", "application/json", `{"name":"Ana López","email":"Ana.Lopez@Example.com","subject":"Where is my order?","message":"Hello,\r\nit has been two weeks.\n\nAna","extra":null}`, nil, http.StatusCreated, true},
		{"JSON with charset", "application/json; charset=utf-8", `{"name":"Ana López","email":"Ana.Lopez@Example.com","subject":"Where is my order?","message":"Hello,\nit has been two weeks.\n\nAna"}`, nil, http.StatusCreated, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			resp := f.do(t, http.MethodPost, "submit", tt.contentType, strings.NewReader(tt.body), tt.header)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantJSON {
				m := resp.json(t)
				if m["ticket"] != float64(1001) || m["message"] == "" {
					t.Errorf("body %v, want ticket 1001 and a message", m)
				}
			} else {
				if !strings.Contains(resp.body, "Thank you") || !strings.Contains(resp.body, "#1001") {
					t.Errorf("thank-you page lacks the reference: %s", resp.body)
				}
				if ct := resp.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
			}
			items := f.host.items()
			if len(items) != 1 {
				t.Fatalf("%d items delivered, want 1", len(items))
			}
			got := items[0]
			if !strings.HasPrefix(got.ExternalID, "wf-") || got.SentAt.IsZero() {
				t.Errorf("ExternalID %q, SentAt %v", got.ExternalID, got.SentAt)
			}
			got.ExternalID, got.SentAt = "", time.Time{}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("delivered\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

// TestExtraFieldsInMeta: configured extra fields land in Meta, unknown
// fields nowhere (M3: only what the form asks for is kept).
func TestExtraFieldsInMeta(t *testing.T) {
	f := newFixture(t, `{"extra_fields":[{"name":"order_number","label":"Order number"},{"name":"phone"}]}`)
	resp := f.postJSON(t, `{"email":"a@example.com","name":"A","message":"m","order_number":"8812","tracking":"x"}`, nil)
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	got := f.host.items()[0].Meta
	if len(got) != 1 || got["order_number"] != "8812" {
		t.Errorf("Meta = %v, want only order_number=8812", got)
	}
}

// TestFieldErrors: every per-field problem gets a 422 naming the field in
// plain words, and nothing is delivered.
func TestFieldErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	settings := `{"required_fields":["name","email","subject","message"],
		"extra_fields":[{"name":"order_number","label":"Order number","required":true,"max_length":10}]}`
	base := map[string]string{"name": "Ana", "email": "ana@example.com", "subject": "Hi", "message": "Hello", "order_number": "8812"}

	tests := []struct {
		field, value, want string
	}{
		{"name", "", "Enter your name."},
		{"name", "   ", "Enter your name."},
		{"name", "Ana\nSmith", "Write your name on one line."},
		{"name", "Ana\x00", "Remove the invisible control characters from your name."},
		{"name", long(101), "Shorten your name to 100 characters or fewer (it has 101)."},
		{"name", strings.Repeat("名", 90), "Shorten your name; it is too long to store."},
		{"email", "", "Enter your email address, so that we can answer you."},
		{"email", "ana", "Enter an email address like name@example.com."},
		{"email", "ana@", "Enter an email address like name@example.com."},
		{"email", "@example.com", "Enter an email address like name@example.com."},
		{"email", "ana@example", "Enter an email address like name@example.com."},
		{"email", "ana@@example.com", "Enter an email address like name@example.com."},
		{"email", "ana smith@example.com", "Enter an email address like name@example.com."},
		{"email", "Ana <ana@example.com>", "Enter an email address like name@example.com."},
		{"email", "ana..b@example.com", "Enter an email address like name@example.com."},
		{"email", "ana@-example.com", "Enter an email address like name@example.com."},
		{"email", "ana@10.0.0.1", "Enter an email address like name@example.com."},
		{"email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com", "Enter an email address of 254 characters or fewer."},
		{"subject", "", "Enter a subject."},
		{"subject", "Hi\r\nBcc: x@example.com", "Write a subject on one line."},
		{"subject", long(201), "Shorten a subject to 200 characters or fewer (it has 201)."},
		{"message", "", "Enter your message."},
		{"message", " \n\t ", "Enter your message."},
		{"message", "bell\a", "Remove the invisible control characters from your message."},
		{"message", long(10001), "Shorten your message to 10,000 characters or fewer (it has 10,001)."},
		{"order_number", "", "Enter “Order number”."},
		{"order_number", "12345678901", "Shorten “Order number” to 10 characters or fewer (it has 11)."},
	}
	for _, tt := range tests {
		t.Run(tt.field+"/"+tt.want, func(t *testing.T) {
			f := newFixture(t, settings)
			vals := url.Values{}
			for k, v := range base {
				vals.Set(k, v)
			}
			vals.Set(tt.field, tt.value)
			resp := f.postForm(t, vals.Encode(), acceptJSON)
			if resp.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", resp.status, resp.body)
			}
			m := resp.json(t)
			errs, _ := m["errors"].(map[string]any)
			if len(errs) != 1 || errs[tt.field] != tt.want {
				t.Errorf("errors = %v, want {%s: %q}", errs, tt.field, tt.want)
			}
			if m["error"] != "invalid_fields" {
				t.Errorf("error code %v", m["error"])
			}
			if n := f.host.deliverCalls(); n != 0 {
				t.Errorf("Deliver called %d times for an invalid submission", n)
			}
		})
	}
}

// TestValidEmails: addresses people really have are accepted.
func TestValidEmails(t *testing.T) {
	for _, e := range []string{
		"a@example.com", "first.last+tag@sub.example.co.uk", "o'brien@example.ie",
		"user_name-1@example-shop.com", "josé@exämple.de", "用户@例子.广告", "x@xn--bcher-kva.example",
	} {
		if !validEmail(e) {
			t.Errorf("validEmail(%q) = false", e)
		}
	}
}

// TestBadRequests: unreadable input gets a 4xx that names the problem,
// never a 5xx, and nothing is delivered.
func TestBadRequests(t *testing.T) {
	okForm := "name=A&email=a%40example.com&message=hi"
	mpType, mpBody := multipartBody(t, map[string]string{"name": "A", "email": "a@example.com", "message": "hi"}, "attachment")
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		header      map[string]string
		wantStatus  int
		wantCode    string
		wantMsg     string
	}{
		{"wrong content type", "POST", "text/plain", okForm, nil, 415, "unsupported_media_type", "application/x-www-form-urlencoded"},
		{"no content type", "POST", "", okForm, nil, 415, "unsupported_media_type", "multipart/form-data"},
		{"garbled content type", "POST", "application/json; ===", "{}", nil, 415, "unsupported_media_type", ""},
		{"latin-1 form", "POST", "application/x-www-form-urlencoded; charset=ISO-8859-1", okForm, acceptJSON, 415, "unsupported_charset", "UTF-8"},
		{"compressed", "POST", "application/json", "{}", map[string]string{"Content-Encoding": "gzip"}, 415, "unsupported_encoding", "compression"},
		{"broken JSON", "POST", "application/json", `{"name": "A", "email": }`, nil, 400, "malformed_body", "invalid character '}' looking for beginning of value (at byte 24)"},
		{"truncated JSON", "POST", "application/json", `{"name": "A"`, nil, 400, "malformed_body", "ends too early"},
		{"JSON array", "POST", "application/json", `["a"]`, nil, 400, "malformed_body", "must be an object"},
		{"JSON trailing data", "POST", "application/json", `{"message":"hi"} {}`, nil, 400, "malformed_body", "invalid character '{' after top-level value"},
		{"JSON number field", "POST", "application/json", `{"email":"a@example.com","message":"hi","name":42}`, nil, 400, "invalid_field_type", `"name" must be a JSON string`},
		{"JSON duplicate field", "POST", "application/json", `{"email":"a@example.com","message":"hi","message":"ho"}`, nil, 400, "duplicate_field", `"message"`},
		{"JSON not UTF-8", "POST", "application/json", "{\"email\":\"a@example.com\",\"message\":\"caf\xe9\"}", nil, 400, "invalid_encoding", "UTF-8"},
		{"form value not UTF-8", "POST", "application/x-www-form-urlencoded", "email=a%40example.com&message=caf%E9", acceptJSON, 400, "invalid_encoding", "UTF-8"},
		{"form bad escape", "POST", "application/x-www-form-urlencoded", "email=a%4&message=hi", acceptJSON, 400, "malformed_body", "%-escapes"},
		{"form duplicate field", "POST", "application/x-www-form-urlencoded", okForm + "&email=b%40example.com", acceptJSON, 400, "duplicate_field", `"email"`},
		{"multipart without boundary", "POST", "multipart/form-data", mpBody, acceptJSON, 400, "malformed_body", "boundary"},
		{"multipart truncated", "POST", mpType, mpBody[:len(mpBody)/2], acceptJSON, 400, "malformed_body", "not well formed"},
		{"multipart file", "POST", mpType, mpBody, acceptJSON, 422, "invalid_fields", ""},
		{"idempotency key with space", "POST", "application/json", `{"name":"A","email":"a@example.com","message":"hi"}`, map[string]string{"Idempotency-Key": "a b"}, 400, "invalid_idempotency_key", "visible ASCII"},
		{"idempotency key too long", "POST", "application/json", `{"email":"a@example.com","message":"hi","idempotency_key":"` + strings.Repeat("k", 201) + `"}`, nil, 400, "invalid_idempotency_key", "1 to 200"},
		{"GET on submit", "GET", "", "", acceptJSON, 405, "method_not_allowed", "POST"},
		{"PUT on submit", "PUT", "application/json", "{}", nil, 405, "method_not_allowed", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			resp := f.do(t, tt.method, "submit", tt.contentType, strings.NewReader(tt.body), tt.header)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			m := resp.json(t)
			if m["error"] != tt.wantCode {
				t.Errorf("error code %v, want %s", m["error"], tt.wantCode)
			}
			if msg, _ := m["message"].(string); msg == "" || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMsg)
			}
			if n := f.host.deliverCalls(); n != 0 {
				t.Errorf("Deliver called %d times", n)
			}
			if tt.wantStatus == 405 && resp.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow %q", resp.header.Get("Allow"))
			}
			if tt.name == "multipart file" {
				errs := m["errors"].(map[string]any)
				if !strings.Contains(errs["attachment"].(string), "does not accept files") {
					t.Errorf("errors %v", errs)
				}
			}
		})
	}
}

// TestBodyTooLarge: a body over the limit is a 413 with the limit in plain
// words, whether it declared its length or arrived chunked.
func TestBodyTooLarge(t *testing.T) {
	big := "email=a%40example.com&message=" + strings.Repeat("x", 2000)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			f := newFixture(t, `{"max_body_bytes":1024}`)
			var body interface{ Read([]byte) (int, error) } = strings.NewReader(big)
			if chunked {
				body = struct{ *strings.Reader }{strings.NewReader(big)} // hides the length
			}
			resp := f.do(t, http.MethodPost, "submit", "application/x-www-form-urlencoded", body, acceptJSON)
			if resp.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413: %s", resp.status, resp.body)
			}
			m := resp.json(t)
			if m["error"] != "body_too_large" || !strings.Contains(m["message"].(string), "at most 1 KiB") {
				t.Errorf("body %v", m)
			}
			if f.host.deliverCalls() != 0 {
				t.Error("delivered")
			}
			// The HTML answer is a page.
			resp = f.do(t, http.MethodPost, "submit", "application/x-www-form-urlencoded", strings.NewReader(big), nil)
			if resp.status != 413 || !strings.Contains(resp.body, "at most 1 KiB") || !strings.Contains(resp.body, "<h1>") {
				t.Errorf("HTML 413: %d %s", resp.status, resp.body)
			}
		})
	}
}

// The longest valid message in a script of three-byte characters, sent by
// a browser's HTML form (every byte %-encoded: 90,000 bytes for the
// message alone), fits the default body limit and is stored whole.
func TestLongestMessageFitsDefaultLimit(t *testing.T) {
	f := newFixture(t, "")
	msg := strings.Repeat("镕", maxMessageLength)
	body := url.Values{"name": {"林伟"}, "email": {"lin.wei@example.org"}, "subject": {strings.Repeat("询", maxSubjectLength)}, "message": {msg}}.Encode()
	if len(body) <= 64<<10 {
		t.Fatalf("the body is only %d bytes: the case needs one over the old 64 KiB limit", len(body))
	}
	r := f.postForm(t, body, acceptJSON)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if items := f.host.items(); len(items) != 1 || items[0].Text != msg {
		t.Fatalf("delivered %d items; want one with the whole message", len(items))
	}
}

// With many long extra fields the default limit grows to hold them all,
// full, in four-byte characters, %-encoded.
func TestLongestSubmissionWithExtraFieldsFits(t *testing.T) {
	var fields []string
	for i := range 20 {
		fields = append(fields, fmt.Sprintf(`{"name":"f%d","max_length":1000}`, i))
	}
	f := newFixture(t, `{"extra_fields":[`+strings.Join(fields, ",")+`]}`)
	vals := url.Values{"name": {strings.Repeat("😀", maxNameLength/4)}, "email": {"a@example.org"},
		"subject": {strings.Repeat("😀", maxSubjectLength)}, "message": {strings.Repeat("😀", maxMessageLength)}}
	for i := range 20 {
		vals.Set(fmt.Sprintf("f%d", i), strings.Repeat("😀", 1000))
	}
	body := vals.Encode()
	if len(body) <= 256<<10 {
		t.Fatalf("the body is only %d bytes: the case needs one over the plain default", len(body))
	}
	if r := f.postForm(t, body, acceptJSON); r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

// TestRateLimit: the 6th post within a minute from one address gets 429
// with Retry-After; tokens come back with time; other addresses are not
// affected.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, "") // 5 a minute, burst 5
	post := func() response {
		return f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil)
	}
	for i := range 5 {
		if r := post(); r.status != http.StatusCreated {
			t.Fatalf("post %d: status %d", i+1, r.status)
		}
	}
	r := post()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("6th post: status %d, want 429", r.status)
	}
	if got := r.header.Get("Retry-After"); got != "12" {
		t.Errorf("Retry-After %q, want 12 (one token every 12 s)", got)
	}
	if m := r.json(t); m["error"] != "rate_limited" || !strings.Contains(m["message"].(string), "12 seconds") {
		t.Errorf("body %v", m)
	}
	// Invalid posts count too.
	f.clock.Advance(12 * time.Second)
	if r := f.postJSON(t, `{`, nil); r.status != 400 {
		t.Fatalf("status %d", r.status)
	}
	if r := post(); r.status != 429 {
		t.Fatalf("after an invalid post: status %d, want 429", r.status)
	}
	f.clock.Advance(12 * time.Second)
	if r := post(); r.status != http.StatusCreated {
		t.Fatalf("after 12 s: status %d, want 201", r.status)
	}
	if n := len(f.host.items()); n != 6 {
		t.Errorf("%d stored, want 6", n)
	}
	// An HTML post gets a page that says how long to wait.
	r = f.postForm(t, "name=A&email=a%40example.com&message=hi", nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "Please wait 12 seconds") {
		t.Errorf("HTML 429: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	f := newFixture(t, `{"rate_limit":{"disabled":true}}`)
	for i := range 20 {
		if r := f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil); r.status != http.StatusCreated {
			t.Fatalf("post %d: status %d", i+1, r.status)
		}
	}
}

// TestHoneypot: a filled honeypot looks like success to the bot, stores
// nothing, and the log says so without any of the content.
func TestHoneypot(t *testing.T) {
	tests := []struct {
		name, settings, body string
		header               map[string]string
		wantStatus           int
	}{
		{"default field, HTML", "", "name=Spammer&email=spam%40example.com&message=buy+pills&website=http%3A%2F%2Fspam.example", nil, http.StatusOK},
		{"default field, JSON answer", "", "name=Spammer&email=spam%40example.com&message=buy+pills&website=x", acceptJSON, http.StatusCreated},
		{"custom field, invalid rest", `{"honeypot_field":"fax"}`, "email=nonsense&message=buy+pills&fax=123", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.settings)
			resp := f.postForm(t, tt.body, tt.header)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			if f.host.deliverCalls() != 0 {
				t.Error("honeypot submission was delivered")
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "level=INFO") || !strings.Contains(logs, "honeypot") {
				t.Errorf("no info log of the honeypot: %s", logs)
			}
			for _, secret := range []string{"pills", "spam", "Spammer", "123", "nonsense"} {
				if strings.Contains(logs, secret) {
					t.Errorf("log holds submission content %q: %s", secret, logs)
				}
			}
		})
	}
}

// TestIdempotency: a double submit with one key stores one ticket and both
// answers name it; a different message under the same key is a new ticket.
func TestIdempotency(t *testing.T) {
	f := newFixture(t, `{"rate_limit":{"disabled":true}}`)
	body := `{"email":"a@example.com","name":"A","message":"Where is order 8812?"}`
	key := map[string]string{"Idempotency-Key": "0b6c7a1e-5a7e-4c8f-9d7e-3f1f4c2b9a10"}
	r1 := f.postJSON(t, body, key)
	r2 := f.postJSON(t, body, key)
	if r1.status != 201 || r2.status != 201 {
		t.Fatalf("statuses %d, %d", r1.status, r2.status)
	}
	if r1.json(t)["ticket"] != r2.json(t)["ticket"] {
		t.Errorf("tickets differ: %s / %s", r1.body, r2.body)
	}
	if n := len(f.host.items()); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
	if id := f.host.items()[0].ExternalID; !strings.HasPrefix(id, "wf-key-") {
		t.Errorf("ExternalID %q", id)
	}

	// The same key as a form field, as the served form sends it.
	form := "email=a%40example.com&name=A&message=Where+is+order+8812%3F&idempotency_key=" + url.QueryEscape(key["Idempotency-Key"])
	if r := f.postForm(t, form, acceptJSON); r.status != 201 || r.json(t)["ticket"] != r1.json(t)["ticket"] {
		t.Errorf("form-field key: %d %s", r.status, r.body)
	}
	if n := len(f.host.items()); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}

	// Another message with the same key (the Back button) is not lost.
	r3 := f.postJSON(t, `{"email":"a@example.com","name":"A","message":"And order 8813?"}`, key)
	if r3.status != 201 || r3.json(t)["ticket"] == r1.json(t)["ticket"] {
		t.Errorf("second message: %d %s", r3.status, r3.body)
	}
	// Without a key, each post is its own ticket.
	for range 2 {
		if r := f.postJSON(t, body, nil); r.status != 201 {
			t.Fatalf("status %d", r.status)
		}
	}
	if n := len(f.host.items()); n != 4 {
		t.Errorf("%d stored, want 4", n)
	}
}

// TestAckAfterCommit: no 2xx unless Deliver returned nil (M2).
func TestAckAfterCommit(t *testing.T) {
	t.Run("Deliver fails", func(t *testing.T) {
		f := newFixture(t, "")
		f.host.err = errors.New("database is locked")
		r := f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "30" {
			t.Fatalf("status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		if m := r.json(t); m["error"] != "unavailable" || strings.Contains(r.body, "database") {
			t.Errorf("body %s (the cause is not the sender's business)", r.body)
		}
		// The HTML form comes back with the input kept, to try again.
		r = f.postForm(t, "name=A&email=a%40example.com&message=my+long+text&idempotency_key=k1", nil)
		if r.status != 503 || !strings.Contains(r.body, "my long text") || !strings.Contains(r.body, `value="k1"`) ||
			!strings.Contains(r.body, "could not save your message") {
			t.Errorf("HTML 503: %d %s", r.status, r.body)
		}
		if !strings.Contains(f.logs.String(), "database is locked") {
			t.Errorf("cause not logged: %s", f.logs.String())
		}
	})

	t.Run("Deliver refuses for good", func(t *testing.T) {
		f := newFixture(t, "")
		f.host.err = connectors.NewError(connectors.Permanent, "no_sender", "the message has no sender", nil)
		r := f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil)
		if r.status != http.StatusUnprocessableEntity || r.header.Get("Retry-After") != "" || r.json(t)["error"] != "not_accepted" {
			t.Fatalf("status %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
		}
	})

	t.Run("Deliver blocks", func(t *testing.T) {
		f := newFixture(t, "")
		f.host.entered = make(chan struct{}, 1)
		f.host.release = make(chan struct{})
		done := make(chan response, 1)
		go func() {
			done <- f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil)
		}()
		select {
		case <-f.host.entered:
		case r := <-done:
			t.Fatalf("answered %d without calling Deliver: %s", r.status, r.body)
		}
		// Deliver is running and has not returned: no answer may arrive.
		select {
		case r := <-done:
			t.Fatalf("answered %d before Deliver returned", r.status)
		case <-time.After(100 * time.Millisecond):
		}
		close(f.host.release)
		if r := <-done; r.status != http.StatusCreated {
			t.Fatalf("status %d after release", r.status)
		}
	})

	t.Run("not started, stopped", func(t *testing.T) {
		f := newFixture(t, "")
		if err := f.c.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		r := f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil)
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" {
			t.Fatalf("after Stop: %d %s", r.status, r.body)
		}
		if err := f.c.Start(t.Context(), f.host); err != nil {
			t.Fatal(err)
		}
		if r := f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, nil); r.status != 201 {
			t.Fatalf("after restart: %d", r.status)
		}
	})
}

// TestHTMLRerender: the form comes back with the messages next to their
// fields and the input kept, escaped.
func TestHTMLRerender(t *testing.T) {
	f := newFixture(t, "")
	r := f.postForm(t, url.Values{
		"name":    {`Tom "<b>" O'Neil`},
		"email":   {"tom@"},
		"message": {"\nfirst line <i>kept</i>"},
	}.Encode(), nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", r.status)
	}
	for _, want := range []string{
		`<p class="error" id="f-email-error">Enter an email address like name@example.com.</p>`,
		`aria-invalid="true" aria-describedby="f-email-error"`,
		`<a href="#f-email">Email address: Enter an email address like name@example.com.</a>`,
		`value="Tom &#34;&lt;b&gt;&#34; O&#39;Neil"`,
		`value="tom@"`,
		// The extra newline after <textarea> is eaten by HTML parsers, so
		// the leading newline of the message survives.
		"\n\nfirst line &lt;i&gt;kept&lt;/i&gt;</textarea>",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<b>") || strings.Contains(r.body, "<i>") {
		t.Error("input reached the page unescaped")
	}
}

// TestFormPage: the served form is plain, labelled HTML that posts to
// submit, with the honeypot hidden from people and a fresh key per page.
func TestFormPage(t *testing.T) {
	f := newFixture(t, `{"title":"Help & support","required_fields":["email","message"],
		"extra_fields":[{"name":"order_number","label":"Order number"},{"name":"details","label":"Details","multiline":true,"required":true}]}`)
	r := f.do(t, http.MethodGet, "form", "", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	for _, want := range []string{
		`<html lang="en">`,
		`<h1>Help &amp; support</h1>`,
		`<form method="post" action="submit" accept-charset="UTF-8">`,
		`<label for="f-name">Your name <span class="hint">(optional)</span></label>`,
		`<input id="f-name" name="name" type="text" value="" autocomplete="name">`,
		`<input id="f-email" name="email" type="email" value="" autocomplete="email" required>`,
		`<label for="f-message">Message</label>`,
		`<textarea id="f-message" name="message" rows="8" required>`,
		`<label for="f-order_number">Order number <span class="hint">(optional)</span></label>`,
		`<textarea id="f-details" name="details" rows="8" required>`,
		`<div class="trap" aria-hidden="true">`,
		`<input id="f-website" name="website" type="text" value="" tabindex="-1" autocomplete="off">`,
		`<input type="hidden" name="idempotency_key" value="`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("form lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<script") {
		t.Error("the form page has a script")
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	r2 := f.do(t, http.MethodGet, "form", "", nil, nil)
	if keyOf(r.body) == "" || keyOf(r.body) == keyOf(r2.body) {
		t.Errorf("idempotency keys %q and %q: want fresh ones", keyOf(r.body), keyOf(r2.body))
	}
	if r := f.do(t, http.MethodHead, "form", "", nil, nil); r.status != http.StatusOK {
		t.Errorf("HEAD: %d", r.status)
	}
	if r := f.do(t, http.MethodPost, "form", "", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST form: %d", r.status)
	}
	if r := f.do(t, http.MethodDelete, "form", "", nil, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE form: %d %v", r.status, r.header)
	}
}

func keyOf(page string) string {
	const marker = `name="idempotency_key" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// TestRedirect: with redirect_url, an HTML success is a 303 to it, after
// the commit; JSON clients still get 201.
func TestRedirect(t *testing.T) {
	f := newFixture(t, `{"redirect_url":"https://www.example.com/thanks"}`)
	r := f.postForm(t, "name=A&email=a%40example.com&message=hi", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "https://www.example.com/thanks" {
		t.Fatalf("status %d, Location %q", r.status, r.header.Get("Location"))
	}
	if len(f.host.items()) != 1 {
		t.Fatal("not stored")
	}
	if r := f.postForm(t, "name=A&email=a%40example.com&message=hi", acceptJSON); r.status != 201 {
		t.Errorf("JSON: %d", r.status)
	}
	page := f.do(t, http.MethodGet, "form", "", nil, nil)
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://www.example.com") {
		t.Errorf("CSP %q does not allow the redirect", csp)
	}
}

// TestCORS: allowed origins may call the JSON endpoint from a browser.
func TestCORS(t *testing.T) {
	f := newFixture(t, `{"allowed_origins":["https://WWW.example.com"]}`)
	pre := func(origin, method string) response {
		return f.do(t, http.MethodOptions, "submit", "", nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type",
		})
	}
	r := pre("https://www.example.com", "POST")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://www.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Type") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Errorf("allowed preflight: %d %v", r.status, r.header)
	}
	if r := pre("https://evil.example.net", "POST"); r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", r.status, r.header)
	}
	if r := pre("https://www.example.com", "DELETE"); r.status != http.StatusForbidden {
		t.Errorf("DELETE preflight: %d", r.status)
	}
	if r := f.do(t, http.MethodOptions, "submit", "", nil, nil); r.status != http.StatusNoContent || r.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("plain OPTIONS: %d %v", r.status, r.header)
	}
	r = f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, map[string]string{"Origin": "https://www.example.com"})
	if r.status != 201 || r.header.Get("Access-Control-Allow-Origin") != "https://www.example.com" ||
		r.header.Get("Access-Control-Expose-Headers") != "Retry-After" || r.header.Get("Vary") != "Origin" {
		t.Errorf("allowed POST: %d %v", r.status, r.header)
	}
	r = f.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, map[string]string{"Origin": "https://evil.example.net"})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign POST got CORS headers: %v", r.header)
	}

	star := newFixture(t, `{"allowed_origins":["*"]}`)
	r = star.postJSON(t, `{"name":"A","email":"a@example.com","message":"hi"}`, map[string]string{"Origin": "https://any.example"})
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("wildcard: %v", r.header)
	}
}
