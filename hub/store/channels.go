package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
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
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Conversations opened and never written in are no tickets (D14):
		// they go with the channel, with the visitors' identities on it and
		// the contacts left with nothing. A ticket with any message keeps
		// the channel.
		n, err := tx.NewSelect().Model((*Ticket)(nil)).
			Where("t.channel_id = ? AND t.instance_id = ?", id, instanceID).
			Where("(t.last_inbound_at IS NOT NULL OR EXISTS (SELECT 1 FROM messages AS m WHERE m.ticket_id = t.id))").Count(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("channel %s has %d tickets; disable it instead: %w", id, n, ErrConflict)
		}
		for _, q := range []*bun.DeleteQuery{
			tx.NewDelete().Model((*Ticket)(nil)).Where("channel_id = ? AND instance_id = ?", id, instanceID),
			tx.NewDelete().Model((*Identity)(nil)).Where("channel_id = ? AND instance_id = ?", id, instanceID),
			tx.NewDelete().Model((*Contact)(nil)).Where("instance_id = ?", instanceID).
				Where("NOT EXISTS (SELECT 1 FROM contact_identities AS ci WHERE ci.contact_id = contact.id)").
				Where("NOT EXISTS (SELECT 1 FROM tickets AS tk WHERE tk.contact_id = contact.id)"),
			tx.NewDelete().Model((*ChannelState)(nil)).Where("channel_id = ?", id),
		} {
			if _, err := q.Exec(ctx); err != nil {
				return err
			}
		}
		res, err := tx.NewDelete().Model((*Channel)(nil)).Where("id = ? AND instance_id = ?", id, instanceID).Exec(ctx)
		return affected(res, err, "channel "+id)
	})
}

// SecretMap decodes a channel's secrets.
func (ch *Channel) SecretMap() map[string]string {
	m := map[string]string{}
	_ = json.Unmarshal([]byte(ch.Secrets), &m)
	return m
}

// ChannelState is one small value a channel keeps across restarts (an
// IMAP mailbox cursor).
type ChannelState struct {
	bun.BaseModel `bun:"table:channel_state"`

	ChannelID string    `bun:"channel_id,pk"`
	Key       string    `bun:"key,pk"`
	Value     string    `bun:"value,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

// ChannelStateValue returns the value saved under key, "" if none.
func (s *Store) ChannelStateValue(ctx context.Context, channelID, key string) (string, error) {
	var v ChannelState
	err := s.DB.NewSelect().Model(&v).Where("channel_id = ? AND key = ?", channelID, key).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load channel state: %w", err)
	}
	return v.Value, nil
}

// SaveChannelState saves value under key for the channel.
func (s *Store) SaveChannelState(ctx context.Context, channelID, key, value string) error {
	v := &ChannelState{ChannelID: channelID, Key: key, Value: value, UpdatedAt: s.now()}
	_, err := s.DB.NewInsert().Model(v).On("CONFLICT (channel_id, key) DO UPDATE").
		Set("value = EXCLUDED.value, updated_at = EXCLUDED.updated_at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("save channel state: %w", err)
	}
	return nil
}
