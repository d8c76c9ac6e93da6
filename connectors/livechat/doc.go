// Package livechat is the live-chat channel: the visitor websocket, the
// embeddable widget (plain JS and CSS served from the binary, no build step)
// and a demo page that embeds it.
//
// It owns the visitor side of a chat: the versioned JSON frame protocol
// (README.md), signed visitor tokens so a reload or a second tab resumes the
// same conversation, per-connection send queues and keepalive, and the
// cross-node fan-out of messages and typing signals through Config.PubSub to
// whichever node holds a visitor's sockets. It carries two-way conversation
// between a web site's visitors and the agents (M1) and hands the hub only
// the contact data the visitor typed in (M3).
//
// The hub owns storage, threading and routing: a visitor message is
// acknowledged only after Host.Deliver committed it (ack-after-commit), and
// the conversation of a visitor is always Host.OpenThread with the visitor id
// as thread key, so concurrent tabs meet on one conversation (case C23).
//
// This package imports only package connectors of this module (and
// gorilla/websocket); it must not import the hub.
package livechat
