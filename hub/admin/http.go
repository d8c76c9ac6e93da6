package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // the OpenAPI description
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/httpjson"
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
	sw := httpjson.NewStatusWriter(w)
	sw.Header().Set("Cache-Control", "no-store") // responses may carry a token shown once
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	if _, pattern := h.mux.Handler(r); pattern == "" {
		httpjson.Unrouted(sw, r, h.mux, v1+"/openapi.json")
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	// The path carries ids only; bodies (settings, secrets) are never
	// logged.
	h.log.InfoContext(r.Context(), "admin request", "method", r.Method, "path", r.URL.Path,
		"status", sw.Status, "duration", time.Since(start))
}

func (h *handler) endpoint(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !rt.public {
			if !h.enabled {
				httpjson.WriteError(w, &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "admin_disabled",
					Msg: "the admin API is disabled because no operator token is configured; set one and restart"})
				return
			}
			if !h.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-admin"`)
				h.log.WarnContext(r.Context(), "admin request refused: bad or missing operator token",
					"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				httpjson.WriteError(w, &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
					Msg: "send the operator token as \"Authorization: Bearer <token>\""})
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		status, body, err := rt.serve(h, r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpjson.WriteJSON(w, status, body)
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

// fail answers a Service error with its status; an unexpected error is
// logged and answered with 500 without its text, which may name database
// internals.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae *httpjson.Error
		fe *FieldError
	)
	switch {
	case errors.As(err, &ae):
		httpjson.WriteError(w, ae)
	case errors.As(err, &fe):
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Msg: fe.Error(), Field: fe.Field})
	case errors.Is(err, store.ErrNotFound):
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Msg: Message(err)})
	case errors.Is(err, store.ErrDuplicate):
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusConflict, Code: "exists", Msg: Message(err)})
	case errors.Is(err, store.ErrConflict):
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusConflict, Code: "conflict", Msg: Message(err)})
	case errors.Is(err, store.ErrInvalid):
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Msg: Message(err)})
	default:
		h.log.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.WriteError(w, httpjson.Internal())
	}
}

// decoder reads request bodies (at most MaxBodyBytes, by endpoint) with
// the admin API's own wording for a body that is not an object: "not
// array", as it has answered since before the wording was shared.
var decoder = httpjson.Decoder{NotAnObject: func(kind string) string {
	return "the body must be a JSON object, not " + kind
}}

// Path parameters. A malformed id is a 400 that says what an id looks
// like; a well-formed id that does not exist (or belongs to another
// instance) is a 404.

func slugParam(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if !ValidID(v) {
		return "", &httpjson.Error{Status: http.StatusBadRequest, Code: "bad_id", Field: name,
			Msg: fmt.Sprintf("%s id %q is malformed: ids have 1-63 lower-case letters, digits and dashes", name, v)}
	}
	return v, nil
}

func intParam(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, &httpjson.Error{Status: http.StatusBadRequest, Code: "bad_id", Field: name,
			Msg: fmt.Sprintf("%s id %q is malformed: it is a positive integer", name, v)}
	}
	return n, nil
}
