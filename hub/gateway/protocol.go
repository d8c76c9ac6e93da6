package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// ProtocolVersion is the version of the agent protocol this package speaks
// (docs/agent-protocol.md). A client names it in its auth frame.
const ProtocolVersion = 1

// Subprotocol is the Sec-WebSocket-Protocol value the gateway selects. A
// browser that passes its token as "bearer.<token>" must offer it too, or
// the handshake has no protocol to agree on.
const Subprotocol = "switchboard.v1"

// Close codes the gateway sends besides the standard ones (1000 normal,
// 1001 shutting down, 1007 invalid UTF-8, 1009 frame too large, 1011
// internal error).
const (
	// CloseUnauthorized: no valid token (missing, unknown, revoked, agent
	// disabled, or sent in the URL). Reconnecting with the same token will
	// not help.
	CloseUnauthorized = 4001
	// CloseUnsupportedProtocol: the auth frame named a protocol version
	// this server does not speak.
	CloseUnsupportedProtocol = 4002
	// CloseTooSlow: the socket's send queue overflowed. The client should
	// reconnect and resume from its last cursor.
	CloseTooSlow = 4008
)

// Error codes of error frames.
const (
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeInvalid      = "invalid"
	CodePolicy       = "policy"
	CodeChannel      = "channel"
	CodeConflict     = "conflict"
	CodeOfferExpired = "offer_expired"
	CodeTooLarge     = "too_large"
	CodeBadFrame     = "bad_frame"
	CodeUnknownType  = "unknown_type"
	CodeInternal     = "internal"
)

// Request frame types.
const (
	typeAuth         = "auth"
	typePresence     = "presence"
	typeResume       = "resume"
	typeTicketsList  = "tickets.list"
	typeTicketGet    = "ticket.get"
	typeAccept       = "ticket.accept"
	typeDecline      = "ticket.decline"
	typeReply        = "message.reply"
	typeNote         = "message.note"
	typeTransfer     = "ticket.transfer"
	typeTicketStatus = "ticket.status"
	typeTyping       = "typing"
	typePing         = "ping"
)

// Server frame types that are not hub updates.
const (
	typeReady      = "ready"
	typeResult     = "result"
	typeError      = "error"
	typeResumeDone = "resume.done"
)

// Limits on request fields, so that one frame cannot make the hub do
// unbounded work or store unbounded keys.
const (
	maxIDBytes       = 64
	maxTokenBytes    = 512
	maxQueryBytes    = 256
	maxKeyBytes      = 128
	maxStatusFilters = 8
	maxListLimit     = 200
)

// frameError is a request the gateway refuses before it reaches the hub.
type frameError struct {
	id   json.RawMessage
	code string
	msg  string
}

func (e *frameError) Error() string { return e.code + ": " + e.msg }

// envelope holds the fields every request frame has. It is embedded in
// each request body so that strict decoding accepts them.
type envelope struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
}

// frame is one decoded request.
type frame struct {
	typ  string
	id   json.RawMessage // echoed verbatim in the reply; nil when absent
	body any             // one of the *...Req types below
}

type authReq struct {
	envelope
	Token    string `json:"token"`
	Protocol int    `json:"protocol"`
	// Cursor, when set, resumes in the same step (no live update can slip
	// between the join and the resume).
	Cursor *int64 `json:"cursor"`
}

type presenceReq struct {
	envelope
	Status string `json:"status"`
}

type resumeReq struct {
	envelope
	Cursor *int64 `json:"cursor"`
}

type ticketsListReq struct {
	envelope
	Status []string `json:"status"`
	// Assignee is "me", "none" or an agent id (number).
	Assignee json.RawMessage `json:"assignee"`
	TeamID   *int64          `json:"team_id"`
	Query    string          `json:"query"`
	Before   int64           `json:"before"`
	Limit    int             `json:"limit"`
}

type ticketReq struct {
	envelope
	TicketID int64 `json:"ticket_id"`
}

type composeReq struct {
	envelope
	TicketID       int64  `json:"ticket_id"`
	Text           string `json:"text"`
	IdempotencyKey string `json:"idempotency_key"`
}

type transferReq struct {
	envelope
	TicketID int64  `json:"ticket_id"`
	AgentID  *int64 `json:"agent_id"`
	TeamID   *int64 `json:"team_id"`
}

type statusReq struct {
	envelope
	TicketID int64  `json:"ticket_id"`
	Status   string `json:"status"`
}

type typingReq struct {
	envelope
	TicketID int64 `json:"ticket_id"`
	On       *bool `json:"on"`
}

type pingReq struct {
	envelope
}

