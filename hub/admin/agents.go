package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Team is a team as the API shows it.
type Team struct {
	ID         int64     `json:"id"`
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
}

// NewTeam is the input of CreateTeam.
type NewTeam struct {
	Name string `json:"name"`
}

// Agent is an agent as the API shows it; the token is never part of it.
type Agent struct {
	ID         int64     `json:"id"`
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name"`
	Email      string    `json:"email"`
	Capacity   int       `json:"capacity"`
	Disabled   bool      `json:"disabled"`
	TeamIDs    []int64   `json:"team_ids"`
	CreatedAt  time.Time `json:"created_at"`
}

// AgentCredentials is an agent with its sign-in token, returned once when
// the agent is made or the token rotated; only its hash is stored.
type AgentCredentials struct {
	Agent Agent  `json:"agent"`
	Token string `json:"token"`
}

// NewAgent is the input of CreateAgent.
type NewAgent struct {
	Name string `json:"name"`
	// Email is unique within the instance; it is stored in lower case.
	Email string `json:"email"`
	// Capacity is how many tickets the agent handles at once (default 3).
	Capacity int     `json:"capacity"`
	TeamIDs  []int64 `json:"team_ids"`
	Disabled bool    `json:"disabled"`
}

// AgentUpdate changes the fields that are set; TeamIDs, when set,
// replaces the agent's teams.
type AgentUpdate struct {
	Name     *string  `json:"name"`
	Capacity *int     `json:"capacity"`
	TeamIDs  *[]int64 `json:"team_ids"`
	Disabled *bool    `json:"disabled"`
}

const (
	defaultCapacity = 3
	maxCapacity     = 1000
)

func teamView(t *store.Team) Team {
	return Team{ID: t.ID, InstanceID: t.InstanceID, Name: t.Name, CreatedAt: t.CreatedAt}
}

func agentView(a *store.Agent) Agent {
	ids := append([]int64{}, a.TeamIDs...)
	return Agent{
		ID: a.ID, InstanceID: a.InstanceID, Name: a.Name, Email: a.Email, Capacity: a.Capacity,
		Disabled: a.Disabled, TeamIDs: ids, CreatedAt: a.CreatedAt,
	}
}

// CreateTeam adds a team; names are unique within an instance.
func (s *Service) CreateTeam(ctx context.Context, instanceID string, in NewTeam) (*Team, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return nil, err
	}
	row := &store.Team{InstanceID: instanceID, Name: name}
	if err := s.st.CreateTeam(ctx, row); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "team created", "instance", instanceID, "team", row.ID)
	v := teamView(row)
	return &v, nil
}

// Teams lists an instance's teams.
func (s *Service) Teams(ctx context.Context, instanceID string) ([]Team, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	rows, err := s.st.Teams(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := make([]Team, 0, len(rows))
	for i := range rows {
		out = append(out, teamView(&rows[i]))
	}
	return out, nil
}

// Team returns one team.
func (s *Service) Team(ctx context.Context, instanceID string, id int64) (*Team, error) {
	row, err := s.st.Team(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "team %d in instance %q", id, instanceID)
	}
	v := teamView(row)
	return &v, nil
}

// DeleteTeam removes a team and its memberships. A team that a channel
// routes new tickets to is refused: those tickets would go to a queue no
// agent can be in.
func (s *Service) DeleteTeam(ctx context.Context, instanceID string, id int64) error {
	if _, err := s.st.Team(ctx, instanceID, id); err != nil {
		return notFound(err, "team %d in instance %q", id, instanceID)
	}
	chs, err := s.st.Channels(ctx, instanceID)
	if err != nil {
		return err
	}
	var users []string
	for _, ch := range chs {
		if ch.TeamID != nil && *ch.TeamID == id {
			users = append(users, ch.ID)
		}
	}
	if len(users) > 0 {
		return fmt.Errorf("team %d receives the tickets of channel %s; route the channel elsewhere first: %w",
			id, strings.Join(users, ", "), store.ErrConflict)
	}
	if err := s.st.DeleteTeam(ctx, instanceID, id); err != nil {
		return notFound(err, "team %d in instance %q", id, instanceID)
	}
	s.log.InfoContext(ctx, "team deleted", "instance", instanceID, "team", id)
	return nil
}

func checkEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", invalid("email", "is required")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", invalid("email", "%q is not a plain email address such as ann@example.com", email)
	}
	// One sign-in per person: Ann@Example.com and ann@example.com are the
	// same agent.
	return strings.ToLower(email), nil
}

func checkCapacity(c int) error {
	if c < 1 || c > maxCapacity {
		return invalid("capacity", "must be between 1 and %d", maxCapacity)
	}
	return nil
}

// checkTeams returns the ids sorted without repeats, each a team of the
// instance.
func (s *Service) checkTeams(ctx context.Context, instanceID string, ids []int64) ([]int64, error) {
	seen := map[int64]bool{}
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := s.checkTeam(ctx, instanceID, "team_ids", id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// CreateAgent adds an agent and returns it with its token, which is shown
// this once.
func (s *Service) CreateAgent(ctx context.Context, instanceID string, in NewAgent) (*AgentCredentials, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return nil, err
	}
	email, err := checkEmail(in.Email)
	if err != nil {
		return nil, err
	}
	if in.Capacity == 0 {
		in.Capacity = defaultCapacity
	}
	if err := checkCapacity(in.Capacity); err != nil {
		return nil, err
	}
	teams, err := s.checkTeams(ctx, instanceID, in.TeamIDs)
	if err != nil {
		return nil, err
	}
	token, hash := hub.NewToken(AgentTokenPrefix)
	row := &store.Agent{
		InstanceID: instanceID, Name: name, Email: email, TokenHash: hash,
		Capacity: in.Capacity, Disabled: in.Disabled, TeamIDs: teams,
	}
	if err := s.st.CreateAgent(ctx, row); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "agent created", "instance", instanceID, "agent", row.ID)
	return &AgentCredentials{Agent: agentView(row), Token: token}, nil
}

// Agent returns one agent.
func (s *Service) Agent(ctx context.Context, instanceID string, id int64) (*Agent, error) {
	row, err := s.st.Agent(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "agent %d in instance %q", id, instanceID)
	}
	v := agentView(row)
	return &v, nil
}

// Agents lists an instance's agents.
func (s *Service) Agents(ctx context.Context, instanceID string) ([]Agent, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	rows, err := s.st.Agents(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := make([]Agent, 0, len(rows))
	for _, a := range rows {
		out = append(out, agentView(a))
	}
	return out, nil
}

// UpdateAgent changes an agent's name, capacity, teams or disabled flag.
// A disabled agent can no longer sign in; sockets already open stay open
// until they reconnect.
func (s *Service) UpdateAgent(ctx context.Context, instanceID string, id int64, u AgentUpdate) (*Agent, error) {
	row, err := s.st.Agent(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "agent %d in instance %q", id, instanceID)
	}
	if u.Name != nil {
		if row.Name, err = checkName("name", *u.Name); err != nil {
			return nil, err
		}
	}
	if u.Capacity != nil {
		if err := checkCapacity(*u.Capacity); err != nil {
			return nil, err
		}
		row.Capacity = *u.Capacity
	}
	if u.TeamIDs != nil {
		if row.TeamIDs, err = s.checkTeams(ctx, instanceID, *u.TeamIDs); err != nil {
			return nil, err
		}
	}
	if u.Disabled != nil {
		row.Disabled = *u.Disabled
	}
	if err := s.st.UpdateAgent(ctx, row); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(err, "agent %d in instance %q", id, instanceID)
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "agent updated", "instance", instanceID, "agent", id, "disabled", row.Disabled)
	v := agentView(row)
	return &v, nil
}

// RotateAgentToken gives an agent a new token, shown this once; the old
// one stops working for new sign-ins at once.
func (s *Service) RotateAgentToken(ctx context.Context, instanceID string, id int64) (*AgentCredentials, error) {
	token, hash := hub.NewToken(AgentTokenPrefix)
	if err := s.st.SetAgentToken(ctx, instanceID, id, hash); err != nil {
		return nil, notFound(err, "agent %d in instance %q", id, instanceID)
	}
	row, err := s.st.Agent(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "agent %d in instance %q", id, instanceID)
	}
	s.log.InfoContext(ctx, "agent token rotated", "instance", instanceID, "agent", id)
	return &AgentCredentials{Agent: agentView(row), Token: token}, nil
}
