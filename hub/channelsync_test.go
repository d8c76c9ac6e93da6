package hub

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// syncConn is a connector that only counts how often it was built.
type syncConn struct{}

func (syncConn) Kind() connectors.Kind                        { return "sync" }
func (syncConn) Policy() connectors.Policy                    { return connectors.Policy{} }
func (syncConn) Start(context.Context, connectors.Host) error { return nil }
func (syncConn) Stop(context.Context) error                   { return nil }
func (syncConn) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, nil
}

// The periodic sync brings a node's channels in line with changes it was
// not told about (the command line, a lost announcement): it starts what
// was added, restarts what changed, stops what was disabled or deleted,
// and does not retry a configuration that failed until it changes.
func TestSyncChannelsFollowsTheStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	builds := map[string]int{}
	reg := connectors.NewRegistry()
	_ = reg.Register("sync", func(c connectors.Config) (connectors.Connector, error) {
		mu.Lock()
		defer mu.Unlock()
		builds[c.ChannelID]++
		if string(c.Settings) == `{"broken":true}` {
			return nil, errors.New("broken settings")
		}
		return syncConn{}, nil
	})
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Deps{Store: st, Router: memroute.New(routing.Config{}), Bus: memroute.NewBus(), Blobs: blobs, Connectors: reg}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.StopChannels(ctx)
	if err := st.CreateInstance(ctx, &store.Instance{ID: "acme", Name: "Acme", TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	running := func(id string) bool { return h.channel(id) != nil }
	built := func(id string) int { mu.Lock(); defer mu.Unlock(); return builds[id] }

	ch := store.Channel{ID: "c1", InstanceID: "acme", Kind: "sync", Name: "One", Settings: `{}`, Enabled: true}
	if err := st.CreateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if !running("c1") || built("c1") != 1 {
		t.Fatalf("added: running %v, built %d", running("c1"), built("c1"))
	}
	h.syncChannels(ctx)
	if built("c1") != 1 {
		t.Fatalf("unchanged channel rebuilt: %d", built("c1"))
	}
	ch.Settings = `{"x":1}`
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if !running("c1") || built("c1") != 2 {
		t.Fatalf("changed: running %v, built %d", running("c1"), built("c1"))
	}
	ch.Settings = `{"broken":true}`
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	h.syncChannels(ctx)
	if running("c1") || built("c1") != 3 {
		t.Fatalf("broken: running %v, built %d (a failed configuration is tried once)", running("c1"), built("c1"))
	}
	ch.Settings = `{}`
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if !running("c1") || built("c1") != 4 {
		t.Fatalf("repaired: running %v, built %d", running("c1"), built("c1"))
	}
	ch.Enabled = false
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if running("c1") {
		t.Fatal("disabled channel still running")
	}
}
