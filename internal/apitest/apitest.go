// Package apitest holds the test set-up that the tests of the admin API
// (hub/admin) and of the integrations API (hub/api) share: a migrated
// store, a log sink the handlers can write to concurrently, and requests
// with a JSON body. How each API's hub and connectors are set up differs
// and stays in its own tests. It is meant to be imported from _test.go
// files only.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// OpenStore opens the database at dsn and migrates it; the test closes
// it.
func OpenStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// LogBuffer is a log sink safe for concurrent writes: handlers log from
// the goroutines that serve them while the test reads what they wrote.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// NewRequest makes a request for a handler. A string or []byte body is
// sent as is, so that tests can send broken JSON; any other non-nil body
// is encoded as JSON. A request with a body says it is JSON; a test that
// means otherwise overrides the header.
func NewRequest(t testing.TB, method, path string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	r := httptest.NewRequest(method, path, rd)
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}
