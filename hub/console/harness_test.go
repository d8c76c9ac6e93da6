package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/livechat"
	"github.com/switchboard-hub/switchboard/connectors/webform"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/console"
	"github.com/switchboard-hub/switchboard/hub/gateway"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// waitUI bounds each wait for something to show in the browser. Every
// step of these tests takes milliseconds; the bound only turns a hang into
// a failure with a message.
const waitUI = 10 * time.Second

const (
	instanceID    = "acme"
	webformID     = "acme-form"
	livechatID    = "acme-chat"
	probeID       = "acme-probe"
	visitorSecret = "console-test-visitor-secret-0123456789"
	failMarker    = "[fail]" // a probe reply containing it fails for good
	failReason    = "the recipient's mailbox is full"
)

// env is a real hub on SQLite with in-process routing, the web-form and
// live-chat connectors, a probe connector, the agent gateway and the
// console, behind one HTTP server: what `switchboard serve` mounts.
type env struct {
	t     *testing.T
	h     *hub.Hub
	st    *store.Store
	srv   *httptest.Server
	probe *probe
	logs  *lockedBuffer

	gwMu sync.Mutex
	gw   *gateway.Gateway // nil while "down" (restartGateway)

	agents map[string]agentCred
}

type agentCred struct {
	agent *store.Agent
	token string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, logs: &lockedBuffer{}, agents: map[string]agentCred{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hub log:\n%s", e.logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	st, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.st = st
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bus := memroute.NewBus()
	t.Cleanup(func() { bus.Close() })

	reg := connectors.NewRegistry()
	for kind, f := range map[connectors.Kind]connectors.Factory{
		webform.Kind:  webform.Factory,
		livechat.Kind: livechat.Factory,
		"probe": func(connectors.Config) (connectors.Connector, error) {
			e.probe = &probe{}
			return e.probe, nil
		},
	} {
		if err := reg.Register(kind, f); err != nil {
			t.Fatal(err)
		}
	}
	h, err := hub.New(hub.Deps{Store: st, Router: memroute.New(routing.Config{}), Bus: bus, Blobs: blobs, Connectors: reg, Logger: log},
		hub.Config{SweepInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h

	if err := st.CreateInstance(ctx, &store.Instance{ID: instanceID, Name: "Acme", TimeZone: "Europe/Amsterdam"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Ada", "Bob"} {
		tok, hash := hub.NewToken("sbag_")
		a := &store.Agent{InstanceID: instanceID, Name: name, Email: strings.ToLower(name) + "@acme.test", TokenHash: hash, Capacity: 3}
		if err := st.CreateAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
		e.agents[name] = agentCred{agent: a, token: tok}
	}
	for _, ch := range []store.Channel{
		// The rate limit is per client address, and every request of a
		// test comes from 127.0.0.1.
		{ID: webformID, Kind: string(webform.Kind), Name: "Contact form", Settings: `{"rate_limit":{"disabled":true}}`},
		{ID: livechatID, Kind: string(livechat.Kind), Name: "Chat", Settings: `{}`, Secrets: `{"` + livechat.SecretVisitor + `":"` + visitorSecret + `"}`},
		{ID: probeID, Kind: "probe", Name: "Probe", Settings: `{}`},
	} {
		ch.InstanceID, ch.Enabled = instanceID, true
		if ch.Secrets == "" {
			ch.Secrets = "{}"
		}
		if err := st.CreateChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
	}

	// Start runs every enabled channel, the routing sweep and the outbox
	// dispatcher, as serve does.
	hctx, stop := context.WithCancel(ctx)
	if err := h.Start(hctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Wait(wctx)
	})
	e.gw = gateway.New(h, gateway.Config{}, log)
	t.Cleanup(func() { e.stopGateway() })

	mux := http.NewServeMux()
	mux.Handle("/console/", console.Handler())
	mux.HandleFunc("/agent/ws", func(w http.ResponseWriter, r *http.Request) {
		e.gwMu.Lock()
		gw := e.gw
		e.gwMu.Unlock()
		if gw == nil {
			http.Error(w, "gateway restarting", http.StatusServiceUnavailable)
			return
		}
		gw.ServeHTTP(w, r)
	})
	mux.Handle("/channels/{channel}/{path...}", h.ChannelHandler())
	mux.Handle("GET /agent/attachments/{id}", gateway.AttachmentHandler(h, log))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// stopGateway closes every agent socket, as a node restart does; the
// gateway answers 503 until startGateway.
func (e *env) stopGateway() {
	e.gwMu.Lock()
	gw := e.gw
	e.gw = nil
	e.gwMu.Unlock()
	if gw == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		e.t.Errorf("gateway shutdown: %v", err)
	}
}

func (e *env) startGateway() {
	e.gwMu.Lock()
	defer e.gwMu.Unlock()
	e.gw = gateway.New(e.h, gateway.Config{}, slog.New(slog.NewTextHandler(e.logs, nil)))
}

// ticketsOf returns the instance's tickets of a channel, newest first.
func (e *env) ticketsOf(channelID string) []store.Ticket {
	e.t.Helper()
	ts, err := e.st.Tickets(context.Background(), instanceID, store.TicketFilter{Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.Ticket
	for _, t := range ts {
		if t.ChannelID == channelID {
			out = append(out, t)
		}
	}
	return out
}

func (e *env) contactName(t store.Ticket) string {
	e.t.Helper()
	c, err := e.st.Contact(context.Background(), instanceID, t.ContactID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Name
}

// ---- the probe connector: a channel whose sends we decide ----

// probe is a test channel: Deliver puts any inbound message (HTML
// included) into the hub, and a reply containing failMarker fails for
// good, so the console's failure display can be checked.
type probe struct {
	mu   sync.Mutex
	host connectors.Host
}

func (p *probe) Kind() connectors.Kind { return "probe" }
func (p *probe) Policy() connectors.Policy {
	return connectors.Policy{Threading: connectors.ThreadingConversation}
}
func (p *probe) Start(_ context.Context, h connectors.Host) error {
	p.mu.Lock()
	p.host = h
	p.mu.Unlock()
	return nil
}
func (p *probe) Stop(context.Context) error { return nil }
func (p *probe) Send(_ context.Context, o connectors.Outbound) (connectors.SendResult, error) {
	if strings.Contains(o.Text, failMarker) {
		return connectors.SendResult{}, connectors.NewError(connectors.Permanent, "mailbox_full", failReason, nil)
	}
	return connectors.SendResult{ExternalID: "probe-" + o.IdempotencyKey, State: connectors.DeliverySent}, nil
}

func (p *probe) deliver(t *testing.T, in connectors.Inbound) connectors.Receipt {
	t.Helper()
	p.mu.Lock()
	h := p.host
	p.mu.Unlock()
	r, err := h.Deliver(context.Background(), in)
	if err != nil {
		t.Fatalf("probe deliver: %v", err)
	}
	return r
}

// ---- a live-chat visitor over the real visitor websocket ----

type visitor struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan map[string]any
	conv   int64
	n      atomic.Int64
}

func (e *env) newVisitor(t *testing.T, name string) *visitor {
	t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/channels/" + livechatID + "/ws"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("visitor dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	v := &visitor{t: t, ws: ws, frames: make(chan map[string]any, 256)}
	go func() {
		defer close(v.frames)
		for {
			var f map[string]any
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			v.frames <- f
		}
	}()
	v.send(map[string]any{"type": "session.start", "v": 1, "name": name})
	ready := v.next("session.ready")
	v.conv = int64(ready["conversation_id"].(float64))
	return v
}

func (v *visitor) send(f map[string]any) {
	v.t.Helper()
	if err := v.ws.WriteJSON(f); err != nil {
		v.t.Fatalf("visitor write: %v", err)
	}
}

// next returns the next frame of a type, skipping others.
func (v *visitor) next(typ string) map[string]any {
	v.t.Helper()
	timeout := time.After(waitUI)
	for {
		select {
		case f, ok := <-v.frames:
			if !ok {
				v.t.Fatalf("visitor socket closed while waiting for %s", typ)
			}
			if f["type"] == "error" {
				v.t.Fatalf("visitor got an error frame: %v", f)
			}
			if f["type"] == typ {
				return f
			}
		case <-timeout:
			v.t.Fatalf("visitor: no %s frame", typ)
		}
	}
}

// say sends a message and waits for its ack (it is stored then).
func (v *visitor) say(text string) {
	v.t.Helper()
	id := fmt.Sprintf("m%d", v.n.Add(1))
	v.send(map[string]any{"type": "message.send", "client_id": id, "text": text})
	for {
		ack := v.next("message.ack")
		if ack["client_id"] == id {
			return
		}
	}
}

// ---- the browser ----

// browser is one headless Chromium; tab opens a window in it.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab; the browser lives as long as it
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SWITCHBOARD_CHROMIUM")
	if p == "" {
		var err error
		if p, err = exec.LookPath("chromium"); err != nil {
			p = ""
		}
	}
	if p == "" {
		const msg = "Chromium not found (install Debian's chromium package or set SWITCHBOARD_CHROMIUM)"
		if testenv.Required() {
			t.Fatal(msg + "; it is required with CI=true or SWITCHBOARD_REQUIRE_SERVICES=1")
		}
		t.Skip("SKIP: " + msg)
	}
	return p
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root on the test machines
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser without a deadline: its life is bound to the
	// context of this first call.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// tab is one browser window with everything it reports recorded.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu         sync.Mutex
	dialogs    []string
	exceptions []string
	errors     []string // console errors, CSP violations among them
	urls       []string // every request and websocket URL
}

// tab opens a window; the first call reuses the browser's first tab.
func (b *browser) tab(name string, first bool) *tab {
	t := b.t
	t.Helper()
	ctx := b.ctx
	if !first {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.ctx)
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("open tab: %v", err)
		}
	}
	tb := &tab{t: t, ctx: ctx, name: name}
	err := chromedp.Listen(ctx, func(ev any) {
		// Runs in the tab's read loop: record, never block.
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			tb.dialogs = append(tb.dialogs, string(ev.Type)+": "+ev.Message)
			// An open dialog blocks the page: dismiss it from elsewhere.
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false}) //nolint:errcheck
		case *runtime.EventExceptionThrown:
			tb.exceptions = append(tb.exceptions, exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				tb.errors = append(tb.errors, "console."+string(ev.Type))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				tb.errors = append(tb.errors, string(ev.Entry.Source)+": "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			tb.urls = append(tb.urls, ev.Request.URL)
		case *network.EventWebSocketCreated:
			tb.urls = append(tb.urls, ev.URL)
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return tb
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "exception"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", s, d.URL, d.LineNumber+1)
}

// do runs steps with the UI deadline.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitUI)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %s: %v%s", tb.name, what, err, tb.report())
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitUI)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v%s", tb.name, expr, err, tb.report())
	}
	return v
}

// until waits for a JavaScript expression to become truthy and returns
// its value. It polls on a timer: requestAnimationFrame does not run in a
// window that is not in front.
func until[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitUI+time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(waitUI)))
	if err != nil {
		tb.t.Fatalf("%s: waiting for %s: %v%s", tb.name, what, err, tb.report())
	}
	return v
}

