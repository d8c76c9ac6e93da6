package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// APIKey is an API key as the API shows it; the key itself is never part
// of it.
type APIKey struct {
	ID         int64      `json:"id"`
	InstanceID string     `json:"instance_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// APIKeyCredentials is a new key, returned once; only its hash is stored.
type APIKeyCredentials struct {
	APIKey APIKey `json:"api_key"`
	Key    string `json:"key"`
}

// NewAPIKey is the input of CreateAPIKey.
type NewAPIKey struct {
	// Name says who uses the key, e.g. "crm-sync".
	Name string `json:"name"`
}

func apiKeyView(k *store.APIKey) APIKey {
	return APIKey{ID: k.ID, InstanceID: k.InstanceID, Name: k.Name, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

// CreateAPIKey makes a key for an API client of the instance and returns
// it this once.
func (s *Service) CreateAPIKey(ctx context.Context, instanceID string, in NewAPIKey) (*APIKeyCredentials, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return nil, err
	}
	key, hash := hub.NewToken(APIKeyPrefix)
	row := &store.APIKey{InstanceID: instanceID, Name: name, KeyHash: hash}
	if err := s.st.CreateAPIKey(ctx, row); err != nil {
		return nil, fmt.Errorf("create api key: %w", err)
	}
	s.log.InfoContext(ctx, "api key created", "instance", instanceID, "api_key", row.ID)
	return &APIKeyCredentials{APIKey: apiKeyView(row), Key: key}, nil
}

// APIKeys lists an instance's keys, revoked ones included.
func (s *Service) APIKeys(ctx context.Context, instanceID string) ([]APIKey, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	rows, err := s.st.APIKeys(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := make([]APIKey, 0, len(rows))
	for i := range rows {
		out = append(out, apiKeyView(&rows[i]))
	}
	return out, nil
}

// apiKey finds one key of the instance; the store has no single-key
// lookup, and an instance has few keys.
func (s *Service) apiKey(ctx context.Context, instanceID string, id int64) (*store.APIKey, error) {
	rows, err := s.st.APIKeys(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		if rows[i].ID == id {
			return &rows[i], nil
		}
	}
	return nil, fmt.Errorf("api key %d in instance %q not found: %w", id, instanceID, store.ErrNotFound)
}

// RevokeAPIKey revokes a key at once. Revoking a revoked key changes
// nothing and returns it as it is, so a retried call is harmless.
func (s *Service) RevokeAPIKey(ctx context.Context, instanceID string, id int64) (*APIKey, error) {
	// The store answers not-found for a key already revoked as well as
	// for a missing one; reading the key afterwards tells them apart.
	err := s.st.RevokeAPIKey(ctx, instanceID, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("revoke api key: %w", err)
	}
	k, kerr := s.apiKey(ctx, instanceID, id)
	if kerr != nil {
		return nil, kerr
	}
	if err == nil {
		s.log.InfoContext(ctx, "api key revoked", "instance", instanceID, "api_key", id)
	}
	v := apiKeyView(k)
	return &v, nil
}
