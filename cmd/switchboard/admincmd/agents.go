package admincmd

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/hub/admin"
)

func (c *cli) teamCmd() *cobra.Command {
	create := &cobra.Command{
		Use:     "create NAME --instance INSTANCE",
		Short:   "Create a team",
		Example: `  switchboard team create Billing -i acme`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.CreateTeam(ctx, inst, admin.NewTeam{Name: args[0]})
				if err != nil {
					return err
				}
				return out.team(v)
			})
		},
	}
	listCmd := &cobra.Command{
		Use:   "list --instance INSTANCE",
		Short: "List an instance's teams",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Teams(ctx, inst)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(v))
				for _, t := range v {
					rows = append(rows, []string{strconv.FormatInt(t.ID, 10), t.Name, when(t.CreatedAt)})
				}
				return out.print(list[admin.Team]{Items: v}, []string{"ID", "NAME", "CREATED"}, rows)
			})
		},
	}
	get := &cobra.Command{
		Use:   "get TEAM --instance INSTANCE",
		Short: "Show a team (by id or name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				id, err := resolveTeam(ctx, svc, inst, args[0])
				if err != nil {
					return err
				}
				v, err := svc.Team(ctx, inst, id)
				if err != nil {
					return err
				}
				return out.team(v)
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete TEAM --instance INSTANCE",
		Short: "Delete a team (by id or name) and its memberships",
		Long: `Delete a team and its agents' memberships. A team that a channel sends
its new tickets to cannot be deleted: change the channel first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				id, err := resolveTeam(ctx, svc, inst, args[0])
				if err != nil {
					return err
				}
				if err := svc.DeleteTeam(ctx, inst, id); err != nil {
					return err
				}
				return out.done(map[string]any{"deleted": id}, fmt.Sprintf("deleted team %d", id))
			})
		},
	}
	return group("team", "Manage an instance's teams",
		"Manage teams: tickets are routed to a team's queue and offered to its agents.",
		true, create, listCmd, get, del)
}

func (o *output) team(v *admin.Team) error {
	return o.record(v, [][2]string{
		{"id", strconv.FormatInt(v.ID, 10)}, {"instance", v.InstanceID}, {"name", v.Name}, {"created", when(v.CreatedAt)},
	})
}

func (c *cli) agentCmd() *cobra.Command {
	create := &cobra.Command{
		Use:   "create --instance INSTANCE --name NAME --email EMAIL [flags]",
		Short: "Create an agent and print its sign-in token once",
		Long: `Create an agent. Its sign-in token is printed this once: only its hash
is stored, so a lost token is replaced with rotate-token, not recovered.`,
		Example: `  switchboard agent create -i acme --name "Ann Agent" --email ann@example.com --team Support --capacity 4`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			var in admin.NewAgent
			in.Name, _ = cmd.Flags().GetString("name")
			in.Email, _ = cmd.Flags().GetString("email")
			in.Capacity, _ = cmd.Flags().GetInt("capacity")
			in.Disabled, _ = cmd.Flags().GetBool("disabled")
			teams, _ := cmd.Flags().GetStringArray("team")
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				for _, t := range teams {
					id, err := resolveTeam(ctx, svc, inst, t)
					if err != nil {
						return err
					}
					in.TeamIDs = append(in.TeamIDs, id)
				}
				v, err := svc.CreateAgent(ctx, inst, in)
				if err != nil {
					return err
				}
				return out.credentials(v)
			})
		},
	}
	create.Flags().String("name", "", "display name (required)")
	create.Flags().String("email", "", "email address, unique in the instance (required)")
	create.Flags().Int("capacity", 3, "tickets the agent handles at once")
	create.Flags().StringArray("team", nil, "a team (id or name) of the agent (repeatable)")
	create.Flags().Bool("disabled", false, "create the agent unable to sign in")

	listCmd := &cobra.Command{
		Use:   "list --instance INSTANCE",
		Short: "List an instance's agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Agents(ctx, inst)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(v))
				for _, a := range v {
					rows = append(rows, []string{strconv.FormatInt(a.ID, 10), a.Name, a.Email, strconv.Itoa(a.Capacity), yesNo(a.Disabled), ids(a.TeamIDs)})
				}
				return out.print(list[admin.Agent]{Items: v}, []string{"ID", "NAME", "EMAIL", "CAPACITY", "DISABLED", "TEAMS"}, rows)
			})
		},
	}
	get := &cobra.Command{
		Use:   "get ID --instance INSTANCE",
		Short: "Show an agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			id, err := parseID("agent", args[0])
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Agent(ctx, inst, id)
				if err != nil {
					return err
				}
				return out.agent(v)
			})
		},
	}
	update := &cobra.Command{
		Use:   "update ID --instance INSTANCE [flags]",
		Short: "Change an agent's name, capacity, teams or disabled flag",
		Long: `Change an agent. --team replaces the agent's teams with those given;
--no-teams removes them all. A disabled agent cannot sign in.`,
		Example: `  switchboard agent update 7 -i acme --capacity 5 --team Support --team Billing
  switchboard agent update 7 -i acme --disabled`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			id, err := parseID("agent", args[0])
			if err != nil {
				return err
			}
			var u admin.AgentUpdate
			if cmd.Flags().Changed("name") {
				v, _ := cmd.Flags().GetString("name")
				u.Name = &v
			}
			if cmd.Flags().Changed("capacity") {
				v, _ := cmd.Flags().GetInt("capacity")
				u.Capacity = &v
			}
			if cmd.Flags().Changed("disabled") {
				v, _ := cmd.Flags().GetBool("disabled")
				u.Disabled = &v
			}
			teams, _ := cmd.Flags().GetStringArray("team")
			noTeams, _ := cmd.Flags().GetBool("no-teams")
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				if noTeams || len(teams) > 0 {
					list := []int64{}
					for _, t := range teams {
						tid, err := resolveTeam(ctx, svc, inst, t)
						if err != nil {
							return err
						}
						list = append(list, tid)
					}
					u.TeamIDs = &list
				}
				v, err := svc.UpdateAgent(ctx, inst, id, u)
				if err != nil {
					return err
				}
				return out.agent(v)
			})
		},
	}
	update.Flags().String("name", "", "new display name")
	update.Flags().Int("capacity", 0, "tickets the agent handles at once")
	update.Flags().StringArray("team", nil, "the agent's teams from now on (id or name; repeatable)")
	update.Flags().Bool("no-teams", false, "remove the agent from every team")
	update.Flags().Bool("disabled", false, "--disabled stops the agent signing in; --disabled=false lets them again")
	update.MarkFlagsMutuallyExclusive("team", "no-teams")

	rotate := &cobra.Command{
		Use:   "rotate-token ID --instance INSTANCE",
		Short: "Give an agent a new sign-in token, printed once",
		Long: `Give an agent a new sign-in token and print it this once. The old token
stops working for new sign-ins at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			id, err := parseID("agent", args[0])
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.RotateAgentToken(ctx, inst, id)
				if err != nil {
					return err
				}
				return out.credentials(v)
			})
		},
	}
	return group("agent", "Manage an instance's agents",
		"Manage support agents: their capacity, teams, and sign-in tokens.",
		true, create, listCmd, get, update, rotate)
}

