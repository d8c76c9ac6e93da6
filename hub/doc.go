// Package hub is the messaging gateway: it runs the channel connectors,
// turns what they receive into tickets and messages (M1, M2), routes
// tickets to agents, carries agents' replies back out through the outbox,
// and tells every node what changed.
//
// The inbound path: a connector calls Host.Deliver → the hub validates and
// sanitizes (HTML through bluemonday, text to valid UTF-8), writes
// attachments to the blob store, stores everything in one transaction
// (store.Ingest, deduplicated on channel and external id), and only then
// returns, so the connector acknowledges upstream after the commit. Routing
// and notifications follow the commit; if they are lost, reconciliation
// and the agents' resume cursor repair it, never the data.
//
// Sub-packages: store (the model and its storage), routing (who handles
// what), blob (attachment bytes), gateway (the agents' websocket), admin
// (the operator API), api (the REST API for integrations, by API key),
// console (the agents' web page).
//
// It imports connectors (types only), never a connector implementation.
package hub
