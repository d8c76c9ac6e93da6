package admin

import (
	"encoding/json"
	"net/http"
)

// The endpoints: each parses its path and body, calls the Service, and
// returns the status and body to answer with. Validation lives in the
// Service, so the CLI refuses the same input with the same words.

// listBody is every list response: an object, so that paging can be added
// without breaking clients.
type listBody[T any] struct {
	Items []T `json:"items"`
}

func items[T any](v []T) listBody[T] {
	if v == nil {
		v = []T{}
	}
	return listBody[T]{Items: v}
}

func (h *handler) openAPI(*http.Request) (int, any, error) {
	return http.StatusOK, json.RawMessage(openapiJSON), nil
}

// Instances.

func (h *handler) listInstances(r *http.Request) (int, any, error) {
	v, err := h.svc.Instances(r.Context())
	return http.StatusOK, items(v), err
}

func (h *handler) createInstance(r *http.Request) (int, any, error) {
	var in NewInstance
	if err := decoder.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.CreateInstance(r.Context(), in)
	return http.StatusCreated, v, err
}

func (h *handler) getInstance(r *http.Request) (int, any, error) {
	id, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Instance(r.Context(), id)
	return http.StatusOK, v, err
}

func (h *handler) updateInstance(r *http.Request) (int, any, error) {
	id, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	var u InstanceUpdate
	if err := decoder.Decode(r, &u); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.UpdateInstance(r.Context(), id, u)
	return http.StatusOK, v, err
}

// Channels.

func channelParams(r *http.Request) (inst, channel string, err error) {
	if inst, err = slugParam(r, "instance"); err != nil {
		return "", "", err
	}
	channel, err = slugParam(r, "channel")
	return inst, channel, err
}

func (h *handler) listChannels(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Channels(r.Context(), inst)
	return http.StatusOK, items(v), err
}

func (h *handler) createChannel(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	var in NewChannel
	if err := decoder.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.CreateChannel(r.Context(), inst, in)
	return http.StatusCreated, v, err
}

func (h *handler) getChannel(r *http.Request) (int, any, error) {
	inst, id, err := channelParams(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Channel(r.Context(), inst, id)
	return http.StatusOK, v, err
}

func (h *handler) updateChannel(r *http.Request) (int, any, error) {
	inst, id, err := channelParams(r)
	if err != nil {
		return 0, nil, err
	}
	var u ChannelUpdate
	if err := decoder.Decode(r, &u); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.UpdateChannel(r.Context(), inst, id, u)
	return http.StatusOK, v, err
}

func (h *handler) deleteChannel(r *http.Request) (int, any, error) {
	inst, id, err := channelParams(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, h.svc.DeleteChannel(r.Context(), inst, id)
}

func (h *handler) enableChannel(r *http.Request) (int, any, error) {
	return h.setChannelEnabled(r, true)
}

func (h *handler) disableChannel(r *http.Request) (int, any, error) {
	return h.setChannelEnabled(r, false)
}

func (h *handler) setChannelEnabled(r *http.Request, on bool) (int, any, error) {
	inst, id, err := channelParams(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.SetChannelEnabled(r.Context(), inst, id, on)
	return http.StatusOK, v, err
}

// Teams.

func teamParams(r *http.Request) (inst string, team int64, err error) {
	if inst, err = slugParam(r, "instance"); err != nil {
		return "", 0, err
	}
	team, err = intParam(r, "team")
	return inst, team, err
}

func (h *handler) listTeams(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Teams(r.Context(), inst)
	return http.StatusOK, items(v), err
}

func (h *handler) createTeam(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	var in NewTeam
	if err := decoder.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.CreateTeam(r.Context(), inst, in)
	return http.StatusCreated, v, err
}

func (h *handler) getTeam(r *http.Request) (int, any, error) {
	inst, id, err := teamParams(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Team(r.Context(), inst, id)
	return http.StatusOK, v, err
}

func (h *handler) deleteTeam(r *http.Request) (int, any, error) {
	inst, id, err := teamParams(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, h.svc.DeleteTeam(r.Context(), inst, id)
}

// Agents.

func agentParams(r *http.Request) (inst string, agent int64, err error) {
	if inst, err = slugParam(r, "instance"); err != nil {
		return "", 0, err
	}
	agent, err = intParam(r, "agent")
	return inst, agent, err
}

func (h *handler) listAgents(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Agents(r.Context(), inst)
	return http.StatusOK, items(v), err
}

func (h *handler) createAgent(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	var in NewAgent
	if err := decoder.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.CreateAgent(r.Context(), inst, in)
	return http.StatusCreated, v, err
}

func (h *handler) getAgent(r *http.Request) (int, any, error) {
	inst, id, err := agentParams(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.Agent(r.Context(), inst, id)
	return http.StatusOK, v, err
}

func (h *handler) updateAgent(r *http.Request) (int, any, error) {
	inst, id, err := agentParams(r)
	if err != nil {
		return 0, nil, err
	}
	var u AgentUpdate
	if err := decoder.Decode(r, &u); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.UpdateAgent(r.Context(), inst, id, u)
	return http.StatusOK, v, err
}

func (h *handler) rotateAgentToken(r *http.Request) (int, any, error) {
	inst, id, err := agentParams(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.RotateAgentToken(r.Context(), inst, id)
	return http.StatusOK, v, err
}

// API keys.

func (h *handler) listAPIKeys(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.APIKeys(r.Context(), inst)
	return http.StatusOK, items(v), err
}

func (h *handler) createAPIKey(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	var in NewAPIKey
	if err := decoder.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	v, err := h.svc.CreateAPIKey(r.Context(), inst, in)
	return http.StatusCreated, v, err
}

func (h *handler) revokeAPIKey(r *http.Request) (int, any, error) {
	inst, err := slugParam(r, "instance")
	if err != nil {
		return 0, nil, err
	}
	id, err := intParam(r, "key")
	if err != nil {
		return 0, nil, err
	}
	v, err := h.svc.RevokeAPIKey(r.Context(), inst, id)
	return http.StatusOK, v, err
}
