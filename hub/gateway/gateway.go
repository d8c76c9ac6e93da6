package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/wscork"
)

// Gateway serves the agents' websocket. It is an http.Handler; the host
// mounts it (at /agent/ws).
type Gateway struct {
	hub      *hub.Hub
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	// ctx lives as long as the gateway: background work (subscriptions,
	// heartbeats, requests) ends with it.
	ctx    context.Context
	cancel context.CancelFunc

	nextID atomic.Uint64

	mu      sync.Mutex
	closed  bool
	conns   map[*conn]struct{}
	feeds   map[string]*feed      // by instance id: one bus subscription each
	agents  map[agentKey]*agentOn // agents with at least one socket here
	conned  sync.WaitGroup        // sockets being served
	presWG  sync.WaitGroup        // presence loops
	observe func(event)           // test signal; nil in production
}

// event is a test signal: tests wait on these instead of sleeping.
type event struct {
	kind     string // "closed", "unsubscribed", "heartbeat"
	instance string
	agentID  int64
	code     int
	reason   string
}

type agentKey struct {
	instance string
	id       int64
}

// agentOn is an agent that has sockets on this node.
type agentOn struct {
	key    agentKey
	agent  *store.Agent // latest record (refreshed on each heartbeat)
	status routing.Status
	conns  map[*conn]struct{}
	stop   chan struct{}
}

// Stats is a snapshot of what the gateway holds.
type Stats struct {
	Sockets   int // authenticated or not
	Agents    int // distinct agents with a socket
	Instances int // instances with a bus subscription
}

// New builds a gateway over a hub; it does no I/O. Call Shutdown to close
// the sockets it serves.
func New(h *hub.Hub, cfg Config, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "gateway")
	cfg = cfg.withDefaults(log)
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		hub: h, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		conns:  map[*conn]struct{}{},
		feeds:  map[string]*feed{},
		agents: map[agentKey]*agentOn{},
	}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Subprotocols:     []string{Subprotocol},
		CheckOrigin:      g.checkOrigin,
	}
	return g
}

// ServeHTTP upgrades the request to a websocket and serves it until it
// closes.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	// Read before the upgrade: the headers are gone after the hijack.
	token := headerToken(r)
	urlToken := hasURLToken(r.URL)
	ws, _, err := wscork.Upgrade(&g.upgrader, w, r, nil)
	if err != nil {
		// The upgrader has answered with an HTTP error already.
		g.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(g, ws, r.RemoteAddr)
	if !g.track(c) {
		c.closeWith(websocket.CloseGoingAway, "server shutting down", false)
	}
	defer g.untrack(c)
	defer func() {
		// A bug in one socket's reader must not take the node's HTTP
		// server down with it; the socket ends, the others go on.
		if r := recover(); r != nil {
			g.log.Error("panic recovered", "in", "reader", "session", c.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.kill()
		}
	}()
	c.serve(token, urlToken)
}

// Shutdown closes every socket with "server shutting down" and waits
// for them to end, or for ctx; then it stops the gateway's background
// work. Agents are not signed out: their presence lapses after the
// router's TTL unless they reconnect to another node first.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down", true)
	}
	done := make(chan struct{})
	go func() {
		g.conned.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway shutdown: %w", ctx.Err())
		for _, c := range conns {
			c.kill()
		}
	}
	g.cancel()
	g.presWG.Wait()
	return err
}

// Stats reports what the gateway holds now.
func (g *Gateway) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{Sockets: len(g.conns), Agents: len(g.agents), Instances: len(g.feeds)}
}

func (g *Gateway) track(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	g.conned.Add(1)
	return true
}

func (g *Gateway) untrack(c *conn) {
	// Out of the socket count before it leaves its instance: whoever sees
	// the instance's subscription end (the last socket leaving) sees the
	// count without it. Shutdown still waits for the leave (conned).
	g.mu.Lock()
	_, ok := g.conns[c]
	delete(g.conns, c)
	g.mu.Unlock()
	g.leave(c)
	if ok {
		g.conned.Done()
	}
	code, reason := c.closeStatus()
	g.signal(event{kind: "closed", instance: c.instanceID(), agentID: c.agentID(), code: code, reason: reason})
}

