// Package store holds the hub's channel-agnostic ticket model (M2) and its
// storage through bun, on SQLite (the embedded default, pure Go) and on
// Postgres (production). One implementation serves both dialects; the few
// places where they differ are marked.
//
// The model: instances (tenants), channels, contacts with one identity per
// channel, agents and teams, tickets, messages (inbound, outbound, internal
// notes) with attachments, the outbox of messages to send, and the change
// feed agents resume from. Every query takes the instance id: nothing
// reads across tenants.
//
// Files are split per aggregate; migrations are an ordered list in
// migrations.go.
package store
