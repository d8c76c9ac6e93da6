package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/openapitest"
)

// The OpenAPI description is kept true by this file: every route of the
// handler is described, every described operation is served, and each
// operation, called for real, answers exactly the documented status codes
// with bodies of the documented shape. The checking is
// internal/openapitest's; the calls are this package's.

// TestRoutesAreDescribed walks the route table the mux is built from:
// every route must be in the description under the same operationId and
// with the same security, and every described operation must be a route.
func TestRoutesAreDescribed(t *testing.T) {
	var routes []openapitest.Route
	for _, rt := range routeTable() {
		routes = append(routes, openapitest.Route{Method: rt.method, Pattern: rt.pattern, Op: rt.op, Public: rt.public})
	}
	openapitest.Load(t, OpenAPI()).CheckRoutes(t, routes)
}

// TestOpenAPIDescribesHandler calls every described operation for real:
// with its examples, without and with a wrong token, with the API
// disabled, with malformed and unknown ids, with broken, unknown-field,
// oversized and non-JSON bodies, and in the conflicts it documents. Every
// answer must be a documented status with a body of the documented shape,
// and every documented status must be produced by one of the calls.
func TestOpenAPIDescribesHandler(t *testing.T) {
	doc := openapitest.Load(t, OpenAPI())
	e := sqliteEnv(t)
	disabled := NewHandler(e.svc, "", nil)
	ctx := context.Background()

	n := -1 // the operation's index, which keeps each one's fixtures apart
	doc.Conformance(t, func(t *testing.T, op openapitest.Operation) []openapitest.Call {
		n++
		name := op.ID()
		e.t = t
		fx := seed(t, e.svc, fmt.Sprintf("op-%d", n))
		public := op.Public()
		params := map[string]string{
			"instance": fx.inst, "channel": fx.channel,
			"team": fmt.Sprint(fx.team), "agent": fmt.Sprint(fx.agent), "key": fmt.Sprint(fx.key),
		}
		var last string // the last path parameter: the one bad-id probes spoil
		for p := range params {
			if i := strings.LastIndex(op.Path, "{"+p+"}"); i >= 0 && (last == "" || i > strings.LastIndex(op.Path, "{"+last+"}")) {
				last = p
			}
		}
		path := func(spoil string) string {
			out := op.Path
			for p, v := range params {
				if p == last && spoil != "" {
					v = spoil
				}
				out = strings.ReplaceAll(out, "{"+p+"}", v)
			}
			return out
		}
		var probes []openapitest.Call
		do := func(name string, h http.Handler, p string, body any, opts ...reqOpt) {
			status, b, _ := e.doWith(h, op.Method, p, body, opts...)
			probes = append(probes, openapitest.Call{Name: name, Status: status, Body: b})
		}

		valid, hasBody := op.Example(t, "valid")
		if hasBody {
			if errs := doc.CheckRequest(t, op, valid, "example"); len(errs) > 0 {
				t.Errorf("the valid request example does not match its schema: %v", errs)
			}
		}
		do("example", e.h, path(""), valid)
		if got := probes[0].Status; got < 200 || got > 299 {
			t.Errorf("the documented example got %d: %s", got, probes[0].Body)
		}
		if hasBody && op.Method == "POST" {
			do("example again", e.h, path(""), valid)
		}
		if hasBody {
			invalid, _ := op.Example(t, "invalid")
			do("invalid example", e.h, path(""), invalid)
			do("broken JSON", e.h, path(""), `{"name": `)
			do("unknown field", e.h, path(""), `{"no_such_field": 1}`)
			do("not JSON", e.h, path(""), "name=x", withHeader("Content-Type", "application/x-www-form-urlencoded"))
			do("oversized", e.h, path(""), `{"name": "`+strings.Repeat("x", MaxBodyBytes)+`"}`)
		}
		if last != "" {
			bad, missing := "Not_An_Id", "missing-thing"
			if last != "instance" && last != "channel" {
				bad, missing = "abc", "999999999"
			}
			do("malformed id", e.h, path(bad), valid)
			do("unknown id", e.h, path(missing), valid)
		}
		if !public {
			do("no token", e.h, path(""), valid, noAuth)
			do("wrong token", e.h, path(""), valid, withHeader("Authorization", "Bearer not-the-token"))
			do("API disabled", disabled, path(""), valid)
		}
		// The conflicts documented for operations without a body.
		switch name {
		case "deleteChannel":
			fx2 := seed(t, e.svc, fmt.Sprintf("op-%d-b", n))
			if _, err := e.st.Ingest(ctx, &store.InboundRecord{InstanceID: fx2.inst, ChannelID: fx2.channel, ExternalID: "m1",
				Contact: store.ContactInput{ExternalID: "c1"}, Text: "hello"}); err != nil {
				t.Fatal(err)
			}
			do("channel with tickets", e.h, strings.NewReplacer("{instance}", fx2.inst, "{channel}", fx2.channel).Replace(op.Path), nil)
		case "deleteTeam":
			fx2 := seed(t, e.svc, fmt.Sprintf("op-%d-b", n))
			if _, err := e.svc.UpdateChannel(ctx, fx2.inst, fx2.channel, ChannelUpdate{TeamID: Some(fx2.team)}); err != nil {
				t.Fatal(err)
			}
			do("team a channel routes to", e.h, strings.NewReplacer("{instance}", fx2.inst, "{team}", fmt.Sprint(fx2.team)).Replace(op.Path), nil)
		case "enableChannel":
			// A channel whose connector is no longer in the build.
			if err := e.st.CreateChannel(ctx, &store.Channel{ID: fx.inst + "-old", InstanceID: fx.inst, Kind: "retired", Name: "Old"}); err != nil {
				t.Fatal(err)
			}
			do("retired kind", e.h, strings.NewReplacer("{instance}", fx.inst, "{channel}", fx.inst+"-old").Replace(op.Path), nil)
		}

		return probes
	})
}
