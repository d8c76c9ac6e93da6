package admin

import (
	"context"
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

	"github.com/switchboard-hub/switchboard/hub/store"
)

// The OpenAPI description is kept true by this file: every route of the
// handler is described, every described operation is served, and each
// operation, called for real, answers exactly the documented status codes
// with bodies of the documented shape.

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

// operation is one path+method of the description.
type operation struct {
	path, method string
	node         map[string]any
}

func (doc spec) operations(t *testing.T) []operation {
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
func (op operation) documented() []int {
	var out []int
	for code := range op.node["responses"].(map[string]any) {
		n, err := strconv.Atoi(code)
		if err != nil {
			panic("response code " + code)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// example returns the named request example ("valid" or "invalid").
func (doc spec) example(t *testing.T, op operation, name string) (any, bool) {
	rb, ok := op.node["requestBody"].(map[string]any)
	if !ok {
		return nil, false
	}
	media := rb["content"].(map[string]any)["application/json"].(map[string]any)
	ex, ok := media["examples"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("%s %s: request body has no %q example", op.method, op.path, name)
	}
	return ex["value"], true
}

func (doc spec) requestSchema(t *testing.T, op operation) any {
	rb := op.node["requestBody"].(map[string]any)
	return rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
}

// check validates v against a schema: types (3.1 type lists for null),
// required and documented properties (additionalProperties false means no
// others), array items, and date-time strings. Constraints such as
// patterns and lengths are the Service's to enforce, and tested there.
func (doc spec) check(t *testing.T, schema any, v any, at string) []string {
	s := doc.resolve(t, schema)
	var errs []string
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
// every route must be in the description under the same operationId and
// with the same security, and every described operation must be a route.
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
		if node["operationId"] != rt.op {
			t.Errorf("route %s: operationId %v in openapi.json, %q in the route table", key, node["operationId"], rt.op)
		}
		sec, hasSec := node["security"].([]any)
		if public := hasSec && len(sec) == 0; public != rt.public {
			t.Errorf("route %s: public=%v but openapi.json says public=%v", key, rt.public, public)
		}
	}
	for _, op := range doc.operations(t) {
		if !served[op.method+" "+op.path] {
			t.Errorf("openapi.json describes %s %s, which the handler does not serve", op.method, op.path)
		}
	}
}

// call is one call made to an operation and its answer.
type call struct {
	name   string
	status int
	body   []byte
}

// TestOpenAPIDescribesHandler calls every described operation for real:
// with its examples, without and with a wrong token, with the API
// disabled, with malformed and unknown ids, with broken, unknown-field,
// oversized and non-JSON bodies, and in the conflicts it documents. Every
// answer must be a documented status with a body of the documented shape,
// and every documented status must be produced by one of the calls.
func TestOpenAPIDescribesHandler(t *testing.T) {
	doc := loadSpec(t)
	e := sqliteEnv(t)
	disabled := NewHandler(e.svc, "", nil)
	ctx := context.Background()

	for n, op := range doc.operations(t) {
		name := op.node["operationId"].(string)
		t.Run(name, func(t *testing.T) {
			e.t = t
			fx := seed(t, e.svc, fmt.Sprintf("op-%d", n))
			public := op.node["security"] != nil
			params := map[string]string{
				"instance": fx.inst, "channel": fx.channel,
				"team": fmt.Sprint(fx.team), "agent": fmt.Sprint(fx.agent), "key": fmt.Sprint(fx.key),
			}
			var last string // the last path parameter: the one bad-id probes spoil
			for p := range params {
				if i := strings.LastIndex(op.path, "{"+p+"}"); i >= 0 && (last == "" || i > strings.LastIndex(op.path, "{"+last+"}")) {
					last = p
				}
			}
			path := func(spoil string) string {
				out := op.path
				for p, v := range params {
					if p == last && spoil != "" {
						v = spoil
					}
					out = strings.ReplaceAll(out, "{"+p+"}", v)
				}
				return out
			}
			var probes []call
			do := func(name string, h http.Handler, p string, body any, opts ...reqOpt) {
				status, b, _ := e.doWith(h, op.method, p, body, opts...)
				probes = append(probes, call{name, status, b})
			}

			valid, hasBody := doc.example(t, op, "valid")
			if hasBody {
				if errs := doc.check(t, doc.requestSchema(t, op), valid, "example"); len(errs) > 0 {
					t.Errorf("the valid request example does not match its schema: %v", errs)
				}
			}
			do("example", e.h, path(""), valid)
			if got := probes[0].status; got < 200 || got > 299 {
				t.Errorf("the documented example got %d: %s", got, probes[0].body)
			}
			if hasBody && op.method == "POST" {
				do("example again", e.h, path(""), valid)
			}
			if hasBody {
				invalid, _ := doc.example(t, op, "invalid")
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
				do("channel with tickets", e.h, strings.NewReplacer("{instance}", fx2.inst, "{channel}", fx2.channel).Replace(op.path), nil)
			case "deleteTeam":
				fx2 := seed(t, e.svc, fmt.Sprintf("op-%d-b", n))
				if _, err := e.svc.UpdateChannel(ctx, fx2.inst, fx2.channel, ChannelUpdate{TeamID: Some(fx2.team)}); err != nil {
					t.Fatal(err)
				}
				do("team a channel routes to", e.h, strings.NewReplacer("{instance}", fx2.inst, "{team}", fmt.Sprint(fx2.team)).Replace(op.path), nil)
			case "enableChannel":
				// A channel whose connector is no longer in the build.
				if err := e.st.CreateChannel(ctx, &store.Channel{ID: fx.inst + "-old", InstanceID: fx.inst, Kind: "retired", Name: "Old"}); err != nil {
					t.Fatal(err)
				}
				do("retired kind", e.h, strings.NewReplacer("{instance}", fx.inst, "{channel}", fx.inst+"-old").Replace(op.path), nil)
			}

			responses := op.node["responses"].(map[string]any)
			seen := map[int]bool{}
			for _, p := range probes {
				seen[p.status] = true
				r, ok := responses[strconv.Itoa(p.status)]
				if !ok {
					t.Errorf("%s: status %d is not documented (documented: %v): %s", p.name, p.status, op.documented(), p.body)
					continue
				}
				media, hasContent := doc.resolve(t, r)["content"].(map[string]any)
				if !hasContent {
					if len(p.body) != 0 {
						t.Errorf("%s: %d is documented without a body, got %s", p.name, p.status, p.body)
					}
					continue
				}
				var body any
				if err := json.Unmarshal(p.body, &body); err != nil {
					t.Errorf("%s: %d body is not JSON: %v", p.name, p.status, err)
					continue
				}
				schema := media["application/json"].(map[string]any)["schema"]
				for _, msg := range doc.check(t, schema, body, "body") {
					t.Errorf("%s: %d: %s", p.name, p.status, msg)
				}
			}
			for _, code := range op.documented() {
				if !seen[code] {
					t.Errorf("status %d is documented but no call produced it", code)
				}
			}
		})
	}
}
