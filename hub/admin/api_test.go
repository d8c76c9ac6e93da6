package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// step is one request of a scenario; "{name}" in the path or as a body
// value is filled from what earlier steps saved.
type step struct {
	name   string
	method string
	path   string
	body   any
	want   int
	check  func(t *testing.T, body map[string]any, vars map[string]string)
}

func run(t *testing.T, e *env, steps []step) {
	t.Helper()
	vars := map[string]string{}
	for _, s := range steps {
		path := s.path
		for k, v := range vars {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		var body any
		if s.body != nil {
			enc, err := json.Marshal(s.body)
			if err != nil {
				t.Fatal(err)
			}
			// Ids saved by earlier steps go in as numbers.
			b := string(enc)
			for k, v := range vars {
				b = strings.ReplaceAll(b, `"{`+k+`}"`, v)
			}
			body = b
		}
		status, b, _ := e.do(s.method, path, body)
		if status != s.want {
			t.Fatalf("%s: %s %s: status %d, want %d: %s", s.name, s.method, path, status, s.want, b)
		}
		if s.check != nil {
			var m map[string]any
			if len(b) > 0 {
				m = obj(t, b)
			}
			s.check(t, m, vars)
		}
	}
}

func num(v any) string { return fmt.Sprint(int64(v.(float64))) }

func wantErr(code, field string) func(*testing.T, map[string]any, map[string]string) {
	return func(t *testing.T, m map[string]any, _ map[string]string) {
		t.Helper()
		e := m["error"].(map[string]any)
		if e["code"] != code || (field != "" && e["field"] != field) {
			t.Errorf("error %v, want code %q field %q", e, code, field)
		}
	}
}

func wantField(field string, want any) func(*testing.T, map[string]any, map[string]string) {
	return func(t *testing.T, m map[string]any, _ map[string]string) {
		t.Helper()
		if got := fmt.Sprint(m[field]); got != fmt.Sprint(want) {
			t.Errorf("%s = %s, want %v", field, got, want)
		}
	}
}

func wantItems(n int) func(*testing.T, map[string]any, map[string]string) {
	return func(t *testing.T, m map[string]any, _ map[string]string) {
		t.Helper()
		if got := len(m["items"].([]any)); got != n {
			t.Errorf("%d items, want %d: %v", got, n, m)
		}
	}
}

// TestCRUD walks every resource through its life over HTTP, on SQLite
// and on Postgres.
func TestCRUD(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		const base = "/admin/v1/instances/acme"
		save := func(name string, get func(map[string]any) any) func(*testing.T, map[string]any, map[string]string) {
			return func(t *testing.T, m map[string]any, v map[string]string) {
				switch x := get(m).(type) {
				case float64:
					v[name] = num(x)
				default:
					v[name] = fmt.Sprint(x)
				}
			}
		}
		tokenWorks := func(name string, want bool) func(*testing.T, map[string]any, map[string]string) {
			return func(t *testing.T, _ map[string]any, v map[string]string) {
				t.Helper()
				a, err := e.st.AgentByTokenHash(ctx, hub.HashToken(v[name]))
				if got := err == nil && num(float64(a.ID)) == v["agent"]; got != want {
					t.Errorf("agent token %s works: %v, want %v (%v)", name, got, want, err)
				}
			}
		}
		keyWorks := func(want bool) func(*testing.T, map[string]any, map[string]string) {
			return func(t *testing.T, _ map[string]any, v map[string]string) {
				t.Helper()
				_, err := e.st.APIKeyByHash(ctx, hub.HashToken(v["apikey"]))
				if got := err == nil; got != want {
					t.Errorf("api key works: %v, want %v (%v)", got, want, err)
				}
			}
		}
		run(t, e, []step{
			{name: "create instance", method: "POST", path: "/admin/v1/instances", want: 201,
				body: map[string]any{"id": "acme", "name": " Acme ", "time_zone": "Europe/Amsterdam"}, check: wantField("name", "Acme")},
			{name: "default time zone", method: "POST", path: "/admin/v1/instances", want: 201,
				body: map[string]any{"id": "globex", "name": "Globex"}, check: wantField("time_zone", "UTC")},
			{name: "duplicate instance", method: "POST", path: "/admin/v1/instances", want: 409,
				body: map[string]any{"id": "acme", "name": "Acme"}, check: wantErr("exists", "")},
			{name: "list instances", method: "GET", path: "/admin/v1/instances", want: 200, check: wantItems(2)},
			{name: "get instance", method: "GET", path: base, want: 200, check: wantField("time_zone", "Europe/Amsterdam")},
			{name: "rename instance", method: "PATCH", path: base, want: 200, body: map[string]any{"name": "Acme BV"}, check: wantField("time_zone", "Europe/Amsterdam")},
			{name: "renamed", method: "GET", path: base, want: 200, check: wantField("name", "Acme BV")},
			{name: "move instance", method: "PATCH", path: base, want: 200, body: map[string]any{"time_zone": "America/New_York"}, check: wantField("time_zone", "America/New_York")},
			{name: "unknown instance", method: "GET", path: "/admin/v1/instances/initech", want: 404, check: wantErr("not_found", "")},

			{name: "create team", method: "POST", path: base + "/teams", want: 201, body: map[string]any{"name": "Support"},
				check: save("team", func(m map[string]any) any { return m["id"] })},
			{name: "duplicate team", method: "POST", path: base + "/teams", want: 409, body: map[string]any{"name": "Support"}, check: wantErr("exists", "")},
			{name: "list teams", method: "GET", path: base + "/teams", want: 200, check: wantItems(1)},
			{name: "get team", method: "GET", path: base + "/teams/{team}", want: 200, check: wantField("name", "Support")},

			{name: "channel with unknown team", method: "POST", path: base + "/channels", want: 422,
				body: map[string]any{"id": "acme-mail", "kind": "strict", "name": "Mail", "team_id": 999999}, check: wantErr("invalid", "team_id")},
			{name: "channel with bad settings", method: "POST", path: base + "/channels", want: 422,
				body: map[string]any{"id": "acme-mail", "kind": "strict", "name": "Mail", "settings": map[string]any{"adress": "x"}}, check: wantErr("invalid", "settings")},
			{name: "channel without its secret", method: "POST", path: base + "/channels", want: 422,
				body: map[string]any{"id": "acme-mail", "kind": "strict", "name": "Mail", "settings": map[string]any{"address": "help@acme.test"}}, check: wantErr("invalid", "settings")},
			{name: "create channel", method: "POST", path: base + "/channels", want: 201,
				body: map[string]any{"id": "acme-mail", "kind": "strict", "name": "Mail", "settings": map[string]any{"address": "help@acme.test"},
					"secrets": map[string]any{"password": "pw-1"}, "team_id": "{team}"},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					wantField("secrets_set", "[password]")(t, m, v)
					wantField("enabled", true)(t, m, v)
					wantField("team_id", v["team"])(t, m, v)
					wantField("settings", "map[address:help@acme.test]")(t, m, v)
				}},
			{name: "duplicate channel", method: "POST", path: base + "/channels", want: 409,
				body: map[string]any{"id": "acme-mail", "kind": "email", "name": "Mail"}, check: wantErr("exists", "")},
			{name: "get channel", method: "GET", path: base + "/channels/acme-mail", want: 200, check: wantField("name", "Mail")},
			{name: "team in use", method: "DELETE", path: base + "/teams/{team}", want: 409, check: wantErr("conflict", "")},
			{name: "removing the required secret", method: "PATCH", path: base + "/channels/acme-mail", want: 422,
				body: map[string]any{"secrets": map[string]any{"password": nil}}, check: wantErr("invalid", "settings")},
			{name: "update channel", method: "PATCH", path: base + "/channels/acme-mail", want: 200,
				body: map[string]any{"name": "Mail 2", "secrets": map[string]any{"token": "tk-1"}, "team_id": nil},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					wantField("secrets_set", "[password token]")(t, m, v)
					wantField("team_id", "<nil>")(t, m, v)
					wantField("name", "Mail 2")(t, m, v)
				}},
			{name: "remove a secret", method: "PATCH", path: base + "/channels/acme-mail", want: 200,
				body: map[string]any{"secrets": map[string]any{"token": nil}, "settings": map[string]any{"address": "new@acme.test"}},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					wantField("secrets_set", "[password]")(t, m, v)
					wantField("settings", "map[address:new@acme.test]")(t, m, v)
				}},
			{name: "disable channel", method: "POST", path: base + "/channels/acme-mail/disable", want: 200, check: wantField("enabled", false)},
			{name: "enable channel", method: "POST", path: base + "/channels/acme-mail/enable", want: 200, check: wantField("enabled", true)},
			{name: "disable by update", method: "PATCH", path: base + "/channels/acme-mail", want: 200, body: map[string]any{"enabled": false}, check: wantField("enabled", false)},
			{name: "list channels", method: "GET", path: base + "/channels", want: 200, check: wantItems(1)},

			{name: "agent with a display name", method: "POST", path: base + "/agents", want: 422,
				body: map[string]any{"name": "Ann", "email": "Ann <ann@acme.test>"}, check: wantErr("invalid", "email")},
			{name: "agent over capacity", method: "POST", path: base + "/agents", want: 422,
				body: map[string]any{"name": "Ann", "email": "ann@acme.test", "capacity": 5000}, check: wantErr("invalid", "capacity")},
			{name: "create agent", method: "POST", path: base + "/agents", want: 201,
				body: map[string]any{"name": "Ann", "email": "Ann@Acme.test", "team_ids": []any{"{team}", "{team}"}},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					a := m["agent"].(map[string]any)
					v["agent"], v["token"] = num(a["id"]), m["token"].(string)
					if !strings.HasPrefix(v["token"], AgentTokenPrefix) {
						t.Errorf("token %q", v["token"])
					}
					wantField("email", "ann@acme.test")(t, a, v)
					wantField("capacity", 3)(t, a, v)
					wantField("team_ids", "["+v["team"]+"]")(t, a, v)
					tokenWorks("token", true)(t, m, v)
				}},
			{name: "duplicate agent", method: "POST", path: base + "/agents", want: 409,
				body: map[string]any{"name": "Ann", "email": "ann@acme.test"}, check: wantErr("exists", "")},
			{name: "update agent", method: "PATCH", path: base + "/agents/{agent}", want: 200,
				body: map[string]any{"capacity": 5, "team_ids": []any{}, "disabled": true},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					wantField("capacity", 5)(t, m, v)
					wantField("team_ids", "[]")(t, m, v)
					wantField("disabled", true)(t, m, v)
					tokenWorks("token", false)(t, m, v) // disabled agents cannot sign in
				}},
			{name: "get agent", method: "GET", path: base + "/agents/{agent}", want: 200, check: wantField("name", "Ann")},
			{name: "enable agent", method: "PATCH", path: base + "/agents/{agent}", want: 200, body: map[string]any{"disabled": false, "team_ids": []any{"{team}"}},
				check: tokenWorks("token", true)},
			{name: "rotate token", method: "POST", path: base + "/agents/{agent}/token", want: 200,
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					v["token2"] = m["token"].(string)
					if v["token2"] == v["token"] {
						t.Error("rotation returned the same token")
					}
					tokenWorks("token", false)(t, m, v)
					tokenWorks("token2", true)(t, m, v)
				}},
			{name: "list agents", method: "GET", path: base + "/agents", want: 200, check: wantItems(1)},

			{name: "create api key", method: "POST", path: base + "/api-keys", want: 201, body: map[string]any{"name": "crm"},
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					v["key"], v["apikey"] = num(m["api_key"].(map[string]any)["id"]), m["key"].(string)
					if !strings.HasPrefix(v["apikey"], APIKeyPrefix) {
						t.Errorf("key %q", v["apikey"])
					}
					keyWorks(true)(t, m, v)
				}},
			{name: "list api keys", method: "GET", path: base + "/api-keys", want: 200, check: wantItems(1)},
			{name: "revoke api key", method: "DELETE", path: base + "/api-keys/{key}", want: 200,
				check: func(t *testing.T, m map[string]any, v map[string]string) {
					if m["revoked_at"] == nil {
						t.Error("revoked_at not set")
					}
					keyWorks(false)(t, m, v)
				}},
			{name: "revoke again", method: "DELETE", path: base + "/api-keys/{key}", want: 200},
			{name: "revoke unknown key", method: "DELETE", path: base + "/api-keys/999999", want: 404},

			{name: "delete channel", method: "DELETE", path: base + "/channels/acme-mail", want: 204},
			{name: "deleted channel", method: "GET", path: base + "/channels/acme-mail", want: 404},
			{name: "delete team", method: "DELETE", path: base + "/teams/{team}", want: 204},
			{name: "deleted team", method: "GET", path: base + "/teams/{team}", want: 404},
			{name: "agent left the deleted team", method: "GET", path: base + "/agents/{agent}", want: 200, check: wantField("team_ids", "[]")},
		})
	})
}

