package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// ChannelRunner is the running node's side of channel changes: after a
// channel is created, changed or enabled the Service (re)starts it; after
// it is disabled or deleted the Service stops it. *hub.Hub is one.
type ChannelRunner interface {
	StartChannel(ctx context.Context, ch store.Channel) error
	StopChannel(ctx context.Context, id string)
	// ChannelsChanged tells the other nodes, which then sync their
	// channels with the store.
	ChannelsChanged(ctx context.Context)
}

var _ ChannelRunner = (*hub.Hub)(nil)

// Options are the Service's optional collaborators.
type Options struct {
	// Registry validates channel kinds and settings by building the
	// connector (no I/O). Nil accepts any kind and any JSON object, for
	// tools that run without the connectors compiled in.
	Registry *connectors.Registry
	// Runner is told about channel changes; nil when no node runs in this
	// process (the CLI).
	Runner ChannelRunner
	// Logger receives an audit line per change; nil discards. Secret
	// values never reach it.
	Logger *slog.Logger
}

// Service is every administration operation, with its validation.
type Service struct {
	st  *store.Store
	reg *connectors.Registry
	run ChannelRunner
	log *slog.Logger
}

// NewService returns a Service over st.
func NewService(st *store.Store, opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, reg: opts.Registry, run: opts.Runner, log: log.With("component", "admin")}
}

// Token prefixes make a leaked credential recognisable (secret scanners,
// logs) and tell agent tokens from API keys at a glance.
const (
	AgentTokenPrefix = "sbt_"
	APIKeyPrefix     = "sbk_"
)

// Errors of the Service, matched with errors.Is. Not-found, duplicate and
// conflict errors wrap store.ErrNotFound, store.ErrDuplicate and
// store.ErrConflict; invalid input is a *FieldError, which matches
// ErrInvalid.
var ErrInvalid = errors.New("admin: invalid input")

// FieldError is input refused by validation; Field names the request
// field (dotted for nested ones, e.g. "secrets.password").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Message returns err's text without the trailing sentinel ("…: store:
// not found"), for people: API error messages and CLI output.
func Message(err error) string {
	msg := err.Error()
	for _, s := range []error{store.ErrNotFound, store.ErrDuplicate, store.ErrConflict, store.ErrInvalid} {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	return msg
}

// notFound restates a store not-found error in the API's words, keeping
// the sentinel; other errors pass through wrapped.
func notFound(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s not found: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// instance checks that the instance exists, so that an operation on a
// missing instance says so instead of returning an empty list.
func (s *Service) instance(ctx context.Context, id string) error {
	if _, err := s.st.Instance(ctx, id); err != nil {
		return notFound(err, "instance %q", id)
	}
	return nil
}

// settingsObject checks that raw is one JSON object and returns it
// compacted, the form it is stored in.
func settingsObject(raw json.RawMessage) (string, error) {
	t := strings.TrimSpace(string(raw))
	if t == "" {
		return "{}", nil
	}
	var obj map[string]json.RawMessage
	if !strings.HasPrefix(t, "{") || json.Unmarshal([]byte(t), &obj) != nil {
		return "", invalid("settings", "must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(t)); err != nil {
		return "", invalid("settings", "must be a JSON object")
	}
	return b.String(), nil
}
