// Package api is the REST API for API clients of an instance:
// integrations and scripts that list and read tickets, reply and add
// notes, change a ticket's status, and follow the instance's change feed.
// It is served under /api/v1/ (NewHandler) and described by the embedded
// OpenAPI document (OpenAPI, also at GET /api/v1/openapi.json); the
// reference for people is docs/api.md.
//
// Rules the package keeps:
//   - Authentication is an API key of one instance ("Authorization: Bearer
//     sbk_…", made with the admin API), looked up by its SHA-256; an
//     unknown and a revoked key get the same 401. The key is never logged,
//     nor are query strings or bodies (end users' data).
//   - The key's instance scopes everything: each call passes its instance
//     id to the hub, so a ticket of another instance is 404 with the same
//     body as a ticket that does not exist, another instance's tickets are
//     never listed, and its changes never appear in the feed (tenant
//     isolation).
//   - An API client acts as the instance, not as an agent: a reply takes
//     the agents' own path in the hub (channel policy check, message and
//     outbox row in one transaction, notifications) and shows the key's
//     name as its author (M1: two-way conversations over every channel;
//     M2: the same normalized tickets and messages whatever the channel).
//   - Input is decoded strictly (JSON content type, unknown fields and
//     query parameters refused, 1 MiB body limit) and every mistake is a
//     4xx naming the field, in the admin API's error shape
//     {"error": {"code", "message", "field"}}.
//   - Responses are the package's own view types, not the store's models,
//     so a change to the model never silently changes the contract.
//
// It imports hub, hub/store and connectors (the policy refusal class);
// it must not import a connector implementation, the admin package or
// cmd.
package api
