package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// Authentication: every endpoint but the description needs a live API
// key; anything else is 401 with the API's error body and a Bearer
// challenge, and changes nothing. No key is ever logged.

func TestAuthentication(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.conversation(e.acme.channel, "alice", "hello")
		unknown := KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		e.secrets = append(e.secrets, unknown)
		creds := []struct {
			name string
			opt  reqOpt
			msg  string
		}{
			{"missing", withoutHeader("Authorization"), "needs an API key"},
			{"empty bearer", withHeader("Authorization", "Bearer "), "send the API key as"},
			{"basic", withHeader("Authorization", "Basic "+e.acme.key), "send the API key as"},
			{"bare key", withHeader("Authorization", e.acme.key), "send the API key as"},
			{"agent token", withHeader("Authorization", "Bearer "+e.acme.agentToken), "not an API key"},
			{"unknown key", withHeader("Authorization", "Bearer "+unknown), "unknown or has been revoked"},
			{"revoked key", withHeader("Authorization", "Bearer "+e.acme.revoked), "unknown or has been revoked"},
			{"key with a typo", withHeader("Authorization", "Bearer "+e.acme.key+"x"), "unknown or has been revoked"},
		}
		for _, rt := range routeTable() {
			if rt.public {
				continue
			}
			path := strings.ReplaceAll(rt.pattern, "{ticket}", strconv.FormatInt(id, 10))
			var body any
			if rt.method == "POST" {
				body = map[string]any{"text": "should never be stored", "status": "closed"}
			}
			for _, c := range creds {
				r := e.do("", rt.method, path, body, c.opt)
				d := wantError(t, r, http.StatusUnauthorized, "unauthorized", "")
				if !strings.Contains(d.Message, c.msg) {
					t.Errorf("%s %s, %s: message %q, want it to say %q", rt.method, rt.pattern, c.name, d.Message, c.msg)
				}
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("%s %s, %s: WWW-Authenticate %q", rt.method, rt.pattern, c.name, got)
				}
			}
		}
		// The scheme's name is case-insensitive (RFC 9110).
		if r := e.do("", "GET", v1+"/tickets", nil, withHeader("Authorization", "bearer "+e.acme.key)); r.status != http.StatusOK {
			t.Errorf("lower-case scheme: %d %s", r.status, r.body)
		}
		// Nothing was written by the refused requests.
		if ms, _ := e.st.Messages(ctx, "acme", id, 0, 0, true); len(ms) != 1 {
			t.Errorf("refused requests stored %d messages", len(ms)-1)
		}
		if tk, _ := e.st.Ticket(ctx, "acme", id); tk.Status != "new" {
			t.Errorf("refused request changed the status to %s", tk.Status)
		}

		// A key revoked while in use stops working at once.
		if r := e.do(e.acme.key, "GET", v1+"/tickets", nil); r.status != http.StatusOK {
			t.Fatalf("live key: %d", r.status)
		}
		if err := e.st.RevokeAPIKey(ctx, "acme", e.acme.keyID); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.do(e.acme.key, "GET", v1+"/tickets", nil), http.StatusUnauthorized, "unauthorized", "")
		// Another instance's key is unaffected.
		if r := e.do(e.glob.key, "GET", v1+"/tickets", nil); r.status != http.StatusOK {
			t.Fatalf("globex's key: %d", r.status)
		}

		// The log tells who called and who was refused, never with what.
		logs := e.logs.String()
		for _, s := range e.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a credential is in the log")
			}
			if strings.Contains(logs, strings.TrimPrefix(s, KeyPrefix)[:12]) {
				t.Errorf("part of a credential is in the log")
			}
		}
		if !strings.Contains(logs, `"msg":"api request refused"`) || !strings.Contains(logs, `"api_key":`) {
			t.Errorf("the log lacks the audit lines:\n%s", logs)
		}
	})
}

// A server fault is a 500 that says nothing of its cause (which may name
// database internals) and is logged instead; a key that could not be
// checked is not called invalid.
func TestServerFaultSaysNothing(t *testing.T) {
	e := newEnv(t, sqliteDSN(t))
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", v1+"/tickets", nil)
	r.Header.Set("Authorization", "Bearer "+e.acme.key)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := response{status: w.Code, body: w.Body.Bytes(), header: w.Header()}
	d := wantError(t, res, http.StatusInternalServerError, "internal", "")
	if strings.Contains(d.Message, "sql") || strings.Contains(d.Message, "database") {
		t.Errorf("500 message leaks the cause: %q", d.Message)
	}
	if res.header.Get("WWW-Authenticate") != "" {
		t.Error("a key that could not be checked was challenged as invalid")
	}
	if !strings.Contains(e.logs.String(), `"msg":"api request failed"`) {
		t.Error("the fault is not logged")
	}
}
