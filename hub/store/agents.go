package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// CreateTeam adds a team.
func (s *Store) CreateTeam(ctx context.Context, t *Team) error {
	t.CreatedAt = s.now()
	if _, err := s.DB.NewInsert().Model(t).Exec(ctx); err != nil {
		if IsUnique(err) {
			return fmt.Errorf("team %q exists: %w", t.Name, ErrDuplicate)
		}
		return fmt.Errorf("create team: %w", err)
	}
	return nil
}

// Teams lists an instance's teams.
func (s *Store) Teams(ctx context.Context, instanceID string) ([]Team, error) {
	var out []Team
	return out, s.DB.NewSelect().Model(&out).Where("instance_id = ?", instanceID).Order("id").Scan(ctx)
}

// Team returns one team.
func (s *Store) Team(ctx context.Context, instanceID string, id int64) (*Team, error) {
	t := new(Team)
	err := s.DB.NewSelect().Model(t).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx)
	return t, notFound(err, fmt.Sprintf("team %d", id))
}

// TeamByName returns a team by its name.
func (s *Store) TeamByName(ctx context.Context, instanceID, name string) (*Team, error) {
	t := new(Team)
	err := s.DB.NewSelect().Model(t).Where("name = ? AND instance_id = ?", name, instanceID).Scan(ctx)
	return t, notFound(err, "team "+name)
}

// DeleteTeam removes a team and its memberships.
func (s *Store) DeleteTeam(ctx context.Context, instanceID string, id int64) error {
	return s.Tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*AgentTeam)(nil)).Where("team_id = ? AND instance_id = ?", id, instanceID).Exec(ctx); err != nil {
			return err
		}
		// Tickets and channels of the team fall back to the instance-wide
		// queue rather than point at a team that no longer exists.
		for _, m := range []any{(*Ticket)(nil), (*Channel)(nil)} {
			if _, err := tx.NewUpdate().Model(m).Set("team_id = NULL").Where("team_id = ? AND instance_id = ?", id, instanceID).Exec(ctx); err != nil {
				return err
			}
		}
		res, err := tx.NewDelete().Model((*Team)(nil)).Where("id = ? AND instance_id = ?", id, instanceID).Exec(ctx)
		return affected(res, err, fmt.Sprintf("team %d", id))
	})
}

// CreateAgent adds an agent with the given token hash and teams.
func (s *Store) CreateAgent(ctx context.Context, a *Agent) error {
	if a.Capacity <= 0 {
		a.Capacity = 3
	}
	a.CreatedAt = s.now()
	return s.Tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
			if IsUnique(err) {
				return fmt.Errorf("agent %q exists: %w", a.Email, ErrDuplicate)
			}
			return fmt.Errorf("create agent: %w", err)
		}
		return setTeams(ctx, tx, a)
	})
}

func setTeams(ctx context.Context, tx bun.Tx, a *Agent) error {
	if _, err := tx.NewDelete().Model((*AgentTeam)(nil)).Where("agent_id = ?", a.ID).Exec(ctx); err != nil {
		return err
	}
	for _, tid := range a.TeamIDs {
		n, err := tx.NewSelect().Model((*Team)(nil)).Where("id = ? AND instance_id = ?", tid, a.InstanceID).Count(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("team %d: %w", tid, ErrNotFound)
		}
		if _, err := tx.NewInsert().Model(&AgentTeam{AgentID: a.ID, TeamID: tid, InstanceID: a.InstanceID}).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// UpdateAgent stores name, capacity, disabled and team membership.
func (s *Store) UpdateAgent(ctx context.Context, a *Agent) error {
	return s.Tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model(a).Column("name", "capacity", "disabled").
			Where("id = ? AND instance_id = ?", a.ID, a.InstanceID).Exec(ctx)
		if err := affected(res, err, fmt.Sprintf("agent %d", a.ID)); err != nil {
			return err
		}
		return setTeams(ctx, tx, a)
	})
}

// SetAgentToken replaces an agent's token hash.
func (s *Store) SetAgentToken(ctx context.Context, instanceID string, id int64, hash string) error {
	res, err := s.DB.NewUpdate().Model((*Agent)(nil)).Set("token_hash = ?", hash).
		Where("id = ? AND instance_id = ?", id, instanceID).Exec(ctx)
	return affected(res, err, fmt.Sprintf("agent %d", id))
}

// Agent returns one agent with its team ids.
func (s *Store) Agent(ctx context.Context, instanceID string, id int64) (*Agent, error) {
	a := new(Agent)
	if err := s.DB.NewSelect().Model(a).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx); err != nil {
		return nil, notFound(err, fmt.Sprintf("agent %d", id))
	}
	return a, s.loadTeams(ctx, a)
}

// AgentByTokenHash authenticates an agent.
func (s *Store) AgentByTokenHash(ctx context.Context, hash string) (*Agent, error) {
	a := new(Agent)
	if err := s.DB.NewSelect().Model(a).Where("token_hash = ? AND NOT disabled", hash).Scan(ctx); err != nil {
		return nil, notFound(err, "agent token")
	}
	return a, s.loadTeams(ctx, a)
}

// Agents lists an instance's agents.
func (s *Store) Agents(ctx context.Context, instanceID string) ([]*Agent, error) {
	var out []*Agent
	if err := s.DB.NewSelect().Model(&out).Where("instance_id = ?", instanceID).Order("id").Scan(ctx); err != nil {
		return nil, err
	}
	for _, a := range out {
		if err := s.loadTeams(ctx, a); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) loadTeams(ctx context.Context, a *Agent) error {
	a.TeamIDs = []int64{}
	return s.DB.NewSelect().Model((*AgentTeam)(nil)).Column("team_id").
		Where("agent_id = ?", a.ID).Order("team_id").Scan(ctx, &a.TeamIDs)
}

// CreateAPIKey stores a key hash.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey) error {
	k.CreatedAt = s.now()
	if _, err := s.DB.NewInsert().Model(k).Exec(ctx); err != nil {
		if IsUnique(err) {
			return fmt.Errorf("api key exists: %w", ErrDuplicate)
		}
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// APIKeyByHash authenticates an API client.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	k := new(APIKey)
	err := s.DB.NewSelect().Model(k).Where("key_hash = ? AND revoked_at IS NULL", hash).Scan(ctx)
	return k, notFound(err, "api key")
}

// APIKeys lists an instance's keys.
func (s *Store) APIKeys(ctx context.Context, instanceID string) ([]APIKey, error) {
	var out []APIKey
	return out, s.DB.NewSelect().Model(&out).Where("instance_id = ?", instanceID).Order("id").Scan(ctx)
}

// RevokeAPIKey revokes a key.
func (s *Store) RevokeAPIKey(ctx context.Context, instanceID string, id int64) error {
	res, err := s.DB.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", s.now()).
		Where("id = ? AND instance_id = ? AND revoked_at IS NULL", id, instanceID).Exec(ctx)
	return affected(res, err, fmt.Sprintf("api key %d", id))
}
