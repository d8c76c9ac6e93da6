package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// syncConn is a connector that counts the connectors that run.
type syncConn struct{ live *atomic.Int64 }

func (syncConn) Kind() connectors.Kind                          { return "sync" }
func (syncConn) Policy() connectors.Policy                      { return connectors.Policy{} }
func (c syncConn) Start(context.Context, connectors.Host) error { c.live.Add(1); return nil }
func (c syncConn) Stop(context.Context) error                   { c.live.Add(-1); return nil }
func (syncConn) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, nil
}

// The periodic sync brings a node's channels in line with changes it was
// not told about (the command line, a lost announcement): it starts what
// was added, restarts what changed, stops what was disabled or deleted,
// and tries a failed configuration again. Starts and stops racing on one
// node (the admin API and the sync) leave exactly one connector running.
func TestSyncChannelsFollowsTheStore(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var live atomic.Int64
	builds := map[string]int{}
	reg := connectors.NewRegistry()
	_ = reg.Register("sync", func(c connectors.Config) (connectors.Connector, error) {
		mu.Lock()
		defer mu.Unlock()
		builds[c.ChannelID]++
		if string(c.Settings) == `{"broken":true}` {
			return nil, errors.New("broken settings")
		}
		return syncConn{live: &live}, nil
	})
	h, st := newSyncHub(t, reg)
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
	if running("c1") || built("c1") != 4 {
		t.Fatalf("broken: running %v, built %d (a failed configuration is tried at every sync)", running("c1"), built("c1"))
	}
	ch.Settings = `{}`
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if !running("c1") || built("c1") != 5 {
		t.Fatalf("repaired: running %v, built %d", running("c1"), built("c1"))
	}
	// The same configuration again is no restart.
	if err := h.StartChannel(ctx, ch); err != nil || built("c1") != 5 {
		t.Fatalf("same configuration: built %d, err %v", built("c1"), err)
	}
	// Restarts racing with syncs: one connector runs at the end.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c := ch
			c.Name = fmt.Sprintf("name %d", i)
			_ = h.StartChannel(ctx, c)
		})
		wg.Go(func() { h.syncChannels(ctx) })
	}
	wg.Wait()
	if n := live.Load(); n != 1 {
		t.Fatalf("%d connectors running after racing restarts, want 1", n)
	}
	ch.Enabled = false
	if err := st.UpdateChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if running("c1") || live.Load() != 0 {
		t.Fatalf("disabled channel still running (%d connectors)", live.Load())
	}
}

// claimConn holds an address while it runs, as the email channel holds
// its inbound addresses: a second connector cannot take a held one.
type claimConn struct {
	addr string
	mu   *sync.Mutex
	held map[string]bool
}

func (claimConn) Kind() connectors.Kind     { return "claim" }
func (claimConn) Policy() connectors.Policy { return connectors.Policy{} }
func (c claimConn) Start(context.Context, connectors.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[c.addr] {
		return fmt.Errorf("%s is already served by another channel", c.addr)
	}
	c.held[c.addr] = true
	return nil
}
func (c claimConn) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, c.addr)
	return nil
}
func (claimConn) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, nil
}

// Two channels swap addresses elsewhere (the command line): the sync
// stops both before starting either, so neither finds its new address
// still held; and a channel that failed for want of an address is tried
// again once it is free, without a change of its own.
func TestSyncChannelsFreesBeforeTaking(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	held := map[string]bool{}
	reg := connectors.NewRegistry()
	_ = reg.Register("claim", func(c connectors.Config) (connectors.Connector, error) {
		var s struct{ Addr string }
		_ = json.Unmarshal(c.Settings, &s)
		return claimConn{addr: s.Addr, mu: &mu, held: held}, nil
	})
	h, st := newSyncHub(t, reg)
	mk := func(id, addr string) store.Channel {
		return store.Channel{ID: id, InstanceID: "acme", Kind: "claim", Name: id, Settings: `{"addr":"` + addr + `"}`, Enabled: true}
	}
	mx, my := mk("mx", "a"), mk("my", "b")
	for _, ch := range []*store.Channel{&mx, &my} {
		if err := st.CreateChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	h.syncChannels(ctx)
	// my takes mx's address, mx moves on: in id order a start-as-you-go
	// sync would start mx (to c) only after my had failed on a.
	my2, mx2 := mk("my", "a"), mk("mx", "c")
	for _, ch := range []*store.Channel{&my2, &mx2} {
		if err := st.UpdateChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	h.syncChannels(ctx)
	if h.channel("mx") == nil || h.channel("my") == nil {
		t.Fatalf("after the swap: mx running %v, my running %v", h.channel("mx") != nil, h.channel("my") != nil)
	}
	// z wants an address that mx holds: it fails, and runs once mx
	// gives it up, though z itself did not change.
	z := mk("z", "c")
	if err := st.CreateChannel(ctx, &z); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if h.channel("z") != nil {
		t.Fatal("z runs on an address mx holds")
	}
	mx.Enabled = false
	if err := st.UpdateChannel(ctx, &mx); err != nil {
		t.Fatal(err)
	}
	h.syncChannels(ctx)
	if h.channel("z") == nil {
		t.Fatal("z not started once its address was free")
	}
}

// newSyncHub returns a hub (not started) on a fresh SQLite store with the
// instance "acme", running the connectors of reg.
func newSyncHub(t *testing.T, reg *connectors.Registry) (*Hub, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Deps{Store: st, Router: memroute.New(routing.Config{}), Bus: memroute.NewBus(), Blobs: blobs, Connectors: reg}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.StopChannels(ctx) })
	if err := st.CreateInstance(ctx, &store.Instance{ID: "acme", Name: "Acme", TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	return h, st
}
