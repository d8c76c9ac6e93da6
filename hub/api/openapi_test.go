package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The OpenAPI description is kept true by this file: every route of the
// handler is described with its query parameters, every described
// operation is served, and each operation, called for real, answers only
// documented status codes with bodies of the documented shape, and every
// documented status code is answered by one of the calls. (The admin API
// is kept true the same way; the checker is this package's own.)

type spec map[string]any

func loadSpec(t *testing.T) spec {
	t.Helper()
	var doc spec
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v, want 3.1.0", doc["openapi"])
	}
	return doc
}

// resolve follows a local $ref ("#/components/...").
func (doc spec) resolve(t *testing.T, node any) map[string]any {
	t.Helper()
	m, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %v", node)
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = map[string]any(doc)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[part]
		if !ok {
			t.Fatalf("dangling $ref %s", ref)
		}
		cur = next
	}
	return doc.resolve(t, cur)
}

// operation is one path and method of the description.
type operation struct {
	path, method string
	node         map[string]any
}

func (op operation) id() string { return op.node["operationId"].(string) }

func (doc spec) operations() []operation {
	var out []operation
	for path, item := range doc["paths"].(map[string]any) {
		for method, node := range item.(map[string]any) {
			out = append(out, operation{path: path, method: strings.ToUpper(method), node: node.(map[string]any)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// documented returns the operation's documented status codes.
func (op operation) documented(t *testing.T) []int {
	var out []int
	for code := range op.node["responses"].(map[string]any) {
		n, err := strconv.Atoi(code)
		if err != nil {
			t.Fatalf("%s: response %q is not a status code", op.id(), code)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// params returns the operation's parameters of one location ("path",
// "query").
func (doc spec) params(t *testing.T, op operation, in string) []map[string]any {
	var out []map[string]any
	ps, _ := op.node["parameters"].([]any)
	for _, p := range ps {
		if m := doc.resolve(t, p); m["in"] == in {
			out = append(out, m)
		}
	}
	return out
}

// examples returns the request body's examples by name.
func (op operation) examples() map[string]any {
	rb, ok := op.node["requestBody"].(map[string]any)
	if !ok {
		return nil
	}
	media := rb["content"].(map[string]any)["application/json"].(map[string]any)
	out := map[string]any{}
	for name, ex := range media["examples"].(map[string]any) {
		out[name] = ex.(map[string]any)["value"]
	}
	return out
}

func (op operation) requestSchema() any {
	rb := op.node["requestBody"].(map[string]any)
	return rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
}

// check validates v against a schema: types (3.1 type lists for null),
// oneOf, enums, required and documented properties (additionalProperties
// false means no others), array items, and date-time strings.
func (doc spec) check(t *testing.T, schema any, v any, at string) []string {
	s := doc.resolve(t, schema)
	if alts, ok := s["oneOf"].([]any); ok {
		var all []string
		for _, alt := range alts {
			errs := doc.check(t, alt, v, at)
			if len(errs) == 0 {
				return nil
			}
			all = append(all, errs...)
		}
		return []string{fmt.Sprintf("%s: matches no alternative of oneOf: %v", at, all)}
	}
	if ty, ok := s["type"]; ok {
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
	if enum, ok := s["enum"].([]any); ok && v != nil && !slices.Contains(enum, v) {
		return []string{fmt.Sprintf("%s: %v is not one of %v", at, v, enum)}
	}
	var errs []string
	switch x := v.(type) {
	case string:
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, x))
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range x {
				errs = append(errs, doc.check(t, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := x[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: documented property %q is missing", at, r))
			}
		}
		for k, e := range x {
			if p, ok := props[k]; ok {
				errs = append(errs, doc.check(t, p, e, at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: property %q is not documented", at, k))
				}
			case map[string]any:
				errs = append(errs, doc.check(t, ap, e, at+"."+k)...)
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

// TestRoutesAreDescribed walks the route table the mux is built from:
// every route is in the description under the same operationId, with the
// same security and the same query parameters, and every described
// operation is a route.
func TestRoutesAreDescribed(t *testing.T) {
	doc := loadSpec(t)
	paths := doc["paths"].(map[string]any)
	served := map[string]bool{}
	for _, rt := range routeTable() {
		key := rt.method + " " + rt.pattern
		if served[key] {
			t.Errorf("route %s registered twice", key)
		}
		served[key] = true
		item, ok := paths[rt.pattern].(map[string]any)
		if !ok {
			t.Errorf("route %s: path missing from openapi.json", key)
			continue
		}
		node, ok := item[strings.ToLower(rt.method)].(map[string]any)
		if !ok {
			t.Errorf("route %s: method missing from openapi.json", key)
			continue
		}
		op := operation{path: rt.pattern, method: rt.method, node: node}
		if op.id() != rt.op {
			t.Errorf("route %s: operationId %v in openapi.json, %q in the route table", key, op.id(), rt.op)
		}
		sec, hasSec := node["security"].([]any)
		if public := hasSec && len(sec) == 0; public != rt.public {
			t.Errorf("route %s: public=%v but openapi.json says public=%v", key, rt.public, public)
		}
		var documented []string
		for _, p := range doc.params(t, op, "query") {
			documented = append(documented, p["name"].(string))
		}
		if a, b := slices.Sorted(slices.Values(documented)), slices.Sorted(slices.Values(rt.query)); !slices.Equal(a, b) {
			t.Errorf("route %s: query parameters %v in openapi.json, %v in the route table", key, a, b)
		}
		for _, p := range doc.params(t, op, "path") {
			if !strings.Contains(rt.pattern, "{"+p["name"].(string)+"}") {
				t.Errorf("route %s: documents path parameter %v it does not have", key, p["name"])
			}
		}
	}
	for _, op := range doc.operations() {
		if !served[op.method+" "+op.path] {
			t.Errorf("openapi.json describes %s %s, which the handler does not serve", op.method, op.path)
		}
	}
}

// call is one call made to an operation and its answer.
type call struct {
	name string
	r    response
}

// TestOpenAPIDescribesHandler calls every described operation for real, on
// both databases: with each of its examples and each query parameter,
// without and with a wrong key, with malformed, unknown and another
// instance's ids, with bad query parameters, and with broken,
// unknown-field, oversized and non-JSON bodies. Every answer must be a
// documented status with a body of the documented shape, and every
// documented status must be produced by one of the calls.
func TestOpenAPIDescribesHandler(t *testing.T) {
	doc := loadSpec(t)
	// validQuery is a valid value of each documented query parameter.
	validQuery := map[string]string{
		"status": "new,open", "query": "parcel", "assignee": "none", "before": "999999", "limit": "5", "after": "1",
	}
	eachDatabase(t, func(t *testing.T, e *env) {
		theirs := e.conversation(e.glob.channel, "zed", "globex's")
		for _, op := range doc.operations() {
			t.Run(op.id(), func(t *testing.T) {
				e.t = t
				mine := e.conversation(e.acme.channel, "alice", "Where is my parcel?")
				public := op.node["security"] != nil
				path := func(ticket string) string { return strings.ReplaceAll(op.path, "{ticket}", ticket) }
				hasTicket := strings.Contains(op.path, "{ticket}")
				var calls []call
				do := func(name, key, p string, body any, opts ...reqOpt) {
					calls = append(calls, call{name, e.do(key, op.method, p, body, opts...)})
				}

				examples := op.examples()
				valid := examples["valid"]
				if op.node["requestBody"] != nil {
					if valid == nil || examples["invalid"] == nil {
						t.Fatalf("the request body needs a \"valid\" and an \"invalid\" example")
					}
				}
				self := path(strconv.FormatInt(mine, 10))
				do("valid example", e.acme.key, self, valid)
				if got := calls[0].r.status; got < 200 || got > 299 {
					t.Errorf("the valid example got %d: %s", got, calls[0].r.body)
				}
				for name, ex := range examples {
					if errs := doc.check(t, op.requestSchema(), ex, "example "+name); name != "invalid" && len(errs) > 0 {
						t.Errorf("example %q does not match the request schema: %v", name, errs)
					}
					switch name {
					case "valid":
						do("valid example again", e.acme.key, self, ex)
					case "invalid":
						do("invalid example", e.acme.key, self, ex)
					default:
						do("example "+name, e.acme.key, self, ex)
						if r := calls[len(calls)-1].r; r.status < 200 || r.status > 299 {
							t.Errorf("example %q got %d: %s", name, r.status, r.body)
						}
					}
				}
				for _, p := range doc.params(t, op, "query") {
					name := p["name"].(string)
					v, ok := validQuery[name]
					if !ok {
						t.Fatalf("no valid value for query parameter %q in validQuery", name)
					}
					do("query "+name, e.acme.key, self+"?"+name+"="+v, valid)
					if r := calls[len(calls)-1].r; r.status != http.StatusOK {
						t.Errorf("query %s=%s got %d: %s", name, v, r.status, r.body)
					}
					do("bad "+name, e.acme.key, self+"?"+name+"=-", valid)
				}
				if !public {
					do("unknown query parameter", e.acme.key, self+"?no_such_parameter=1", valid)
				}
				if op.node["requestBody"] != nil {
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

				responses := op.node["responses"].(map[string]any)
				seen := map[int]bool{}
				for _, c := range calls {
					seen[c.r.status] = true
					rn, ok := responses[strconv.Itoa(c.r.status)]
					if !ok {
						t.Errorf("%s: status %d is not documented (documented: %v): %s", c.name, c.r.status, op.documented(t), c.r.body)
						continue
					}
					media := doc.resolve(t, rn)["content"].(map[string]any)["application/json"].(map[string]any)
					var body any
					if err := json.Unmarshal(c.r.body, &body); err != nil {
						t.Errorf("%s: %d body is not JSON: %v", c.name, c.r.status, err)
						continue
					}
					for _, msg := range doc.check(t, media["schema"], body, "body") {
						t.Errorf("%s: %d: %s", c.name, c.r.status, msg)
					}
				}
				for _, code := range op.documented(t) {
					if !seen[code] {
						t.Errorf("status %d is documented but no call produced it", code)
					}
				}
			})
		}
		e.t = t
	})
}
