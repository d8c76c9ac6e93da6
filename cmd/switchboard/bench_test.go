package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/loadtest"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// BenchmarkVisitorToAgent measures the hub's message path on the
// production stack (a node on Postgres + Redis, as a separate process):
// 1,000 visitors with open sockets write concurrently; each message is
// stored, routed and delivered to the assigned agent's socket. Beside it,
// in the same run, the physical limit: raw pgx single-row INSERT commits/s
// from 16 connections on the same server. Then a second phase at half the
// peak rate gives the latency under ordinary load.
//
//	go test -run '^$' -bench VisitorToAgent -benchtime 1x ./cmd/switchboard/
//
// Environment: SWITCHBOARD_BENCH_VISITORS (default 1000),
// SWITCHBOARD_BENCH_MESSAGES per visitor (default 50: long enough for a steady rate).
func BenchmarkVisitorToAgent(b *testing.B) {
	visitors := envInt("SWITCHBOARD_BENCH_VISITORS", 1000)
	per := envInt("SWITCHBOARD_BENCH_MESSAGES", 50)
	for range b.N {
		ctx := context.Background()
		dsn := testenv.Postgres(b)
		_, prefix := testenv.Redis(b)
		limit, err := loadtest.PgxInsertCommits(ctx, dsn, 16, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		tokens := seedBench(b, dsn, 2, visitors)
		n := startNode(b, []string{"SWITCHBOARD_DATABASE=" + dsn, "SWITCHBOARD_REDIS=" + testenv.RedisURL(),
			"SWITCHBOARD_REDIS_PREFIX=" + prefix, "SWITCHBOARD_LOG_LEVEL=warn", "SWITCHBOARD_DEBUG_ADDR=" + os.Getenv("SWITCHBOARD_BENCH_DEBUG_ADDR")}, "--data", b.TempDir())

		rig := newBenchRig(b, n, dsn, tokens, visitors)
		pid := n.cmd.Process.Pid
		cpu0 := [4]time.Duration{loadtest.PIDCPU(pid), loadtest.ProcessCPU("postgres"), loadtest.ProcessCPU("redis-server"), loadtest.ProcessCPU("self")}
		peak := rig.run(b, per, 0)
		cpu1 := [4]time.Duration{loadtest.PIDCPU(pid), loadtest.ProcessCPU("postgres"), loadtest.ProcessCPU("redis-server"), loadtest.ProcessCPU("self")}
		half := rig.run(b, per/2+1, peak.rate/2)
		// Where the machine's time went at peak, per message: the node,
		// Postgres, Redis and the rig's own clients (which stand in for
		// browsers elsewhere but share this machine's cores).
		msgs := float64(visitors * per)
		var us [4]float64
		for i := range us {
			us[i] = float64((cpu1[i] - cpu0[i]).Microseconds()) / msgs
		}

		b.ReportMetric(peak.rate, "msgs/s")
		b.ReportMetric(limit, "pgx-commits/s")
		b.ReportMetric(peak.rate/limit, "ratio")
		b.ReportMetric(float64(peak.p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(peak.p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(half.p50.Microseconds())/1000, "half-load-p50-ms")
		b.ReportMetric(float64(half.p99.Microseconds())/1000, "half-load-p99-ms")
		b.ReportMetric(us[0], "node-cpu-µs/msg")
		b.ReportMetric(us[1], "postgres-cpu-µs/msg")
		b.ReportMetric(us[2], "redis-cpu-µs/msg")
		b.ReportMetric(us[3], "clients-cpu-µs/msg")
		b.Logf("CPU per message at peak: node %.0f µs, Postgres %.0f µs, Redis %.0f µs, the rig's clients %.0f µs (%.0f µs in all; 2 cores give %.0f µs a message at the limit's rate)",
			us[0], us[1], us[2], us[3], us[0]+us[1]+us[2]+us[3], 2e6/limit)
		b.Logf("%d visitors × %d messages: %.0f msgs/s end to end (%.2f× the %.0f raw pgx commits/s limit); p50 %s p99 %s; at half load (%.0f/s offered, %.0f/s carried): p50 %s p99 %s",
			visitors, per, peak.rate, peak.rate/limit, limit, peak.p50, peak.p99, peak.rate/2, half.rate, half.p50, half.p99)
	}
}

// inboundText returns the text of a message.new frame of an inbound
// message, as the bench rig writes texts (no escapes).
func inboundText(frame []byte) (string, bool) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"message.new"`)) || !bytes.Contains(frame, []byte(`"direction":"in"`)) {
		return "", false
	}
	_, rest, ok := bytes.Cut(frame, []byte(`"message":{`))
	if !ok {
		return "", false
	}
	_, rest, ok = bytes.Cut(rest, []byte(`"text":"`))
	if !ok {
		return "", false
	}
	text, _, ok := bytes.Cut(rest, []byte(`"`))
	return string(text), ok
}

// readFrame reads the next message into buf, which is reused: the rig's
// clients stand in for browsers on other machines and should cost the
// machine under test as little as possible.
func readFrame(conn *websocket.Conn, buf *bytes.Buffer) ([]byte, error) {
	_, rd, err := conn.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// seedBench creates an instance with agents able to hold every visitor's
// ticket and a live-chat channel without a rate limit in the way.
func seedBench(b *testing.B, dsn string, agents, visitors int) []string {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateInstance(ctx, &store.Instance{ID: "bench", Name: "Bench", TimeZone: "UTC"}); err != nil {
		b.Fatal(err)
	}
	var tokens []string
	for i := range agents {
		tok, hash := hub.NewToken("sbag_")
		tokens = append(tokens, tok)
		if err := st.CreateAgent(ctx, &store.Agent{InstanceID: "bench", Name: fmt.Sprintf("Agent %d", i), Email: fmt.Sprintf("a%d@bench.test", i),
			TokenHash: hash, Capacity: visitors/agents + 1}); err != nil {
			b.Fatal(err)
		}
	}
	secrets, _ := json.Marshal(map[string]string{"visitor_secret": "bench-visitor-secret-0123456789"})
	if err := st.CreateChannel(ctx, &store.Channel{ID: "bench-chat", InstanceID: "bench", Kind: "livechat", Name: "Chat",
		Settings: `{"rate_limit":{"per_minute":600000,"burst":10000}}`, Secrets: string(secrets), Enabled: true}); err != nil {
		b.Fatal(err)
	}
	return tokens
}

type benchRig struct {
	node     *node
	visitors []*benchVisitor
	// sent holds each message's send time by text; the first agent socket
	// that receives it (its assignee's) records the latency.
	sent sync.Map
	mu   sync.Mutex
	lat  []time.Duration
	got  atomic.Int64
}

type benchVisitor struct {
	conn *websocket.Conn
	acks chan struct{}
	wmu  sync.Mutex
}

func newBenchRig(b *testing.B, n *node, dsn string, tokens []string, visitors int) *benchRig {
	r := &benchRig{node: n}
	for i, tok := range tokens {
		conn, _, err := websocket.DefaultDialer.Dial(n.ws("/agent/ws"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		var wmu sync.Mutex
		send := func(v any) { wmu.Lock(); defer wmu.Unlock(); _ = conn.WriteJSON(v) }
		send(map[string]any{"type": "auth", "token": tok, "protocol": 1})
		send(map[string]any{"type": "presence", "status": "available", "id": "p"})
		go func() {
			var buf bytes.Buffer
			for {
				data, err := readFrame(conn, &buf)
				if err != nil {
					return
				}
				// The clients stand in for browsers on other machines:
				// they should cost the machine under test as little as
				// possible. A visitor message is found by its text
				// (which the rig wrote, so it needs no unescaping)
				// without decoding the whole frame.
				if text, ok := inboundText(data); ok {
					if t0, ok := r.sent.LoadAndDelete(text); ok {
						d := time.Since(t0.(time.Time))
						r.mu.Lock()
						r.lat = append(r.lat, d)
						r.mu.Unlock()
						r.got.Add(1)
					}
					continue
				}
				var f struct {
					Type     string `json:"type"`
					TicketID int64  `json:"ticket_id"`
					Message  *struct {
						Text      string `json:"text"`
						Direction string `json:"direction"`
					} `json:"message"`
				}
				if json.Unmarshal(data, &f) != nil {
					continue
				}
				switch f.Type {
				case "ticket.offered":
					send(map[string]any{"type": "ticket.accept", "ticket_id": f.TicketID, "id": "a"})
				case "message.new":
					if f.Message != nil && f.Message.Direction == "in" {
						if t0, ok := r.sent.LoadAndDelete(f.Message.Text); ok {
							d := time.Since(t0.(time.Time))
							r.mu.Lock()
							r.lat = append(r.lat, d)
							r.mu.Unlock()
							r.got.Add(1)
						}
					}
				}
			}
		}()
		_ = i
	}
	// Visitors connect in parallel, a few at a time, as page loads would.
	r.visitors = make([]*benchVisitor, visitors)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range visitors {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := websocket.DefaultDialer.Dial(n.ws("/channels/bench-chat/ws"), nil)
			if err != nil {
				b.Error(err)
				return
			}
			v := &benchVisitor{conn: conn, acks: make(chan struct{}, 1024)}
			_ = conn.WriteJSON(map[string]any{"type": "session.start", "v": 1})
			go func() {
				var buf bytes.Buffer
				for {
					data, err := readFrame(conn, &buf)
					if err != nil {
						return
					}
					if bytes.Contains(data, []byte(`"message.ack"`)) {
						v.acks <- struct{}{}
					}
				}
			}()
			r.visitors[i] = v
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Cleanup(func() {
		for _, v := range r.visitors {
			v.conn.Close()
		}
	})
	// Warm up: one message each opens every ticket and gets it assigned.
	r.run(b, 1, 0)
	// A database in service has planner statistics; these tables were
	// created a moment ago, and autovacuum would analyze them only after
	// its next nap (a minute), so the run would measure plans made for
	// empty tables.
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.DB.ExecContext(context.Background(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return r
}

type benchResult struct {
	rate     float64
	p50, p99 time.Duration
}

// run has every visitor send per messages, each after the previous one's
// ack; rate > 0 paces the total offered load.
func (r *benchRig) run(b *testing.B, per int, rate float64) benchResult {
	r.mu.Lock()
	r.lat = r.lat[:0]
	r.mu.Unlock()
	r.got.Store(0)
	total := int64(len(r.visitors) * per)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(r.visitors)) / rate)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, v := range r.visitors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(time.Duration(i) * interval / time.Duration(len(r.visitors)))
			var frame []byte
			for k := range per {
				if interval > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
				}
				text := fmt.Sprintf("v%d-%d-%d", i, k, time.Now().UnixNano())
				// The frame is written by hand: the text needs no escaping,
				// and a JSON encoder per message would be the rig's cost,
				// not the node's.
				frame = append(frame[:0], `{"type":"message.send","client_id":"c`...)
				frame = strconv.AppendInt(frame, int64(k), 10)
				frame = append(frame, '-')
				frame = append(frame, text[len(text)-6:]...)
				frame = append(frame, `","text":"`...)
				frame = append(frame, text...)
				frame = append(frame, `"}`...)
				r.sent.Store(text, time.Now())
				v.wmu.Lock()
				err := v.conn.WriteMessage(websocket.TextMessage, frame)
				v.wmu.Unlock()
				if err != nil {
					return
				}
				select {
				case <-v.acks:
				case <-time.After(30 * time.Second):
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for r.got.Load() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if got := r.got.Load(); got < total {
		b.Fatalf("only %d of %d messages reached an agent; the node's log:\n%s", got, total, tail(r.node.logs(), 4000))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return benchResult{
		rate: float64(total) / elapsed.Seconds(),
		p50:  loadtest.Percentile(r.lat, 50),
		p99:  loadtest.Percentile(r.lat, 99),
	}
}

// BenchmarkIdleVisitorMemory opens idle visitor websockets (each with a
// started session: a conversation and its bus subscription) against a node
// process on Postgres + Redis and reports the growth of the node's
// resident memory per socket. Target: under 20 KiB.
//
//	go test -run '^$' -bench IdleVisitorMemory -benchtime 1x ./cmd/switchboard/
func BenchmarkIdleVisitorMemory(b *testing.B) {
	sockets := envInt("SWITCHBOARD_BENCH_SOCKETS", 2000)
	for range b.N {
		dsn := testenv.Postgres(b)
		_, prefix := testenv.Redis(b)
		seedBench(b, dsn, 1, 1)
		n := startNode(b, []string{"SWITCHBOARD_DATABASE=" + dsn, "SWITCHBOARD_REDIS=" + testenv.RedisURL(),
			"SWITCHBOARD_REDIS_PREFIX=" + prefix, "SWITCHBOARD_LOG_LEVEL=warn", "GOGC=100"}, "--data", b.TempDir())
		// Warm up the node's pools with a few sessions first.
		openVisitors(b, n, 50)
		before := rssKiB(b, n.cmd.Process.Pid)
		conns := openVisitors(b, n, sockets)
		time.Sleep(2 * time.Second) // let the sessions settle; nothing waits on this
		after := rssKiB(b, n.cmd.Process.Pid)
		per := float64(after-before) / float64(len(conns))
		b.ReportMetric(per, "KiB/socket")
		b.ReportMetric(per/20, "ratio-to-20KiB-target")
		b.Logf("%d idle visitor sockets: node RSS %d → %d KiB, %.1f KiB per socket (target < 20 KiB)", len(conns), before, after, per)
	}
}

func openVisitors(b *testing.B, n *node, count int) []*websocket.Conn {
	var (
		mu    sync.Mutex
		conns []*websocket.Conn
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	for range count {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := websocket.DefaultDialer.Dial(n.ws("/channels/bench-chat/ws"), nil)
			if err != nil {
				b.Error(err)
				return
			}
			_ = c.WriteJSON(map[string]any{"type": "session.start", "v": 1})
			_, _, err = c.ReadMessage() // session.ready
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

func rssKiB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
