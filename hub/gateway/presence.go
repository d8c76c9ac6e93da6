package gateway

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// presenceLoop runs while an agent has a socket on this node: every
// HeartbeatInterval it re-checks the tokens of the agent's sockets (a
// revoked token or a disabled agent is cut off within one interval) and
// renews the agent's routing presence. When the node dies the renewals
// stop and the router's TTL sends the agent's unanswered tickets back to
// the queue; a closed socket alone signs nobody out.
func (g *Gateway) presenceLoop(ag *agentOn) {
	defer g.presWG.Done()
	// Jitter the first tick so that the agents of a restarted node do not
	// all heartbeat in the same instant.
	first := time.NewTimer(g.cfg.HeartbeatInterval/2 + rand.N(g.cfg.HeartbeatInterval/2+1))
	defer first.Stop()
	select {
	case <-ag.stop:
		return
	case <-g.ctx.Done():
		return
	case <-first.C:
	}
	t := time.NewTicker(g.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		g.safely("presence", func() { g.presenceTick(ag) })
		select {
		case <-ag.stop:
			return
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Gateway) presenceTick(ag *agentOn) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	g.mu.Lock()
	byToken := map[string][]*conn{}
	for c := range ag.conns {
		byToken[c.token] = append(byToken[c.token], c)
	}
	g.mu.Unlock()

	var (
		fresh     *store.Agent
		transient bool
	)
	for token, conns := range byToken {
		a, err := g.hub.AuthenticateAgent(ctx, token)
		switch {
		case errors.Is(err, hub.ErrUnauthorized) || (err == nil && (a.ID != ag.key.id || a.InstanceID != ag.key.instance)):
			for _, c := range conns {
				c.fail(CodeUnauthorized, "the token was revoked or the agent disabled", CloseUnauthorized, "token revoked")
			}
		case err != nil:
			// The database is unreachable: keep the sockets (and the
			// presence) rather than disconnect everyone over a blip.
			g.log.Warn("re-check agent token", "agent", ag.key.id, "instance", ag.key.instance, "err", err)
			transient = true
		default:
			fresh = a
		}
	}
	if fresh == nil && !transient {
		return // every socket was cut off
	}
	g.mu.Lock()
	if fresh != nil {
		ag.agent = fresh
	}
	fresh = ag.agent
	status := ag.status
	g.mu.Unlock()
	if status == routing.Available || status == routing.Away {
		if err := g.hub.Heartbeat(ctx, fresh, status); err != nil {
			g.log.Warn("renew presence", "agent", fresh.ID, "instance", fresh.InstanceID, "err", err)
			return
		}
	}
	g.signal(event{kind: "heartbeat", instance: ag.key.instance, agentID: ag.key.id})
}
