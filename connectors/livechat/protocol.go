package livechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProtocolVersion is the version of the visitor frame protocol (README.md).
const ProtocolVersion = 1

// Client frame types.
const (
	typeSessionStart = "session.start"
	typeMessageSend  = "message.send"
	typeMessageState = "message.state"
	typeTyping       = "typing"
	typeResume       = "resume"
	typePing         = "ping"
)

// Server frame types.
const (
	typeSessionReady = "session.ready"
	typeMessageAck   = "message.ack"
	typeMessageNew   = "message.new"
	typeHistory      = "history"
	typeSeen         = "seen"
	typeConvChanged  = "conversation.changed"
	typePong         = "pong"
	typeError        = "error"
)

// Error codes of error frames (README.md lists when each is sent).
const (
	codeBadFrame       = "bad_frame"
	codeInvalidUTF8    = "invalid_utf8"
	codeBinary         = "binary_unsupported"
	codeUnknownType    = "unknown_type"
	codeBadField       = "bad_field"
	codeUnsupportedVer = "unsupported_version"
	codeTextTooLong    = "text_too_long"
	codeTokenInvalid   = "token_invalid"
	codeTokenExpired   = "token_expired"
	codeNoSession      = "no_session"
	codeRateLimited    = "rate_limited"
	codeDeliverFailed  = "deliver_failed"
	codeUnavailable    = "unavailable"
)

// Field limits of client frames.
const (
	maxClientIDLen   = 64
	maxNameLen       = 100
	maxEmailLen      = 254
	maxPageURLLen    = 2048
	maxStateIDs      = 100
	maxHistoryCursor = 1<<53 - 1 // the largest id a JavaScript number holds exactly
)

