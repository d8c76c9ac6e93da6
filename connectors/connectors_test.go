package connectors_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
)

type nop struct{ kind connectors.Kind }

func (n nop) Kind() connectors.Kind                        { return n.kind }
func (n nop) Policy() connectors.Policy                    { return connectors.Policy{} }
func (n nop) Start(context.Context, connectors.Host) error { return nil }
func (n nop) Stop(context.Context) error                   { return nil }
func (n nop) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, nil
}

func TestRegistry(t *testing.T) {
	r := connectors.NewRegistry()
	for _, k := range []connectors.Kind{"webform", "email"} {
		if err := r.Register(k, func(connectors.Config) (connectors.Connector, error) { return nop{k}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Register("email", nil); err == nil {
		t.Error("a kind registered twice was accepted")
	}
	if got := fmt.Sprint(r.Kinds()); got != "[email webform]" {
		t.Errorf("Kinds() = %s", got)
	}
	c, err := r.Build("email", connectors.Config{})
	if err != nil || c.Kind() != "email" {
		t.Fatalf("Build: %v %v", c, err)
	}
	if _, err := r.Build("fax", connectors.Config{}); !errors.Is(err, connectors.ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestClassOf(t *testing.T) {
	cause := errors.New("550 no such user")
	for _, tc := range []struct {
		name string
		err  error
		want connectors.Class
	}{
		{"unclassified counts as retryable, never dropped", errors.New("boom"), connectors.Retryable},
		{"retryable", connectors.NewError(connectors.Retryable, "timeout", "timed out", nil), connectors.Retryable},
		{"permanent", connectors.NewError(connectors.Permanent, "smtp_550", "no such user", cause), connectors.Permanent},
		{"refused, wrapped", fmt.Errorf("send: %w", connectors.NewError(connectors.Refused, "reply_window", "too late", nil)), connectors.Refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := connectors.ClassOf(tc.err); got != tc.want {
				t.Errorf("ClassOf = %v, want %v", got, tc.want)
			}
		})
	}
	e := connectors.NewError(connectors.Permanent, "smtp_550", "no such user", cause)
	if !errors.Is(e, cause) {
		t.Error("the cause is not reachable with errors.Is")
	}
	if e.Error() != "no such user (smtp_550): permanent: 550 no such user" {
		t.Errorf("Error() = %q", e.Error())
	}
}
