package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/httpjson"
)

// The endpoints: each parses its path, query and body, validates them so
// that a mistake gets a 4xx naming the field, and calls the hub with the
// key's instance id. Nothing here reads or writes without that id: tenant
// isolation is the hub's instance-scoped calls, and a ticket of another
// instance is "not found", worded as for a ticket that does not exist.

// Limits of the query parameters.
const (
	defaultTickets = 50
	maxTickets     = 500 // the store's own cap
	defaultChanges = 100
	maxChanges     = 1000 // the store's own cap
	maxQueryRunes  = 200
	maxIdemBytes   = 200
)

// statuses are the ticket statuses a list can filter on.
func statuses() []string {
	return []string{store.StatusNew, store.StatusOpen, store.StatusPending, store.StatusSolved, store.StatusClosed}
}

// settable are the statuses a client can set: new is where tickets start,
// never a target.
func settable() []string {
	return []string{store.StatusOpen, store.StatusPending, store.StatusSolved, store.StatusClosed}
}

func (h *handler) openAPI(*http.Request, *store.APIKey) (int, any, error) {
	return http.StatusOK, json.RawMessage(openapiJSON), nil
}

// listTickets: GET /api/v1/tickets?status=&query=&assignee=&before=&limit=
func (h *handler) listTickets(r *http.Request, k *store.APIKey) (int, any, error) {
	q := r.URL.Query() // checked against the route's parameters
	var (
		f   store.TicketFilter
		err error
	)
	for _, v := range q["status"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(statuses(), s) {
				return 0, nil, badParam("status", "status %q is not a ticket status; use %s", s, strings.Join(statuses(), ", "))
			}
			if !slices.Contains(f.Statuses, s) {
				f.Statuses = append(f.Statuses, s)
			}
		}
	}
	if f.Query, err = single(q, "query"); err != nil {
		return 0, nil, err
	}
	if n := utf8.RuneCountInString(f.Query); n > maxQueryRunes {
		return 0, nil, badParam("query", "query has %d characters; at most %d", n, maxQueryRunes)
	}
	switch v, err := single(q, "assignee"); {
	case err != nil:
		return 0, nil, err
	case v == "none":
		f.Unassigned = true
	case v != "":
		id, err := positive(v)
		if err != nil {
			return 0, nil, badParam("assignee", "assignee %q: use an agent id (a positive integer) or \"none\"", v)
		}
		f.AssigneeID = &id
	}
	if f.Before, err = intParam(q, "before", 0, 1, math.MaxInt64); err != nil {
		return 0, nil, err
	}
	limit, err := intParam(q, "limit", defaultTickets, 1, maxTickets)
	if err != nil {
		return 0, nil, err
	}
	f.Limit = int(limit)
	ts, err := h.hub.ClientTickets(r.Context(), k.InstanceID, f)
	if err != nil {
		return 0, nil, err
	}
	out := TicketList{Items: make([]*Ticket, 0, len(ts))}
	for i := range ts {
		out.Items = append(out.Items, ticketOut(&ts[i]))
	}
	if len(ts) == f.Limit {
		next := ts[len(ts)-1].ID
		out.NextBefore = &next
	}
	return http.StatusOK, out, nil
}