// report describes the page for a failure message.
func (tb *tab) report() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		conn: document.getElementById('conn') && document.getElementById('conn').textContent,
		error: document.getElementById('ticket-error') && document.getElementById('ticket-error').textContent,
		signin: document.getElementById('signin-error') && document.getElementById('signin-error').textContent,
		tickets: Array.from(document.querySelectorAll('#tickets li')).map(li => li.textContent),
	})`))
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return fmt.Sprintf("\n  page: %s\n  dialogs: %q\n  exceptions: %q\n  console errors: %q", state, tb.dialogs, tb.exceptions, tb.errors)
}

// checkClean fails the test if the page opened a dialog, threw, logged an
// error (a CSP violation is one) or put the token in a URL. Console errors
// containing one of the allowed substrings were expected by the caller.
func (tb *tab) checkClean(token string, allowed ...string) {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.dialogs) > 0 {
		tb.t.Errorf("%s: JavaScript dialogs opened (injected script ran): %q", tb.name, tb.dialogs)
	}
	if len(tb.exceptions) > 0 {
		tb.t.Errorf("%s: uncaught exceptions: %q", tb.name, tb.exceptions)
	}
next:
	for _, e := range tb.errors {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		tb.t.Errorf("%s: console error: %s", tb.name, e)
	}
	if token == "" {
		return
	}
	for _, u := range tb.urls {
		if strings.Contains(u, token) {
			tb.t.Errorf("%s: the agent token is in a URL: %s", tb.name, u)
		}
	}
}

// requested tells whether the page requested a URL containing s.
func (tb *tab) requested(s string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, u := range tb.urls {
		if strings.Contains(u, s) {
			return true
		}
	}
	return false
}

// signIn opens the console and signs in with a token.
func (tb *tab) signIn(baseURL, token string) {
	tb.t.Helper()
	tb.do("sign in",
		chromedp.Navigate(baseURL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("app")),
	)
	until[bool](tb, "connected", `document.querySelector('#conn.conn-up') !== null`)
}

// choose sets a select, radio or text input as a person would, firing
// the events the page listens to.
func (tb *tab) choose(selector, value string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (e.type === 'radio') { e.checked = true; } else { e.value = %s; }
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})()`, jsString(selector), jsString(value))
	eval[bool](tb, js)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ---- C25 input ----

// readHTTP parses a raw HTTP request file into its content type and body.
func readHTTP(t *testing.T, path string) (contentType string, body []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(req.Body); err != nil {
		t.Fatalf("read body of %s: %v", path, err)
	}
	return req.Header.Get("Content-Type"), buf.Bytes()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ connectors.Connector = (*probe)(nil)

// screenshot saves a PNG of the window to $SWITCHBOARD_SCREENSHOTS/name.png
// when that variable names a directory: a way to look at what the tests
// see.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("SWITCHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, waitUI)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
	}
}

// sockets counts the websockets the window opened.
func (tb *tab) sockets() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := 0
	for _, u := range tb.urls {
		if strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://") {
			n++
		}
	}
	return n
}
