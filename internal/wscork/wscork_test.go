package wscork_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/internal/wscork"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func TestCorkedWritesLeaveTogether(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cc := &countingConn{Conn: a}
	c := &wscork.Conn{Conn: cc}
	got := make(chan string)
	go func() {
		data, _ := io.ReadAll(b)
		got <- string(data)
	}()
	c.Cork()
	for _, s := range []string{"one ", "two ", "three "} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("held write: %d, %v", n, err)
		}
	}
	if cc.writes != 0 {
		t.Fatalf("%d writes reached the connection while corked", cc.writes)
	}
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("four")); err != nil {
		t.Fatal(err)
	}
	if cc.writes != 2 {
		t.Fatalf("%d writes reached the connection, want 2 (the held three, then one)", cc.writes)
	}
	a.Close()
	if s := <-got; s != "one two three four" {
		t.Fatalf("received %q", s)
	}
}

func TestCorkHoldsAtMostABound(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go io.Copy(io.Discard, b)
	cc := &countingConn{Conn: a}
	c := &wscork.Conn{Conn: cc}
	c.Cork()
	big := make([]byte, 40<<10)
	for range 3 {
		if _, err := c.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	if cc.writes == 0 {
		t.Fatal("a corked Conn held more than its bound")
	}
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
}

func TestHeldWriteErrorShowsAtUncork(t *testing.T) {
	a, b := net.Pipe()
	b.Close()
	c := &wscork.Conn{Conn: a}
	c.Cork()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("a held write failed early: %v", err)
	}
	if err := c.Uncork(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Uncork = %v, want the connection's error", err)
	}
}

// A websocket upgraded through Upgrade sends corked frames in one write,
// and the client reads them as separate messages.
func TestUpgradeCorksAWebsocket(t *testing.T) {
	u := &websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, cork, err := wscork.Upgrade(u, w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if ws.NetConn() != cork {
			t.Error("NetConn is not the corkable Conn")
		}
		cork.Cork()
		for _, m := range []string{"a", "b", "c"} {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(m))
		}
		if err := cork.Uncork(); err != nil {
			t.Error(err)
		}
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for range 3 {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
	}
	if strings.Join(got, "") != "abc" {
		t.Fatalf("got %q", got)
	}
}

// A handler whose writer cannot hijack gets an error, not a panic.
func TestUpgradeWithoutHijacker(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if _, _, err := wscork.Upgrade(&websocket.Upgrader{}, httptest.NewRecorder(), r, nil); err == nil {
		t.Fatal("upgrade without a hijacker succeeded")
	}
}
