package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
)

// A client that stops reading is cut off as too slow; the hub and the
// other sockets never wait for it.
func TestSlowClientIsCut(t *testing.T) {
	e := newEnv(t, envOpts{smallBuffers: true, cfg: Config{SendQueue: 8, WriteTimeout: 300 * time.Millisecond}})
	e.instance("acme", "")
	slowAgent, token := e.agent("acme", "Slow")
	mia, miaToken := e.agent("acme", "Mia")
	fast := e.connect("fast", miaToken)

	// The slow client: a tiny receive buffer, and after its ready frame
	// it never reads again.
	d := &websocket.Dialer{HandshakeTimeout: wait, NetDialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			_ = rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return err
		},
	}).DialContext}
	slow, _, err := d.Dial(e.wsURL, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	if _, b, err := slow.ReadMessage(); err != nil || !strings.Contains(string(b), `"ready"`) {
		t.Fatalf("slow ready: %s %v", b, err)
	}

	r := e.inbound("acme", "conv-1", "m1", "hello")
	// A burst of large updates for the slow agent only (as the hub
	// publishes them: on the instance's topic), interleaved with notes
	// that everyone gets.
	big := hub.Update{Type: hub.UpdateTyping, InstanceID: "acme", AgentID: slowAgent.ID, TicketID: r.ConversationID,
		Signal: "typing", From: strings.Repeat("x", 8<<10)}
	payload, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var notes []int64
	for i := 0; i < 200; i++ {
		if err := e.bus.Publish(e.ctx, hub.InstanceTopic("acme"), payload); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			m, err := e.h.Note(e.ctx, mia, r.ConversationID, hub.Compose{Text: fmt.Sprintf("note %d", i)})
			if err != nil {
				t.Fatal(err)
			}
			notes = append(notes, m.ID)
		}
	}
	ev := e.waitEvent("slow socket closed", func(ev event) bool { return ev.kind == "closed" && ev.agentID == slowAgent.ID })
	if ev.code != CloseTooSlow || ev.reason != "too slow" {
		t.Fatalf("slow socket closed with %d %q", ev.code, ev.reason)
	}
	// The fast socket got every note, once, and still works.
	e.fence("acme", fast)
	for _, id := range notes {
		if n := fast.count(isMessageNew(id)); n != 1 {
			t.Fatalf("fast socket got note %d %d times", id, n)
		}
	}
	if n := fast.count(func(m msg) bool { return m.Type == hub.UpdateTyping && m.TicketID == r.ConversationID }); n != 0 {
		t.Fatalf("fast socket got %d updates meant for the slow agent", n)
	}
	fast.ok("ping", nil, nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the hub was held up for %s", d)
	}
	if s := e.gw.Stats(); s.Sockets != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Presence: renewed while a socket lives; the last socket closing does not
// sign the agent out (the TTL decides); "offline" does at once.
func TestPresence(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{HeartbeatInterval: 20 * time.Millisecond}})
	e.instance("acme", "")
	ravi, token := e.agent("acme", "Ravi")
	id := "1"
	if ravi.ID != 1 {
		t.Fatalf("agent id %d", ravi.ID)
	}
	state := func() routing.AgentState {
		snap, err := e.router.Snapshot(e.ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return snap.Agents[id]
	}

	tab := e.connect("tab", token)
	tab.ok("presence", map[string]any{"status": "available"}, nil)
	if s := state(); s.Status != routing.Available || !s.Present {
		t.Fatalf("after presence: %+v", s)
	}
	// Past the TTL with no renewal the agent lapses; the gateway's next
	// heartbeat brings them back.
	e.clock.Advance(46 * time.Second)
	if s := state(); s.Present {
		t.Fatalf("present past the TTL: %+v", s)
	}
	e.waitEvent("renewal", func(ev event) bool { return ev.kind == "heartbeat" && ev.agentID == ravi.ID })
	if s := state(); s.Status != routing.Available || !s.Present {
		t.Fatalf("after renewal: %+v", s)
	}

	// Away is renewed as away.
	tab.ok("presence", map[string]any{"status": "away"}, nil)
	e.waitEvent("renewal", func(ev event) bool { return ev.kind == "heartbeat" && ev.agentID == ravi.ID })
	if s := state(); s.Status != routing.Away {
		t.Fatalf("after away: %+v", s)
	}
	tab.ok("presence", map[string]any{"status": "available"}, nil)

	// Closing the last socket leaves presence to the TTL.
	tab.close()
	e.waitEvent("closed", func(ev event) bool { return ev.kind == "closed" && ev.agentID == ravi.ID })
	if s := state(); s.Status != routing.Available || !s.Present {
		t.Fatalf("after the last socket closed: %+v", s)
	}
	e.clock.Advance(46 * time.Second)
	if s := state(); s.Present {
		t.Fatalf("still present past the TTL with no socket: %+v", s)
	}

	// An explicit offline signs out at once.
	tab = e.connect("tab2", token)
	tab.ok("presence", map[string]any{"status": "available"}, nil)
	tab.ok("presence", map[string]any{"status": "offline"}, nil)
	if s := state(); s.Status != routing.Offline || s.Present {
		t.Fatalf("after offline: %+v", s)
	}
	// ...and the gateway does not renew an offline agent.
	e.waitEvent("tick", func(ev event) bool { return ev.kind == "heartbeat" && ev.agentID == ravi.ID })
	if s := state(); s.Status != routing.Offline {
		t.Fatalf("renewed while offline: %+v", s)
	}
}

// Shutdown closes every socket with a reason and waits; later upgrades are
// refused.
func TestShutdown(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	_, token := e.agent("acme", "Ravi")
	a := e.connect("a", token)
	b := e.connect("b", token)
	anon := e.dial("anon", nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a, b, anon} {
		if ce := c.closed(); ce.Code != websocket.CloseGoingAway || ce.Text != "server shutting down" {
			t.Fatalf("%s: close %v", c.name, ce)
		}
	}
	if s := e.gw.Stats(); s != (Stats{}) {
		t.Fatalf("stats %+v", s)
	}
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v %v", resp, err)
	}
}

// Keepalive: a client that answers the server's pings stays; one that
// goes silent is closed after PongWait.
func TestKeepalive(t *testing.T) {
	e := newEnv(t, envOpts{cfg: Config{PingInterval: 30 * time.Millisecond, PongWait: 150 * time.Millisecond}})
	e.instance("acme", "")
	ravi, token := e.agent("acme", "Ravi")
	live := e.connect("live", token)
	connected := time.Now()

	// The silent client authenticates, then never reads again, so it never
	// answers a ping.
	silent, _, err := websocket.DefaultDialer.Dial(e.wsURL, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ev := e.waitEvent("silent socket closed", func(ev event) bool {
		return ev.kind == "closed" && ev.agentID == ravi.ID && ev.reason == "ping timeout"
	})
	if ev.code != websocket.CloseGoingAway {
		t.Fatalf("close %d %q", ev.code, ev.reason)
	}
	if time.Since(connected) < 150*time.Millisecond {
		t.Fatal("closed before PongWait")
	}
	// The live client answered every ping meanwhile and is still served.
	live.ok("ping", nil, nil)
	if s := e.gw.Stats(); s.Sockets != 1 {
		t.Fatalf("stats %+v", s)
	}
}
