package webform

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// recordingHost is the connectors.Host of these tests: it stores each
// delivered item once per ExternalID, as the hub does, and can be told to
// fail or to hold Deliver until released.
type recordingHost struct {
	mu     sync.Mutex
	stored []connectors.Inbound
	byID   map[string]connectors.Receipt
	calls  int
	err    error

	entered chan struct{} // receives once Deliver is called, if set
	release chan struct{} // Deliver waits for it, if set
}

func newRecordingHost() *recordingHost {
	return &recordingHost{byID: map[string]connectors.Receipt{}}
}

func (h *recordingHost) Deliver(ctx context.Context, in connectors.Inbound) (connectors.Receipt, error) {
	if h.entered != nil {
		h.entered <- struct{}{}
	}
	if h.release != nil {
		select {
		case <-h.release:
		case <-ctx.Done():
			return connectors.Receipt{}, ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.err != nil {
		return connectors.Receipt{}, h.err
	}
	if rec, ok := h.byID[in.ExternalID]; ok {
		rec.Duplicate = true
		return rec, nil
	}
	n := int64(len(h.stored) + 1)
	rec := connectors.Receipt{ConversationID: n, TicketNumber: 1000 + n, MessageID: n}
	h.byID[in.ExternalID] = rec
	h.stored = append(h.stored, in)
	return rec, nil
}

func (h *recordingHost) items() []connectors.Inbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]connectors.Inbound(nil), h.stored...)
}

func (h *recordingHost) deliverCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func (h *recordingHost) UpdateDelivery(context.Context, connectors.DeliveryUpdate) error {
	return connectors.ErrUnsupported
}

func (h *recordingHost) OpenThread(context.Context, connectors.ThreadOpen) (connectors.Thread, error) {
	return connectors.Thread{}, connectors.ErrUnsupported
}

func (h *recordingHost) History(context.Context, string, int64, int64, int) ([]connectors.HistoryItem, error) {
	return nil, connectors.ErrUnsupported
}

func (h *recordingHost) Signal(context.Context, connectors.Signal) error {
	return connectors.ErrUnsupported
}

func (h *recordingHost) LoadState(context.Context, string) (string, error) {
	return "", connectors.ErrUnsupported
}

func (h *recordingHost) SaveState(context.Context, string, string) error {
	return connectors.ErrUnsupported
}

var _ connectors.Host = (*recordingHost)(nil)

// fakeClock is a settable clock for the rate limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink safe to read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a started connector behind a real HTTP server, mounted the way
// the hub mounts routes: under /channels/{channelID}/.
type fixture struct {
	c     *Connector
	host  *recordingHost
	srv   *httptest.Server
	clock *fakeClock
	logs  *syncBuffer
}

const testChannel = "ch1"

func newFixture(t *testing.T, settings string) *fixture {
	t.Helper()
	f := &fixture{
		host:  newRecordingHost(),
		clock: &fakeClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)},
		logs:  &syncBuffer{},
	}
	c, err := New(connectors.Config{
		InstanceID: "inst1",
		ChannelID:  testChannel,
		Settings:   json.RawMessage(settings),
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        f.clock.Now,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.c = c
	mux := http.NewServeMux()
	for _, rt := range c.Routes() {
		pattern := "/channels/" + testChannel + "/" + rt.Path
		if rt.Method != "" {
			pattern = rt.Method + " " + pattern
		}
		mux.Handle(pattern, rt.Handler)
	}
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	if err := c.Start(t.Context(), f.host); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return f
}

func (f *fixture) url(path string) string {
	return f.srv.URL + "/channels/" + testChannel + "/" + path
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("response is not JSON (%v): %q", err, r.body)
	}
	return m
}

func (f *fixture) do(t *testing.T, method, path, contentType string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (f *fixture) postJSON(t *testing.T, body string, header map[string]string) response {
	t.Helper()
	return f.do(t, http.MethodPost, "submit", "application/json", strings.NewReader(body), header)
}

func (f *fixture) postForm(t *testing.T, body string, header map[string]string) response {
	t.Helper()
	return f.do(t, http.MethodPost, "submit", "application/x-www-form-urlencoded", strings.NewReader(body), header)
}
