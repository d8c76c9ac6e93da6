// Package admin is the operator's administration of the hub: instances
// (tenants), their channels and connector configuration (M1), teams,
// agents and API keys.
//
// One Service holds every operation and its validation; two front ends
// call it: the REST API of this package (NewHandler, served under
// /admin/v1/ and described by the embedded OpenAPI document) and the CLI
// subcommands of cmd/switchboard/admincmd, which run the same Service
// directly on the database. Neither front end validates on its own, so
// both refuse the same input with the same words.
//
// Rules the package keeps:
//   - Channel secrets are write-only: accepted on create and update,
//     stored, handed to the connector, and otherwise only ever shown as the
//     list of their names (secrets_set). They are never returned, never
//     logged, and redacted from connector errors before those are shown.
//   - Every operation on an instance's resources takes the instance id and
//     passes it to the store, so an id of another instance is simply not
//     found.
//   - Channel settings are validated by building the connector through the
//     connectors.Registry (no I/O), so a bad configuration is refused with
//     the field named before it is stored.
//   - Agent tokens and API keys are shown once, when made; only their
//     SHA-256 is stored (hub.NewToken).
//
// A running node is told about channel changes through the optional
// ChannelRunner (*hub.Hub is one), which applies them and announces them
// to the other nodes; without a runner (the CLI), running nodes pick the
// change up at their periodic channel sync.
//
// It imports hub (tokens, the runner guard), hub/store and connectors; it
// must not import a connector implementation or cmd.
package admin
