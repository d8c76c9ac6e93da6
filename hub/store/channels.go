package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// CreateChannel adds a channel to an instance.
func (s *Store) CreateChannel(ctx context.Context, ch *Channel) error {
	if !ValidSlug(ch.ID) {
		return fmt.Errorf("channel id %q: use 1-63 lower-case letters, digits and dashes: %w", ch.ID, ErrInvalid)
	}
	if ch.Settings == "" {
		ch.Settings = "{}"
	}
	if ch.Secrets == "" {
		ch.Secrets = "{}"
	}
	ch.CreatedAt = s.now()
	if _, err := s.DB.NewInsert().Model(ch).Exec(ctx); err != nil {
		if IsUnique(err) {
			return fmt.Errorf("channel %q exists: %w", ch.ID, ErrDuplicate)
		}
		return fmt.Errorf("create channel: %w", err)
	}
	return nil
}

// Channel returns a channel of an instance.
func (s *Store) Channel(ctx context.Context, instanceID, id string) (*Channel, error) {
	ch := new(Channel)
	err := s.DB.NewSelect().Model(ch).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx)
	return ch, notFound(err, "channel "+id)
}

// ChannelByID returns a channel whatever its instance: for public entry
// points (webhooks, widgets) whose URL names the channel.
func (s *Store) ChannelByID(ctx context.Context, id string) (*Channel, error) {
	ch := new(Channel)
	err := s.DB.NewSelect().Model(ch).Where("id = ?", id).Scan(ctx)
	return ch, notFound(err, "channel "+id)
}

// Channels lists an instance's channels; instanceID "" lists all (the
// connector runtime).
func (s *Store) Channels(ctx context.Context, instanceID string) ([]Channel, error) {
	var out []Channel
	q := s.DB.NewSelect().Model(&out).Order("id")
	if instanceID != "" {
		q = q.Where("instance_id = ?", instanceID)
	}
	return out, q.Scan(ctx)
}

// UpdateChannel stores a channel's name, settings, secrets, enabled flag
// and team.
func (s *Store) UpdateChannel(ctx context.Context, ch *Channel) error {
	res, err := s.DB.NewUpdate().Model(ch).Column("name", "settings", "secrets", "enabled", "team_id").
		Where("id = ? AND instance_id = ?", ch.ID, ch.InstanceID).Exec(ctx)
	return affected(res, err, "channel "+ch.ID)
}

// DeleteChannel removes a channel that has no tickets; channels with
// history are disabled instead.
func (s *Store) DeleteChannel(ctx context.Context, instanceID, id string) error {
	n, err := s.DB.NewSelect().Model((*Ticket)(nil)).Where("channel_id = ? AND instance_id = ?", id, instanceID).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("channel %s has %d tickets; disable it instead: %w", id, n, ErrConflict)
	}
	res, err := s.DB.NewDelete().Model((*Channel)(nil)).Where("id = ? AND instance_id = ?", id, instanceID).Exec(ctx)
	return affected(res, err, "channel "+id)
}

// SecretMap decodes a channel's secrets.
func (ch *Channel) SecretMap() map[string]string {
	m := map[string]string{}
	_ = json.Unmarshal([]byte(ch.Secrets), &m)
	return m
}
