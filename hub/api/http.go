package api

import (
	"context"
	_ "embed" // the OpenAPI description
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// openapiJSON is the API's description, hand-written and kept true by
// the tests in openapi_test.go.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3.1 description of the API.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// MaxBodyBytes caps a request body. A message text is at most the hub's
// text limit (256 KiB by default); 1 MiB leaves room for JSON escapes,
// and a larger body is refused with 413 before it is read in full.
const MaxBodyBytes = 1 << 20

// KeyPrefix starts every API key (made by the admin API), so a credential
// that cannot be one is refused without a database lookup.
const KeyPrefix = "sbk_"

// route is one endpoint. The pattern is both the ServeMux pattern and the
// OpenAPI path template, op is the operationId, and query lists the query
// parameters: the mux is built from this table and the OpenAPI test walks
// it, so an endpoint (or a parameter) cannot exist without being
// described.
type route struct {
	method  string
	pattern string
	op      string
	// public routes are served without an API key.
	public bool
	// query are the parameters the endpoint takes; any other is refused,
	// so that a misspelt filter is an error rather than a list that
	// silently ignores it.
	query []string
	// serve answers the request; k is the authenticated key (nil on
	// public routes), whose instance scopes everything it does.
	serve func(h *handler, r *http.Request, k *store.APIKey) (int, any, error)
}

const v1 = "/api/v1"

func routeTable() []route {
	const ticket = v1 + "/tickets/{ticket}"
	return []route{
		{method: "GET", pattern: v1 + "/openapi.json", op: "getOpenAPI", public: true, serve: (*handler).openAPI},
		{method: "GET", pattern: v1 + "/tickets", op: "listTickets", serve: (*handler).listTickets,
			query: []string{"status", "query", "assignee", "before", "limit"}},
		{method: "GET", pattern: ticket, op: "getTicket", serve: (*handler).getTicket},
		{method: "POST", pattern: ticket + "/messages", op: "addMessage", serve: (*handler).addMessage},
		{method: "POST", pattern: ticket + "/status", op: "setStatus", serve: (*handler).setStatus},
		{method: "GET", pattern: v1 + "/changes", op: "listChanges", serve: (*handler).listChanges,
			query: []string{"after", "limit"}},
	}
}

type handler struct {
	hub *hub.Hub
	log *slog.Logger
	mux *http.ServeMux
}

// NewHandler serves the API for API clients under /api/v1/; mount it on
// the server's mux at "/api/". Requests authenticate with
// "Authorization: Bearer sbk_…", an API key of one instance made with the
// admin API; the key's instance scopes everything the request can see or
// change. Only the OpenAPI description is public.
func NewHandler(h *hub.Hub, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &handler{hub: h, log: log.With("component", "api"), mux: http.NewServeMux()}
	for _, rt := range routeTable() {
		a.mux.HandleFunc(rt.method+" "+rt.pattern, a.endpoint(rt))
	}
	return a
}

// access is what the request log says about a request, filled in as it is
// served.
type access struct {
	instance string
	keyID    int64
}

type accessKey struct{}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	// Responses carry end users' messages and contact data: no cache
	// keeps them.
	sw.Header().Set("Cache-Control", "no-store")
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	acc := &access{}
	r = r.WithContext(context.WithValue(r.Context(), accessKey{}, acc))
	if clean := path.Clean(r.URL.Path); clean != r.URL.Path {
		// ServeMux would redirect; an API client is better told, in the
		// API's own error, than sent (with its key) elsewhere.
		writeError(sw, &apiError{status: http.StatusNotFound, code: "not_found",
			msg: fmt.Sprintf("no endpoint %s %s; paths have no empty, dot or trailing segments: did you mean %s?", r.Method, r.URL.Path, clean)})
	} else if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(sw, r)
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	// The path carries ids only. The query (search text) and bodies
	// (messages) are end users' data, and the key is a secret: none of
	// them is logged.
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start)}
	if acc.instance != "" {
		attrs = append(attrs, "instance", acc.instance, "api_key", acc.keyID)
	}
	h.log.InfoContext(r.Context(), "api request", attrs...)
}

// unrouted answers a request no route takes with the API's JSON error: 405
// with Allow when the path exists for other methods, else 404.
func (h *handler) unrouted(w http.ResponseWriter, r *http.Request) {
	p := &probe{header: http.Header{}}
	h.mux.ServeHTTP(p, r) // the mux's own answer, captured to learn 404 or 405
	if p.status == http.StatusMethodNotAllowed {
		allow := p.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
		return
	}
	writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
		msg: fmt.Sprintf("no endpoint %s %s; the API is described at %s/openapi.json", r.Method, r.URL.Path, v1)})
}

func (h *handler) endpoint(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var key *store.APIKey
		// The public description is a static document: it needs no key,
		// and a query string there (a cache buster) is ignored.
		if !rt.public {
			k, err := h.authenticate(r)
			if err != nil {
				if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-api"`)
				}
				h.fail(w, r, err)
				return
			}
			key = k
			if acc, ok := r.Context().Value(accessKey{}).(*access); ok {
				acc.instance, acc.keyID = k.InstanceID, k.ID
			}
			if err := checkQuery(r, rt.query); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		status, body, err := rt.serve(h, r, key)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// checkQuery refuses a malformed query string and parameters the
// endpoint does not take.
func checkQuery(r *http.Request, known []string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "bad_parameter", msg: "the query string is malformed: " + err.Error()}
	}
	for name := range q {
		if !slices.Contains(known, name) {
			takes := "no query parameters"
			if len(known) > 0 {
				takes = strings.Join(known, ", ")
			}
			return &apiError{status: http.StatusBadRequest, code: "unknown_parameter", field: name,
				msg: fmt.Sprintf("unknown query parameter %q; this endpoint takes %s", name, takes)}
		}
	}
	return nil
}

