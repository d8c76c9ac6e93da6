package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/hub/store"
)

func migrateCommand(o *options) *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date (serve also does this at start)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := store.Open(ctx, o.databaseDSN())
			if err != nil {
				return err
			}
			defer st.Close()
			if !status {
				if err := st.Migrate(ctx); err != nil {
					return err
				}
			}
			applied, pending, err := st.MigrationStatus(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d migrations applied, %d pending\n", st.Dialect(), len(applied), len(pending))
			for _, p := range pending {
				fmt.Fprintln(cmd.OutOrStdout(), "  pending:", p)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "only show what is applied and pending")
	return cmd
}
