package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // the OpenAPI description
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// openapiJSON is the API's description, hand-written and kept true by
// TestOpenAPIDescribesHandler.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3.1 description of the admin API.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// MaxBodyBytes caps a request body; channel settings are small, and a
// larger body is refused with 413 before it is read in full.
const MaxBodyBytes = 1 << 20

// route is one endpoint. The pattern is both the ServeMux pattern and the
// OpenAPI path template, and op is the operationId: the mux is built from
// this table and the OpenAPI test walks it, so an endpoint cannot exist
// without being described.
type route struct {
	method  string
	pattern string
	op      string
	// public routes are served without the operator token.
	public bool
	serve  func(h *handler, r *http.Request) (int, any, error)
}

const v1 = "/admin/v1"

func routeTable() []route {
	const (
		inst    = v1 + "/instances/{instance}"
		channel = inst + "/channels/{channel}"
		team    = inst + "/teams/{team}"
		agent   = inst + "/agents/{agent}"
		key     = inst + "/api-keys/{key}"
	)
	return []route{
		{"GET", v1 + "/openapi.json", "getOpenAPI", true, (*handler).openAPI},

		{"GET", v1 + "/instances", "listInstances", false, (*handler).listInstances},
		{"POST", v1 + "/instances", "createInstance", false, (*handler).createInstance},
		{"GET", inst, "getInstance", false, (*handler).getInstance},
		{"PATCH", inst, "updateInstance", false, (*handler).updateInstance},

		{"GET", inst + "/channels", "listChannels", false, (*handler).listChannels},
		{"POST", inst + "/channels", "createChannel", false, (*handler).createChannel},
		{"GET", channel, "getChannel", false, (*handler).getChannel},
		{"PATCH", channel, "updateChannel", false, (*handler).updateChannel},
		{"DELETE", channel, "deleteChannel", false, (*handler).deleteChannel},
		{"POST", channel + "/enable", "enableChannel", false, (*handler).enableChannel},
		{"POST", channel + "/disable", "disableChannel", false, (*handler).disableChannel},

		{"GET", inst + "/teams", "listTeams", false, (*handler).listTeams},
		{"POST", inst + "/teams", "createTeam", false, (*handler).createTeam},
		{"GET", team, "getTeam", false, (*handler).getTeam},
		{"DELETE", team, "deleteTeam", false, (*handler).deleteTeam},

		{"GET", inst + "/agents", "listAgents", false, (*handler).listAgents},
		{"POST", inst + "/agents", "createAgent", false, (*handler).createAgent},
		{"GET", agent, "getAgent", false, (*handler).getAgent},
		{"PATCH", agent, "updateAgent", false, (*handler).updateAgent},
		{"POST", agent + "/token", "rotateAgentToken", false, (*handler).rotateAgentToken},

		{"GET", inst + "/api-keys", "listAPIKeys", false, (*handler).listAPIKeys},
		{"POST", inst + "/api-keys", "createAPIKey", false, (*handler).createAPIKey},
		{"DELETE", key, "revokeAPIKey", false, (*handler).revokeAPIKey},
	}
}

type handler struct {
	svc     *Service
	log     *slog.Logger
	mux     *http.ServeMux
	enabled bool
	// tokenSum is the SHA-256 of the operator token: comparing fixed-size
	// digests in constant time hides the token's length as well.
	tokenSum [sha256.Size]byte
}

// NewHandler serves the admin API under /admin/v1/; mount it on the
// server's mux at "/admin/". Requests authenticate with
// "Authorization: Bearer <operatorToken>"; an empty operatorToken disables
// the API (503), except for the OpenAPI description, which is public.
func NewHandler(svc *Service, operatorToken string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		svc:      svc,
		log:      log.With("component", "admin-api"),
		mux:      http.NewServeMux(),
		enabled:  operatorToken != "",
		tokenSum: sha256.Sum256([]byte(operatorToken)),
	}
	for _, rt := range routeTable() {
		h.mux.HandleFunc(rt.method+" "+rt.pattern, h.endpoint(rt))
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	sw.Header().Set("Cache-Control", "no-store") // responses may carry a token shown once
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(sw, r)
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	// The path carries ids only; bodies (settings, secrets) are never
	// logged.
	h.log.InfoContext(r.Context(), "admin request", "method", r.Method, "path", r.URL.Path,
		"status", sw.status, "duration", time.Since(start))
}

