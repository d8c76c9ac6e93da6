package hub

import (
	"context"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// channelsTopic is the bus topic on which a node announces that it
// changed a channel; every node then syncs its channels with the store.
const channelsTopic = "channels"

// ChannelsChanged tells every node that channels changed in the store
// (the admin API calls it after applying a change here), so that each
// starts, restarts or stops its own: every node runs every channel. A
// node that misses the word catches up at its next periodic sync.
func (h *Hub) ChannelsChanged(ctx context.Context) {
	if err := h.bus.Publish(ctx, channelsTopic, []byte("changed")); err != nil {
		h.log.Warn("announce channel change", "err", err)
	}
}

func (h *Hub) wakeChannelSync() {
	select {
	case h.syncKick <- struct{}{}:
	default:
	}
}

// syncChannels brings this node's running channels in line with the
// store: a channel added, changed, disabled or deleted elsewhere (another
// node's admin API, the command line) is started, restarted or stopped
// here too. A configuration that failed to start is not tried again until
// it changes (its error was logged once).
func (h *Hub) syncChannels(ctx context.Context) {
	chs, err := h.store.Channels(ctx, "")
	if err != nil {
		h.log.Warn("channel sync: load channels", "err", err)
		return
	}
	want := make(map[string]store.Channel, len(chs))
	for _, ch := range chs {
		if ch.Enabled {
			want[ch.ID] = ch
		}
	}
	h.mu.RLock()
	running := make(map[string]store.Channel, len(h.channels))
	for id, rc := range h.channels {
		running[id] = rc.ch
	}
	h.mu.RUnlock()
	for id := range running {
		if _, ok := want[id]; !ok {
			h.log.Info("channel sync: stopping a channel disabled or deleted elsewhere", "channel", id)
			h.StopChannel(ctx, id)
		}
	}
	for id, ch := range want {
		if cur, ok := running[id]; ok && sameChannelConfig(cur, ch) {
			continue
		}
		h.failedMu.Lock()
		f, failed := h.failed[id]
		h.failedMu.Unlock()
		if failed && sameChannelConfig(f, ch) {
			continue
		}
		h.log.Info("channel sync: starting a channel added or changed elsewhere", "channel", id, "kind", ch.Kind)
		h.startTracked(ctx, ch)
	}
}

// startTracked starts a channel and logs its failure.
func (h *Hub) startTracked(ctx context.Context, ch store.Channel) {
	if err := h.StartChannel(ctx, ch); err != nil {
		h.log.Error("channel not started", "channel", ch.ID, "kind", ch.Kind, "err", err)
	}
}

// sameChannelConfig reports whether two versions of a channel would run
// the same connector.
func sameChannelConfig(a, b store.Channel) bool {
	sameTeam := (a.TeamID == nil) == (b.TeamID == nil) && (a.TeamID == nil || *a.TeamID == *b.TeamID)
	return a.InstanceID == b.InstanceID && a.Kind == b.Kind && a.Name == b.Name &&
		a.Settings == b.Settings && a.Secrets == b.Secrets && a.Enabled == b.Enabled && sameTeam
}
