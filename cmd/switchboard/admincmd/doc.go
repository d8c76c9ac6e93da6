// Package admincmd is the operator's command line for administration:
// the subcommands instance, channel, team, agent and apikey of the
// switchboard binary.
//
// The commands call hub/admin's Service directly on the database, the
// same operations and validation as the REST admin API, so they work with
// no server running and need no operator token: whoever can open the
// database is the operator. Running nodes are not told about the changes;
// they pick up channel changes at their periodic channel sync, within 30
// seconds (the REST API of a running node applies them at once).
//
// Output is a readable table by default and the API's JSON with --json.
// Channel secrets come from --secret name=value or --secrets-file and are
// never printed.
//
// It imports hub/admin, hub/store, connectors and cobra; it owns no
// storage and no validation of its own.
package admincmd
