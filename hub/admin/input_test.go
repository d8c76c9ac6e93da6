package admin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput: every malformed or refused request gets the precise 4xx,
// a JSON error with a code, and the field when there is one.
func TestBadInput(t *testing.T) {
	e := sqliteEnv(t)
	fx := seed(t, e.svc, "acme")
	disabled := NewHandler(e.svc, "", nil)
	const base = "/admin/v1/instances/acme"
	agent := fmt.Sprintf("%s/agents/%d", base, fx.agent)
	tests := []struct {
		name         string
		h            http.Handler
		method, path string
		body         any
		opts         []reqOpt
		status       int
		code, field  string
	}{
		{name: "broken JSON", method: "POST", path: "/admin/v1/instances", body: `{"id": "x",`, status: 400, code: "invalid_json"},
		{name: "syntax error", method: "POST", path: "/admin/v1/instances", body: `{"id": x}`, status: 400, code: "invalid_json"},
		{name: "array body", method: "POST", path: "/admin/v1/instances", body: `[1, 2]`, status: 400, code: "invalid_json"},
		{name: "empty body", method: "POST", path: "/admin/v1/instances", body: ``, status: 400, code: "invalid_json"},
		{name: "two objects", method: "POST", path: "/admin/v1/instances", body: `{"id": "x", "name": "X"} {}`, status: 400, code: "invalid_json"},
		{name: "unknown field", method: "POST", path: "/admin/v1/instances", body: `{"id": "x", "name": "X", "colour": "red"}`, status: 400, code: "unknown_field", field: "colour"},
		{name: "wrong type", method: "POST", path: "/admin/v1/instances", body: `{"id": 5, "name": "X"}`, status: 400, code: "invalid_type", field: "id"},
		{name: "wrong nested type", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "email", "name": "C", "secrets": {"password": 5}}`, status: 400, code: "invalid_type", field: "secrets"},
		{name: "wrong nullable type", method: "PATCH", path: base + "/channels/" + fx.channel, body: `{"team_id": "one"}`, status: 400, code: "invalid_type", field: "team_id"},
		{name: "email on agent update", method: "PATCH", path: agent, body: `{"email": "new@acme.test"}`, status: 400, code: "unknown_field", field: "email"},
		{name: "oversized body", method: "POST", path: "/admin/v1/instances", body: `{"name": "` + strings.Repeat("a", MaxBodyBytes) + `"}`, status: 413, code: "too_large"},
		{name: "form body", method: "POST", path: "/admin/v1/instances", body: `id=x`, opts: []reqOpt{withHeader("Content-Type", "application/x-www-form-urlencoded")}, status: 415, code: "unsupported_media_type"},
		{name: "no content type", method: "POST", path: "/admin/v1/instances", body: `{}`, opts: []reqOpt{withHeader("Content-Type", "")}, status: 415, code: "unsupported_media_type"},
		{name: "JSON with charset", method: "POST", path: "/admin/v1/instances", body: `{"id": "charset", "name": "X"}`, opts: []reqOpt{withHeader("Content-Type", "application/json; charset=utf-8")}, status: 201},

		{name: "invalid time zone", method: "POST", path: "/admin/v1/instances", body: `{"id": "x", "name": "X", "time_zone": "Mars/Olympus_Mons"}`, status: 422, code: "invalid", field: "time_zone"},
		{name: "local time zone", method: "POST", path: "/admin/v1/instances", body: `{"id": "x", "name": "X", "time_zone": "Local"}`, status: 422, code: "invalid", field: "time_zone"},
		{name: "emptied time zone", method: "PATCH", path: base, body: `{"time_zone": ""}`, status: 422, code: "invalid", field: "time_zone"},
		{name: "bad instance id", method: "POST", path: "/admin/v1/instances", body: `{"id": "Acme Inc", "name": "X"}`, status: 422, code: "invalid", field: "id"},
		{name: "long instance id", method: "POST", path: "/admin/v1/instances", body: `{"id": "` + strings.Repeat("a", 64) + `", "name": "X"}`, status: 422, code: "invalid", field: "id"},
		{name: "missing name", method: "POST", path: "/admin/v1/instances", body: `{"id": "x"}`, status: 422, code: "invalid", field: "name"},
		{name: "blank name", method: "PATCH", path: base, body: `{"name": "   "}`, status: 422, code: "invalid", field: "name"},
		{name: "control character in name", method: "POST", path: base + "/teams", body: `{"name": "a\u0000b"}`, status: 422, code: "invalid", field: "name"},
		{name: "line break in name", method: "PATCH", path: base, body: `{"name": "a\nb"}`, status: 422, code: "invalid", field: "name"},
		{name: "long name", method: "POST", path: base + "/teams", body: `{"name": "` + strings.Repeat("é", 201) + `"}`, status: 422, code: "invalid", field: "name"},
		{name: "bad channel id", method: "POST", path: base + "/channels", body: `{"id": "-x", "kind": "email", "name": "C"}`, status: 422, code: "invalid", field: "id"},
		{name: "unknown kind", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "pigeon", "name": "C"}`, status: 422, code: "invalid", field: "kind"},
		{name: "missing kind", method: "POST", path: base + "/channels", body: `{"id": "c", "name": "C"}`, status: 422, code: "invalid", field: "kind"},
		{name: "settings not an object", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "email", "name": "C", "settings": [1]}`, status: 422, code: "invalid", field: "settings"},
		{name: "settings null", method: "PATCH", path: base + "/channels/" + fx.channel, body: `{"settings": null}`, status: 422, code: "invalid", field: "settings"},
		{name: "settings unknown to the connector", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "strict", "name": "C", "settings": {"address": "a", "port": 1}, "secrets": {"password": "p"}}`, status: 422, code: "invalid", field: "settings"},
		{name: "empty secret", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "email", "name": "C", "secrets": {"password": ""}}`, status: 422, code: "invalid", field: "secrets.password"},
		{name: "bad secret name", method: "POST", path: base + "/channels", body: `{"id": "c", "kind": "email", "name": "C", "secrets": {"pass word": "x"}}`, status: 422, code: "invalid", field: "secrets.pass word"},
		{name: "negative capacity", method: "PATCH", path: agent, body: `{"capacity": -1}`, status: 422, code: "invalid", field: "capacity"},
		{name: "zero capacity on update", method: "PATCH", path: agent, body: `{"capacity": 0}`, status: 422, code: "invalid", field: "capacity"},
		{name: "bad email", method: "POST", path: base + "/agents", body: `{"name": "A", "email": "not-an-address"}`, status: 422, code: "invalid", field: "email"},
		{name: "unknown team", method: "POST", path: base + "/agents", body: `{"name": "A", "email": "a@acme.test", "team_ids": [424242]}`, status: 422, code: "invalid", field: "team_ids"},

		{name: "malformed instance in path", method: "GET", path: "/admin/v1/instances/Not_An_Id", status: 400, code: "bad_id", field: "instance"},
		{name: "malformed channel in path", method: "GET", path: base + "/channels/UPPER", status: 400, code: "bad_id", field: "channel"},
		{name: "malformed agent in path", method: "GET", path: base + "/agents/abc", status: 400, code: "bad_id", field: "agent"},
		{name: "zero agent id", method: "GET", path: base + "/agents/0", status: 400, code: "bad_id", field: "agent"},
		{name: "negative team id", method: "DELETE", path: base + "/teams/-3", status: 400, code: "bad_id", field: "team"},
		{name: "huge key id", method: "DELETE", path: base + "/api-keys/99999999999999999999", status: 400, code: "bad_id", field: "key"},
		{name: "unknown instance", method: "GET", path: "/admin/v1/instances/nope/agents", status: 404, code: "not_found"},

		{name: "no token", method: "GET", path: "/admin/v1/instances", opts: []reqOpt{noAuth}, status: 401, code: "unauthorized"},
		{name: "wrong token", method: "GET", path: "/admin/v1/instances", opts: []reqOpt{withHeader("Authorization", "Bearer "+testToken+"x")}, status: 401, code: "unauthorized"},
		{name: "token prefix", method: "GET", path: "/admin/v1/instances", opts: []reqOpt{withHeader("Authorization", "Bearer "+testToken[:5])}, status: 401, code: "unauthorized"},
		{name: "basic auth", method: "GET", path: "/admin/v1/instances", opts: []reqOpt{withHeader("Authorization", "Basic "+testToken)}, status: 401, code: "unauthorized"},
		{name: "lower-case scheme", method: "GET", path: "/admin/v1/instances", opts: []reqOpt{withHeader("Authorization", "bearer "+testToken)}, status: 200},
		{name: "disabled API", h: disabled, method: "GET", path: "/admin/v1/instances", status: 503, code: "admin_disabled"},
		{name: "disabled API, empty token", h: disabled, method: "GET", path: "/admin/v1/instances", opts: []reqOpt{withHeader("Authorization", "Bearer ")}, status: 503, code: "admin_disabled"},
		{name: "description while disabled", h: disabled, method: "GET", path: "/admin/v1/openapi.json", opts: []reqOpt{noAuth}, status: 200},

		{name: "unknown endpoint", method: "GET", path: "/admin/v1/nothing", status: 404, code: "not_found"},
		{name: "wrong method", method: "PUT", path: "/admin/v1/instances", body: `{}`, status: 405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			h := tt.h
			if h == nil {
				h = e.h
			}
			status, body, hdr := e.doWith(h, tt.method, tt.path, tt.body, tt.opts...)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", hdr.Get("Cache-Control"))
			}
			if tt.code == "" {
				return
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			code, field := errOf(t, body)
			if code != tt.code || field != tt.field {
				t.Errorf("error code %q field %q, want %q %q: %s", code, field, tt.code, tt.field, body)
			}
			switch status {
			case 401:
				if hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 405:
				if hdr.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}
		})
	}
	// Nothing refused above was stored.
	got, err := e.svc.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 { // acme and the charset one
		t.Errorf("instances after bad input: %+v", got)
	}
}

// TestErrorMessagesNameTheProblem spot-checks the words people read.
func TestErrorMessagesNameTheProblem(t *testing.T) {
	e := sqliteEnv(t)
	seed(t, e.svc, "acme")
	for _, tt := range []struct {
		method, path, body string
		want               string
	}{
		{"POST", "/admin/v1/instances", `{"id": "x", "name": "X", "time_zone": "Mars/Olympus_Mons"}`, `time_zone: \"Mars/Olympus_Mons\" is not a known IANA time zone`},
		{"POST", "/admin/v1/instances", `{"id": "x", "nmae": "X"}`, `unknown field \"nmae\"`},
		{"POST", "/admin/v1/instances/acme/channels", `{"id": "c", "kind": "pigeon", "name": "C"}`, `known kinds: claiming, email, livechat, strict`},
		{"POST", "/admin/v1/instances/acme/channels", `{"id": "c", "kind": "strict", "name": "C", "settings": {"adress": "a"}}`, `"message":"settings: json: unknown field \"adress\"","field":"settings"`},
		{"POST", "/admin/v1/instances/acme/channels", `{"id": "acme-web", "kind": "email", "name": "C"}`, `channel \"acme-web\" exists`},
		{"GET", "/admin/v1/instances/acme/channels/nope", ``, `channel \"nope\" in instance \"acme\" not found`},
		{"GET", "/admin/v1/instances/acme/agents/77", ``, `agent 77 in instance \"acme\" not found`},
		{"POST", "/admin/v1/instances", `{"id": "x", "name": "X"}xyz`, `data after the JSON object`},
		{"POST", "/admin/v1/instances", `{"id": 5, "name": "X"}`, `field \"id\" holds a number where a string is expected`},
	} {
		var body any
		if tt.body != "" {
			body = tt.body
		}
		_, b, _ := e.do(tt.method, tt.path, body)
		if !strings.Contains(string(b), tt.want) {
			t.Errorf("%s %s %s: %s, want it to contain %s", tt.method, tt.path, tt.body, b, tt.want)
		}
		if strings.Contains(string(b), "store:") {
			t.Errorf("internal sentinel text leaked: %s", b)
		}
	}
}

