package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{AuthTimeout: 300 * time.Millisecond, AllowedOrigins: []string{"https://console.example"}}})
	e.instance("acme", "")
	ravi, token := e.agent("acme", "Ravi")

	t.Run("auth frame", func(t *testing.T) {
		c := e.dial("frame", nil)
		r := c.request("auth", map[string]any{"token": token, "protocol": 1})
		if r.Type != "ready" || r.Agent == nil || r.Agent.ID != ravi.ID || r.Agent.InstanceID != "acme" || r.SessionID == "" {
			t.Fatalf("ready: %+v", r)
		}
		if strings.Contains(string(r.Data)+string(r.RawMsg), ravi.TokenHash) {
			t.Fatal("ready leaks the token hash")
		}
		c.ok("ping", nil, nil)
		// A second auth on the same socket is refused, the socket stays.
		c.fails("auth", map[string]any{"token": token, "protocol": 1}, CodeInvalid)
		c.ok("ping", nil, nil)
	})

	t.Run("authorization header", func(t *testing.T) {
		c := e.dial("header", http.Header{"Authorization": {"Bearer " + token}})
		r := c.waitFor("ready", ofType("ready", 0))
		if r.Agent.ID != ravi.ID {
			t.Fatalf("ready: %+v", r)
		}
		c.ok("ping", nil, nil)
	})

	t.Run("subprotocol", func(t *testing.T) {
		c := e.dial("subprotocol", http.Header{"Sec-WebSocket-Protocol": {Subprotocol + ", bearer." + token}})
		if got := c.ws.Subprotocol(); got != Subprotocol {
			t.Fatalf("subprotocol %q", got)
		}
		c.waitFor("ready", ofType("ready", 0))
		c.ok("ping", nil, nil)
	})

	t.Run("bad token", func(t *testing.T) {
		c := e.dial("bad", nil)
		r := c.request("auth", map[string]any{"token": "sbt_nope", "protocol": 1})
		if r.Type != "error" || r.Code != CodeUnauthorized {
			t.Fatalf("reply: %+v", r)
		}
		if ce := c.closed(); ce.Code != CloseUnauthorized || ce.Text != "invalid or expired token" {
			t.Fatalf("close: %v", ce)
		}
	})

	t.Run("bad header token", func(t *testing.T) {
		c := e.dial("badheader", http.Header{"Authorization": {"Bearer sbt_nope"}})
		c.waitFor("error", func(m msg) bool { return m.Type == "error" && m.Code == CodeUnauthorized })
		if ce := c.closed(); ce.Code != CloseUnauthorized {
			t.Fatalf("close: %v", ce)
		}
	})

	t.Run("requests before auth, then timeout", func(t *testing.T) {
		c := e.dial("noauth", nil)
		c.fails("ticket.get", map[string]any{"ticket_id": 1}, CodeUnauthorized)
		c.fails("auth", map[string]any{"token": token}, CodeInvalid) // protocol missing
		if ce := c.closed(); ce.Code != CloseUnauthorized || ce.Text != "authentication timeout" {
			t.Fatalf("close: %v", ce)
		}
	})

	for _, q := range []string{"?token=", "?Token=", "?ACCESS_TOKEN=", "?x=1;token=", "?%74oken="} {
		t.Run("token in URL refused: "+q, func(t *testing.T) {
			ws, _, err := websocket.DefaultDialer.Dial(e.wsURL+q+token, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(wait))
			_, b, err := ws.ReadMessage()
			if err != nil || !strings.Contains(string(b), CodeUnauthorized) {
				t.Fatalf("first frame %s, %v", b, err)
			}
			_, _, err = ws.ReadMessage()
			if !websocket.IsCloseError(err, CloseUnauthorized) {
				t.Fatalf("close: %v", err)
			}
		})
	}

	t.Run("unsupported protocol", func(t *testing.T) {
		c := e.dial("proto", nil)
		c.fails("auth", map[string]any{"token": token, "protocol": 2}, CodeInvalid)
		if ce := c.closed(); ce.Code != CloseUnsupportedProtocol {
			t.Fatalf("close: %v", ce)
		}
	})

	t.Run("origin", func(t *testing.T) {
		_, err := e.tryDial("evil", http.Header{"Origin": {"https://evil.example"}}, nil)
		if err != websocket.ErrBadHandshake {
			t.Fatalf("cross-origin dial: %v", err)
		}
		c := e.dial("console", http.Header{"Origin": {"https://console.example"}})
		c.request("auth", map[string]any{"token": token, "protocol": 1})
		same := e.dial("same", http.Header{"Origin": {e.srv.URL}})
		same.request("auth", map[string]any{"token": token, "protocol": 1})
	})

	if strings.Contains(e.logs.String(), token) {
		t.Fatal("a token was logged")
	}
}

// A token revoked (or an agent disabled) while its socket is open is cut
// off at the next re-check.
func TestRevokedTokenIsCutOff(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{HeartbeatInterval: 20 * time.Millisecond}})
	e.instance("acme", "")
	ravi, token := e.agent("acme", "Ravi")
	c := e.connect("tab", token)
	if err := e.st.SetAgentToken(e.ctx, "acme", ravi.ID, "revoked"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("error", func(m msg) bool { return m.Type == "error" && m.Code == CodeUnauthorized })
	if ce := c.closed(); ce.Code != CloseUnauthorized || ce.Text != "token revoked" {
		t.Fatalf("close: %v", ce)
	}
}
