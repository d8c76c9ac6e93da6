package admincmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/hub/admin"
)

func (c *cli) instanceCmd() *cobra.Command {
	create := &cobra.Command{
		Use:   "create ID --name NAME [--time-zone ZONE]",
		Short: "Create an instance (a tenant)",
		Long: `Create an instance: one customer's support organisation.

ID is 1-63 lower-case letters, digits and dashes and cannot change later.
The time zone is an IANA name (default UTC); reports count days in it.`,
		Example: `  switchboard instance create acme --name "Acme Support" --time-zone Europe/Amsterdam`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := cmd.Flags().GetString("name")
			tz, _ := cmd.Flags().GetString("time-zone")
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.CreateInstance(ctx, admin.NewInstance{ID: args[0], Name: name, TimeZone: tz})
				if err != nil {
					return err
				}
				return out.instance(v)
			})
		},
	}
	create.Flags().String("name", "", "display name (required)")
	create.Flags().String("time-zone", "UTC", "IANA time zone, e.g. Europe/Amsterdam")

	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List instances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Instances(ctx)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(v))
				for _, in := range v {
					rows = append(rows, []string{in.ID, in.Name, in.TimeZone, when(in.CreatedAt)})
				}
				return out.print(list[admin.Instance]{Items: v}, []string{"ID", "NAME", "TIME ZONE", "CREATED"}, rows)
			})
		},
	}

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an instance",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.Instance(ctx, args[0])
				if err != nil {
					return err
				}
				return out.instance(v)
			})
		},
	}

	update := &cobra.Command{
		Use:     "update ID [--name NAME] [--time-zone ZONE]",
		Short:   "Change an instance's name or time zone",
		Example: `  switchboard instance update acme --time-zone Europe/Brussels`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u admin.InstanceUpdate
			if cmd.Flags().Changed("name") {
				v, _ := cmd.Flags().GetString("name")
				u.Name = &v
			}
			if cmd.Flags().Changed("time-zone") {
				v, _ := cmd.Flags().GetString("time-zone")
				u.TimeZone = &v
			}
			return c.run(cmd, func(ctx context.Context, svc *admin.Service, out *output) error {
				v, err := svc.UpdateInstance(ctx, args[0], u)
				if err != nil {
					return err
				}
				return out.instance(v)
			})
		},
	}
	update.Flags().String("name", "", "new display name")
	update.Flags().String("time-zone", "", "new IANA time zone")

	return group("instance", "Manage instances (tenants)",
		"Manage instances: the tenants of the hub, one per customer organisation.",
		false, create, listCmd, get, update)
}

func (o *output) instance(v *admin.Instance) error {
	return o.record(v, [][2]string{
		{"id", v.ID}, {"name", v.Name}, {"time zone", v.TimeZone}, {"created", when(v.CreatedAt)},
	})
}
