package webform

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/connectors"
)

func TestParseForm(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		want                    map[string]string
	}{
		{"urlencoded", "application/x-www-form-urlencoded", "a=1&b=x+y&c=%E2%82%AC&d=", map[string]string{"a": "1", "b": "x y", "c": "€", "d": ""}},
		{"empty urlencoded", "application/x-www-form-urlencoded", "", map[string]string{}},
		{"JSON with nulls", "application/json", ` { "a" : "1", "b": null, "c": "\u20ac\ud83d\ude00" } `, map[string]string{"a": "1", "c": "€😀"}},
		{"JSON empty object", "application/json", "{}", map[string]string{}},
		{"multipart", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n2\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--XX--\r\n",
			map[string]string{"a": "1\r\n2", "f": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseForm(tt.contentType, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestValidateKeepsText: nothing is trimmed, escaped or normalized except
// the documented email trim and message line endings.
func TestValidateKeepsText(t *testing.T) {
	s := mustSettings(t, `{"extra_fields":[{"name":"notes","multiline":true},{"name":"ref"}]}`)
	sub, err := validate(&s, map[string]string{
		"name":    "  Zoë &amp; <b>Ünal</b>  ",
		"email":   "\tZoe@Example.COM\n",
		"subject": "Ünïcödé\u200b & <tags>",
		"message": "line 1\r\nline 2\rline 3\n\ttabbed  ",
		"notes":   "a\r\nb",
		"ref":     "   ",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := submission{
		Name:    "  Zoë &amp; <b>Ünal</b>  ",
		Email:   "Zoe@Example.COM",
		Subject: "Ünïcödé\u200b & <tags>",
		Message: "line 1\nline 2\nline 3\n\ttabbed  ",
		Extra:   map[string]string{"notes": "a\nb"},
	}
	if sub.Name != want.Name || sub.Email != want.Email || sub.Subject != want.Subject || sub.Message != want.Message || !maps.Equal(sub.Extra, want.Extra) {
		t.Errorf("got %+v\nwant %+v", sub, want)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10001: "10,001", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func mustSettings(t testing.TB, raw string) Settings {
	t.Helper()
	s, err := decodeSettings([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzParseSubmission drives the parsing and validation entry point with
// arbitrary content types and bodies: it must never panic, every error must
// be one of the two typed errors with a 4xx status, and what passes must be
// valid UTF-8 text that the form pages can render.
func FuzzParseSubmission(f *testing.F) {
	c25, err := os.ReadFile("testdata/C25.http")
	if err != nil {
		f.Fatal(err)
	}
	_, c25Body, _ := strings.Cut(string(c25), "\r\n\r\n")
	f.Add("application/x-www-form-urlencoded", []byte(c25Body))
	f.Add("application/x-www-form-urlencoded; charset=utf-8", []byte("name=A&email=a%40example.com&message=hi&order_number=1"))
	f.Add("application/json", []byte(`{"name":"A","email":"a@example.com","subject":"s","message":"hi\r\nthere","idempotency_key":"k"}`))
	f.Add("application/json", []byte(`{"name":"A","name":null}`))
	f.Add("application/json", []byte("{\"message\":\"\xff\"}"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@example.com\r\n--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n--XX\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.txt\"\r\n\r\nx\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=\"", []byte("--"))
	f.Add("text/plain", []byte("x"))

	s := mustSettings(f, `{"extra_fields":[{"name":"order_number","max_length":5}]}`)
	c, err := New(connectors.Config{Settings: []byte(`{"extra_fields":[{"name":"order_number","max_length":5}]}`)})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		vals, err := parseForm(contentType, body)
		if err != nil {
			checkTyped(t, err)
			var fe fieldErrors
			if errors.As(err, &fe) {
				renderOK(t, c, vals, fe)
			}
			return
		}
		for k, v := range vals {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8 passed: %q=%q", k, v)
			}
		}
		if k := vals[fieldIdempotency]; k != "" {
			if err := validKey(k); err != nil {
				checkTyped(t, err)
			}
		}
		sub, err := validate(&s, vals)
		if err != nil {
			checkTyped(t, err)
			var fe fieldErrors
			if !errors.As(err, &fe) || len(fe) == 0 {
				t.Fatalf("validate returned %T %v", err, err)
			}
			renderOK(t, c, vals, fe)
			return
		}
		if !validEmail(sub.Email) || strings.TrimSpace(sub.Message) == "" || strings.ContainsRune(sub.Message, '\r') {
			t.Fatalf("invalid submission passed: %+v", sub)
		}
		if in := c.inbound(sub, vals[fieldIdempotency]); in.Text != sub.Message || in.Sender.DisplayName != sub.Name || !in.NewTicket {
			t.Fatalf("inbound %+v from %+v", in, sub)
		}
	})
}

func checkTyped(t *testing.T, err error) {
	t.Helper()
	var re *requestError
	var fe fieldErrors
	switch {
	case errors.As(err, &re):
		if re.Status < 400 || re.Status > 499 || re.Code == "" || re.Message == "" {
			t.Fatalf("request error %+v", re)
		}
	case errors.As(err, &fe):
		for k, v := range fe {
			if v == "" {
				t.Fatalf("empty message for %q", k)
			}
		}
	default:
		t.Fatalf("untyped error %T: %v", err, err)
	}
}

func renderOK(t *testing.T, c *Connector, vals map[string]string, fe fieldErrors) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.renderForm(rec, http.StatusUnprocessableEntity, vals, fe, "")
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("render failed: %d %s", rec.Code, rec.Body.String())
	}
}
