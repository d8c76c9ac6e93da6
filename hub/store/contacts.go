package store

import (
	"context"
	"fmt"
)

// ContactInput is what a channel knows of an end user (M3: only what the
// user's privacy preferences on that channel allow).
type ContactInput struct {
	ExternalID  string
	DisplayName string
	Handle      string
	Email       string
	Fields      map[string]string
}

// upsertIdentity finds or creates the contact behind a channel identity,
// refreshing the identity's details. Concurrent calls for one identity
// end with one contact.
func (s *Store) upsertIdentity(ctx context.Context, tx *txn, instanceID, channelID string, in ContactInput) (*Contact, error) {
	if in.ExternalID == "" {
		return nil, fmt.Errorf("contact identity has no external id: %w", ErrConflict)
	}
	now := s.now()
	id := new(Identity)
	err := tx.NewSelect().Model(id).Relation("Contact").
		Where("?TableAlias.instance_id = ? AND ?TableAlias.channel_id = ? AND ?TableAlias.external_id = ?", instanceID, channelID, in.ExternalID).Scan(ctx)
	if err == nil && id.Contact == nil {
		return nil, fmt.Errorf("identity %d has no contact: %w", id.ID, ErrNotFound)
	}
	if err == nil {
		changed := false
		if in.DisplayName != "" && in.DisplayName != id.DisplayName {
			id.DisplayName, changed = in.DisplayName, true
		}
		if in.Handle != "" && in.Handle != id.Handle {
			id.Handle, changed = in.Handle, true
		}
		if in.Email != "" && in.Email != id.Email {
			id.Email, changed = in.Email, true
		}
		if changed {
			if _, err := tx.NewUpdate().Model(id).Column("display_name", "handle", "email").WherePK().Exec(ctx); err != nil {
				return nil, err
			}
		}
		c := id.Contact
		if c.Name == "" && in.DisplayName != "" || c.Email == "" && in.Email != "" {
			if c.Name == "" {
				c.Name = in.DisplayName
			}
			if c.Email == "" {
				c.Email = in.Email
			}
			c.UpdatedAt = now
			if _, err := tx.NewUpdate().Model(c).Column("name", "email", "updated_at").WherePK().Exec(ctx); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	if err := notFound(err, "identity"); err != nil && !isNotFound(err) {
		return nil, err
	}
	c := &Contact{InstanceID: instanceID, Name: in.DisplayName, Email: in.Email, CreatedAt: now, UpdatedAt: now}
	if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
		return nil, fmt.Errorf("create contact: %w", err)
	}
	id = &Identity{
		InstanceID: instanceID, ChannelID: channelID, ExternalID: in.ExternalID, ContactID: c.ID,
		DisplayName: in.DisplayName, Handle: in.Handle, Email: in.Email, Fields: in.Fields, CreatedAt: now,
	}
	if _, err := tx.NewInsert().Model(id).Exec(ctx); err != nil {
		if IsUnique(err) {
			return nil, errRace
		}
		return nil, fmt.Errorf("create identity: %w", err)
	}
	return c, nil
}

// ContactView is a contact with its channel identities, as agents see it.
type ContactView struct {
	Contact
	Identities []Identity `json:"identities"`
}

// Contact returns a contact and its identities.
func (s *Store) Contact(ctx context.Context, instanceID string, id int64) (*ContactView, error) {
	cv := new(ContactView)
	if err := s.DB.NewSelect().Model(&cv.Contact).Where("id = ? AND instance_id = ?", id, instanceID).Scan(ctx); err != nil {
		return nil, notFound(err, fmt.Sprintf("contact %d", id))
	}
	err := s.DB.NewSelect().Model(&cv.Identities).Where("contact_id = ? AND instance_id = ?", id, instanceID).Order("id").Scan(ctx)
	return cv, err
}

// IdentityFor returns the contact's identity on a channel.
func (s *Store) IdentityFor(ctx context.Context, instanceID string, contactID int64, channelID string) (*Identity, error) {
	id := new(Identity)
	err := s.DB.NewSelect().Model(id).
		Where("instance_id = ? AND contact_id = ? AND channel_id = ?", instanceID, contactID, channelID).
		Order("id").Limit(1).Scan(ctx)
	return id, notFound(err, "identity")
}
