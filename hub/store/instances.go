package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s can be an instance or channel id.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// CreateInstance adds a tenant.
func (s *Store) CreateInstance(ctx context.Context, in *Instance) error {
	if !ValidSlug(in.ID) {
		return fmt.Errorf("instance id %q: use 1-63 lower-case letters, digits and dashes: %w", in.ID, ErrInvalid)
	}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(in.TimeZone); err != nil {
		return fmt.Errorf("time zone %q: %w", in.TimeZone, ErrInvalid)
	}
	in.CreatedAt = s.now()
	if _, err := s.DB.NewInsert().Model(in).Exec(ctx); err != nil {
		if IsUnique(err) {
			return fmt.Errorf("instance %q exists: %w", in.ID, ErrDuplicate)
		}
		return fmt.Errorf("create instance: %w", err)
	}
	return nil
}

// Instance returns one tenant.
func (s *Store) Instance(ctx context.Context, id string) (*Instance, error) {
	in := new(Instance)
	err := s.DB.NewSelect().Model(in).Where("id = ?", id).Scan(ctx)
	return in, notFound(err, "instance "+id)
}

// Instances lists all tenants (operator only).
func (s *Store) Instances(ctx context.Context) ([]Instance, error) {
	var out []Instance
	err := s.DB.NewSelect().Model(&out).Order("id").Scan(ctx)
	return out, err
}

// UpdateInstance changes an instance's name and time zone.
func (s *Store) UpdateInstance(ctx context.Context, in *Instance) error {
	if _, err := time.LoadLocation(in.TimeZone); err != nil {
		return fmt.Errorf("time zone %q: %w", in.TimeZone, ErrInvalid)
	}
	res, err := s.DB.NewUpdate().Model(in).Column("name", "time_zone").WherePK().Exec(ctx)
	return affected(res, err, "instance "+in.ID)
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