// clientFrame is every frame a visitor may send, flattened: each type uses
// the fields the README lists for it. Unknown fields are ignored so that a
// newer widget can talk to an older hub within one protocol version.
type clientFrame struct {
	Type string `json:"type"`
	V    int    `json:"v,omitempty"`

	// session.start
	Token   string `json:"token,omitempty"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	PageURL string `json:"page_url,omitempty"`

	// session.start, resume
	After int64 `json:"after,omitempty"`

	// message.send
	ClientID string `json:"client_id,omitempty"`
	Text     string `json:"text,omitempty"`

	// typing
	Active bool `json:"active,omitempty"`

	// message.state
	State      string  `json:"state,omitempty"`
	MessageIDs []int64 `json:"message_ids,omitempty"`
}

// frameError is a protocol error answered with an error frame.
type frameError struct {
	Code     string
	Msg      string
	ClientID string
}

func (e *frameError) Error() string { return e.Code + ": " + e.Msg }

func badField(field, msg string) *frameError {
	return &frameError{Code: codeBadField, Msg: field + ": " + msg}
}

// decodeFrame parses and validates one text frame. maxText is the longest
// message text in runes. Every failure is a *frameError.
func decodeFrame(data []byte, maxText int) (clientFrame, error) {
	var f clientFrame
	if !utf8.Valid(data) {
		// encoding/json would silently turn bad bytes into U+FFFD; a text
		// frame must be UTF-8 (RFC 6455 §5.6), so say so instead.
		return f, &frameError{Code: codeInvalidUTF8, Msg: "frame is not valid UTF-8"}
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return f, &frameError{Code: codeBadFrame, Msg: "frame must be a JSON object"}
	}
	// Unmarshal also rejects trailing data after the object.
	if err := json.Unmarshal(data, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return clientFrame{}, badField(te.Field, "want "+te.Type.String()+", got JSON "+te.Value)
		}
		return clientFrame{}, &frameError{Code: codeBadFrame, Msg: "malformed JSON: " + err.Error()}
	}
	if err := f.validate(maxText); err != nil {
		return clientFrame{}, err
	}
	return f, nil
}

func (f *clientFrame) validate(maxText int) error {
	switch f.Type {
	case "":
		return badField("type", "missing")
	case typeSessionStart:
		if f.V != 0 && f.V != ProtocolVersion {
			return &frameError{Code: codeUnsupportedVer, Msg: fmt.Sprintf("protocol version %d is not supported; this server speaks %d", f.V, ProtocolVersion)}
		}
		if len(f.Token) > maxTokenLen {
			return &frameError{Code: codeTokenInvalid, Msg: "visitor token invalid"}
		}
		f.Name = strings.TrimSpace(f.Name)
		if err := checkPlain(f.Name, maxNameLen); err != nil {
			return badField("name", err.Error())
		}
		f.Email = strings.TrimSpace(f.Email)
		if f.Email != "" {
			if len(f.Email) > maxEmailLen {
				return badField("email", fmt.Sprintf("at most %d characters", maxEmailLen))
			}
			a, err := mail.ParseAddress(f.Email)
			if err != nil || a.Address != f.Email || a.Name != "" {
				return badField("email", "not an email address")
			}
		}
		if f.PageURL != "" {
			if len(f.PageURL) > maxPageURLLen {
				return badField("page_url", fmt.Sprintf("at most %d characters", maxPageURLLen))
			}
			u, err := url.Parse(f.PageURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return badField("page_url", "not an http(s) URL")
			}
		}
		if f.After < 0 || f.After > maxHistoryCursor {
			return badField("after", "not a message id")
		}
	case typeMessageSend:
		if !validClientID(f.ClientID) {
			return badField("client_id", fmt.Sprintf("want 1 to %d of A-Z a-z 0-9 _ - . :", maxClientIDLen))
		}
		if strings.TrimSpace(f.Text) == "" {
			return &frameError{Code: codeBadField, Msg: "text: empty", ClientID: f.ClientID}
		}
		if n := utf8.RuneCountInString(f.Text); n > maxText {
			return &frameError{Code: codeTextTooLong, Msg: fmt.Sprintf("text has %d characters; at most %d are allowed", n, maxText), ClientID: f.ClientID}
		}
	case typeMessageState:
		if f.State != string(stateDelivered) && f.State != string(stateRead) {
			return badField("state", `want "delivered" or "read"`)
		}
		if len(f.MessageIDs) == 0 || len(f.MessageIDs) > maxStateIDs {
			return badField("message_ids", fmt.Sprintf("want 1 to %d ids", maxStateIDs))
		}
		for _, id := range f.MessageIDs {
			if id <= 0 || id > maxHistoryCursor {
				return badField("message_ids", "not a message id")
			}
		}
	case typeResume:
		if f.After < 0 || f.After > maxHistoryCursor {
			return badField("after", "not a message id")
		}
	case typeTyping, typePing:
	default:
		// Quote with %q: the type came from the network.
		return &frameError{Code: codeUnknownType, Msg: fmt.Sprintf("unknown frame type %.64q", f.Type)}
	}
	return nil
}

// checkPlain accepts a one-line text of at most max runes.
func checkPlain(s string, max int) error {
	if utf8.RuneCountInString(s) > max {
		return fmt.Errorf("at most %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("control characters are not allowed")
		}
	}
	return nil
}

// validClientID: the client id becomes part of the dedup key, so it is
// kept short and plain.
func validClientID(id string) bool {
	if id == "" || len(id) > maxClientIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// Server frames. Each has its own struct so that a field the README
// promises is always present (no omitempty surprises on zero values).

// wireMessage is one message as the visitor sees it.
type wireMessage struct {
	ID int64 `json:"id"`
	// ClientID is set on the visitor's own messages (from any tab).
	ClientID string `json:"client_id,omitempty"`
	// From is "visitor" or "agent".
	From      string    `json:"from"`
	Author    string    `json:"author,omitempty"`
	Text      string    `json:"text"`
	State     string    `json:"state,omitempty"`
	Automatic bool      `json:"automatic,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

const (
	fromVisitor = "visitor"
	fromAgent   = "agent"

	stateDelivered = "delivered"
	stateRead      = "read"
)

type widgetConfig struct {
	Title            string `json:"title"`
	Color            string `json:"color"`
	Greeting         string `json:"greeting"`
	AskContact       bool   `json:"ask_contact"`
	MaxMessageLength int    `json:"max_message_length"`
}

type sessionReadyFrame struct {
	Type           string        `json:"type"`
	V              int           `json:"v"`
	Token          string        `json:"token"`
	VisitorID      string        `json:"visitor_id"`
	ConversationID int64         `json:"conversation_id"`
	TicketNumber   int64         `json:"ticket_number,omitempty"`
	History        []wireMessage `json:"history"`
	More           bool          `json:"more"`
	Widget         widgetConfig  `json:"widget"`
}

type messageAckFrame struct {
	Type           string `json:"type"`
	ClientID       string `json:"client_id"`
	MessageID      int64  `json:"message_id"`
	ConversationID int64  `json:"conversation_id"`
	// TicketNumber is the number agents and mails know the conversation
	// by; a conversation gets it with its first message.
	TicketNumber int64     `json:"ticket_number,omitempty"`
	Duplicate    bool      `json:"duplicate"`
	CreatedAt    time.Time `json:"created_at"`
}

type messageNewFrame struct {
	Type    string      `json:"type"`
	Message wireMessage `json:"message"`
}

type historyFrame struct {
	Type     string        `json:"type"`
	Messages []wireMessage `json:"messages"`
	More     bool          `json:"more"`
}

type typingFrame struct {
	Type   string `json:"type"`
	Active bool   `json:"active"`
	Author string `json:"author,omitempty"`
}

type seenFrame struct {
	Type   string `json:"type"`
	Author string `json:"author,omitempty"`
}

type convChangedFrame struct {
	Type           string `json:"type"`
	ConversationID int64  `json:"conversation_id"`
}

type errorFrame struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	ClientID     string `json:"client_id,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// encode marshals a server frame. The frames are plain structs of strings
// and numbers, so Marshal cannot fail; a failure would be a bug worth a
// panic in tests rather than a silent empty frame.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("livechat: encode %T: %v", v, err))
	}
	return b
}
