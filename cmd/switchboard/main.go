// Command switchboard runs the Switchboard messaging hub and its
// operator tools. With no flags, `switchboard serve` runs the embedded
// default: SQLite under ./data, in-process routing, attachments in a
// directory, and a demo instance with a demo agent.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // instance time zones work on hosts without a tz database

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/cmd/switchboard/admincmd"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

// options are the flags every subcommand shares; each has an environment
// variable of the same name in upper case with a SWITCHBOARD_ prefix.
type options struct {
	Database string
	Redis    string
	Blob     string
	Addr     string
	DataDir  string
	LogLevel string
	LogJSON  bool
}

func newRoot() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "switchboard",
		Short:         "Switchboard: a channel connector hub and messaging gateway for support teams",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&o.DataDir, "data", env("SWITCHBOARD_DATA", "./data"), "directory of the embedded default's files (env SWITCHBOARD_DATA)")
	f.StringVar(&o.Database, "database", env("SWITCHBOARD_DATABASE", ""), "database: postgres://… or sqlite://path; default sqlite under --data (env SWITCHBOARD_DATABASE)")
	f.StringVar(&o.Redis, "redis", env("SWITCHBOARD_REDIS", ""), "redis://… for routing and notifications across nodes; empty runs them in-process (env SWITCHBOARD_REDIS)")
	f.StringVar(&o.Blob, "blob", env("SWITCHBOARD_BLOB", ""), "attachment storage directory; default blobs under --data (env SWITCHBOARD_BLOB)")
	f.StringVar(&o.Addr, "addr", env("SWITCHBOARD_ADDR", "127.0.0.1:8080"), "HTTP listen address (env SWITCHBOARD_ADDR)")
	f.StringVar(&o.LogLevel, "log-level", env("SWITCHBOARD_LOG_LEVEL", "info"), "debug, info, warn or error (env SWITCHBOARD_LOG_LEVEL)")
	f.BoolVar(&o.LogJSON, "log-json", env("SWITCHBOARD_LOG_JSON", "") == "1", "log JSON lines instead of text (env SWITCHBOARD_LOG_JSON=1)")
	root.AddCommand(serveCommand(o), migrateCommand(o), versionCommand())
	root.AddCommand(admincmd.Commands(o.openStore, registry(nil))...)
	return root
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func (o *options) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	if o.LogJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, hopts))
}

func (o *options) databaseDSN() string {
	if o.Database != "" {
		return o.Database
	}
	return "sqlite://" + o.DataDir + "/switchboard.db"
}

// openStore opens and migrates the database (the admin commands run beside
// or without a server; migrating twice is harmless).
func (o *options) openStore(ctx context.Context) (*store.Store, error) {
	st, err := store.Open(ctx, o.databaseDSN())
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func (o *options) blobDir() string {
	if o.Blob != "" {
		return o.Blob
	}
	return o.DataDir + "/blobs"
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "switchboard", version)
		},
	}
}
