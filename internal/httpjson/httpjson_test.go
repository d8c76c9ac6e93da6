package httpjson

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func post(body string) *http.Request {
	r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestDecodeNotAnObject(t *testing.T) {
	var dst struct{}
	custom := Decoder{NotAnObject: func(kind string) string { return "not " + kind }}
	for _, tc := range []struct {
		d    Decoder
		want string
	}{
		{Decoder{}, "the body must be a JSON object, not an array"},
		{custom, "not array"},
	} {
		var e *Error
		if err := tc.d.Decode(post("[]"), &dst); !errors.As(err, &e) || e.Status != 400 || e.Code != "invalid_json" || e.Msg != tc.want {
			t.Errorf("got %#v, want 400 invalid_json %q", err, tc.want)
		}
	}
}

func TestDecodeRefusals(t *testing.T) {
	var dst struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		body, code, field string
	}{
		{`{"name": 1}`, "invalid_type", "name"},
		{`{"other": 1}`, "unknown_field", "other"},
		{`{"name": "a"} {}`, "invalid_json", ""},
		{``, "invalid_json", ""},
	} {
		var e *Error
		if err := Decode(post(tc.body), &dst); !errors.As(err, &e) || e.Code != tc.code || e.Field != tc.field {
			t.Errorf("%q: got %#v, want %s field %q", tc.body, err, tc.code, tc.field)
		}
	}
	r := post(`{"name": "` + strings.Repeat("x", 100) + `"}`)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 10)
	if err := Decode(r, &dst); !errors.As(err, new(*Error)) || err.(*Error).Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: got %#v, want 413", err)
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusNoContent, nil)
	if w.Code != 204 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Errorf("204: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, &Error{Status: 404, Code: "not_found", Msg: "gone"})
	if got := strings.TrimSpace(w.Body.String()); w.Code != 404 || got != `{"error":{"code":"not_found","message":"gone"}}` {
		t.Errorf("error: %d %s", w.Code, got)
	}
}

func TestUnrouted(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things", func(http.ResponseWriter, *http.Request) {})
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/v1/things", 405, "GET, HEAD"},
		{"GET", "/v1/nothing", 404, ""},
	} {
		w := httptest.NewRecorder()
		Unrouted(w, httptest.NewRequest(tc.method, tc.path, nil), mux, "/v1/openapi.json")
		var b ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != tc.status || w.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d allow %q: %s", tc.method, tc.path, w.Code, w.Header().Get("Allow"), w.Body)
		}
	}
}
