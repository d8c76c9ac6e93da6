// Package openapitest keeps a hand-written OpenAPI 3.1 description true to
// the handler it describes. It walks the description's operations, checks
// a route table against them, validates JSON values against their
// schemas, and judges the calls a test made to an operation: every answer
// must be a documented status with a body of the documented shape, and
// every documented status must have been answered.
//
// The admin API (hub/admin) and the integrations API (hub/api) are both
// kept true by it. What differs between them stays in their tests: the
// description, the route table, and how an operation is called (fixtures,
// credentials, bad input). It imports "testing" and is meant to be
// imported from _test.go files only.
package openapitest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Spec is a parsed OpenAPI description.
type Spec struct {
	doc map[string]any
}

// Load parses an OpenAPI 3.1.0 description, failing the test when it is
// not one.
func Load(t testing.TB, raw []byte) *Spec {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v, want 3.1.0", doc["openapi"])
	}
	return &Spec{doc: doc}
}

// resolve follows a local $ref ("#/components/...").
func (s *Spec) resolve(t testing.TB, node any) map[string]any {
	t.Helper()
	m, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %v", node)
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = s.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[part]
		if !ok {
			t.Fatalf("dangling $ref %s", ref)
		}
		cur = next
	}
	return s.resolve(t, cur)
}

// Operation is one path and method of the description.
type Operation struct {
	Path   string // the path template, e.g. "/api/v1/tickets/{ticket}"
	Method string // upper case
	node   map[string]any
}

// ID returns the operationId.
func (op Operation) ID() string { return op.node["operationId"].(string) }

// Public reports whether the operation declares an empty security list,
// which is OpenAPI's way to say it needs no credentials.
func (op Operation) Public() bool {
	sec, ok := op.node["security"].([]any)
	return ok && len(sec) == 0
}

// HasBody reports whether the operation takes a request body.
func (op Operation) HasBody() bool { return op.node["requestBody"] != nil }

// Operations returns every operation, sorted by path and method so that
// subtests (and the fixtures they make) come in a stable order.
func (s *Spec) Operations() []Operation {
	var out []Operation
	for path, item := range s.doc["paths"].(map[string]any) {
		for method, node := range item.(map[string]any) {
			out = append(out, Operation{Path: path, Method: strings.ToUpper(method), node: node.(map[string]any)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Method < out[j].Path+out[j].Method })
	return out
}

// documented returns the operation's documented status codes.
func (op Operation) documented(t testing.TB) []int {
	var out []int
	for code := range op.node["responses"].(map[string]any) {
		n, err := strconv.Atoi(code)
		if err != nil {
			t.Fatalf("%s: response %q is not a status code", op.ID(), code)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Params returns the names of the operation's parameters in one location
// ("path", "query").
func (s *Spec) Params(t testing.TB, op Operation, in string) []string {
	var out []string
	ps, _ := op.node["parameters"].([]any)
	for _, p := range ps {
		if m := s.resolve(t, p); m["in"] == in {
			out = append(out, m["name"].(string))
		}
	}
	return out
}

// Examples returns the request body's examples by name; nil when the
// operation takes no body.
func (op Operation) Examples() map[string]any {
	media, ok := op.requestMedia()
	if !ok {
		return nil
	}
	out := map[string]any{}
	for name, ex := range media["examples"].(map[string]any) {
		out[name] = ex.(map[string]any)["value"]
	}
	return out
}

// Example returns the named request body example, and false when the
// operation takes no body. A body without that example fails the test.
func (op Operation) Example(t testing.TB, name string) (any, bool) {
	t.Helper()
	ex := op.Examples()
	if ex == nil {
		return nil, false
	}
	v, ok := ex[name]
	if !ok {
		t.Fatalf("%s %s: request body has no %q example", op.Method, op.Path, name)
	}
	return v, true
}

func (op Operation) requestMedia() (map[string]any, bool) {
	rb, ok := op.node["requestBody"].(map[string]any)
	if !ok {
		return nil, false
	}
	return rb["content"].(map[string]any)["application/json"].(map[string]any), true
}

// CheckRequest validates v against the operation's request body schema;
// see Check.
func (s *Spec) CheckRequest(t testing.TB, op Operation, v any, at string) []string {
	media, ok := op.requestMedia()
	if !ok {
		t.Fatalf("%s %s takes no request body", op.Method, op.Path)
	}
	return s.Check(t, media["schema"], v, at)
}

// Check validates v, decoded from JSON, against a schema and returns what
// is wrong, each prefixed with where (at). It checks types (3.1 type
// lists for null), oneOf, enums, required and documented properties
// (additionalProperties false means no others), array items, and
// date-time strings. Constraints such as patterns and lengths are the
// handlers' to enforce, and tested with them.
func (s *Spec) Check(t testing.TB, schema any, v any, at string) []string {
	sc := s.resolve(t, schema)
	if alts, ok := sc["oneOf"].([]any); ok {
		var all []string
		for _, alt := range alts {
			errs := s.Check(t, alt, v, at)
			if len(errs) == 0 {
				return nil
			}
			all = append(all, errs...)
		}
		return []string{fmt.Sprintf("%s: matches no alternative of oneOf: %v", at, all)}
	}
	if ty, ok := sc["type"]; ok {
		var types []string
		switch x := ty.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, y := range x {
				types = append(types, y.(string))
			}
		}
		if got := jsonKind(v); !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			return []string{fmt.Sprintf("%s: %s, documented %v", at, got, types)}
		}
	}
	if enum, ok := sc["enum"].([]any); ok && v != nil && !slices.Contains(enum, v) {
		return []string{fmt.Sprintf("%s: %v is not one of %v", at, v, enum)}
	}
	var errs []string
	switch x := v.(type) {
	case string:
		if sc["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, x))
			}
		}
	case []any:
		if items, ok := sc["items"]; ok {
			for i, e := range x {
				errs = append(errs, s.Check(t, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case map[string]any:
		props, _ := sc["properties"].(map[string]any)
		for _, r := range asStrings(sc["required"]) {
			if _, ok := x[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: documented property %q is missing", at, r))
			}
		}
		for k, e := range x {
			if p, ok := props[k]; ok {
				errs = append(errs, s.Check(t, p, e, at+"."+k)...)
				continue
			}
			switch ap := sc["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: property %q is not documented", at, k))
				}
			case map[string]any:
				errs = append(errs, s.Check(t, ap, e, at+"."+k)...)
			}
		}
	}
	return errs
}

func asStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
