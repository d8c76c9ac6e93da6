package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Channel is a channel as the API shows it: its settings, and of its
// secrets only their names.
type Channel struct {
	ID         string          `json:"id"`
	InstanceID string          `json:"instance_id"`
	Kind       string          `json:"kind"`
	Name       string          `json:"name"`
	Settings   json.RawMessage `json:"settings"`
	// SecretsSet names the secrets stored for the channel; their values
	// are write-only.
	SecretsSet []string `json:"secrets_set"`
	Enabled    bool     `json:"enabled"`
	// TeamID is the team new tickets go to; nil is the instance-wide
	// queue.
	TeamID    *int64    `json:"team_id"`
	CreatedAt time.Time `json:"created_at"`
	// StartError is set when this process runs the hub and the channel's
	// connector failed to start after the change; the change is stored
	// all the same.
	StartError string `json:"start_error,omitempty"`
}

// NewChannel is the input of CreateChannel.
type NewChannel struct {
	// ID is global (it is part of the channel's public URLs), so two
	// instances cannot both have a channel "support".
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Settings is the connector's JSON configuration object.
	Settings json.RawMessage `json:"settings"`
	// Secrets are stored write-only and handed to the connector.
	Secrets map[string]string `json:"secrets"`
	// Enabled defaults to true.
	Enabled *bool  `json:"enabled"`
	TeamID  *int64 `json:"team_id"`
}

// ChannelUpdate changes the fields that are set. Settings, when set,
// replaces the whole settings object. Secrets is merged into the stored
// ones: a name with a value sets it, a name with null removes it (JSON
// Merge Patch). TeamID set to null routes to the instance-wide queue.
type ChannelUpdate struct {
	Name     *string            `json:"name"`
	Settings json.RawMessage    `json:"settings"`
	Secrets  map[string]*string `json:"secrets"`
	Enabled  *bool              `json:"enabled"`
	TeamID   Nullable[int64]    `json:"team_id"`
}

// Nullable is a field of a partial update that tells "left out" (Set is
// false) from "set to null" (Set is true, Value is nil).
type Nullable[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON records that the field was present.
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	n.Value = v
	return nil
}

// Null returns a Nullable set to null.
func Null[T any]() Nullable[T] { return Nullable[T]{Set: true} }

// Some returns a Nullable set to v.
func Some[T any](v T) Nullable[T] { return Nullable[T]{Set: true, Value: &v} }

const (
	maxSecrets     = 64
	maxSecretBytes = 64 << 10
)

func channelView(ch *store.Channel) Channel {
	settings := json.RawMessage(ch.Settings)
	if !json.Valid(settings) {
		settings = json.RawMessage("{}")
	}
	return Channel{
		ID: ch.ID, InstanceID: ch.InstanceID, Kind: ch.Kind, Name: ch.Name,
		Settings: settings, SecretsSet: secretNames(ch.SecretMap()),
		Enabled: ch.Enabled, TeamID: ch.TeamID, CreatedAt: ch.CreatedAt,
	}
}

func secretNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func checkSecretName(name string) error {
	field := "secrets." + name
	if name == "" || len(name) > 64 {
		return invalid("secrets", "a secret name must have 1-64 characters")
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '-' || r == '.')
		if !ok {
			return invalid(field, "a secret name has letters, digits, '_', '-' and '.', starting with a letter or digit")
		}
	}
	return nil
}

func checkSecretValue(name, v string) error {
	if v == "" {
		return invalid("secrets."+name, "is empty; to remove a secret set it to null in an update")
	}
	if len(v) > maxSecretBytes {
		return invalid("secrets."+name, "is longer than %d bytes", maxSecretBytes)
	}
	return nil
}

// redact removes secret values from a message that is about to be shown
// or logged: a connector's error may quote its configuration.
func redact(msg string, secrets map[string]string) string {
	vals := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if v != "" {
			vals = append(vals, v)
		}
	}
	// Longest first, so a secret that contains another is removed whole.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}

