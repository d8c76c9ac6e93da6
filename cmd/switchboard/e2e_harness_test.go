package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The end-to-end tests run the real binary as separate processes, so that
// "kill -9" and "two nodes" mean what they say.

var binPath string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "switchboard-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "switchboard")
		// Tests run the node with the race detector; benchmarks measure
		// the binary as it ships.
		flag.Parse()
		build := exec.Command("go", "build", "-race", "-o", binPath, ".")
		if f := flag.Lookup("test.bench"); (f != nil && f.Value.String() != "") || os.Getenv("SWITCHBOARD_E2E_NORACE") == "1" {
			build = exec.Command("go", "build", "-o", binPath, ".")
		}
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build switchboard:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// node is one running `switchboard serve` process.
type node struct {
	t    testing.TB
	addr string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNode runs serve with args on a free port and waits until /readyz
// answers 200.
func startNode(t testing.TB, env []string, args ...string) *node {
	t.Helper()
	n := &node{t: t, addr: freeAddr(t), args: args, env: env}
	n.start()
	t.Cleanup(func() { n.kill(syscall.SIGKILL) })
	return n
}

func (n *node) start() {
	n.t.Helper()
	logf, err := os.CreateTemp(n.t.TempDir(), "node-*.log")
	if err != nil {
		n.t.Fatal(err)
	}
	n.log = logf
	n.cmd = exec.Command(binPath, append([]string{"serve", "--addr", n.addr}, n.args...)...)
	n.cmd.Env = append(os.Environ(), n.env...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			n.t.Fatalf("node exited at start:\n%s", n.logs())
		default:
		}
		resp, err := http.Get("http://" + n.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("node not ready in time:\n%s", n.logs())
}

// kill sends sig and waits for the process to end.
func (n *node) kill(sig syscall.Signal) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *node) logs() string {
	b, _ := os.ReadFile(n.log.Name())
	return string(b)
}

func (n *node) url(path string) string { return "http://" + n.addr + path }
func (n *node) ws(path string) string  { return "ws://" + n.addr + path }

// wsClient is a JSON websocket client that records every frame it gets.
type wsClient struct {
	t    testing.TB
	name string
	conn *websocket.Conn

	mu     sync.Mutex
	frames []map[string]any
	notify chan struct{}
	closed chan struct{}
	wmu    sync.Mutex
}

func dial(t testing.TB, name, url string, header http.Header) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		if resp != nil {
			t.Fatalf("%s: dial %s: %v (HTTP %d)", name, url, err, resp.StatusCode)
		}
		t.Fatalf("%s: dial %s: %v", name, url, err)
	}
	c := &wsClient{t: t, name: name, conn: conn, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *wsClient) read() {
	defer close(c.closed)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var f map[string]any
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

func (c *wsClient) send(v map[string]any) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatalf("%s: send %v: %v", c.name, v["type"], err)
	}
}

// waitFor returns the first frame (from index from on) matching pred, and
// its index.
func (c *wsClient) waitFor(from int, what string, timeout time.Duration, pred func(map[string]any) bool) (map[string]any, int) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		// Predicates run without the lock: they may look at the client.
		c.mu.Lock()
		frames := c.frames
		c.mu.Unlock()
		for i := from; i < len(frames); i++ {
			if pred(frames[i]) {
				return frames[i], i
			}
		}
		select {
		case <-c.notify:
		case <-c.closed:
			c.mu.Lock()
			n := len(c.frames)
			c.mu.Unlock()
			c.t.Fatalf("%s: connection closed while waiting for %s (%d frames seen)", c.name, what, n)
		case <-deadline:
			c.t.Fatalf("%s: no %s within %s; frames: %s", c.name, what, timeout, c.dump())
		}
	}
}

func (c *wsClient) count(pred func(map[string]any) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if pred(f) {
			n++
		}
	}
	return n
}

func (c *wsClient) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for i, f := range c.frames {
		if i > 40 {
			b.WriteString("…")
			break
		}
		j, _ := json.Marshal(f)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func typeIs(typ string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["type"] == typ }
}

func num(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return 0
}

func str(v any) string { s, _ := v.(string); return s }

func field(f map[string]any, path ...string) any {
	var cur any = f
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
