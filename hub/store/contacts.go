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