// validate builds the channel's connector, which decodes and checks its
// settings and secrets without I/O, so a bad configuration is refused
// before it is stored rather than when a node starts it (M1).
func (s *Service) validate(ctx context.Context, ch *store.Channel, secrets map[string]string) error {
	if s.reg == nil {
		return nil
	}
	conn, err := s.build(ch, secrets)
	switch {
	case errors.Is(err, connectors.ErrUnknownKind):
		kinds := make([]string, 0)
		for _, k := range s.reg.Kinds() {
			kinds = append(kinds, string(k))
		}
		return invalid("kind", "%q is not a channel kind of this build; known kinds: %s", ch.Kind, strings.Join(kinds, ", "))
	case err != nil:
		return configError(ch, redact(err.Error(), secrets))
	}
	if sn, ok := conn.(connectors.SecretNamer); ok {
		known := sn.SecretNames()
		for name := range secrets {
			if !slices.Contains(known, name) {
				return invalid("secrets."+name, "not a secret of %s channels; they take %s", ch.Kind, strings.Join(known, ", "))
			}
		}
	}
	if ch.Enabled {
		return s.checkClaims(ctx, ch, conn)
	}
	return nil
}

// configPath finds the field a connector's error names: "settings.imap.port",
// "secrets.imap_password".
var configPath = regexp.MustCompile(`\b((?:settings|secrets)(?:\.[A-Za-z0-9_]+(?:\[[0-9]+\])?)*): `)

// configError is a connector's refusal of a configuration as a field
// error: the field it names (else "settings"), and its message without the
// "<kind>: channel "<id>": " the connector puts before it.
func configError(ch *store.Channel, msg string) error {
	msg = strings.TrimPrefix(msg, fmt.Sprintf("%s: channel %q: ", ch.Kind, ch.ID))
	field := "settings"
	if m := configPath.FindStringSubmatchIndex(msg); m != nil {
		field = msg[m[2]:m[3]]
		if m[0] == 0 {
			msg = msg[m[1]:]
		}
	}
	return &FieldError{Field: field, Msg: msg}
}

func (s *Service) build(ch *store.Channel, secrets map[string]string) (connectors.Connector, error) {
	return s.reg.Build(connectors.Kind(ch.Kind), connectors.Config{
		InstanceID: ch.InstanceID,
		ChannelID:  ch.ID,
		Settings:   json.RawMessage(ch.Settings),
		Secrets:    secrets,
		Logger:     slog.New(slog.DiscardHandler),
		PubSub:     nopPubSub{},
		Now:        s.st.Now,
	})
}

// checkClaims refuses a channel that claims an address or mailbox an
// enabled channel of the same kind (of any instance) claims already: it
// would take that channel's mail (connectors.Claimer).
func (s *Service) checkClaims(ctx context.Context, ch *store.Channel, conn connectors.Connector) error {
	cl, ok := conn.(connectors.Claimer)
	if !ok {
		return nil
	}
	mine := map[string]bool{}
	for _, c := range cl.Claims() {
		mine[c] = true
	}
	if len(mine) == 0 {
		return nil
	}
	all, err := s.st.Channels(ctx, "")
	if err != nil {
		return err
	}
	for i := range all {
		other := &all[i]
		if other.ID == ch.ID || other.Kind != ch.Kind || !other.Enabled {
			continue
		}
		oc, err := s.build(other, other.SecretMap())
		if err != nil {
			continue // a broken channel runs nowhere and claims nothing
		}
		ocl, ok := oc.(connectors.Claimer)
		if !ok {
			continue
		}
		for _, c := range ocl.Claims() {
			if mine[c] {
				what, _, _ := strings.Cut(c, ":")
				_, value, _ := strings.Cut(c, ":")
				return fmt.Errorf("the %s %s is already taken by channel %q of instance %q; disable or change that channel first: %w",
					claimWord(what), value, other.ID, other.InstanceID, store.ErrConflict)
			}
		}
	}
	return nil
}

func claimWord(kind string) string {
	switch kind {
	case "smtp":
		return "inbound address"
	case "imap":
		return "mailbox"
	}
	return kind
}

// nopPubSub satisfies factories that want a PubSub; validation never
// starts the connector, so nothing is published.
type nopPubSub struct{}

func (nopPubSub) Publish(context.Context, string, []byte) error { return nil }
func (nopPubSub) Subscribe(context.Context, string, func([]byte)) (func(), error) {
	return func() {}, nil
}

