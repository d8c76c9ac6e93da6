package admincmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/cmd/switchboard/admincmd"
	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

type nopConn struct{}

func (nopConn) Kind() connectors.Kind                        { return "strict" }
func (nopConn) Policy() connectors.Policy                    { return connectors.Policy{} }
func (nopConn) Start(context.Context, connectors.Host) error { return nil }
func (nopConn) Stop(context.Context) error                   { return nil }
func (nopConn) Send(context.Context, connectors.Outbound) (connectors.SendResult, error) {
	return connectors.SendResult{}, connectors.ErrUnsupported
}

// registry has a "strict" kind that needs settings {"address": ...} and
// the secret "password", like a real connector would.
func registry(t *testing.T) *connectors.Registry {
	reg := connectors.NewRegistry()
	err := reg.Register("strict", func(cfg connectors.Config) (connectors.Connector, error) {
		var s struct {
			Address string `json:"address"`
		}
		dec := json.NewDecoder(bytes.NewReader(cfg.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
		if s.Address == "" {
			return nil, errors.New("address: required")
		}
		if cfg.Secrets["password"] == "" {
			return nil, errors.New("secret password: required")
		}
		return nopConn{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// cli runs commands the way the switchboard binary does, each on a fresh
// command tree (cobra keeps flag values between runs of one tree) and
// with the database opened anew, as separate processes would.
type cli struct {
	t      *testing.T
	dsn    string
	reg    *connectors.Registry
	output []string // everything printed, for the secrets check
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, dsn: testenv.SQLite(t), reg: registry(t)}
}

func (c *cli) open(ctx context.Context) (*store.Store, error) {
	st, err := store.Open(ctx, c.dsn)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func (c *cli) exec(stdin string, args ...string) (string, error) {
	c.t.Helper()
	root := &cobra.Command{Use: "switchboard", SilenceErrors: true}
	root.AddCommand(admincmd.Commands(c.open, c.reg)...)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	c.output = append(c.output, out.String(), errOut.String())
	if err != nil {
		c.output = append(c.output, err.Error())
	}
	return out.String(), err
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, err := c.exec("", args...)
	if err != nil {
		c.t.Fatalf("switchboard %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// json runs a command with --json and decodes its output.
func (c *cli) json(args ...string) map[string]any {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("switchboard %s --json: %v: %s", strings.Join(args, " "), err, out)
	}
	return m
}

// fails runs a command that must fail with an error containing want.
func (c *cli) fails(want string, args ...string) {
	c.t.Helper()
	_, err := c.exec("", args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		c.t.Errorf("switchboard %s: error %v, want one containing %q", strings.Join(args, " "), err, want)
	}
}

func contains(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestInstanceCommands(t *testing.T) {
	c := newCLI(t)
	contains(t, c.ok("instance", "create", "acme", "--name", "Acme", "--time-zone", "Europe/Amsterdam"),
		"id:", "acme", "Europe/Amsterdam")
	c.ok("instance", "create", "globex", "--name", "Globex")
	contains(t, c.ok("instance", "list"), "ID", "TIME ZONE", "acme", "globex", "UTC")
	if items := c.json("instance", "list")["items"].([]any); len(items) != 2 {
		t.Errorf("list --json: %v", items)
	}
	if got := c.json("instance", "update", "acme", "--name", "Acme BV")["time_zone"]; got != "Europe/Amsterdam" {
		t.Errorf("update kept time zone %v", got)
	}
	contains(t, c.ok("instance", "get", "acme"), "Acme BV")

	c.fails(`invalid id: "Acme Inc" is not a valid id`, "instance", "create", "Acme Inc", "--name", "X")
	c.fails("invalid time_zone", "instance", "create", "x", "--name", "X", "--time-zone", "Mars/Base")
	c.fails(`instance "acme" exists`, "instance", "create", "acme", "--name", "X")
	c.fails(`instance "nope" not found`, "instance", "get", "nope")
	_, err := c.exec("", "instance", "get", "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("errors.Is(ErrNotFound) on %v", err)
	}
	c.fails("accepts 1 arg", "instance", "get")
}

func TestChannelCommandsKeepSecrets(t *testing.T) {
	c := newCLI(t)
	const (
		secret     = "cli-secret-value-1"
		fileSecret = "file-secret-value-2"
		stdinToken = "stdin-secret-value-3"
	)
	c.ok("instance", "create", "acme", "--name", "Acme")
	team := c.json("team", "create", "Support", "-i", "acme")["id"]

	c.fails("--instance (-i) is required", "channel", "list")
	c.fails("invalid settings: secret password: required",
		"channel", "create", "mail", "-i", "acme", "--kind", "strict", "--name", "Mail", "--settings", `{"address": "help@acme.test"}`)
	c.fails("invalid kind", "channel", "create", "mail", "-i", "acme", "--kind", "pigeon", "--name", "Mail")
	c.fails("--secret number 1: write it as name=value",
		"channel", "create", "mail", "-i", "acme", "--kind", "strict", "--name", "Mail", "--secret", secret)

	out := c.ok("channel", "create", "mail", "-i", "acme", "--kind", "strict", "--name", "Mail",
		"--settings", `{"address": "help@acme.test"}`, "--secret", "password="+secret, "--team", "Support")
	contains(t, out, "secrets set:", "password (values are write-only)", fmt.Sprint(team))

	dir := t.TempDir()
	settings := filepath.Join(dir, "settings.json")
	secrets := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(settings, []byte(`{"address": "new@acme.test"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secrets, []byte(`{"password": "`+fileSecret+`", "api_token": "x=y,z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := c.json("channel", "update", "mail", "-i", "acme", "--settings-file", settings, "--secrets-file", secrets, "--no-team")
	if fmt.Sprint(ch["secrets_set"]) != "[api_token password]" || ch["team_id"] != nil {
		t.Errorf("after update: %v", ch)
	}
	if _, err := c.exec("# from a vault\nwebhook_token="+stdinToken+"\n", "channel", "update", "mail", "-i", "acme", "--secrets-file", "-", "--unset-secret", "api_token"); err != nil {
		t.Fatal(err)
	}
	contains(t, c.ok("channel", "get", "mail", "-i", "acme"), "password,webhook_token", "new@acme.test")
	contains(t, c.ok("channel", "list", "-i", "acme"), "SECRETS SET", "password,webhook_token")
	if got := c.json("channel", "disable", "mail", "-i", "acme")["enabled"]; got != false {
		t.Errorf("disable: %v", got)
	}
	if got := c.json("channel", "enable", "mail", "-i", "acme")["enabled"]; got != true {
		t.Errorf("enable: %v", got)
	}

	// Stored and usable, but never printed.
	st, err := c.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	row, err := st.Channel(context.Background(), "acme", "mail")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m := row.SecretMap(); m["password"] != fileSecret || m["webhook_token"] != stdinToken || len(m) != 2 {
		t.Errorf("stored secrets have names %v", len(m))
	}
	for _, s := range []string{secret, fileSecret, stdinToken, "x=y,z"} {
		for _, o := range c.output {
			if strings.Contains(o, s) {
				t.Errorf("a secret was printed: %s", o)
			}
		}
	}

	c.fails(`channel "nope" in instance "acme" not found`, "channel", "get", "nope", "-i", "acme")
	c.fails(`channel "mail" in instance "other" not found`, "channel", "get", "mail", "-i", "other")
	contains(t, c.ok("channel", "delete", "mail", "-i", "acme"), "deleted channel mail")
	c.fails("not found", "channel", "get", "mail", "-i", "acme")
}

func TestAgentTeamAndKeyCommands(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	c.ok("instance", "create", "acme", "--name", "Acme")
	contains(t, c.ok("team", "create", "Support", "-i", "acme"), "Support")
	c.ok("team", "create", "Billing", "-i", "acme")
	contains(t, c.ok("team", "list", "-i", "acme"), "Support", "Billing")

	out := c.ok("agent", "create", "-i", "acme", "--name", "Ann", "--email", "ann@acme.test", "--team", "Support", "--capacity", "4")
	contains(t, out, "token:", "sbt_", "shown this once")
	cred := c.json("agent", "create", "-i", "acme", "--name", "Bob", "--email", "bob@acme.test", "--team", "Support", "--team", "Billing")
	token := cred["token"].(string)
	agent := cred["agent"].(map[string]any)
	id := fmt.Sprint(int64(agent["id"].(float64)))
	if fmt.Sprint(agent["team_ids"]) != "[1 2]" {
		t.Errorf("teams %v", agent["team_ids"])
	}
	c.fails(`agent "bob@acme.test" exists`, "agent", "create", "-i", "acme", "--name", "B", "--email", "bob@acme.test")
	c.fails(`no team named "Sales"`, "agent", "create", "-i", "acme", "--name", "C", "--email", "c@acme.test", "--team", "Sales")
	contains(t, c.ok("agent", "list", "-i", "acme"), "EMAIL", "ann@acme.test", "bob@acme.test", "1,2")

	got := c.json("agent", "update", id, "-i", "acme", "--capacity", "6", "--no-teams", "--disabled")
	if got["capacity"] != 6.0 || fmt.Sprint(got["team_ids"]) != "[]" || got["disabled"] != true {
		t.Errorf("update: %v", got)
	}
	got = c.json("agent", "update", id, "-i", "acme", "--disabled=false", "--team", "2")
	if got["disabled"] != false || fmt.Sprint(got["team_ids"]) != "[2]" || got["capacity"] != 6.0 {
		t.Errorf("update again: %v", got)
	}
	c.fails("invalid capacity", "agent", "update", id, "-i", "acme", "--capacity", "0")
	c.fails(`agent id "x"`, "agent", "get", "x", "-i", "acme")

	rotated := c.json("agent", "rotate-token", id, "-i", "acme")["token"].(string)
	st, err := c.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AgentByTokenHash(ctx, hub.HashToken(token)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old token still works: %v", err)
	}
	if a, err := st.AgentByTokenHash(ctx, hub.HashToken(rotated)); err != nil || fmt.Sprint(a.ID) != id {
		t.Errorf("new token: %v %v", a, err)
	}

	c.ok("channel", "create", "chat", "-i", "acme", "--kind", "strict", "--name", "Chat", "--settings", `{"address": "a"}`, "--secret", "password=p", "--team", "Billing")
	c.fails("receives the tickets of channel chat", "team", "delete", "Billing", "-i", "acme")
	contains(t, c.ok("team", "delete", "Support", "-i", "acme"), "deleted team 1")

	key := c.json("apikey", "create", "crm", "-i", "acme")
	k := key["key"].(string)
	if !strings.HasPrefix(k, "sbk_") {
		t.Errorf("key %q", k)
	}
	if _, err := st.APIKeyByHash(ctx, hub.HashToken(k)); err != nil {
		t.Errorf("new key: %v", err)
	}
	contains(t, c.ok("apikey", "list", "-i", "acme"), "crm", "REVOKED")
	contains(t, c.ok("apikey", "revoke", "1", "-i", "acme"), "revoked:")
	if _, err := st.APIKeyByHash(ctx, hub.HashToken(k)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked key still works: %v", err)
	}
	c.fails(`api key 9 in instance "acme" not found`, "apikey", "revoke", "9", "-i", "acme")
}

// TestHelpSaysWhenChangesApply: an operator reading the help learns that
// running nodes pick channel changes up within 30 seconds.
func TestHelpSaysWhenChangesApply(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"channel", "--help"}, {"channel", "create", "--help"}, {"channel", "update", "--help"}, {"channel", "disable", "--help"}} {
		out, err := c.exec("", args...)
		if err != nil {
			t.Fatal(err)
		}
		contains(t, out, "pick up", "within 30 seconds")
	}
	cmds := admincmd.Commands(c.open, nil)
	var names []string
	for _, cmd := range cmds {
		names = append(names, cmd.Name())
	}
	if strings.Join(names, " ") != "instance channel team agent apikey" {
		t.Errorf("commands %v", names)
	}
}
