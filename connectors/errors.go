package connectors

import (
	"errors"
	"fmt"
)

// Class tells the host what to do with a failed send.
type Class int

const (
	// Retryable failures (timeouts, 4xx SMTP, 5xx HTTP, rate limits) are
	// tried again with backoff.
	Retryable Class = iota
	// Permanent failures (unknown recipient, 5xx SMTP, invalid token) go
	// to the dead letter at once and are shown to the agent.
	Permanent
	// Refused: refusals by the channel's rules (reply window
	// passed, text too long); retrying cannot help.
	Refused
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Refused:
		return "policy"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Error is a classified connector error.
type Error struct {
	Class Class
	Code  string // short machine-readable code, e.g. "smtp_550"
	Msg   string // what an agent can read
	Err   error  // the underlying cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%s): %s: %v", e.Msg, e.Code, e.Class, e.Err)
	}
	return fmt.Sprintf("%s (%s): %s", e.Msg, e.Code, e.Class)
}

func (e *Error) Unwrap() error { return e.Err }

// NewError returns a classified error.
func NewError(class Class, code, msg string, cause error) *Error {
	return &Error{Class: class, Code: code, Msg: msg, Err: cause}
}

// ClassOf returns the class of err; an unclassified error is Retryable,
// so that a connector bug never silently drops a message.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Retryable
}

// Sentinel errors connectors and hosts share.
var (
	ErrUnsupported = errors.New("connectors: not supported by this channel")
	ErrUnknownKind = errors.New("connectors: unknown channel kind")
)