// apply tells the running node about the stored channel: start (or
// restart) it when enabled, stop it otherwise. It returns the start error,
// with secrets removed, for the caller to show.
func (s *Service) apply(ctx context.Context, ch *store.Channel) string {
	if s.run == nil {
		return ""
	}
	// A connector may live as long as the context it was started with;
	// the request's context ends with the request.
	ctx = context.WithoutCancel(ctx)
	defer s.run.ChannelsChanged(ctx)
	if !ch.Enabled {
		s.run.StopChannel(ctx, ch.ID)
		return ""
	}
	if err := s.run.StartChannel(ctx, *ch); err != nil {
		msg := redact(err.Error(), ch.SecretMap())
		s.log.WarnContext(ctx, "channel not started", "instance", ch.InstanceID, "channel", ch.ID, "kind", ch.Kind, "err", msg)
		return msg
	}
	return ""
}

func (s *Service) checkTeam(ctx context.Context, instanceID, field string, id int64) error {
	if _, err := s.st.Team(ctx, instanceID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return invalid(field, "team %d does not exist in instance %q", id, instanceID)
		}
		return err
	}
	return nil
}

// CreateChannel adds a channel to an instance and, when a node runs in
// this process and the channel is enabled, starts it.
func (s *Service) CreateChannel(ctx context.Context, instanceID string, in NewChannel) (*Channel, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	if err := checkID("id", in.ID); err != nil {
		return nil, err
	}
	if !ValidID(in.Kind) {
		return nil, invalid("kind", "is required: a channel kind such as \"email\" or \"livechat\"")
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return nil, err
	}
	settings, err := settingsObject(in.Settings)
	if err != nil {
		return nil, err
	}
	if len(in.Secrets) > maxSecrets {
		return nil, invalid("secrets", "at most %d secrets", maxSecrets)
	}
	secrets := map[string]string{}
	for _, k := range secretNames(in.Secrets) {
		if err := checkSecretName(k); err != nil {
			return nil, err
		}
		if err := checkSecretValue(k, in.Secrets[k]); err != nil {
			return nil, err
		}
		secrets[k] = in.Secrets[k]
	}
	if in.TeamID != nil {
		if err := s.checkTeam(ctx, instanceID, "team_id", *in.TeamID); err != nil {
			return nil, err
		}
	}
	row := &store.Channel{
		ID: in.ID, InstanceID: instanceID, Kind: in.Kind, Name: name,
		Settings: settings, Enabled: in.Enabled == nil || *in.Enabled, TeamID: in.TeamID,
	}
	if err := s.validate(ctx, row, secrets); err != nil {
		return nil, err
	}
	enc, err := json.Marshal(secrets)
	if err != nil {
		return nil, fmt.Errorf("encode secrets: %w", err)
	}
	row.Secrets = string(enc)
	if err := s.st.CreateChannel(ctx, row); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "channel created", "instance", instanceID, "channel", row.ID, "kind", row.Kind,
		"enabled", row.Enabled, "secrets_set", secretNames(secrets))
	v := channelView(row)
	v.StartError = s.apply(ctx, row)
	return &v, nil
}

// Channel returns a channel of an instance.
func (s *Service) Channel(ctx context.Context, instanceID, id string) (*Channel, error) {
	row, err := s.st.Channel(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "channel %q in instance %q", id, instanceID)
	}
	v := channelView(row)
	return &v, nil
}

