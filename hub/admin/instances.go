package admin

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Instance is a tenant as the API shows it.
type Instance struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	TimeZone  string    `json:"time_zone"`
	CreatedAt time.Time `json:"created_at"`
}

// NewInstance is the input of CreateInstance.
type NewInstance struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// TimeZone is an IANA name (e.g. "Europe/Amsterdam"); empty is UTC.
	// Reports count days in it.
	TimeZone string `json:"time_zone"`
}

// InstanceUpdate changes the fields that are set.
type InstanceUpdate struct {
	Name     *string `json:"name"`
	TimeZone *string `json:"time_zone"`
}

const maxNameLen = 200

func instanceView(in *store.Instance) Instance {
	return Instance{ID: in.ID, Name: in.Name, TimeZone: in.TimeZone, CreatedAt: in.CreatedAt}
}

// ValidID reports whether s can be an instance or channel id: 1-63
// lower-case letters, digits and dashes, starting with a letter or digit.
func ValidID(s string) bool { return store.ValidSlug(s) }

func checkID(field, id string) error {
	if !ValidID(id) {
		return invalid(field, "%q is not a valid id: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", id)
	}
	return nil
}

func checkName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", invalid(field, "is required")
	case !utf8.ValidString(name):
		return "", invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", invalid(field, "is longer than %d characters", maxNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		// Postgres refuses NUL in text, and a line break in a name breaks
		// every table it is shown in.
		return "", invalid(field, "must not contain control characters")
	}
	return name, nil
}

// checkTimeZone accepts IANA zone names only: "Local" is refused because
// it means whatever zone the server happens to run in.
func checkTimeZone(tz string) error {
	if tz == "" {
		return invalid("time_zone", "is required")
	}
	if tz == "Local" {
		return invalid("time_zone", `"Local" depends on the server; use an IANA name such as "Europe/Amsterdam"`)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return invalid("time_zone", "%q is not a known IANA time zone (e.g. \"Europe/Amsterdam\", \"UTC\")", tz)
	}
	return nil
}

// CreateInstance adds a tenant.
func (s *Service) CreateInstance(ctx context.Context, in NewInstance) (*Instance, error) {
	if err := checkID("id", in.ID); err != nil {
		return nil, err
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return nil, err
	}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if err := checkTimeZone(in.TimeZone); err != nil {
		return nil, err
	}
	row := &store.Instance{ID: in.ID, Name: name, TimeZone: in.TimeZone}
	if err := s.st.CreateInstance(ctx, row); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "instance created", "instance", row.ID, "time_zone", row.TimeZone)
	v := instanceView(row)
	return &v, nil
}

// Instance returns one tenant.
func (s *Service) Instance(ctx context.Context, id string) (*Instance, error) {
	row, err := s.st.Instance(ctx, id)
	if err != nil {
		return nil, notFound(err, "instance %q", id)
	}
	v := instanceView(row)
	return &v, nil
}

// Instances lists every tenant, by id.
func (s *Service) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := s.st.Instances(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(rows))
	for i := range rows {
		out = append(out, instanceView(&rows[i]))
	}
	return out, nil
}

// UpdateInstance changes a tenant's name or time zone.
func (s *Service) UpdateInstance(ctx context.Context, id string, u InstanceUpdate) (*Instance, error) {
	row, err := s.st.Instance(ctx, id)
	if err != nil {
		return nil, notFound(err, "instance %q", id)
	}
	if u.Name != nil {
		if row.Name, err = checkName("name", *u.Name); err != nil {
			return nil, err
		}
	}
	if u.TimeZone != nil {
		if err := checkTimeZone(*u.TimeZone); err != nil {
			return nil, err
		}
		row.TimeZone = *u.TimeZone
	}
	if err := s.st.UpdateInstance(ctx, row); err != nil {
		return nil, notFound(err, "instance %q", id)
	}
	s.log.InfoContext(ctx, "instance updated", "instance", row.ID, "time_zone", row.TimeZone)
	v := instanceView(row)
	return &v, nil
}
