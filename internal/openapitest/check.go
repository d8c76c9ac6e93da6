package openapitest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Route is one entry of the route table a handler's mux is built from.
type Route struct {
	Method  string
	Pattern string // both the ServeMux pattern and the OpenAPI path template
	Op      string // the operationId
	Public  bool   // served without credentials
	Query   []string
}

// CheckRoutes walks a route table: every route is in the description
// under the same operationId, with the same security and the same query
// parameters, documents no path parameter its pattern lacks, and every
// described operation is a route. The handler being built from the table
// is what makes this cover the handler.
func (s *Spec) CheckRoutes(t *testing.T, routes []Route) {
	t.Helper()
	paths := s.doc["paths"].(map[string]any)
	served := map[string]bool{}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		if served[key] {
			t.Errorf("route %s registered twice", key)
		}
		served[key] = true
		item, ok := paths[rt.Pattern].(map[string]any)
		if !ok {
			t.Errorf("route %s: path missing from openapi.json", key)
			continue
		}
		node, ok := item[strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("route %s: method missing from openapi.json", key)
			continue
		}
		op := Operation{Path: rt.Pattern, Method: rt.Method, node: node}
		if op.node["operationId"] != rt.Op {
			t.Errorf("route %s: operationId %v in openapi.json, %q in the route table", key, op.node["operationId"], rt.Op)
		}
		if public := op.Public(); public != rt.Public {
			t.Errorf("route %s: public=%v but openapi.json says public=%v", key, rt.Public, public)
		}
		documented := s.Params(t, op, "query")
		if a, b := slices.Sorted(slices.Values(documented)), slices.Sorted(slices.Values(rt.Query)); !slices.Equal(a, b) {
			t.Errorf("route %s: query parameters %v in openapi.json, %v in the route table", key, a, b)
		}
		for _, p := range s.Params(t, op, "path") {
			if !strings.Contains(rt.Pattern, "{"+p+"}") {
				t.Errorf("route %s: documents path parameter %v it does not have", key, p)
			}
		}
	}
	for _, op := range s.Operations() {
		if !served[op.Method+" "+op.Path] {
			t.Errorf("openapi.json describes %s %s, which the handler does not serve", op.Method, op.Path)
		}
	}
}

// Call is one call a test made to an operation, and its answer.
type Call struct {
	Name   string // what the call tries, for failure messages
	Status int
	Body   []byte
}

// Conformance runs a subtest for each described operation, named by its
// operationId: probe makes the calls to the operation (how to reach the
// handler, with what credentials and fixtures, is the caller's) and
// CheckCalls judges them.
func (s *Spec) Conformance(t *testing.T, probe func(t *testing.T, op Operation) []Call) {
	t.Helper()
	for _, op := range s.Operations() {
		t.Run(op.ID(), func(t *testing.T) {
			s.CheckCalls(t, op, probe(t, op))
		})
	}
}

// CheckCalls judges the calls made to op: each answer must be a
// documented status, with the documented body (none where none is
// documented, else JSON of the documented schema), and each documented
// status must be the answer to one of the calls, so that the description
// promises nothing the tests do not see.
func (s *Spec) CheckCalls(t *testing.T, op Operation, calls []Call) {
	t.Helper()
	responses := op.node["responses"].(map[string]any)
	seen := map[int]bool{}
	for _, c := range calls {
		seen[c.Status] = true
		r, ok := responses[strconv.Itoa(c.Status)]
		if !ok {
			t.Errorf("%s: status %d is not documented (documented: %v): %s", c.Name, c.Status, op.documented(t), c.Body)
			continue
		}
		media, hasContent := s.resolve(t, r)["content"].(map[string]any)
		if !hasContent {
			if len(c.Body) != 0 {
				t.Errorf("%s: %d is documented without a body, got %s", c.Name, c.Status, c.Body)
			}
			continue
		}
		var body any
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Errorf("%s: %d body is not JSON: %v", c.Name, c.Status, err)
			continue
		}
		schema := media["application/json"].(map[string]any)["schema"]
		for _, msg := range s.Check(t, schema, body, "body") {
			t.Errorf("%s: %d: %s", c.Name, c.Status, msg)
		}
	}
	for _, code := range op.documented(t) {
		if !seen[code] {
			t.Errorf("status %d is documented but no call produced it", code)
		}
	}
}