// FuzzRequestBodies: whatever the body, the API answers with a 2xx or a
// 4xx JSON error, never a 5xx or a panic.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"id": "c", "kind": "email", "name": "C", "settings": {}, "secrets": {"password": "p"}}`,
		`{"id": "c", "kind": "strict", "name": "C", "settings": {"address": "echo"}, "secrets": {"password": "p"}}`,
		`{"secrets": {"password": null}, "team_id": null, "settings": {"address": "a"}}`,
		`{"team_id": 1e400}`, `{"name": "\u0000"}`, `{"settings": "{}"}`, `[`, `{"id": "c"}{`, "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		// Not testenv.SQLite: a fuzz test's temp dir has a '#' in its name,
		// which store.Open passes into a file: URI unescaped.
		dir, err := os.MkdirTemp("", "sbfuzz")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		e := newEnv(t, "sqlite://"+filepath.Join(dir, "fuzz.db"))
		fx := seed(t, e.svc, "acme")
		for _, r := range []struct{ method, path string }{
			{"POST", "/admin/v1/instances"},
			{"PATCH", "/admin/v1/instances/acme"},
			{"POST", "/admin/v1/instances/acme/channels"},
			{"PATCH", "/admin/v1/instances/acme/channels/" + fx.channel},
			{"POST", "/admin/v1/instances/acme/agents"},
			{"PATCH", fmt.Sprintf("/admin/v1/instances/acme/agents/%d", fx.agent)},
		} {
			status, b, _ := e.do(r.method, r.path, body)
			if status >= 500 || status < 200 {
				t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, status, b)
			}
			if status >= 400 {
				errOf(t, b)
			}
		}
	})
}