func (o *output) agentFields(v *admin.Agent) [][2]string {
	return [][2]string{
		{"id", strconv.FormatInt(v.ID, 10)}, {"instance", v.InstanceID}, {"name", v.Name}, {"email", v.Email},
		{"capacity", strconv.Itoa(v.Capacity)}, {"disabled", yesNo(v.Disabled)}, {"teams", ids(v.TeamIDs)},
		{"created", when(v.CreatedAt)},
	}
}

func (o *output) agent(v *admin.Agent) error { return o.record(v, o.agentFields(v)) }

func (o *output) credentials(v *admin.AgentCredentials) error {
	return o.record(v, append(o.agentFields(&v.Agent),
		[2]string{"token", v.Token},
		[2]string{"", "(shown this once: give it to the agent now; only its hash is kept)"}))
}

func (c *cli) apikeyCmd() *cobra.Command {
	create := &cobra.Command{
		Use:     "create NAME --instance INSTANCE",
		Short:   "Create an API key and print it once",
		Long:    "Create a key for an API client of the instance. The key is printed this once: only its hash is stored.",
		Example: `  switchboard apikey create crm-sync -i acme`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.CreateAPIKey(ctx, inst, admin.NewAPIKey{Name: args[0]})
				if err != nil {
					return err
				}
				return out.record(v, append(apiKeyFields(&v.APIKey),
					[2]string{"key", v.Key},
					[2]string{"", "(shown this once: store it now; only its hash is kept)"}))
			})
		},
	}
	listCmd := &cobra.Command{
		Use:   "list --instance INSTANCE",
		Short: "List an instance's API keys, revoked ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.APIKeys(ctx, inst)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(v))
				for _, k := range v {
					rows = append(rows, []string{strconv.FormatInt(k.ID, 10), k.Name, when(k.CreatedAt), revoked(&k)})
				}
				return out.print(list[admin.APIKey]{Items: v}, []string{"ID", "NAME", "CREATED", "REVOKED"}, rows)
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID --instance INSTANCE",
		Short: "Revoke an API key at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inst, err := instanceFlag(cmd)
			if err != nil {
				return err
			}
			id, err := parseID("api key", args[0])
			if err != nil {
				return err
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.RevokeAPIKey(ctx, inst, id)
				if err != nil {
					return err
				}
				return out.record(v, apiKeyFields(v))
			})
		},
	}
	return group("apikey", "Manage an instance's API keys",
		"Manage the keys API clients of an instance authenticate with.",
		true, create, listCmd, revoke)
}

func revoked(k *admin.APIKey) string {
	if k.RevokedAt == nil {
		return "-"
	}
	return when(*k.RevokedAt)
}

func apiKeyFields(k *admin.APIKey) [][2]string {
	return [][2]string{
		{"id", strconv.FormatInt(k.ID, 10)}, {"instance", k.InstanceID}, {"name", k.Name},
		{"created", when(k.CreatedAt)}, {"revoked", revoked(k)},
	}
}