// getTicket: GET /api/v1/tickets/{ticket}
func (h *handler) getTicket(r *http.Request, k *store.APIKey) (int, any, error) {
	id, err := ticketParam(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.hub.ClientTicket(r.Context(), k.InstanceID, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, detailOut(v), nil
}

// NewMessage is the body of POST /api/v1/tickets/{ticket}/messages.
type NewMessage struct {
	// Text is the message, plain text.
	Text string `json:"text"`
	// Note makes it an internal note, which the end user never sees;
	// otherwise it is a reply sent through the ticket's channel.
	Note bool `json:"note"`
	// IdempotencyKey makes a retried request store one message: the
	// same key on the same ticket from the same API key returns the
	// message stored the first time.
	IdempotencyKey string `json:"idempotency_key"`
}

// addMessage: POST /api/v1/tickets/{ticket}/messages. A reply takes the
// agents' path (policy check, outbox, notifications), authored by the
// key's name.
func (h *handler) addMessage(r *http.Request, k *store.APIKey) (int, any, error) {
	id, err := ticketParam(r)
	if err != nil {
		return 0, nil, err
	}
	var in NewMessage
	if err := httpjson.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(in.Text) == "" {
		return 0, nil, invalid("text", "text is required: send the message text")
	}
	if in.IdempotencyKey != "" {
		if len(in.IdempotencyKey) > maxIdemBytes || strings.IndexFunc(in.IdempotencyKey, unicode.IsControl) >= 0 {
			return 0, nil, invalid("idempotency_key", "idempotency_key must be at most %d bytes without control characters", maxIdemBytes)
		}
		// Scoped to the key, so two integrations of one instance never
		// meet on each other's keys.
		in.IdempotencyKey = fmt.Sprintf("%d:%s", k.ID, in.IdempotencyKey)
	}
	c := hub.Compose{Text: in.Text, IdempotencyKey: in.IdempotencyKey}
	compose := h.hub.ClientReply
	if in.Note {
		compose = h.hub.ClientNote
	}
	m, err := compose(r.Context(), k.InstanceID, id, k.Name, c)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, messageOut(m), nil
}

// StatusChange is the body of POST /api/v1/tickets/{ticket}/status.
type StatusChange struct {
	// Status is open, pending, solved or closed.
	Status string `json:"status"`
}

// setStatus: POST /api/v1/tickets/{ticket}/status
func (h *handler) setStatus(r *http.Request, k *store.APIKey) (int, any, error) {
	id, err := ticketParam(r)
	if err != nil {
		return 0, nil, err
	}
	var in StatusChange
	if err := httpjson.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	if !slices.Contains(settable(), in.Status) {
		if in.Status == "" {
			return 0, nil, invalid("status", "status is required: one of %s", strings.Join(settable(), ", "))
		}
		return 0, nil, invalid("status", "status %q cannot be set; use one of %s", in.Status, strings.Join(settable(), ", "))
	}
	t, err := h.hub.ClientSetStatus(r.Context(), k.InstanceID, id, in.Status)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ticketOut(t), nil
}

// listChanges: GET /api/v1/changes?after=&limit=
func (h *handler) listChanges(r *http.Request, k *store.APIKey) (int, any, error) {
	q := r.URL.Query() // checked against the route's parameters
	after, err := intParam(q, "after", 0, 0, math.MaxInt64)
	if err != nil {
		return 0, nil, err
	}
	limit, err := intParam(q, "limit", defaultChanges, 1, maxChanges)
	if err != nil {
		return 0, nil, err
	}
	ups, err := h.hub.ClientFeed(r.Context(), k.InstanceID, after, int(limit))
	if err != nil {
		return 0, nil, err
	}
	out := ChangeList{Items: make([]*Change, 0, len(ups)), Cursor: after, More: len(ups) == int(limit)}
	for _, u := range ups {
		out.Cursor = u.Cursor
		if u.Type == "" {
			// A change whose message is gone: nothing to show, but the
			// cursor moves past it.
			continue
		}
		out.Items = append(out.Items, &Change{Cursor: u.Cursor, Type: u.Type, TicketID: u.TicketID,
			Ticket: ticketOut(u.Ticket), Message: messageOut(u.Message)})
	}
	return http.StatusOK, out, nil
}

// Input helpers. A malformed path id is a 400 that says what an id looks
// like; a well-formed id that does not exist, or is another instance's,
// is a 404.

func ticketParam(r *http.Request) (int64, error) {
	v := r.PathValue("ticket")
	id, err := positive(v)
	if err != nil {
		return 0, &httpjson.Error{Status: http.StatusBadRequest, Code: "bad_id", Field: "ticket",
			Msg: fmt.Sprintf("ticket id %q is malformed: ticket ids are positive integers", v)}
	}
	return id, nil
}

func positive(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive integer", v)
	}
	return n, nil
}

// single returns a parameter given at most once ("" when absent).
func single(q url.Values, name string) (string, error) {
	switch vs := q[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", badParam(name, "%s is given %d times; give it once", name, len(q[name]))
}

// intParam returns an integer parameter within [lo, hi], or def when it
// is absent.
func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	v, err := single(q, name)
	if err != nil || v == "" {
		return def, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt64 {
			return 0, badParam(name, "%s %q: use an integer of at least %d", name, v, lo)
		}
		return 0, badParam(name, "%s %q: use an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func badParam(name, format string, args ...any) error {
	return &httpjson.Error{Status: http.StatusBadRequest, Code: "bad_parameter", Field: name, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) error {
	return &httpjson.Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: field, Msg: fmt.Sprintf(format, args...)}
}
