package admincmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/hub/admin"
)

func (c *cli) channelCmd() *cobra.Command {
	create := &cobra.Command{
		Use:   "create ID --instance INSTANCE --kind KIND --name NAME [flags]",
		Short: "Create a channel",
		Long: `Create a channel of an instance (M1). The settings are the connector's
configuration (see the connector's README) and are validated before
anything is stored; secrets (passwords, API tokens) are stored write-only
and never printed.

Secrets come from --secret name=value (repeatable) or --secrets-file, a
JSON object {"name": "value"} or name=value lines; "-" reads standard
input, which keeps secrets out of the shell history.

` + applyNote,
		Example: `  switchboard channel create acme-mail -i acme --kind email --name "Support mailbox" \
      --settings-file mail.json --secrets-file - < mail-secrets.env`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			in := admin.NewChannel{ID: args[0]}
			in.Kind, _ = cmd.Flags().GetString("kind")
			in.Name, _ = cmd.Flags().GetString("name")
			if in.Settings, err = settingsFrom(cmd); err != nil {
				return err
			}
			if in.Secrets, err = secretsFrom(cmd); err != nil {
				return err
			}
			if d, _ := cmd.Flags().GetBool("disabled"); d {
				off := false
				in.Enabled = &off
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				if t, _ := cmd.Flags().GetString("team"); t != "" {
					id, err := resolveTeam(ctx, svc, inst, t)
					if err != nil {
						return err
					}
					in.TeamID = &id
				}
				v, err := svc.CreateChannel(ctx, inst, in)
				if err != nil {
					return err
				}
				return out.channel(v)
			})
		},
	}
	create.Flags().String("kind", "", "connector kind, e.g. email, livechat, webform (required)")
	create.Flags().String("name", "", "display name (required)")
	create.Flags().String("team", "", "team (id or name) new tickets go to; default the instance-wide queue")
	create.Flags().Bool("disabled", false, "store the channel disabled")
	settingsFlags(create)
	secretFlags(create)

	listCmd := &cobra.Command{
		Use:   "list --instance INSTANCE",
		Short: "List an instance's channels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Channels(ctx, inst)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(v))
				for _, ch := range v {
					rows = append(rows, []string{ch.ID, ch.Kind, ch.Name, yesNo(ch.Enabled), team(ch.TeamID), secretList(ch.SecretsSet)})
				}
				return out.print(list[admin.Channel]{Items: v}, []string{"ID", "KIND", "NAME", "ENABLED", "TEAM", "SECRETS SET"}, rows)
			})
		},
	}

	get := &cobra.Command{
		Use:   "get ID --instance INSTANCE",
		Short: "Show a channel (secrets by name only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Channel(ctx, inst, args[0])
				if err != nil {
					return err
				}
				return out.channel(v)
			})
		},
	}

	update := &cobra.Command{
		Use:   "update ID --instance INSTANCE [flags]",
		Short: "Change a channel",
		Long: `Change a channel. New settings replace the old ones whole; secrets given
are set and the others kept, --unset-secret removes one.

` + applyNote,
		Example: `  switchboard channel update acme-mail -i acme --secret password=new-app-password
  switchboard channel update acme-mail -i acme --team Billing`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			var u admin.ChannelUpdate
			if cmd.Flags().Changed("name") {
				v, _ := cmd.Flags().GetString("name")
				u.Name = &v
			}
			if u.Settings, err = settingsFrom(cmd); err != nil {
				return err
			}
			set, err := secretsFrom(cmd)
			if err != nil {
				return err
			}
			unset, _ := cmd.Flags().GetStringArray("unset-secret")
			if len(set)+len(unset) > 0 {
				u.Secrets = map[string]*string{}
				for _, k := range unset {
					u.Secrets[k] = nil
				}
				for k, v := range set {
					u.Secrets[k] = &v
				}
			}
			noTeam, _ := cmd.Flags().GetBool("no-team")
			teamArg, _ := cmd.Flags().GetString("team")
			if noTeam && teamArg != "" {
				return errors.New("give --team or --no-team, not both")
			}
			if noTeam {
				u.TeamID = admin.Null[int64]()
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				if teamArg != "" {
					id, err := resolveTeam(ctx, svc, inst, teamArg)
					if err != nil {
						return err
					}
					u.TeamID = admin.Some(id)
				}
				v, err := svc.UpdateChannel(ctx, inst, args[0], u)
				if err != nil {
					return err
				}
				return out.channel(v)
			})
		},
	}
	update.Flags().String("name", "", "new display name")
	update.Flags().String("team", "", "team (id or name) new tickets go to")
	update.Flags().Bool("no-team", false, "send new tickets to the instance-wide queue")
	update.Flags().StringArray("unset-secret", nil, "remove the secret of this name (repeatable)")
	settingsFlags(update)
	secretFlags(update)

	del := &cobra.Command{
		Use:   "delete ID --instance INSTANCE",
		Short: "Delete a channel that has no tickets",
		Long: `Delete a channel. A channel with tickets cannot be deleted (its tickets
name it): disable it instead.

` + applyNote,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				if err := svc.DeleteChannel(ctx, inst, args[0]); err != nil {
					return err
				}
				return out.done(map[string]any{"deleted": args[0]}, "deleted channel "+args[0])
			})
		},
	}

	enable := c.channelSwitch(true)
	disable := c.channelSwitch(false)

	return group("channel", "Manage an instance's channels",
		"Manage the support channels of an instance (M1) and their connector configuration.\n\n"+applyNote,
		true, create, listCmd, get, update, del, enable, disable)
}

