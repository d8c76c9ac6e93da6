// Package httpjson holds the JSON-over-HTTP conventions the admin API
// (hub/admin) and the integrations API (hub/api) share: the shape of an
// error response, how a JSON body is written, how a request body is
// decoded strictly, and how a request no route takes is answered.
//
// Both APIs promise clients the same error shape
// {"error": {"code", "message", "field", "reason"}} and the same words for
// the same mistake; keeping that in one place is what keeps the promise.
// Each API keeps its own routes, authentication and mapping of its
// domain's errors to statuses.
package httpjson

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error answered as is: Status is the HTTP status, the rest
// is the body's error object.
type Error struct {
	Status int
	Code   string
	Msg    string
	// Field names the request field or query parameter at fault, when
	// there is one.
	Field string
	// Reason is a finer code a client can act on, such as a channel's
	// own code when its policy refuses a reply.
	Reason string
}

func (e *Error) Error() string { return e.Msg }

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error object of an ErrorBody. Field and Reason are
// left out when empty, so an API that never sets them answers
// {"code", "message"} only.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// WriteError answers e.
func WriteError(w http.ResponseWriter, e *Error) {
	WriteJSON(w, e.Status, ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Msg, Field: e.Field, Reason: e.Reason}})
}

// Internal is the answer to an unexpected error. It never carries the
// error's text, which may name database internals; the caller logs it.
func Internal() *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "internal",
		Msg: "internal error; the server log has the details"}
}

// WriteJSON answers status with body as JSON. A json.RawMessage is sent
// as is (the embedded OpenAPI document), and 204 is sent without a body
// or a content type, as HTTP requires.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := body.(json.RawMessage); ok {
		_, _ = w.Write(raw)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Unrouted answers a request that no route of mux takes with the APIs'
// JSON error rather than the mux's plain text: 405 with Allow when the
// path exists for other methods, else 404 pointing at the description.
func Unrouted(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, description string) {
	p := &probe{header: http.Header{}}
	mux.ServeHTTP(p, r) // the mux's own answer, captured to learn 404 or 405
	if p.status == http.StatusMethodNotAllowed {
		allow := p.header.Get("Allow")
		w.Header().Set("Allow", allow)
		WriteError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Msg: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
		return
	}
	WriteError(w, &Error{Status: http.StatusNotFound, Code: "not_found",
		Msg: fmt.Sprintf("no endpoint %s %s; the API is described at %s", r.Method, r.URL.Path, description)})
}

// probe is a ResponseWriter that keeps only the status and headers.
type probe struct {
	header http.Header
	status int
}

func (p *probe) Header() http.Header         { return p.header }
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(code int)        { p.status = code }

// StatusWriter records the status a handler answers, for the request
// log.
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

// NewStatusWriter wraps w; a handler that never calls WriteHeader
// answers 200.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
}

func (s *StatusWriter) WriteHeader(code int) {
	s.Status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