// TestTenantIsolation: with instance A's id in the path, nothing of
// instance B can be read, changed or used, and B is untouched afterwards.
func TestTenantIsolation(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		a, b := seed(t, e.svc, "tenant-a"), seed(t, e.svc, "tenant-b")
		pa := "/admin/v1/instances/" + a.inst
		reqs := []struct {
			method, path string
			body         any
			want         int
		}{
			{"GET", pa + "/channels/" + b.channel, nil, 404},
			{"PATCH", pa + "/channels/" + b.channel, map[string]any{"name": "taken"}, 404},
			{"POST", pa + "/channels/" + b.channel + "/disable", nil, 404},
			{"POST", pa + "/channels/" + b.channel + "/enable", nil, 404},
			{"DELETE", pa + "/channels/" + b.channel, nil, 404},
			{"GET", pa + fmt.Sprintf("/teams/%d", b.team), nil, 404},
			{"DELETE", pa + fmt.Sprintf("/teams/%d", b.team), nil, 404},
			{"GET", pa + fmt.Sprintf("/agents/%d", b.agent), nil, 404},
			{"PATCH", pa + fmt.Sprintf("/agents/%d", b.agent), map[string]any{"disabled": true}, 404},
			{"POST", pa + fmt.Sprintf("/agents/%d/token", b.agent), nil, 404},
			{"DELETE", pa + fmt.Sprintf("/api-keys/%d", b.key), nil, 404},
			// B's team cannot be used from A either.
			{"POST", pa + "/agents", map[string]any{"name": "X", "email": "x@a.test", "team_ids": []int64{b.team}}, 422},
			{"PATCH", pa + fmt.Sprintf("/agents/%d", a.agent), map[string]any{"team_ids": []int64{b.team}}, 422},
			{"POST", pa + "/channels", map[string]any{"id": "a-new", "kind": "email", "name": "N", "team_id": b.team}, 422},
			{"PATCH", pa + "/channels/" + a.channel, map[string]any{"team_id": b.team}, 422},
		}
		for _, r := range reqs {
			status, body, _ := e.do(r.method, r.path, r.body)
			if status != r.want {
				t.Errorf("%s %s: %d, want %d: %s", r.method, r.path, status, r.want, body)
			}
		}
		// A's lists hold A's things only.
		for _, res := range []string{"channels", "teams", "agents", "api-keys"} {
			_, body, _ := e.do("GET", pa+"/"+res, nil)
			for _, it := range obj(t, body)["items"].([]any) {
				if got := it.(map[string]any)["instance_id"]; got != a.inst {
					t.Errorf("%s of A lists an item of %v", res, got)
				}
			}
		}
		// B is untouched: its channel enabled and named as before, its
		// agent enabled with its token working, its key valid, its team there.
		ch, err := e.svc.Channel(ctx, b.inst, b.channel)
		if err != nil || !ch.Enabled || ch.Name != "Web" {
			t.Errorf("B's channel changed: %+v %v", ch, err)
		}
		ag, err := e.st.AgentByTokenHash(ctx, hub.HashToken(b.agentToken))
		if err != nil || ag.ID != b.agent || ag.Disabled {
			t.Errorf("B's agent changed: %+v %v", ag, err)
		}
		keys, _ := e.svc.APIKeys(ctx, b.inst)
		if len(keys) != 1 || keys[0].RevokedAt != nil {
			t.Errorf("B's key changed: %+v", keys)
		}
		if _, err := e.svc.Team(ctx, b.inst, b.team); err != nil {
			t.Errorf("B's team: %v", err)
		}
		ag, _ = e.st.Agent(ctx, b.inst, b.agent)
		if !slices.Equal(ag.TeamIDs, []int64{b.team}) {
			t.Errorf("B's agent teams: %v", ag.TeamIDs)
		}
		// The Service refuses the same way for the CLI.
		if _, err := e.svc.Channel(ctx, a.inst, b.channel); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Service.Channel across instances: %v", err)
		}
	})
}
