package livechat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// Memory per idle visitor socket, measured on the server side only.
//
// Method: the visitor clients run in a separate process (this test binary
// re-executed as TestIdleVisitorClientProcess), so nothing of the client
// side is in the numbers. Each client opens a websocket and starts a
// session as a new visitor, so every socket also has its own conversation
// room and pub/sub subscription, then stays idle. In this process we force
// GC and compare runtime.MemStats before and after: live heap
// (HeapAlloc) plus goroutine stacks (StackInuse), divided by the number
// of sockets. That figure includes net/http's and gorilla's per-connection
// state, both goroutines (reader and writer), the room and the test
// host's conversation record. RSS growth is reported beside it; it also
// holds memory the Go runtime has not returned to the OS, so it is an
// upper bound. Kernel socket buffers are outside both.

const (
	idleTarget       = 20 * 1024 // bytes per idle socket (issue 2)
	envIdleClientURL = "LIVECHAT_IDLE_CLIENT_URL"
	envIdleClientN   = "LIVECHAT_IDLE_CLIENT_N"
)

// BenchmarkIdleVisitorMemory opens 1,000 idle visitor sockets. Run it
// once: go test -run '^$' -bench IdleVisitorMemory -benchtime 1x ./connectors/livechat/
func BenchmarkIdleVisitorMemory(b *testing.B) {
	if raceEnabled {
		b.Skip("SKIP: the race detector inflates memory; run without -race")
	}
	const n = 1000
	for b.Loop() {
		heap, rss := measureIdle(b, n)
		b.ReportMetric(heap, "heap+stack-B/conn")
		b.ReportMetric(rss, "rss-B/conn")
	}
}

// TestIdleVisitorMemory holds the figure under the target with fewer
// sockets, so that a regression fails the normal test run.
func TestIdleVisitorMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("SKIP: memory is not measured under -race or -short")
	}
	heap, rss := measureIdle(t, 300)
	t.Logf("server side per idle visitor socket: heap+stack %.0f B, RSS %.0f B", heap, rss)
	if heap > idleTarget {
		t.Fatalf("%.0f B per idle socket, target %d", heap, idleTarget)
	}
}

func measureIdle(tb testing.TB, n int) (heapPerConn, rssPerConn float64) {
	e := newEnv(tb)
	node := e.nodes[0]

	// Warm up pools and lazily built state with one socket, gone again.
	warm := runClients(tb, node.wsURL(), 1)
	warm.stop()

	before := memNow()
	cl := runClients(tb, node.wsURL(), n)
	defer cl.stop()
	node.k.mu.Lock()
	open, rooms := len(node.k.conns), len(node.k.rooms)
	node.k.mu.Unlock()
	if open != n || rooms != n {
		tb.Fatalf("%d sockets and %d rooms open, want %d", open, rooms, n)
	}
	after := memNow()
	heapPerConn = float64(after.live-before.live) / float64(n)
	rssPerConn = float64(after.rss-before.rss) / float64(n)
	return heapPerConn, rssPerConn
}

type memSample struct{ live, rss int64 }

func memNow() memSample {
	for range 6 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{live: int64(ms.HeapAlloc + ms.StackInuse), rss: rssBytes()}
}

// rssBytes reads VmRSS from /proc (Linux); 0 elsewhere.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  bool
}

// runClients starts the client process and returns once all n sockets have
// their session.ready.
func runClients(tb testing.TB, url string, n int) *clientProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleVisitorClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envIdleClientURL+"="+url, envIdleClientN+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &clientProc{cmd: cmd, stdin: stdin}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "ready" {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return p
		}
	}
	p.stop()
	tb.Fatalf("client process ended before its sockets were ready: %v", sc.Err())
	return nil
}

func (p *clientProc) stop() {
	if p.done {
		return
	}
	p.done = true
	_ = p.stdin.Close() // the client process exits at EOF
	_ = p.cmd.Wait()
}

// TestIdleVisitorClientProcess is the client side of the memory
// measurement, run in its own process by runClients; it skips otherwise.
func TestIdleVisitorClientProcess(t *testing.T) {
	url := os.Getenv(envIdleClientURL)
	if url == "" {
		t.Skip("helper process for TestIdleVisitorMemory")
	}
	n, err := strconv.Atoi(os.Getenv(envIdleClientN))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*websocket.Conn, 0, n)
	for i := range n {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if err := ws.WriteJSON(map[string]any{"type": "session.start"}); err != nil {
			t.Fatal(err)
		}
		var f frame
		if err := ws.ReadJSON(&f); err != nil || f.Type != typeSessionReady {
			t.Fatalf("socket %d: %v %+v", i, err, f)
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		_ = ws.Close()
	}
}