// unrouted answers a request no route takes with the API's JSON error: 405
// with Allow when the path exists for other methods, else 404.
func (h *handler) unrouted(w http.ResponseWriter, r *http.Request) {
	p := &probe{header: http.Header{}}
	h.mux.ServeHTTP(p, r) // the mux's own answer, captured to learn 404 or 405
	if p.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", p.header.Get("Allow"))
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, p.header.Get("Allow"))})
		return
	}
	writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
		msg: fmt.Sprintf("no endpoint %s %s; the API is described at %s/openapi.json", r.Method, r.URL.Path, v1)})
}

func (h *handler) endpoint(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !rt.public {
			if !h.enabled {
				writeError(w, &apiError{status: http.StatusServiceUnavailable, code: "admin_disabled",
					msg: "the admin API is disabled because no operator token is configured; set one and restart"})
				return
			}
			if !h.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-admin"`)
				h.log.WarnContext(r.Context(), "admin request refused: bad or missing operator token",
					"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				writeError(w, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
					msg: "send the operator token as \"Authorization: Bearer <token>\""})
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		status, body, err := rt.serve(h, r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}

// apiError is an error answered as is.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorBody{Error: errorDetail{Code: e.code, Message: e.msg, Field: e.field}})
}

// fail answers a Service error with its status; an unexpected error is
// logged and answered with 500 without its text, which may name database
// internals.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae *apiError
		fe *FieldError
	)
	switch {
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.As(err, &fe):
		writeError(w, &apiError{status: http.StatusUnprocessableEntity, code: "invalid", msg: fe.Error(), field: fe.Field})
	case errors.Is(err, store.ErrNotFound):
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: Message(err)})
	case errors.Is(err, store.ErrDuplicate):
		writeError(w, &apiError{status: http.StatusConflict, code: "exists", msg: Message(err)})
	case errors.Is(err, store.ErrConflict):
		writeError(w, &apiError{status: http.StatusConflict, code: "conflict", msg: Message(err)})
	case errors.Is(err, store.ErrInvalid):
		writeError(w, &apiError{status: http.StatusUnprocessableEntity, code: "invalid", msg: Message(err)})
	default:
		h.log.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "internal",
			msg: "internal error; the server log has the details"})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
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

// decode reads a JSON object strictly: the content type must be JSON, the
// body at most MaxBodyBytes, unknown fields and trailing data are refused,
// each with a message that names what is wrong.
func decode(r *http.Request, dst any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "send the body as JSON with \"Content-Type: application/json\""}
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
			return bad("invalid_json", "", "the body must be a JSON object, not %s", ute.Value)
		}
		// For a map value Field names the map: "secrets" holds a number
		// where a string is expected.
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

// Path parameters. A malformed id is a 400 that says what an id looks
// like; a well-formed id that does not exist (or belongs to another
// instance) is a 404.

func slugParam(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if !ValidID(v) {
		return "", &apiError{status: http.StatusBadRequest, code: "bad_id", field: name,
			msg: fmt.Sprintf("%s id %q is malformed: ids have 1-63 lower-case letters, digits and dashes", name, v)}
	}
	return v, nil
}

func intParam(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, &apiError{status: http.StatusBadRequest, code: "bad_id", field: name,
			msg: fmt.Sprintf("%s id %q is malformed: it is a positive integer", name, v)}
	}
	return n, nil
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probe captures a handler's status and headers and discards its body.
type probe struct {
	header http.Header
	status int
}

func (p *probe) Header() http.Header         { return p.header }
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(code int)        { p.status = code }