// authenticate finds the API key of the request: a Bearer credential
// starting with KeyPrefix whose SHA-256 is a stored key that is not
// revoked. An unknown key and a revoked one get the same answer.
func (h *handler) authenticate(r *http.Request) (*store.APIKey, error) {
	refuse := func(reason, msg string) error {
		// The key itself is never logged, not even in part.
		h.log.WarnContext(r.Context(), "api request refused", "reason", reason,
			"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg}
	}
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		return nil, refuse("no credentials", `this endpoint needs an API key: send "Authorization: Bearer sbk_…"`)
	}
	scheme, key, ok := strings.Cut(hdr, " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return nil, refuse("not a bearer credential", `send the API key as "Authorization: Bearer sbk_…"`)
	}
	if !strings.HasPrefix(key, KeyPrefix) {
		return nil, refuse("not an API key", "this is not an API key: API keys start with "+KeyPrefix+" and are made with the admin API")
	}
	k, err := h.hub.Store().APIKeyByHash(r.Context(), hub.HashToken(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse("unknown or revoked key", "the API key is not valid: it is unknown or has been revoked")
	}
	if err != nil {
		return nil, fmt.Errorf("look up api key: %w", err)
	}
	return k, nil
}

// apiError is an error answered as is.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
	reason string
}

func (e *apiError) Error() string { return e.msg }

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field or query parameter at fault, when
	// there is one.
	Field string `json:"field,omitempty"`
	// Reason is the channel's own code when its policy refuses a reply
	// (e.g. "reply_window", "too_long").
	Reason string `json:"reason,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorBody{Error: errorDetail{Code: e.code, Message: e.msg, Field: e.field, Reason: e.reason}})
}

// fail answers an error with its status. Not-found never repeats the
// store's words, so that a ticket of another instance and one that does
// not exist get the same answer; an unexpected error is logged and
// answered with 500 without its text, which may name database internals.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae *apiError
		ce *connectors.Error
	)
	switch {
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.Is(err, store.ErrNotFound):
		msg := "not found"
		if id := r.PathValue("ticket"); id != "" {
			msg = fmt.Sprintf("ticket %s not found", id)
		}
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: msg})
	case errors.As(err, &ce) && ce.Class == connectors.Refused:
		e := &apiError{status: http.StatusUnprocessableEntity, code: "policy", msg: ce.Msg, reason: ce.Code}
		if ce.Code == "too_long" {
			e.field = "text"
		}
		writeError(w, e)
	case errors.Is(err, hub.ErrInvalid):
		// The endpoints validate their input first; this is the hub's
		// own refusal (e.g. text empty once cleaned), worded by the hub.
		msg := strings.TrimPrefix(err.Error(), hub.ErrInvalid.Error()+": ")
		writeError(w, &apiError{status: http.StatusUnprocessableEntity, code: "invalid", msg: msg, field: invalidField(r)})
	default:
		h.log.ErrorContext(r.Context(), "api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "internal",
			msg: "internal error; the server log has the details"})
	}
}

// invalidField names the field the hub's ErrInvalid is about: each
// endpoint that can get one has a single input field.
func invalidField(r *http.Request) string {
	switch {
	case strings.HasSuffix(r.URL.Path, "/messages"):
		return "text"
	case strings.HasSuffix(r.URL.Path, "/status"):
		return "status"
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := body.(json.RawMessage); ok {
		_, _ = w.Write(raw)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

// decode reads a JSON object strictly: the content type must be JSON, the
// body at most MaxBodyBytes, unknown fields and trailing data are refused,
// each with a message that names what is wrong.
func decode(r *http.Request, dst any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: `send the body as JSON with "Content-Type: application/json"`}
	}
	dec := json.NewDecoder(r.Body) // limited to MaxBodyBytes by endpoint
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return decodeError(err)
		}
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body has data after the JSON object; send one object"}
	}
	return nil
}

func decodeError(err error) error {
	var (
		mb  *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	bad := func(code, field, format string, args ...any) error {
		return &apiError{status: http.StatusBadRequest, code: code, field: field, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case errors.As(err, &mb):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large",
			msg: fmt.Sprintf("the body is larger than %d bytes", mb.Limit)}
	case errors.Is(err, io.EOF):
		return bad("invalid_json", "", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("invalid_json", "", "the body ends in the middle of the JSON object")
	case errors.As(err, &se):
		return bad("invalid_json", "", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &ute):
		if ute.Field == "" {
			return bad("invalid_json", "", "the body must be a JSON object, not %s", article(ute.Value))
		}
		return bad("invalid_type", ute.Field, "field %q holds %s where %s is expected", ute.Field, article(ute.Value), jsonType(ute.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for this error; its text is stable.
		f, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return bad("unknown_field", f, "unknown field %q; the API description lists the fields", f)
	}
	return bad("invalid_json", "", "unreadable JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func article(jsonValue string) string {
	if jsonValue == "" {
		return "a value"
	}
	if strings.ContainsRune("aeiou", rune(jsonValue[0])) {
		return "an " + jsonValue
	}
	return "a " + jsonValue
}

// jsonType names a Go type in JSON's words for error messages.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another JSON type"
}

// statusWriter records the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// probe is a ResponseWriter that keeps only the status and headers.
type probe struct {
	header http.Header
	status int
}

func (p *probe) Header() http.Header         { return p.header }
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(code int)        { p.status = code }
