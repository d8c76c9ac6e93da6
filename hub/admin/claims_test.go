package admin

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// A channel may not claim what an enabled channel of the same kind claims
// already, in any instance: it would take that channel's mail. Disabled
// channels claim nothing until they are enabled again.
func TestChannelClaimsAreExclusive(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		a, b := seed(t, e.svc, "tenant-a"), seed(t, e.svc, "tenant-b")
		pa, pb := "/admin/v1/instances/"+a.inst, "/admin/v1/instances/"+b.inst
		mk := func(path, id string, claims ...string) (int, string) {
			status, body, _ := e.do("POST", path+"/channels", map[string]any{
				"id": id, "kind": "claiming", "name": id, "settings": map[string]any{"claims": claims}})
			return status, string(body)
		}
		if st, body := mk(pa, "a-mail", "smtp:support@a.test"); st != 201 {
			t.Fatalf("first: %d %s", st, body)
		}
		st, body := mk(pb, "b-hijack", "smtp:other@b.test", "smtp:support@a.test")
		if st != 409 || !strings.Contains(body, "support@a.test") || !strings.Contains(body, "a-mail") {
			t.Fatalf("second claim of the address: %d %s", st, body)
		}
		if st, body := mk(pb, "b-mail", "smtp:support@b.test"); st != 201 {
			t.Fatalf("another address: %d %s", st, body)
		}
		// Patching b-mail onto a's address is refused too.
		st, bodyB, _ := e.do("PATCH", pb+"/channels/b-mail", map[string]any{"settings": map[string]any{"claims": []string{"smtp:support@a.test"}}})
		if st != 409 {
			t.Fatalf("patch onto a taken address: %d %s", st, bodyB)
		}
		// Disabled, a's channel frees the address; enabling it again is
		// refused once another channel holds it.
		if st, body, _ := e.do("POST", pa+"/channels/a-mail/disable", nil); st != 200 {
			t.Fatalf("disable: %d %s", st, body)
		}
		if st, body := mk(pb, "b-new", "smtp:support@a.test"); st != 201 {
			t.Fatalf("after disable: %d %s", st, body)
		}
		if st, body, _ := e.do("POST", pa+"/channels/a-mail/enable", nil); st != 409 {
			t.Fatalf("enable while taken: %d %s", st, body)
		}
	})
}

// A channel that names its secrets refuses any other name.
func TestUnknownSecretNameRefused(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		a := seed(t, e.svc, "tenant-a")
		status, body, _ := e.do("POST", "/admin/v1/instances/"+a.inst+"/channels", map[string]any{
			"id": "a-sec", "kind": "claiming", "name": "x", "settings": map[string]any{}, "secrets": map[string]any{"pasword": "pw"}})
		if status != 422 || !strings.Contains(string(body), `"field":"secrets.pasword"`) {
			t.Fatalf("%d %s", status, body)
		}
		status, body, _ = e.do("POST", "/admin/v1/instances/"+a.inst+"/channels", map[string]any{
			"id": "a-sec", "kind": "claiming", "name": "x", "settings": map[string]any{}, "secrets": map[string]any{"password": "pw"}})
		if status != 201 {
			t.Fatalf("%d %s", status, body)
		}
	})
}

// A connector's refusal names the field it is about.
func TestConfigErrorNamesTheField(t *testing.T) {
	ch := &store.Channel{ID: "m1", Kind: "email"}
	for _, c := range []struct{ in, field, msg string }{
		{`email: channel "m1": settings.imap.port: 70000 is not a port`, "settings.imap.port", "settings.imap.port: 70000 is not a port"},
		{`email: channel "m1": secrets.imap_password: required for imap.auth "plain"`, "secrets.imap_password", `secrets.imap_password: required for imap.auth "plain"`},
		{`email: channel "m1": settings.aliases[1]: "x" is not a bare email address`, "settings.aliases[1]", `settings.aliases[1]: "x" is not a bare email address`},
		{`settings: invalid JSON: "soon" is not a duration`, "settings", `settings: invalid JSON: "soon" is not a duration`},
		{`something odd`, "settings", "settings: something odd"},
	} {
		err := configError(ch, c.in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || err.Error() != c.msg {
			t.Errorf("%q: field %q, error %q; want %q, %q", c.in, fe.Field, err, c.field, c.msg)
		}
	}
}
