// Package gateway is the agents' websocket (mounted at /agent/ws): support
// agents receive routed tickets and the changes of their instance live,
// and work them (accept, reply, note, transfer, close) over one versioned
// JSON protocol, documented frame by frame in docs/agent-protocol.md.
//
// What it owns:
//   - the socket lifecycle: origin check, authentication by token (first
//     frame, Authorization header or a "bearer.<token>" subprotocol; never
//     the URL, never logged), ping/pong keepalive with deadlines, close
//     codes with reasons, graceful shutdown;
//   - decoding and validating request frames, and mapping hub errors to
//     protocol error codes (another instance's ticket is "not_found", the
//     same as a ticket that does not exist);
//   - fan-out: one bus subscription per instance per node, shared by the
//     instance's sockets here; each socket has a bounded send queue and one
//     writer goroutine, and a socket whose queue overflows is closed as
//     "too slow" instead of slowing anyone else;
//   - resume: a reconnecting client names its last cursor and gets the gap
//     from the database (the socket is a live view, the database the
//     record), each cursor once even when it also arrives live;
//   - presence renewal: while an agent has a socket here and has set a
//     status, the gateway heartbeats the router for it, so the agents of a
//     dead node lapse by the router's TTL; a closed socket alone signs
//     nobody out.
//
// The hub does the work (M1: two-way conversations; tenant isolation is
// enforced by the hub's instance-scoped calls and by the per-instance bus
// topic, and checked again here on every update).
//
// It imports hub, hub/store, hub/routing (types) and connectors (types:
// the error classes of policy refusals), never a connector
// implementation.
package gateway