func (c *cli) channelSwitch(on bool) *cobra.Command {
	use, short := "disable", "Disable a channel"
	if on {
		use, short = "enable", "Enable a channel (its configuration is checked again)"
	}
	return &cobra.Command{
		Use:   use + " ID --instance INSTANCE",
		Short: short,
		Long:  short + ".\n\n" + applyNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.SetChannelEnabled(ctx, inst, args[0], on)
				if err != nil {
					return err
				}
				return out.channel(v)
			})
		},
	}
}

func settingsFlags(cmd *cobra.Command) {
	cmd.Flags().String("settings", "", "connector settings as a JSON object")
	cmd.Flags().String("settings-file", "", `file with the settings JSON object ("-": standard input)`)
	cmd.MarkFlagsMutuallyExclusive("settings", "settings-file")
}

func secretFlags(cmd *cobra.Command) {
	// StringArray, not StringSlice: a secret may contain commas.
	cmd.Flags().StringArray("secret", nil, "a secret as name=value (repeatable; prefer --secrets-file, the shell keeps history)")
	cmd.Flags().String("secrets-file", "", `file of secrets: a JSON object or name=value lines ("-": standard input)`)
}

// settingsFrom returns the settings given by flag or file; nil when
// neither is given.
func settingsFrom(cmd *cobra.Command) (json.RawMessage, error) {
	if cmd.Flags().Changed("settings") {
		v, _ := cmd.Flags().GetString("settings")
		return json.RawMessage(v), nil
	}
	if f, _ := cmd.Flags().GetString("settings-file"); f != "" {
		b, err := readFile(cmd, f)
		if err != nil {
			return nil, fmt.Errorf("--settings-file: %w", err)
		}
		return json.RawMessage(bytes.TrimSpace(b)), nil
	}
	return nil, nil
}

// secretsFrom collects --secrets-file and --secret, the flags winning.
// Its errors never quote a value.
func secretsFrom(cmd *cobra.Command) (map[string]string, error) {
	out := map[string]string{}
	if f, _ := cmd.Flags().GetString("secrets-file"); f != "" {
		b, err := readFile(cmd, f)
		if err != nil {
			return nil, fmt.Errorf("--secrets-file: %w", err)
		}
		if err := parseSecrets(b, out); err != nil {
			return nil, fmt.Errorf("--secrets-file %s: %w", f, err)
		}
	}
	kvs, _ := cmd.Flags().GetStringArray("secret")
	for i, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--secret number %d: write it as name=value", i+1)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

// parseSecrets reads a JSON object of strings, or name=value lines with
// # comments.
func parseSecrets(b []byte, into map[string]string) error {
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("{")) {
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return errors.New("not a JSON object of string values")
		}
		for k, v := range m {
			into[k] = v
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), admin.MaxBodyBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("line %d: write it as name=value", n)
		}
		into[strings.TrimSpace(k)] = v
	}
	return sc.Err()
}

// resolveTeam takes a team id or name; digits are an id.
func resolveTeam(ctx context.Context, svc *admin.Service, instanceID, s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	teams, err := svc.Teams(ctx, instanceID)
	if err != nil {
		return 0, err
	}
	for _, t := range teams {
		if t.Name == s {
			return t.ID, nil
		}
	}
	return 0, fmt.Errorf("instance %q has no team named %q (team list -i %s shows them)", instanceID, s, instanceID)
}

func team(id *int64) string {
	if id == nil {
		return "-"
	}
	return strconv.FormatInt(*id, 10)
}

func secretList(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func (o *output) channel(v *admin.Channel) error {
	fields := [][2]string{
		{"id", v.ID}, {"instance", v.InstanceID}, {"kind", v.Kind}, {"name", v.Name},
		{"enabled", yesNo(v.Enabled)}, {"team", team(v.TeamID)},
		{"secrets set", secretList(v.SecretsSet) + " (values are write-only)"},
		{"settings", string(v.Settings)}, {"created", when(v.CreatedAt)},
	}
	if v.StartError != "" {
		fields = append(fields, [2]string{"start error", v.StartError})
	}
	return o.record(v, fields)
}

// done reports an operation without a result.
func (o *output) done(v any, msg string) error {
	if o.json {
		return o.print(v, nil, nil)
	}
	return o.print(nil, nil, [][]string{{msg}})
}
