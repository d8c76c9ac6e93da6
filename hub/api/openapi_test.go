package api

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/openapitest"
)

// The OpenAPI description is kept true by this file: every route of the
// handler is described with its query parameters, every described
// operation is served, and each operation, called for real, answers only
// documented status codes with bodies of the documented shape, and every
// documented status code is answered by one of the calls. The checking is
// internal/openapitest's, shared with the admin API; the calls are this
// package's.

// TestRoutesAreDescribed walks the route table the mux is built from:
// every route is in the description under the same operationId, with the
// same security and the same query parameters, and every described
// operation is a route.
func TestRoutesAreDescribed(t *testing.T) {
	var routes []openapitest.Route
	for _, rt := range routeTable() {
		routes = append(routes, openapitest.Route{Method: rt.method, Pattern: rt.pattern, Op: rt.op, Public: rt.public, Query: rt.query})
	}
	openapitest.Load(t, OpenAPI()).CheckRoutes(t, routes)
}

// TestOpenAPIDescribesHandler calls every described operation for real, on
// both databases: with each of its examples and each query parameter,
// without and with a wrong key, with malformed, unknown and another
// instance's ids, with bad query parameters, and with broken,
// unknown-field, oversized and non-JSON bodies. Every answer must be a
// documented status with a body of the documented shape, and every
// documented status must be produced by one of the calls.
func TestOpenAPIDescribesHandler(t *testing.T) {
	doc := openapitest.Load(t, OpenAPI())
	// validQuery is a valid value of each documented query parameter.
	validQuery := map[string]string{
		"status": "new,open", "query": "parcel", "assignee": "none", "before": "999999", "limit": "5", "after": "1",
	}
	eachDatabase(t, func(t *testing.T, e *env) {
		theirs := e.conversation(e.glob.channel, "zed", "globex's")
		doc.Conformance(t, func(t *testing.T, op openapitest.Operation) []openapitest.Call {
			e.t = t
			mine := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
			public := op.Public()
			path := func(ticket string) string { return strings.ReplaceAll(op.Path, "{ticket}", ticket) }
			hasTicket := strings.Contains(op.Path, "{ticket}")
			var calls []openapitest.Call
			do := func(name, key, p string, body any, opts ...reqOpt) {
				r := e.do(key, op.Method, p, body, opts...)
				calls = append(calls, openapitest.Call{Name: name, Status: r.status, Body: r.body})
			}

			examples := op.Examples()
			valid := examples["valid"]
			if op.HasBody() {
				if valid == nil || examples["invalid"] == nil {
					t.Fatalf("the request body needs a \"valid\" and an \"invalid\" example")
				}
			}
			self := path(strconv.FormatInt(mine, 10))
			do("valid example", e.acme.key, self, valid)
			if got := calls[0].Status; got < 200 || got > 299 {
				t.Errorf("the valid example got %d: %s", got, calls[0].Body)
			}
			for name, ex := range examples {
				if errs := doc.CheckRequest(t, op, ex, "example "+name); name != "invalid" && len(errs) > 0 {
					t.Errorf("example %q does not match the request schema: %v", name, errs)
				}
				switch name {
				case "valid":
					do("valid example again", e.acme.key, self, ex)
				case "invalid":
					do("invalid example", e.acme.key, self, ex)
				default:
					do("example "+name, e.acme.key, self, ex)
					if c := calls[len(calls)-1]; c.Status < 200 || c.Status > 299 {
						t.Errorf("example %q got %d: %s", name, c.Status, c.Body)
					}
				}
			}
			for _, name := range doc.Params(t, op, "query") {
				v, ok := validQuery[name]
				if !ok {
					t.Fatalf("no valid value for query parameter %q in validQuery", name)
				}
				do("query "+name, e.acme.key, self+"?"+name+"="+v, valid)
				if c := calls[len(calls)-1]; c.Status != http.StatusOK {
					t.Errorf("query %s=%s got %d: %s", name, v, c.Status, c.Body)
				}
				do("bad "+name, e.acme.key, self+"?"+name+"=-", valid)
			}
			if !public {
				do("unknown query parameter", e.acme.key, self+"?no_such_parameter=1", valid)
			}
			if op.HasBody() {
				do("broken JSON", e.acme.key, self, `{"text": `)
				do("unknown field", e.acme.key, self, `{"no_such_field": 1}`)
				do("not JSON", e.acme.key, self, "text=hi", withHeader("Content-Type", "application/x-www-form-urlencoded"))
				do("oversized", e.acme.key, self, `{"text": "`+strings.Repeat("x", MaxBodyBytes)+`"}`)
			}
			if hasTicket {
				do("malformed id", e.acme.key, path("abc"), valid)
				do("unknown id", e.acme.key, path("987654321"), valid)
				do("another instance's id", e.acme.key, path(strconv.FormatInt(theirs, 10)), valid)
			}
			if !public {
				do("no key", "", self, valid)
				do("revoked key", e.acme.revoked, self, valid)
			}

			return calls
		})
		e.t = t
	})
}
