// Package wscork lets the writer of a websocket send a run of queued
// frames in one system call. gorilla/websocket writes every message to
// the connection as soon as it is complete; a socket that receives bursts
// (an agent's, when a group commit releases a hundred updates at once)
// then pays one write per frame. Upgrade hands gorilla a connection that
// holds writes back while it is corked; Uncork sends what was held.
//
// It owns nothing of the protocol: frames are written by gorilla as
// always, only their way to the kernel changes.
package wscork

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// maxHeld bounds what a corked Conn holds; a write past it sends what is
// held first.
const maxHeld = 64 << 10

// Conn is a net.Conn whose writes can be held back and sent together.
// It is safe for concurrent use: gorilla may write a close frame from the
// reading goroutine, and that write simply joins what is held.
type Conn struct {
	net.Conn

	mu     sync.Mutex
	corked bool
	held   []byte
}

// Write sends p, or holds it while the Conn is corked. An error of a held
// write shows at Uncork.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked && len(c.held)+len(p) <= maxHeld {
		if c.held == nil {
			c.held = (*buffers.Get().(*[]byte))[:0]
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Cork holds writes until Uncork.
func (c *Conn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// Uncork sends what is held, in one write, and stops holding.
func (c *Conn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *Conn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	// An idle socket keeps no buffer (memory per socket matters); the
	// sockets of a node share a pool of them.
	b := c.held[:0]
	buffers.Put(&b)
	c.held = nil
	return err
}

// buffers holds the buffers of corked writes between bursts.
var buffers = sync.Pool{New: func() any {
	b := make([]byte, 0, maxHeld)
	return &b
}}

// Upgrade is u.Upgrade on a connection that can be corked. The Conn is
// also ws.NetConn().
func Upgrade(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request, h http.Header) (*websocket.Conn, *Conn, error) {
	hw := &hijacker{ResponseWriter: w}
	ws, err := u.Upgrade(hw, r, h)
	if err != nil {
		return nil, nil, err
	}
	return ws, hw.conn, nil
}

// hijacker wraps the connection an HTTP handler hijacks.
type hijacker struct {
	http.ResponseWriter
	conn *Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("wscork: the response writer cannot hijack its connection")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &Conn{Conn: nc}
	return h.conn, brw, nil
}
