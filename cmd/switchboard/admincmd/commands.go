package admincmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Commands returns the top-level administration commands: instance,
// channel, team, agent and apikey.
//
// open is called once per command run and must return a store ready to
// use (store.Migrate is safe to run every time); the command closes it.
// reg validates channel settings as the server does; nil accepts any
// settings object.
func Commands(open func(ctx context.Context) (*store.Store, error), reg *connectors.Registry) []*cobra.Command {
	c := &cli{open: open, reg: reg}
	return []*cobra.Command{c.instanceCmd(), c.channelCmd(), c.teamCmd(), c.agentCmd(), c.apikeyCmd()}
}

type cli struct {
	open func(ctx context.Context) (*store.Store, error)
	reg  *connectors.Registry
}

// applyNote is in the help of every command that changes channels.
const applyNote = `Changes are written to the database directly. Running nodes pick up
channel changes within 30 seconds (their periodic channel sync); to apply a
change at once, use the admin API of a running node instead
(docs/admin-api.md).`

// group makes a top-level command with the flags its subcommands share.
func group(use, short, long string, perInstance bool, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	cmd.PersistentFlags().Bool("json", false, "print JSON (the admin API's shapes) instead of a table")
	if perInstance {
		cmd.PersistentFlags().StringP("instance", "i", "", "the instance's id (required)")
	}
	for _, s := range subs {
		// A refused operation is not a usage mistake: print the reason,
		// not the usage.
		s.SilenceUsage = true
		cmd.AddCommand(s)
	}
	return cmd
}

// run opens the database, builds the Service and calls fn with the
// command's output settings.
func (c *cli) run(cmd *cobra.Command, fn func(ctx context.Context, svc *admin.Service, out *output) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := c.open(ctx)
	if err != nil {
		return fmt.Errorf("open the database: %w", err)
	}
	defer st.Close()
	svc := admin.NewService(st, admin.Options{
		Registry: c.reg,
		Logger:   slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	asJSON, _ := cmd.Flags().GetBool("json")
	if err := fn(ctx, svc, &output{w: cmd.OutOrStdout(), json: asJSON}); err != nil {
		return &cliError{err}
	}
	return nil
}

// instanceFlag returns the --instance value, which the commands below an
// instance require.
func instanceFlag(cmd *cobra.Command) (string, error) {
	v, _ := cmd.Flags().GetString("instance")
	if v == "" {
		return "", errors.New("--instance (-i) is required: the id of the instance to work in")
	}
	return v, nil
}

// cliError shows a Service error in plain words and keeps it for
// errors.Is.
type cliError struct{ err error }

func (e *cliError) Error() string {
	var fe *admin.FieldError
	if errors.As(e.err, &fe) {
		return "invalid " + fe.Error()
	}
	return admin.Message(e.err)
}

func (e *cliError) Unwrap() error { return e.err }

// output prints one result as a table or as JSON.
type output struct {
	w    io.Writer
	json bool
}

// print writes v as JSON, or else the rows as an aligned table.
func (o *output) print(v any, header []string, rows [][]string) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// record prints one item as "field: value" lines.
func (o *output) record(v any, fields [][2]string) error {
	rows := make([][]string, 0, len(fields))
	for _, f := range fields {
		label := f[0]
		if label != "" {
			label += ":"
		}
		rows = append(rows, []string{label, f[1]})
	}
	return o.print(v, nil, rows)
}

// list is the API's list shape, so scripts read the CLI and the API alike.
type list[T any] struct {
	Items []T `json:"items"`
}

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ids(v []int64) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func parseID(what, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s id %q: give the number shown by the list command", what, s)
	}
	return n, nil
}

// readFile reads a file, or standard input for "-" (keeps secrets out of
// the shell history and off the disk).
func readFile(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), admin.MaxBodyBytes+1))
	}
	return os.ReadFile(path)
}
