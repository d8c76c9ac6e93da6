package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/store"
)

type demoInfo struct {
	AgentEmail  string
	AgentToken  string
	ChatChannel string
	FormChannel string
}

// ensureDemo creates the demo instance, team, agent and channels once. The
// demo agent's token lives in <data>/demo-agent-token so it stays the same
// across restarts; only its hash is in the database.
func ensureDemo(ctx context.Context, st *store.Store, dataDir string) (*demoInfo, error) {
	d := &demoInfo{AgentEmail: "demo@example.com", ChatChannel: "demo-chat", FormChannel: "demo-form"}
	tok, err := fileToken(filepath.Join(dataDir, "demo-agent-token"), admin.AgentTokenPrefix)
	if err != nil {
		return nil, err
	}
	d.AgentToken = tok
	if _, err := st.Instance(ctx, "demo"); err == nil {
		// Keep the token file and the database in step if either was reset.
		agents, err := st.Agents(ctx, "demo")
		if err != nil {
			return nil, err
		}
		for _, a := range agents {
			if a.Email == d.AgentEmail && a.TokenHash != hub.HashToken(tok) {
				if err := st.SetAgentToken(ctx, "demo", a.ID, hub.HashToken(tok)); err != nil {
					return nil, err
				}
			}
		}
		return d, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := st.CreateInstance(ctx, &store.Instance{ID: "demo", Name: "Demo Company", TimeZone: "Europe/Amsterdam"}); err != nil {
		return nil, err
	}
	team := &store.Team{InstanceID: "demo", Name: "Support"}
	if err := st.CreateTeam(ctx, team); err != nil {
		return nil, err
	}
	if err := st.CreateAgent(ctx, &store.Agent{InstanceID: "demo", Name: "Demo Agent", Email: d.AgentEmail,
		TokenHash: hub.HashToken(tok), Capacity: 5, TeamIDs: []int64{team.ID}}); err != nil {
		return nil, err
	}
	secret, _ := hub.NewToken("")
	secrets, _ := json.Marshal(map[string]string{"visitor_secret": secret})
	for _, ch := range []*store.Channel{
		{ID: d.ChatChannel, InstanceID: "demo", Kind: "livechat", Name: "Website chat", Secrets: string(secrets), Enabled: true},
		{ID: d.FormChannel, InstanceID: "demo", Kind: "webform", Name: "Contact form", Enabled: true},
	} {
		if err := st.CreateChannel(ctx, ch); err != nil {
			return nil, fmt.Errorf("demo channel %s: %w", ch.ID, err)
		}
	}
	return d, nil
}
