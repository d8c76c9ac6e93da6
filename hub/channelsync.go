package hub

import (
	"context"
	"strings"

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

// failedChannel is a channel's configuration that failed to start, with
// the error last reported.
type failedChannel struct {
	ch  store.Channel
	err string
}

// syncChannels brings this node's running channels in line with the
// store: a channel added, changed, disabled or deleted elsewhere (another
// node's admin API, the command line) is started, restarted or stopped
// here too. Every stop comes before every start, so a channel that gives
// up an address or a mailbox frees it before another takes it. A channel
// that failed to start is tried again each time (what it needs may have
// been freed since), and reported again only when its error changes.
func (h *Hub) syncChannels(ctx context.Context) {
	chs, err := h.store.Channels(ctx, "")
	if err != nil {
		h.log.Warn("channel sync: load channels", "err", err)
		return
	}
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.mu.RLock()
	running := make(map[string]store.Channel, len(h.channels))
	for id, rc := range h.channels {
		running[id] = rc.ch
	}
	h.mu.RUnlock()
	want := map[string]bool{}
	var start, retry []store.Channel
	for _, ch := range chs { // in id order
		if !ch.Enabled {
			continue
		}
		want[ch.ID] = true
		h.failedMu.Lock()
		f, failed := h.failed[ch.ID]
		h.failedMu.Unlock()
		switch cur, ok := running[ch.ID]; {
		case ok && sameChannelConfig(cur, ch):
		case failed && sameChannelConfig(f.ch, ch):
			retry = append(retry, ch)
		default:
			start = append(start, ch)
		}
	}
	restart := make(map[string]bool, len(start))
	for _, ch := range start {
		restart[ch.ID] = true
	}
	for id := range running {
		switch {
		case !want[id]:
			h.log.Info("channel sync: stopping a channel disabled or deleted elsewhere", "channel", id)
			h.stopLocked(ctx, id)
		case restart[id]:
			h.stopLocked(ctx, id)
		}
	}
	for _, ch := range start {
		h.log.Info("channel sync: starting a channel added or changed elsewhere", "channel", ch.ID, "kind", ch.Kind)
		h.startTracked(ctx, ch)
	}
	for _, ch := range retry {
		h.startTracked(ctx, ch)
	}
}

// startTracked starts a channel (under h.lifecycle) and reports a
// failure, unless it is the one reported last time.
func (h *Hub) startTracked(ctx context.Context, ch store.Channel) {
	h.failedMu.Lock()
	last := h.failed[ch.ID].err
	h.failedMu.Unlock()
	err := h.startLocked(ctx, ch)
	switch {
	case err == nil && last != "":
		h.log.Info("channel started after an earlier failure", "channel", ch.ID, "kind", ch.Kind)
	case err != nil && err.Error() != last:
		h.log.Error("channel not started", "channel", ch.ID, "kind", ch.Kind, "err", redactSecrets(err.Error(), ch))
	case err != nil:
		h.log.Debug("channel still not started", "channel", ch.ID, "kind", ch.Kind, "err", redactSecrets(err.Error(), ch))
	}
}

// redactSecrets removes the channel's secret values from a connector's
// error before it is logged: secrets never appear in logs, even if a
// connector quotes one.
func redactSecrets(msg string, ch store.Channel) string {
	for _, v := range ch.SecretMap() {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}

// sameChannelConfig reports whether two versions of a channel would run
// the same connector.
func sameChannelConfig(a, b store.Channel) bool {
	sameTeam := (a.TeamID == nil) == (b.TeamID == nil) && (a.TeamID == nil || *a.TeamID == *b.TeamID)
	return a.InstanceID == b.InstanceID && a.Kind == b.Kind && a.Name == b.Name &&
		a.Settings == b.Settings && a.Secrets == b.Secrets && a.Enabled == b.Enabled && sameTeam
}
