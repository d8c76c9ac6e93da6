package api

import (
	"context"
	_ "embed" // the OpenAPI description
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/httpjson"
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
	sw := httpjson.NewStatusWriter(w)
	// Responses carry end users' messages and contact data: no cache
	// keeps them.
	sw.Header().Set("Cache-Control", "no-store")
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	acc := &access{}
	r = r.WithContext(context.WithValue(r.Context(), accessKey{}, acc))
	if clean := path.Clean(r.URL.Path); clean != r.URL.Path {
		// ServeMux would redirect; an API client is better told, in the
		// API's own error, than sent (with its key) elsewhere.
		httpjson.WriteError(sw, &httpjson.Error{Status: http.StatusNotFound, Code: "not_found",
			Msg: fmt.Sprintf("no endpoint %s %s; paths have no empty, dot or trailing segments: did you mean %s?", r.Method, r.URL.Path, clean)})
	} else if _, pattern := h.mux.Handler(r); pattern == "" {
		httpjson.Unrouted(sw, r, h.mux, v1+"/openapi.json")
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	// The path carries ids only. The query (search text) and bodies
	// (messages) are end users' data, and the key is a secret: none of
	// them is logged.
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.Status, "duration", time.Since(start)}
	if acc.instance != "" {
		attrs = append(attrs, "instance", acc.instance, "api_key", acc.keyID)
	}
	h.log.InfoContext(r.Context(), "api request", attrs...)
}

func (h *handler) endpoint(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var key *store.APIKey
		// The public description is a static document: it needs no key,
		// and a query string there (a cache buster) is ignored.
		if !rt.public {
			k, err := h.authenticate(r)
			if err != nil {
				if ae := (*httpjson.Error)(nil); errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
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
		httpjson.WriteJSON(w, status, body)
	}
}

// checkQuery refuses a malformed query string and parameters the
// endpoint does not take.
func checkQuery(r *http.Request, known []string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return &httpjson.Error{Status: http.StatusBadRequest, Code: "bad_parameter", Msg: "the query string is malformed: " + err.Error()}
	}
	for name := range q {
		if !slices.Contains(known, name) {
			takes := "no query parameters"
			if len(known) > 0 {
				takes = strings.Join(known, ", ")
			}
			return &httpjson.Error{Status: http.StatusBadRequest, Code: "unknown_parameter", Field: name,
				Msg: fmt.Sprintf("unknown query parameter %q; this endpoint takes %s", name, takes)}
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
		return &httpjson.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Msg: msg}
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

// fail answers an error with its status. Not-found never repeats the
// store's words, so that a ticket of another instance and one that does
// not exist get the same answer; an unexpected error is logged and
// answered with 500 without its text, which may name database internals.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae *httpjson.Error
		ce *connectors.Error
	)
	switch {
	case errors.As(err, &ae):
		httpjson.WriteError(w, ae)
	case errors.Is(err, store.ErrNotFound):
		msg := "not found"
		if id := r.PathValue("ticket"); id != "" {
			msg = fmt.Sprintf("ticket %s not found", id)
		}
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Msg: msg})
	case errors.As(err, &ce) && ce.Class == connectors.Refused:
		e := &httpjson.Error{Status: http.StatusUnprocessableEntity, Code: "policy", Msg: ce.Msg, Reason: ce.Code}
		if ce.Code == "too_long" {
			e.Field = "text"
		}
		httpjson.WriteError(w, e)
	case errors.Is(err, hub.ErrInvalid):
		// The endpoints validate their input first; this is the hub's
		// own refusal (e.g. text empty once cleaned), worded by the hub.
		msg := strings.TrimPrefix(err.Error(), hub.ErrInvalid.Error()+": ")
		httpjson.WriteError(w, &httpjson.Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Msg: msg, Field: invalidField(r)})
	default:
		h.log.ErrorContext(r.Context(), "api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.WriteError(w, httpjson.Internal())
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