// newBody returns an empty request body for a frame type.
func newBody(typ string) (any, bool) {
	switch typ {
	case typeAuth:
		return new(authReq), true
	case typePresence:
		return new(presenceReq), true
	case typeResume:
		return new(resumeReq), true
	case typeTicketsList:
		return new(ticketsListReq), true
	case typeTicketGet, typeAccept, typeDecline:
		return new(ticketReq), true
	case typeReply, typeNote:
		return new(composeReq), true
	case typeTransfer:
		return new(transferReq), true
	case typeTicketStatus:
		return new(statusReq), true
	case typeTyping:
		return new(typingReq), true
	case typePing:
		return new(pingReq), true
	}
	return nil, false
}

// decodeFrame parses one text frame into a request. It never panics and
// returns a *frameError (with the client id when it could be read) for
// anything it refuses: not JSON, not an object, unknown type, unknown or
// mistyped field, missing or out-of-range field.
func decodeFrame(b []byte) (*frame, *frameError) {
	if !utf8.Valid(b) {
		return nil, &frameError{code: CodeBadFrame, msg: "the frame is not valid UTF-8"}
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &frameError{code: CodeBadFrame, msg: "a frame must be a JSON object"}
	}
	// First pass: only type and id of the first JSON value, ignoring
	// everything else, so that even a frame with bad fields (or data after
	// its object, refused below) gets its id echoed.
	var env struct {
		Type json.RawMessage `json:"type"`
		ID   json.RawMessage `json:"id"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&env); err != nil {
		return nil, &frameError{code: CodeBadFrame, msg: "malformed JSON: " + jsonProblem(err)}
	}
	id, err := checkID(env.ID)
	if err != nil {
		return nil, &frameError{code: CodeBadFrame, msg: err.Error()}
	}
	keys, err := frameKeys(b)
	if err != nil {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: err.Error()}
	}
	var typ string
	if len(env.Type) == 0 || string(env.Type) == "null" {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: `the frame has no "type"`}
	}
	if err := json.Unmarshal(env.Type, &typ); err != nil {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: `"type" must be a string`}
	}
	body, ok := newBody(typ)
	if !ok {
		return nil, &frameError{id: id, code: CodeUnknownType, msg: fmt.Sprintf("unknown frame type %q", clip(typ, 40))}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(body); err != nil {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: jsonProblem(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: "unexpected data after the JSON object"}
	}
	if err := checkKeys(keys, body); err != nil {
		return nil, &frameError{id: id, code: CodeBadFrame, msg: err.Error()}
	}
	if err := validate(body); err != nil {
		return nil, &frameError{id: id, code: CodeInvalid, msg: err.Error()}
	}
	return &frame{typ: typ, id: id, body: body}, nil
}

// checkID accepts a JSON string or number of bounded size as the client
// id; null counts as absent.
func checkID(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > maxIDBytes {
		return nil, fmt.Errorf(`"id" is longer than %d bytes`, maxIDBytes)
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, errors.New(`"id" must be a string or a number`)
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return nil, errors.New(`"id" must be a string or a number`)
		}
	default:
		return nil, errors.New(`"id" must be a string or a number`)
	}
	// Compact copy: the raw bytes alias the read buffer.
	return append(json.RawMessage(nil), raw...), nil
}

// validate checks the fields the hub would otherwise reject with a less
// precise message, or that bound the work a request causes.
func validate(body any) error {
	switch r := body.(type) {
	case *authReq:
		if r.Token == "" {
			return errors.New(`"token" is required`)
		}
		if len(r.Token) > maxTokenBytes {
			return errors.New(`"token" is too long`)
		}
		if r.Protocol == 0 {
			return fmt.Errorf(`"protocol" is required (%d)`, ProtocolVersion)
		}
		if r.Cursor != nil && *r.Cursor < 0 {
			return errors.New(`"cursor" must not be negative`)
		}
	case *presenceReq:
		switch r.Status {
		case "available", "away", "offline":
		default:
			return errors.New(`"status" must be "available", "away" or "offline"`)
		}
	case *resumeReq:
		if r.Cursor == nil {
			return errors.New(`"cursor" is required (0 for everything)`)
		}
		if *r.Cursor < 0 {
			return errors.New(`"cursor" must not be negative`)
		}
	case *ticketsListReq:
		if len(r.Status) > maxStatusFilters {
			return fmt.Errorf(`"status" lists at most %d statuses`, maxStatusFilters)
		}
		for _, s := range r.Status {
			if !validTicketStatus(s) {
				return fmt.Errorf(`"status" %q is not one of new, open, pending, solved, closed`, clip(s, 20))
			}
		}
		if _, _, err := parseAssignee(r.Assignee); err != nil {
			return err
		}
		if len(r.Query) > maxQueryBytes {
			return fmt.Errorf(`"query" is longer than %d bytes`, maxQueryBytes)
		}
		if r.Before < 0 {
			return errors.New(`"before" must not be negative`)
		}
		if r.Limit < 0 || r.Limit > maxListLimit {
			return fmt.Errorf(`"limit" must be between 1 and %d (0 for the default)`, maxListLimit)
		}
	case *ticketReq:
		return needTicket(r.TicketID)
	case *composeReq:
		if err := needTicket(r.TicketID); err != nil {
			return err
		}
		if strings.TrimSpace(r.Text) == "" {
			return errors.New(`"text" is required`)
		}
		if len(r.IdempotencyKey) > maxKeyBytes {
			return fmt.Errorf(`"idempotency_key" is longer than %d bytes`, maxKeyBytes)
		}
	case *transferReq:
		if err := needTicket(r.TicketID); err != nil {
			return err
		}
		if (r.AgentID == nil) == (r.TeamID == nil) {
			return errors.New(`name exactly one of "agent_id" and "team_id"`)
		}
		if (r.AgentID != nil && *r.AgentID <= 0) || (r.TeamID != nil && *r.TeamID <= 0) {
			return errors.New(`"agent_id" and "team_id" are positive ids`)
		}
	case *statusReq:
		if err := needTicket(r.TicketID); err != nil {
			return err
		}
		switch r.Status {
		case store.StatusOpen, store.StatusPending, store.StatusSolved, store.StatusClosed:
		default:
			return errors.New(`"status" must be "open", "pending", "solved" or "closed"`)
		}
	case *typingReq:
		if err := needTicket(r.TicketID); err != nil {
			return err
		}
		if r.On == nil {
			return errors.New(`"on" is required (true or false)`)
		}
	}
	return nil
}

func needTicket(id int64) error {
	if id <= 0 {
		return errors.New(`"ticket_id" is required (a positive id)`)
	}
	return nil
}

func validTicketStatus(s string) bool {
	switch s {
	case store.StatusNew, store.StatusOpen, store.StatusPending, store.StatusSolved, store.StatusClosed:
		return true
	}
	return false
}

// parseAssignee reads the assignee filter: kind is "" (no filter), "me",
// "none" or "id" (then id is the agent id).
func parseAssignee(raw json.RawMessage) (kind string, id int64, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "me", "none":
			return s, 0, nil
		}
		return "", 0, errors.New(`"assignee" must be "me", "none" or an agent id`)
	}
	if json.Unmarshal(raw, &id) != nil || id <= 0 {
		return "", 0, errors.New(`"assignee" must be "me", "none" or an agent id`)
	}
	return "id", id, nil
}

// jsonProblem words a decoding error for the client without echoing
// large parts of its input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s", clip(te.Field, 40), jsonKind(te.Type.Kind().String()))
		}
		return "a field has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + clip(strings.TrimPrefix(msg, "json: unknown field "), 40)
	}
	return clip(strings.TrimPrefix(msg, "json: "), 80)
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "ptr":
		return "a value of another type"
	}
	return "a " + k
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server frames.

type readyFrame struct {
	Type       string          `json:"type"`
	ID         json.RawMessage `json:"id,omitempty"`
	Protocol   int             `json:"protocol"`
	SessionID  string          `json:"session_id"`
	Agent      *store.Agent    `json:"agent"`
	Cursor     int64           `json:"cursor"`
	HeartbeatS int             `json:"heartbeat_seconds"`
	MaxFrame   int             `json:"max_frame_bytes"`
}

type resultFrame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	OK   bool            `json:"ok"`
	Data any             `json:"data,omitempty"`
}

type errorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// Reason is the channel's own code for policy and channel errors
	// (e.g. "too_long", "reply_window").
	Reason string `json:"reason,omitempty"`
}

type resumeDoneFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Cursor  int64           `json:"cursor"`
	Count   int             `json:"count"`
	Offers  int             `json:"offers"`
	Reset   bool            `json:"reset,omitempty"`
	Skipped int             `json:"skipped,omitempty"`
}

// updateFrame is a hub update as an agent sees it: the instance is
// implied by the session, the target agent is the receiver.
type updateFrame struct {
	Type      string         `json:"type"`
	Cursor    int64          `json:"cursor,omitempty"`
	TicketID  int64          `json:"ticket_id"`
	Ticket    *store.Ticket  `json:"ticket,omitempty"`
	Message   *store.Message `json:"message,omitempty"`
	ExpiresAt *time.Time     `json:"expires_at,omitempty"`
	Signal    string         `json:"signal,omitempty"`
	From      string         `json:"from,omitempty"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own frame types are encoded; a failure is a bug, and
		// an internal error frame is the most useful thing to send.
		b, _ = json.Marshal(errorFrame{Type: typeError, Code: CodeInternal, Message: "could not encode the reply"})
	}
	return b
}