// Channels lists an instance's channels, by id.
func (s *Service) Channels(ctx context.Context, instanceID string) ([]Channel, error) {
	if err := s.instance(ctx, instanceID); err != nil {
		return nil, err
	}
	rows, err := s.st.Channels(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := make([]Channel, 0, len(rows))
	for i := range rows {
		out = append(out, channelView(&rows[i]))
	}
	return out, nil
}

// UpdateChannel changes a channel and, when a node runs in this process,
// restarts it (or stops it when it is now disabled).
func (s *Service) UpdateChannel(ctx context.Context, instanceID, id string, u ChannelUpdate) (*Channel, error) {
	row, err := s.st.Channel(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "channel %q in instance %q", id, instanceID)
	}
	var changed []string
	if u.Name != nil {
		if row.Name, err = checkName("name", *u.Name); err != nil {
			return nil, err
		}
		changed = append(changed, "name")
	}
	if u.Settings != nil {
		if string(u.Settings) == "null" {
			return nil, invalid("settings", "must be a JSON object; send {} for none")
		}
		if row.Settings, err = settingsObject(u.Settings); err != nil {
			return nil, err
		}
		changed = append(changed, "settings")
	}
	secrets := row.SecretMap()
	if len(u.Secrets) > 0 {
		for _, k := range sortedKeys(u.Secrets) {
			v := u.Secrets[k]
			if v == nil {
				delete(secrets, k)
				continue
			}
			if err := checkSecretName(k); err != nil {
				return nil, err
			}
			if err := checkSecretValue(k, *v); err != nil {
				return nil, err
			}
			secrets[k] = *v
		}
		if len(secrets) > maxSecrets {
			return nil, invalid("secrets", "at most %d secrets", maxSecrets)
		}
		enc, err := json.Marshal(secrets)
		if err != nil {
			return nil, fmt.Errorf("encode secrets: %w", err)
		}
		row.Secrets = string(enc)
		changed = append(changed, "secrets")
	}
	if u.Enabled != nil {
		row.Enabled = *u.Enabled
		changed = append(changed, "enabled")
	}
	if u.TeamID.Set {
		if u.TeamID.Value != nil {
			if err := s.checkTeam(ctx, instanceID, "team_id", *u.TeamID.Value); err != nil {
				return nil, err
			}
		}
		row.TeamID = u.TeamID.Value
		changed = append(changed, "team_id")
	}
	if len(changed) == 0 {
		// Nothing to store; a running channel is left alone rather than
		// restarted for an empty PATCH.
		v := channelView(row)
		return &v, nil
	}
	if err := s.validate(ctx, row, secrets); err != nil {
		return nil, err
	}
	if err := s.st.UpdateChannel(ctx, row); err != nil {
		return nil, notFound(err, "channel %q in instance %q", id, instanceID)
	}
	s.log.InfoContext(ctx, "channel updated", "instance", instanceID, "channel", id, "changed", changed,
		"enabled", row.Enabled, "secrets_set", secretNames(secrets))
	v := channelView(row)
	v.StartError = s.apply(ctx, row)
	return &v, nil
}

// SetChannelEnabled enables or disables a channel. Enabling checks the
// configuration again (the connector may have changed since) and, when a
// node runs in this process, (re)starts the channel: enabling is also how
// an operator retries a failed start.
func (s *Service) SetChannelEnabled(ctx context.Context, instanceID, id string, enabled bool) (*Channel, error) {
	row, err := s.st.Channel(ctx, instanceID, id)
	if err != nil {
		return nil, notFound(err, "channel %q in instance %q", id, instanceID)
	}
	if enabled {
		on := *row
		on.Enabled = true
		if err := s.validate(ctx, &on, row.SecretMap()); err != nil {
			return nil, err
		}
	}
	if row.Enabled != enabled {
		row.Enabled = enabled
		if err := s.st.UpdateChannel(ctx, row); err != nil {
			return nil, notFound(err, "channel %q in instance %q", id, instanceID)
		}
		s.log.InfoContext(ctx, "channel updated", "instance", instanceID, "channel", id, "changed", []string{"enabled"}, "enabled", enabled)
	}
	v := channelView(row)
	v.StartError = s.apply(ctx, row)
	return &v, nil
}

// DeleteChannel removes a channel that has no tickets (one with history
// must be disabled instead: its tickets name it) and stops it.
func (s *Service) DeleteChannel(ctx context.Context, instanceID, id string) error {
	if err := s.st.DeleteChannel(ctx, instanceID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound(err, "channel %q in instance %q", id, instanceID)
		}
		return err
	}
	if s.run != nil {
		s.run.StopChannel(context.WithoutCancel(ctx), id)
		s.run.ChannelsChanged(context.WithoutCancel(ctx))
	}
	s.log.InfoContext(ctx, "channel deleted", "instance", instanceID, "channel", id)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
