package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A channel added, disabled or re-enabled through one node's admin API is
// served by every node at once (every node runs every channel, and a load
// balancer may send its traffic to any), not only after the others
// restart or their periodic sync.
func TestChannelChangesReachEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	p := newProdSetup(t)
	const op = "operator-token-for-the-channel-test"
	env := append(p.env(), "SWITCHBOARD_OPERATOR_TOKEN="+op)
	a := startNode(t, env, "--data", t.TempDir())
	b := startNode(t, env, "--data", t.TempDir())

	admin := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+a.addr+"/admin/v1/instances/acme/channels"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+op)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	// formOn polls node n's form page until it answers want (200: served;
	// 404: no such channel there). The periodic sync is 30 s away: 10 s
	// is the announcement's doing.
	formOn := func(n *node, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + n.addr + "/channels/acme-form/form")
			code := 0
			if err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("form on %s: %d, want %d", n.addr, code, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	formOn(b, http.StatusNotFound)
	admin(http.MethodPost, "", `{"id":"acme-form","kind":"webform","name":"Contact form"}`)
	formOn(a, http.StatusOK)
	formOn(b, http.StatusOK)
	admin(http.MethodPatch, "/acme-form", `{"enabled":false}`)
	formOn(b, http.StatusNotFound)
	admin(http.MethodPatch, "/acme-form", `{"enabled":true}`)
	formOn(b, http.StatusOK)
}