// join attaches an authenticated socket to its instance's subscription
// (made on first use) and to its agent's presence. It returns the
// instance's newest cursor, read after the subscription exists so that
// nothing committed after it can be missed.
func (g *Gateway) join(ctx context.Context, c *conn, a *store.Agent) (int64, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return 0, errors.New("gateway closed")
	}
	f := g.feeds[a.InstanceID]
	if f == nil {
		f = newFeed(g, a.InstanceID)
		// Subscribing under the lock keeps one subscription per instance
		// per node even when many sockets of a new instance arrive at
		// once; it is one round trip, once per instance.
		cancel, err := g.hub.SubscribeInstanceRelay(g.ctx, a.InstanceID, f.dispatch)
		if err != nil {
			g.mu.Unlock()
			return 0, fmt.Errorf("subscribe to instance updates: %w", err)
		}
		f.cancel = cancel
		g.feeds[a.InstanceID] = f
	}
	f.add(c)
	c.setFeed(f)
	key := agentKey{a.InstanceID, a.ID}
	ag := g.agents[key]
	if ag == nil {
		ag = &agentOn{key: key, agent: a, conns: map[*conn]struct{}{}, stop: make(chan struct{})}
		g.agents[key] = ag
		g.presWG.Add(1)
		go g.presenceLoop(ag)
	}
	ag.conns[c] = struct{}{}
	g.mu.Unlock()

	cur, err := g.hub.Store().LastChange(ctx, a.InstanceID)
	if err != nil {
		return 0, fmt.Errorf("read the newest cursor: %w", err)
	}
	return cur, nil
}

// leave detaches a socket; the last socket of an instance drops the
// subscription, the last socket of an agent stops its heartbeats (the
// router's TTL then decides, unless the agent went offline explicitly).
func (g *Gateway) leave(c *conn) {
	f := c.getFeed()
	if f == nil {
		return
	}
	a := c.agentRecord()
	var unsubscribe func()
	g.mu.Lock()
	if f.remove(c) == 0 && g.feeds[f.instance] == f {
		delete(g.feeds, f.instance)
		unsubscribe = f.cancel
	}
	key := agentKey{a.InstanceID, a.ID}
	if ag := g.agents[key]; ag != nil {
		delete(ag.conns, c)
		if len(ag.conns) == 0 {
			delete(g.agents, key)
			close(ag.stop)
		}
	}
	g.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
		g.signal(event{kind: "unsubscribed", instance: f.instance})
	}
}

// agent returns the latest record of a socket's agent.
func (g *Gateway) agent(c *conn) *store.Agent {
	a := c.agentRecord()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ag := g.agents[agentKey{a.InstanceID, a.ID}]; ag != nil {
		return ag.agent
	}
	return a
}

// setStatus records the presence an agent chose, renewed by the
// presence loop while the agent has a socket here.
func (g *Gateway) setStatus(a *store.Agent, s routing.Status) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ag := g.agents[agentKey{a.InstanceID, a.ID}]; ag != nil {
		ag.status = s
	}
}

func (g *Gateway) signal(e event) {
	if g.observe != nil {
		g.observe(e)
	}
}

// safely runs fn, logging a panic instead of letting it kill the node.
func (g *Gateway) safely(what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("panic recovered", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// checkOrigin allows requests without an Origin (non-browser clients),
// from the gateway's own host, and from the configured origins.
func (g *Gateway) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// headerToken reads a token from "Authorization: Bearer <token>" or from
// a "bearer.<token>" subprotocol (what browsers can send).
func headerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	for _, p := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(p, "bearer."); ok && t != "" {
			return t
		}
	}
	return ""
}

// hasURLToken tells whether a client put a token in the URL, where proxies
// and access logs keep it; such sockets are refused.
func hasURLToken(u *url.URL) bool {
	// Read the raw query: url.Query drops a pair with a ';' in it, and a
	// token there is in the URL (and so in logs) all the same. The name's
	// case does not matter for the same reason.
	for _, pair := range strings.FieldsFunc(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, _, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		switch strings.ToLower(k) {
		case "token", "access_token", "auth", "authorization":
			return true
		}
	}
	return false
}
